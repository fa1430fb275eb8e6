/// Where threads and tasks outside transactions wait for what a commit publishes (a `TQueue`'s
/// consumers wait for items, a bounded one's producers for places), woken a number at a time.
///
/// A transaction names the lot and how many waiters its commit has something for
/// (`Transaction._wakeAfterCommit(_:on:)`), instead of registering a closure: the log adds the
/// counts of one lot asked for in a row into one entry, in storage it keeps from one
/// transaction to the next, so asking allocates nothing once a segment's log has its storage
/// (a closure per transaction, and one per place that a bounded queue's consumer freed, did).
@usableFromInline
package protocol _ParkingLot: AnyObject, Sendable {
  /// Wakes up to `count` parked waiters; `Int.max` wakes them all. Called once the commit is
  /// visible; must not block or run a transaction.
  func wake(upTo count: Int)
}

/// What a transaction's commit owes one lot: how many of its waiters to wake.
struct _WakeUps {
  let lot: any _ParkingLot
  var count: Int
}
