import STMCore
import Synchronization

/// The consumers of one `TQueue` that found it empty outside a transaction (`dequeue()`,
/// blocking or async), parked until an item comes for them. Each item that lands wakes one
/// of them, not all.
///
/// Why not `retry()`, as inside transactions: a retrying transaction waits for any change to
/// what it read, and the commit that links an item changes what every waiting consumer read,
/// so *W* consumers waiting cost *W* wake-ups per item, all but one finding nothing and
/// waiting again (a pool of 32 idle consumers took 7 wake-ups per item, the thirty-second
/// session's audit).
///
/// No wake-up is lost:
/// - A consumer parks before its last look at the queue, and sleeps only if that look found
///   the queue empty and open (`TQueue.blockingDequeue`).
/// - Whatever makes an item visible calls ``itemLanded()`` after publishing it: a drop-in
///   enqueue, and the commit of a transaction's enqueues (from `afterCommit`). `close()` calls
///   ``wakeAll()`` after committing.
/// - Both sides fence between their write (the item, or the count of parked consumers) and
///   their read (the count, or the queue): either the producer sees the consumer parked, or
///   the consumer's look sees the item.
/// - A woken consumer that takes an item and sees another waiting wakes the next
///   (``passOn(ifAnItemWaits:)``), so the items of one transaction reach as many consumers as
///   there are items. A consumer leaves without an item only right after a look that found
///   the queue empty (its task cancelled) or closed and drained, so it owes no item the
///   wake-up it may have had.
///
/// Consumers are woken in the order they parked.
@usableFromInline
final class _ConsumerParking: Sendable {
  /// The parked consumers by ticket, handed out in order; `oldest` is the lowest ticket that
  /// may still be parked (those below it were woken or withdrew).
  struct Lot {
    var waiters: [UInt64: _Waiter] = [:]
    var oldest: UInt64 = 0
    var next: UInt64 = 0

    /// Takes the consumer that parked first: O(1) amortized, since each ticket is passed over
    /// once.
    mutating func popOldest() -> _Waiter? {
      guard !waiters.isEmpty else {
        oldest = next
        return nil
      }
      while true {
        let ticket = oldest
        oldest += 1
        if let waiter = waiters.removeValue(forKey: ticket) { return waiter }
      }
    }
  }

  private let lot = _Lock(Lot())
  /// How many consumers are parked: read without the lock by every producer, so that an item
  /// landing with nobody parked costs a fence and a load of a line that only consumers that
  /// park write.
  @usableFromInline let parked = Atomic<Int>(0)
  /// How many consumers were woken, for tests.
  let wakeUps = Atomic<Int>(0)

  @usableFromInline init() {}

  /// Parks the calling thread, looks at the queue with `look`, and blocks until a producer
  /// (or `close()`) wakes it if the look found the queue empty and open. Returns what the look
  /// found, and whether a producer woke this consumer (see ``passOn(ifAnItemWaits:)``).
  @usableFromInline
  func parkAndBlock(looking look: () -> _QueueLook) -> (found: _QueueLook, woken: Bool) {
    let waiter = _Waiter()
    let ticket = park(waiter)
    let found = look()
    guard found == .empty else { return (found, !withdraw(ticket)) }
    waiter.block()
    return (.empty, true)
  }

  /// `parkAndBlock(looking:)` for a task: suspends instead of blocking, and does not wait
  /// (or stops waiting) once the task is cancelled.
  func parkAndSuspend(looking look: () -> _QueueLook) async -> (found: _QueueLook, woken: Bool) {
    let waiter = _Waiter()
    let ticket = park(waiter)
    let found = look()
    guard found == .empty, !Task.isCancelled else { return (found, !withdraw(ticket)) }
    await withTaskCancellationHandler {
      await waiter.suspend()
    } onCancel: {
      waiter.wake()
    }
    // Still parked when cancellation woke it rather than a producer.
    return (.empty, !withdraw(ticket))
  }

  /// Parks `waiter` (which then blocks or suspends if its look finds nothing) and returns its
  /// ticket, for ``withdraw(_:)``. The consumer must look at the queue after this.
  private func park(_ waiter: _Waiter) -> UInt64 {
    let ticket = lot.withLock { lot in
      let ticket = lot.next
      lot.next += 1
      lot.waiters[ticket] = waiter
      parked.add(1, ordering: .relaxed)
      return ticket
    }
    // Pairs with the fence in `itemLanded()` (and `wakeAll()`): the look that follows sees
    // the item, or the producer sees this consumer parked.
    atomicMemoryFence(ordering: .sequentiallyConsistent)
    return ticket
  }

  /// Takes the consumer with `ticket` out of the lot, for one whose look found an item (or
  /// the queue closed) or whose task was cancelled. Returns false when it was no longer there:
  /// it has been woken, and owes the wake-up to an item (see ``passOn(ifAnItemWaits:)``).
  private func withdraw(_ ticket: UInt64) -> Bool {
    lot.withLock { lot in
      guard lot.waiters.removeValue(forKey: ticket) != nil else { return false }
      parked.subtract(1, ordering: .relaxed)
      return true
    }
  }

  /// Wakes the consumer that parked first, if any, after an item was published.
  @inlinable
  func itemLanded() {
    // Pairs with the fence in `park(_:)`.
    atomicMemoryFence(ordering: .sequentiallyConsistent)
    if parked.load(ordering: .relaxed) > 0 { wakeOne() }
  }

  /// Wakes the consumer that parked first, if any.
  @usableFromInline
  func wakeOne() {
    let woken = lot.withLock { lot in
      let waiter = lot.popOldest()
      if waiter != nil { parked.subtract(1, ordering: .relaxed) }
      return waiter
    }
    guard let woken else { return }
    wakeUps.add(1, ordering: .relaxed)
    woken.wake()
  }

  /// For a woken consumer that has just taken an item: wakes the next parked consumer if
  /// `anItemWaits()` says another item is there for it.
  @usableFromInline
  func passOn(ifAnItemWaits anItemWaits: () -> Bool) {
    // Relaxed: a consumer parked before this one was woken is seen through the lot's lock
    // (the producer that woke this one took it after that consumer parked); one that parks
    // later looks at the queue itself.
    guard parked.load(ordering: .relaxed) > 0, anItemWaits() else { return }
    wakeOne()
  }

  /// Wakes every parked consumer, after a `close()` has committed.
  @usableFromInline
  func wakeAll() {
    // Pairs with the fence in `park(_:)`, as in `itemLanded()`.
    atomicMemoryFence(ordering: .sequentiallyConsistent)
    guard parked.load(ordering: .relaxed) > 0 else { return }
    let woken = lot.withLock { lot in
      let all = Array(lot.waiters.values)
      lot.waiters.removeAll()
      lot.oldest = lot.next
      parked.subtract(all.count, ordering: .relaxed)
      return all
    }
    wakeUps.add(woken.count, ordering: .relaxed)
    for waiter in woken { waiter.wake() }
  }

  /// How many consumers are parked now, for tests.
  var parkedCount: Int { parked.load(ordering: .relaxed) }
}
