import Dispatch
import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

/// A value that records the thread that freed it.
private final class RecordsWhereItGoes: Sendable {
  let freedBy: LockedBox<pthread_t?>
  init(_ freedBy: LockedBox<pthread_t?>) { self.freedBy = freedBy }
  deinit { freedBy.value = pthread_self() }
}

/// A key (or set element) that runs `onDeinit` when freed: the user's code, which may use
/// transactional data, the same collection included.
private final class KeyWithDeinit: Hashable, Sendable {
  let id: Int
  let onDeinit: @Sendable () -> Void
  init(_ id: Int, onDeinit: @escaping @Sendable () -> Void = {}) { (self.id, self.onDeinit) = (id, onDeinit) }
  deinit { onDeinit() }
  static func == (a: KeyWithDeinit, b: KeyWithDeinit) -> Bool { a.id == b.id }
  func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

extension LibraryTests {
  /// A removed key's cell stays in its stripe's retired list until no running transaction
  /// can read it; pruning that list frees the key. Pruned under the stripe's lock, the key's
  /// deinit ran there, and one that wrote to the same map, or whose write took a reclamation
  /// turn (which prunes stripes too), waited for that lock for good; pruned by a commit's
  /// turn, it ran inside the committed transaction, and its writes were lost (found by
  /// review). Keys now go once the lock is let go of and no transaction runs on the thread.
  @Suite struct RemovedKeyDeinitTests {
    /// Runs `rounds` on a thread of its own; false if it did not finish in time (a hang).
    private func finishes(within seconds: Double, _ rounds: @escaping @Sendable () -> Void) -> Bool {
      startThread(rounds).wait(timeout: .now() + seconds) == .success
    }

    @Test func aRemovedElementsDeinitThatCountsInACounterDoesNotHang() {
      let set = TSet<KeyWithDeinit>()
      let freed = TCounter()
      let finished = finishes(within: 30) {
        for round in 0..<5_000 {
          let element = KeyWithDeinit(round) { freed.increment() }
          set.insert(element)
          set.remove(element)
        }
      }
      #expect(finished, "a removed element's deinit hung")
      guard finished else { return }
      #expect(set.isEmpty)
      // Some removed elements may still wait in the retired lists, never more than were removed.
      #expect(freed.value > 0 && freed.value <= 5_000)
    }

    @Test func aRemovedKeysDeinitThatInsertsIntoTheSameMapDoesNotHang() {
      let dictionary = TDictionary<KeyWithDeinit, Int>()
      let finished = finishes(within: 30) {
        for round in 0..<5_000 {
          let key = KeyWithDeinit(round) { dictionary[KeyWithDeinit(-1 - round)] = round }
          dictionary[key] = round
          dictionary.removeValue(forKey: key)
        }
      }
      #expect(finished, "a removed key's deinit that used its own map hung")
      guard finished else { return }
      // Each key freed inserted one key of its own, and none of the 5,000 stayed.
      let inserted = dictionary.count
      #expect(inserted > 0 && inserted <= 5_000)
      #expect(dictionary.keys.allSatisfy { $0.id < 0 })
    }

    /// A sweep keeps the empty cells it found until the next one; a removal may retire one of
    /// them meanwhile and a pruning let go of it, so that the sweep's list holds it last. That
    /// list, too, goes once the lock is let go of (found by review).
    @Test func keysOfCellsThatASweepFoundEmptyGoOutsideTheLock() {
      let dictionary = TDictionary<KeyWithDeinit, Int>()
      let finished = finishes(within: 60) {
        for round in 0..<10_000 {
          let key = KeyWithDeinit(round) {
            // A removal takes its stripe's lock.
            let other = KeyWithDeinit(-1 - round)
            dictionary[other] = round
            dictionary.removeValue(forKey: other)
          }
          // Looked up inside a transaction while absent: an empty cell, which sweeps find.
          atomically { _ in _ = dictionary[key] }
          dictionary[key] = round
          dictionary.removeValue(forKey: key)
        }
      }
      #expect(finished, "a removed key's deinit hung")
      guard finished else { return }
      #expect(dictionary.isEmpty)
    }

    /// A sweep looks at each cell's newest value, under the stripe's lock, to find the empty
    /// ones. It looked at a copy, which, once a writer had replaced the value meanwhile, held
    /// the value last: the value's deinit then ran on the sweeping thread, under the stripe's
    /// lock (found by review). The look now copies nothing, and the value goes with the write
    /// that replaced it.
    @Test func aSweepsLookAtAValueDoesNotFreeIt() throws {
      let dictionary = TDictionary<Int, RecordsWhereItGoes>()
      let freedBy = LockedBox<pthread_t?>(nil), sweptBy = LockedBox<pthread_t?>(nil)
      dictionary[1] = RecordsWhereItGoes(freedBy)
      let index = dictionary.storage.index
      let stripe = index.stripe(forHash: index.hash(of: 1))
      let staged = LockedBox(false)
      // Right after the sweep has looked at the key's cell, which holds a value, another
      // thread replaces that value (a write that takes no lock of the index).
      _TestHooks.afterHousekeepingRead.withLock {
        $0 = { isEmpty in
          guard !isEmpty, !staged.value else { return }
          staged.value = true
          startThread { dictionary[1] = RecordsWhereItGoes(LockedBox(nil)) }.wait()
        }
      }
      defer { _TestHooks.afterHousekeepingRead.withLock { $0 = nil } }
      let sweeper = startThread {
        sweptBy.value = pthread_self()
        var dropped: [AnyObject] = []
        stripe._withUnsafeGuaranteedRef { stripe in
          stripe.state.withLock { type(of: index).sweep(stripe, &$0, droppingInto: &dropped) }
        }
      }
      #expect(sweeper.wait(timeout: .now() + 30) == .success)
      #expect(staged.value, "the sweep did not look at the key's cell")
      let freed = try #require(freedBy.value, "the replaced value was not freed")
      #expect(pthread_equal(freed, try #require(sweptBy.value)) == 0, "the sweep freed the value, under its stripe's lock")
    }

    @Test func removedKeysRunTheirDeinitsOutsideTransactionsAndTheirWritesLand() {
      let dictionary = TDictionary<KeyWithDeinit, Int>()
      let written = TVar(0)
      let freed = Atomic<Int>(0), freedInsideATransaction = Atomic<Int>(0)
      let finished = finishes(within: 60) {
        for round in 0..<5_000 {
          let key = KeyWithDeinit(round) {
            freed.add(1, ordering: .relaxed)
            if Transaction._currentChecked != nil { freedInsideATransaction.add(1, ordering: .relaxed) }
            written.value += 1
          }
          atomically { _ in dictionary[key] = round }
          atomically { _ in _ = dictionary.removeValue(forKey: key) }
          // Other writing commits, so that reclamation turns come.
          atomically { _ in dictionary[KeyWithDeinit(-1)] = round }
        }
      }
      #expect(finished, "a removed key's deinit hung")
      guard finished else { return }
      #expect(freed.load(ordering: .relaxed) > 0)
      #expect(freedInsideATransaction.load(ordering: .relaxed) == 0, "removed keys were freed inside a transaction")
      #expect(written.value == freed.load(ordering: .relaxed), "writes of removed keys' deinits were lost")
    }
  }
}
