import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

private struct Planned: Error {}

extension LibraryTests {
  /// A value freed as a transaction ends, after the attempt's log and read list were set aside
  /// but before they were let go of, whose deinit runs a transaction of its own. A dictionary
  /// dropped while a transaction runs is kept for that transaction's snapshot and freed as it
  /// ends (`_HistoryReclaimer.releaseWhatTheEndedSnapshotKept`). The inner transaction's end
  /// set its own log aside by swapping it with the buffers of the one before, and so put the
  /// ended attempt's log back into the segment, where the thread's next attempt committed its
  /// writes and ran its hooks again (DESIGN.md invariant 3; found by review).
  @Suite struct DeinitAtTransactionEndTests {
    /// Runs `body` on a thread of its own as `transaction`, which signals `inside` once it
    /// has run its first attempt up to the point where the dictionary is dropped; the
    /// dictionary's one value runs a transaction that counts into `deinits` when freed.
    private func dropADictionaryWhile(_ transaction: @escaping @Sendable (Gate, Gate) -> Void, deinits: TVar<Int>) -> ThreadHandle {
      let holder = LockedBox<TDictionary<Int, BumpsInATransaction>?>(TDictionary())
      holder.value![0] = BumpsInATransaction(deinits)
      let inside = Gate(), dropped = Gate()
      let thread = startThread {
        // The short transaction's end: the one that frees what its snapshot kept.
        _ThreadContext.current.keeperTurnAfter = .max
        transaction(inside, dropped)
      }
      inside.wait()
      holder.value = nil
      dropped.open()
      return thread
    }

    @Test func aThrownAttemptsWriteIsNotCommittedByTheNextTransaction() {
      let written = TVar(0), deinits = TVar(0), unrelated = TVar(0)
      let thread = dropADictionaryWhile({ inside, dropped in
        let first = LockedBox(true)
        _ = try? atomically { _ in
          written.value = 42
          if first.value {
            first.value = false
            inside.open()
            dropped.wait()
          }
          throw Planned()
        }
        atomically { _ in unrelated.value = 1 }
      }, deinits: deinits)
      #expect(thread.wait(timeout: .now() + 20) == .success)
      #expect(deinits.value == 1, "the dictionary's value was not freed as the transaction ended")
      #expect(written.value == 0, "the thrown attempt's write was committed by a later transaction")
    }

    @Test func aCommittedTransactionsHookRunsOnce() {
      let counted = TVar(0), deinits = TVar(0), unrelated = TVar(0)
      let runs = Atomic<Int>(0)
      let thread = dropADictionaryWhile({ inside, dropped in
        let first = LockedBox(true)
        atomically { tx in
          counted.value += 1
          tx.afterCommit { runs.add(1, ordering: .relaxed) }
          if first.value {
            first.value = false
            inside.open()
            dropped.wait()
          }
        }
        atomically { _ in unrelated.value += 1 }
      }, deinits: deinits)
      #expect(thread.wait(timeout: .now() + 20) == .success)
      #expect(deinits.value == 1)
      #expect(counted.value == 1)
      #expect(runs.load(ordering: .relaxed) == 1, "the afterCommit hook ran \(runs.load(ordering: .relaxed)) times")
    }

    @Test func aRetriedAttemptsWriteIsNotCommittedByItsRerun() {
      let written = TVar(0), deinits = TVar(0), go = TVar(false)
      let thread = dropADictionaryWhile({ inside, dropped in
        let attempts = LockedBox(0)
        try! atomically { tx in
          attempts.value += 1
          if attempts.value == 1 {
            written.value = 42
            inside.open()
            dropped.wait()
          }
          guard go.value else { try tx.retry() }
        }
      }, deinits: deinits)
      #expect(waitForWaiters(on: [go.cell]))
      go.value = true
      #expect(thread.wait(timeout: .now() + 20) == .success)
      #expect(deinits.value == 1)
      #expect(written.value == 0, "the retried attempt's write was committed by its rerun")
    }
  }
}
