import Dispatch
import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Testing

extension LibraryTests {
  /// `dict[key, default: 0] += 1` on a present key outside `atomically` takes a short road
  /// (`_QuickUpdate`). It must keep every rule of the general one: these are the cases where
  /// it must step aside, or where a shortcut would be tempting.
  @Suite struct QuickUpdateTests {
    /// While another transaction is inevitable, no commit may land; the quick road marks its
    /// segment committing before it locks, and takes the general road (which waits) when
    /// it finds the token held.
    @Test func anUpdateOfAPresentKeyWaitsForTheInevitableTransaction() throws {
      let counts: TDictionary<Int, Int> = [1: 0]
      let inevitable = Gate(), finish = Gate()
      let seenInside = LockedBox<[Int?]>([])
      let holder = startThread {
        try! atomically { transaction in
          try transaction.becomeInevitable()
          seenInside.value.append(counts[1])
          inevitable.open()
          finish.wait()
          seenInside.value.append(counts[1])
        }
      }
      inevitable.wait()
      let updater = startThread { counts[1, default: 0] += 1 }
      let landedEarly = updater.wait(timeout: .now() + 0.3) == .success
      finish.open()
      holder.wait()
      updater.wait()
      #expect(!landedEarly, "a drop-in update committed while another transaction was inevitable")
      #expect(seenInside.value == [0, 0])
      #expect(counts[1] == 1)
    }

    /// The update publishes like any commit: a transaction waiting in `retry()` for the key
    /// wakes up.
    @Test func anUpdateOfAPresentKeyWakesATransactionWaitingForIt() {
      let counts: TDictionary<Int, Int> = [1: 0]
      let seen = LockedBox(0)
      let waiter = startThread {
        seen.value = try! atomically { transaction in
          guard let value = counts[1], value > 0 else { try transaction.retry() }
          return value
        }
      }
      let deadline = Date().addingTimeInterval(10)
      while _Engine.shared.retryWaiters.pendingEntries == 0 && Date() < deadline { usleep(1_000) }
      counts[1, default: 0] += 1
      let woke = waiter.wait(timeout: .now() + 5) == .success
      #expect(woke, "the waiting transaction was not woken by the update")
      if !woke, let cell = counts.storage.index.find(1, hash: 1.hashValue)?.takeUnretainedValue() {
        // Let the thread go, so that the test run can end.
        _Engine.shared.retryWaiters.wakeWaiters(of: cell)
        _ = waiter.wait(timeout: .now() + 5)
      }
      #expect(seen.value == 1)
    }

    /// A snapshot that saw the key's value keeps seeing it: the update may write into the
    /// newest version only when no snapshot can see that version.
    @Test func aRunningSnapshotKeepsTheValueItSaw() {
      let counts: TDictionary<Int, Int> = [1: 0]
      let read = Gate(), updated = Gate()
      let seen = LockedBox<[Int?]>([])
      let reader = startThread {
        atomically { _ in
          seen.value.append(counts[1])
          read.open()
          updated.wait()
          seen.value.append(counts[1])
        }
      }
      read.wait()
      for _ in 0..<3 { counts[1, default: 0] += 1 }
      updated.open()
      reader.wait()
      #expect(seen.value == [0, 0])
      #expect(counts[1] == 3)
    }

    /// An absent key, a key removed before, and a key whose value is mutated in place all give
    /// what `Dictionary` gives, with the count in step.
    @Test func absentAndRemovedKeysTakeTheGeneralRoad() {
      let counts: TDictionary<String, Int> = ["a": 1]
      counts["b", default: 10] += 1
      #expect(counts.count == 2)
      #expect(counts.removeValue(forKey: "a") == 1)
      counts["a", default: 5] += 1
      counts["a", default: 5] += 1
      #expect(counts.count == 2)
      #expect(Dictionary(uniqueKeysWithValues: counts.map { ($0.key, $0.value) }) == ["a": 7, "b": 11])
    }
  }
}
