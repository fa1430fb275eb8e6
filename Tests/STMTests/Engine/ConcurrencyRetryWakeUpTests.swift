import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension Int {
  /// A mutating method that runs `body` in the middle of the mutation: through a `TVar`'s
  /// `value`, a drop-in in-place mutation, which holds the cell's commit lock meanwhile.
  fileprivate mutating func mutating(while body: () -> Void) { body() }
}

extension LibraryTests {
  /// A transaction that waits in `retry()` sleeps until something it read changes, without
  /// spinning (DESIGN.md: blocking without busy-waiting): it is not woken again and again by
  /// a commit lock held without a change, or by a cell that is on its way out of its index.
  @Suite struct ConcurrencyRetryWakeUpTests {
    /// A waiter that starts while a drop-in in-place mutation holds the cell it reads runs
    /// once, and once more when the mutation publishes. Its registration took the held lock
    /// for a change and woke it at once, for as long as the lock was held: thousands of
    /// reruns during a mutation of 100 ms (found by review).
    @Test func aWaiterDoesNotRerunWhileAMutationHoldsItsCell() {
      let variable = TVar(5)
      let mutating = Gate()
      let attempts = Atomic<Int>(0)
      let mutator = startThread {
        variable.value.mutating {
          mutating.open()
          Thread.sleep(forTimeInterval: 0.1)
        }
      }
      mutating.wait()
      let waiter = startThread {
        try! atomically { transaction in
          attempts.add(1, ordering: .relaxed)
          guard variable.value == 0 else { try transaction.retry() }
        }
      }
      #expect(mutator.wait(timeout: .now() + 60) == .success)
      #expect(waitForWaiters(on: [variable.cell]))
      let ran = attempts.load(ordering: .relaxed)
      variable.value = 0
      #expect(waiter.wait(timeout: .now() + 60) == .success)
      // Once as it started, and perhaps once after the mutation published (a new version of
      // the same value).
      #expect(ran <= 2, "the waiter ran \(ran) times while the mutation held the cell")
    }

    /// A waiter for an absent key is woken only now and then while other transactions insert
    /// and remove other keys (when a sweep takes the empty cell its lookup read, so that it
    /// must look the key up anew). Woken as the cell was retired, before the cell left the
    /// index, it found the same cell, which woke it again at once, until the cell left: about
    /// a thousand reruns in 20,000 pairs of transactions (found by review).
    @Test func aWaiterForAnAbsentKeyIsNotWokenOverAndOverByOtherKeysRemovals() {
      let dict = TDictionary<Int, Int>()
      for key in 0..<10 { dict[key] = key }
      let done = TVar(false)
      let attempts = Atomic<Int>(0)
      let waiter = startThread {
        try! atomically { transaction in
          attempts.add(1, ordering: .relaxed)
          if done.value { return }
          guard dict[-7] != nil else { try transaction.retry() }
        }
      }
      #expect(waitForWaiters(on: [done.cell]))
      let before = attempts.load(ordering: .relaxed)
      for key in 1_000..<21_000 {
        atomically { _ in dict[key] = key }
        atomically { _ in dict[key] = nil }
      }
      let reruns = attempts.load(ordering: .relaxed) - before
      done.value = true
      #expect(waiter.wait(timeout: .now() + 60) == .success)
      #expect(reruns <= 100, "the waiter reran \(reruns) times while other keys came and went")
    }
  }
}
