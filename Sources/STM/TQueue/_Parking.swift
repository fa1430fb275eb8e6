import STMCore
import Synchronization

/// The threads and tasks waiting outside transactions at one end of a `TQueue`, parked until
/// what they wait for comes: consumers that found the queue empty (`dequeue()`), woken one per
/// item that lands, and producers that found a bounded queue full (`enqueue(_:)`), woken one
/// per place that a consumer frees. Not all of them.
///
/// Why not `retry()`, as inside transactions: a retrying transaction waits for any change to
/// what it read, and the commit that links an item (or frees a place) changes what every
/// waiting consumer (or producer) read, so *W* of them waiting cost *W* wake-ups per item, all
/// but one finding nothing and waiting again (a pool of 32 idle consumers took 7 wake-ups per
/// item, the thirty-second session's audit).
///
/// No wake-up is lost:
/// - A waiter parks before its last look at the queue, and sleeps only if that look found
///   nothing for it (`parkAndBlock(until:looking:sleepsIf:)`).
/// - Whatever makes an item (or a place) visible wakes a waiter after publishing it: a drop-in
///   enqueue calls ``itemLanded()`` (a drop-in take that frees a place, too); a transaction
///   that enqueues asks its commit for one wake-up (that takes *n* items, for *n*: one per
///   place it frees) through `Transaction._wakeAfterCommit(_:on:)`, which calls
///   ``wake(upTo:)`` before the transaction's `afterCommit` hooks run (one of those may wait
///   for a parked thread). A committed `close()` wakes every waiter at both ends.
/// - Both sides fence between their write (the item, or the count of parked waiters) and
///   their read (the count, or the queue): either the publisher sees the waiter parked, or
///   the waiter's look sees what was published.
/// - A transaction's items land together and wake one consumer; a woken consumer that takes
///   an item and sees another wakes the next (``passOn(ifAnItemWaits:)``), so the items reach
///   as many consumers as there are items. Places are freed one wake-up each.
/// - A waiter leaves without what it waited for only right after a look that found nothing
///   (its task cancelled, or its deadline passed) or the queue closed, so it owes no item the
///   wake-up it may have had.
/// - A waiter whose deadline passes while it is parked takes itself out of the lot before
///   that last look, so no publisher wakes it in place of a waiter that stays; if a publisher
///   took it out first, it counts as woken, and looks like any woken waiter.
///
/// Threads are woken before tasks, each in the order they parked: a task woken while the
/// shared pool's threads are all busy cannot run, and would hold the item while a parked
/// thread that could take it slept (found by review).
@usableFromInline
final class _Parking: _ParkingLot {
  /// Parked waiters of one kind, in the order they parked, linked by ticket: parking,
  /// withdrawing and taking the oldest are each O(1). (The line was a dictionary by ticket and
  /// the lowest ticket that might still be there, so the next wake-up stepped over every
  /// ticket of a waiter that had withdrawn meanwhile, holding the lot's lock: consumers polling
  /// with deadlines of 50 µs for 4 s left 56,000, and the next item's wake-up took 6.4 ms;
  /// found by review.)
  struct Line {
    private struct Link {
      let waiter: _Waiter
      var earlier: UInt64?
      var later: UInt64?
    }

    private var links: [UInt64: Link] = [:]
    private var oldest: UInt64?
    private var newest: UInt64?

    var isEmpty: Bool { links.isEmpty }

    /// Adds `waiter` as the newest, under `ticket`, which no waiter in the line has.
    mutating func append(_ waiter: _Waiter, ticket: UInt64) {
      links[ticket] = Link(waiter: waiter, earlier: newest, later: nil)
      if let newest { links[newest]!.later = ticket } else { oldest = ticket }
      newest = ticket
    }

    /// Takes out the waiter with `ticket`, if it is here.
    mutating func remove(_ ticket: UInt64) -> _Waiter? {
      guard let link = links.removeValue(forKey: ticket) else { return nil }
      if let earlier = link.earlier { links[earlier]!.later = link.later } else { oldest = link.later }
      if let later = link.later { links[later]!.earlier = link.earlier } else { newest = link.earlier }
      return link.waiter
    }

    /// Takes out the waiter that parked first.
    mutating func popOldest() -> _Waiter? {
      guard let oldest else { return nil }
      return remove(oldest)
    }

    /// Takes out every waiter, in no particular order.
    mutating func removeAll() -> [_Waiter] {
      let all = links.values.map(\.waiter)
      links.removeAll()
      (oldest, newest) = (nil, nil)
      return all
    }
  }

  /// The parked threads and the parked tasks.
  struct Lot {
    var threads = Line()
    var tasks = Line()
    var next: UInt64 = 0

    /// Takes up to `count` waiters (all of them for `Int.max`): threads first, then tasks,
    /// each in the order they parked.
    mutating func popOldest(_ count: Int) -> [_Waiter] {
      if count == .max { return threads.removeAll() + tasks.removeAll() }
      var popped: [_Waiter] = []
      while popped.count < count, let waiter = threads.popOldest() ?? tasks.popOldest() {
        popped.append(waiter)
      }
      return popped
    }
  }

  private let lot = _Lock(Lot())
  /// How many waiters are parked: read without the lock by every publisher, so that an item
  /// landing with nobody parked costs a fence and a load of a line written only when a waiter
  /// parks or is woken.
  @usableFromInline let parked = Atomic<Int>(0)
  /// How many waiters were woken, for tests.
  let wakeUps = Atomic<Int>(0)

  @usableFromInline init() {}

  /// Parks the calling thread, looks at the queue with `look`, and blocks until a publisher
  /// (or `close()`) wakes it if `sleepsIf` says the look found nothing for it, or until
  /// `deadline` if it has one. Returns what the look found, and whether a publisher woke this
  /// waiter (see ``passOn(ifAnItemWaits:)``).
  ///
  /// A waiter whose deadline passes takes itself out of the lot, unless a publisher has just
  /// taken it out to wake it: it then owes that wake-up to an item, as any woken waiter does,
  /// and the caller's next look settles it (it takes the item, or finds it gone).
  @usableFromInline
  func parkAndBlock<Found>(
    until deadline: _Deadline? = nil, looking look: () -> Found, sleepsIf foundNothing: (Found) -> Bool
  ) -> (found: Found, woken: Bool) {
    let waiter = _Waiter()
    let ticket = park(waiter, isTask: false)
    let found = look()
    guard foundNothing(found) else { return (found, !withdraw(ticket)) }
    guard let deadline else {
      waiter.block()
      return (found, true)
    }
    if waiter.block(until: deadline.dispatchTime) { return (found, true) }
    return (found, !withdraw(ticket))
  }

  /// `parkAndBlock(until:looking:sleepsIf:)` for a task: suspends instead of blocking, and
  /// does not wait (or stops waiting) once the task is cancelled or its deadline has passed.
  /// The caller looks again before it gives up.
  func parkAndSuspend<Found>(
    until deadline: _Deadline? = nil, looking look: () -> Found, sleepsIf foundNothing: (Found) -> Bool
  ) async -> (found: Found, woken: Bool) {
    let waiter = _Waiter()
    let ticket = park(waiter, isTask: true)
    let found = look()
    guard foundNothing(found), !Task.isCancelled, deadline?.hasPassed != true else { return (found, !withdraw(ticket)) }
    let timer = deadline.map { waiter.wake(atUptimeNanoseconds: $0.uptimeNanoseconds) }
    defer { timer?.cancel() }
    await withTaskCancellationHandler {
      await waiter.suspend()
    } onCancel: {
      waiter.wake()
    }
    // Still parked when cancellation or the deadline woke it rather than a publisher.
    return (found, !withdraw(ticket))
  }

  /// Parks `waiter` (which then blocks or suspends if its look finds nothing) and returns its
  /// ticket, for ``withdraw(_:)``. The waiter must look at the queue after this.
  private func park(_ waiter: _Waiter, isTask: Bool) -> UInt64 {
    let ticket = lot.withLock { lot in
      let ticket = lot.next
      lot.next += 1
      if isTask { lot.tasks.append(waiter, ticket: ticket) } else { lot.threads.append(waiter, ticket: ticket) }
      parked.add(1, ordering: .relaxed)
      return ticket
    }
    // Pairs with the fence in `wake(upTo:)`: the look that follows sees what was published,
    // or the publisher sees this waiter parked.
    atomicMemoryFence(ordering: .sequentiallyConsistent)
    return ticket
  }

  /// Takes the waiter with `ticket` out of the lot, for one whose look found something (or
  /// the queue closed) or whose task was cancelled. Returns false when it was no longer there:
  /// it has been woken, and owes the wake-up to an item (see ``passOn(ifAnItemWaits:)``).
  private func withdraw(_ ticket: UInt64) -> Bool {
    lot.withLock { lot in
      guard lot.threads.remove(ticket) ?? lot.tasks.remove(ticket) != nil else { return false }
      parked.subtract(1, ordering: .relaxed)
      return true
    }
  }

  /// Wakes a parked waiter, if any, after an item (or a place) was published outside a
  /// transaction.
  @inlinable
  func itemLanded() {
    wake(upTo: 1)
  }

  /// Wakes up to `count` parked waiters (all of them for `Int.max`; see `Lot.popOldest(_:)`),
  /// after what they wait for was published: items, places, or a close.
  @inlinable
  package func wake(upTo count: Int) {
    // Pairs with the fence in `park(_:)`.
    atomicMemoryFence(ordering: .sequentiallyConsistent)
    if parked.load(ordering: .relaxed) > 0 { wakeParked(upTo: count) }
  }

  /// ``wake(upTo:)`` once someone may be parked, without the fence.
  @usableFromInline
  func wakeParked(upTo count: Int) {
    let woken = lot.withLock { lot in
      let popped = lot.popOldest(count)
      parked.subtract(popped.count, ordering: .relaxed)
      return popped
    }
    guard !woken.isEmpty else { return }
    wakeUps.add(woken.count, ordering: .relaxed)
    for waiter in woken { waiter.wake() }
  }

  /// For a woken consumer that has just taken an item: wakes the next parked consumer if
  /// `anItemWaits()` says another item is there for it.
  @usableFromInline
  func passOn(ifAnItemWaits anItemWaits: () -> Bool) {
    // Relaxed: a consumer parked before this one was woken is seen through the lot's lock
    // (the producer that woke this one took it after that consumer parked); one that parks
    // later looks at the queue itself.
    guard parked.load(ordering: .relaxed) > 0, anItemWaits() else { return }
    wakeParked(upTo: 1)
  }

  /// How many times a waiter has parked here, for tests.
  var ticketsIssued: UInt64 { lot.withLock { $0.next } }

  /// How many waiters are parked now, for tests.
  var parkedCount: Int { parked.load(ordering: .relaxed) }
}
