import Foundation
@testable import STMCore

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
