import Foundation
@testable import STMCore
@testable import STM

/// Waits until waiters hold at least `count` registrations on `cells` altogether (transactions
/// in `retry()`, or operations waiting for a change), or until `timeout` has passed; returns
/// whether they did.
///
/// For tests that must change what a waiter waits for only once it waits: a change made
/// before then still lets such a test pass, without the wake-up it is about ever happening.
/// Counted per cell, since other tests running meanwhile have waiters of their own.
func waitForWaiters(on cells: [_Cell], atLeast count: Int = 1, timeout: TimeInterval = 10) -> Bool {
  let deadline = Date().addingTimeInterval(timeout)
  while cells.reduce(0, { $0 + _Engine.shared.retryWaiters.pendingEntries(for: $1) }) < count {
    if Date() >= deadline { return false }
    usleep(1_000)
  }
  return true
}

/// Waits until at least `count` consumers are parked on `queue` (drop-in `dequeue()` calls
/// that found it empty), or until `timeout` has passed; returns whether they were. Consumers
/// inside transactions wait in the retry registry instead (`waitForWaiters(on:)`).
func waitForParkedConsumers<Element>(on queue: TQueue<Element>, atLeast count: Int = 1, timeout: TimeInterval = 10) -> Bool {
  waitForParked(in: queue.waitingConsumers, atLeast: count, timeout: timeout)
}

/// Waits until at least `count` producers are parked on the bounded `queue` (drop-in
/// `enqueue(_:)` calls that found it full), or until `timeout` has passed; returns whether
/// they were.
func waitForParkedProducers<Element>(on queue: TQueue<Element>, atLeast count: Int = 1, timeout: TimeInterval = 10) -> Bool {
  waitForParked(in: queue.waitingProducers!, atLeast: count, timeout: timeout)
}

private func waitForParked(in lot: _Parking, atLeast count: Int, timeout: TimeInterval) -> Bool {
  let deadline = Date().addingTimeInterval(timeout)
  while lot.parkedCount < count {
    if Date() >= deadline { return false }
    usleep(1_000)
  }
  return true
}

/// How many pauses have begun so far in the process (debug builds count them): take it before
/// starting a transaction that should pause, and pass it to `waitForAPause(after:)`.
var pausesBegun: Int { _TestHooks.pausesBegun.load(ordering: .relaxed) }

/// Waits until a pause has begun since the count `before` was taken (the suites run one at a
/// time, so it is the staged transaction's), or until `timeout` has passed; returns whether
/// one did. A test that then holds the other side a while longer knows the pause lasts at
/// least that long, where a sleep started before the pause only hoped so.
func waitForAPause(after before: Int, timeout: TimeInterval = 10) -> Bool {
  let deadline = Date().addingTimeInterval(timeout)
  while pausesBegun == before {
    if Date() >= deadline { return false }
    usleep(1_000)
  }
  return true
}
