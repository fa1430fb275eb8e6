/// The non-transactional index of a keyed collection: which cell holds each key.
///
/// Each key has its own cell (`TVar<Value?>`, nil while the key is absent), so transactions on
/// different keys touch different cells and never conflict, whatever happens to the index
/// itself: the index is striped by hash and changed under short per-stripe locks, outside any
/// transaction's conflict detection (the ttrie idea). Growing a stripe is invisible to
/// transactions.
///
/// Cells leave the index in two ways, both through `TVar._retire(if:)`, which makes any
/// transaction still holding the cell rerun and look the key up again:
/// - a committed removal detaches its key's cell at once (`detach`);
/// - cells made for lookups of absent keys, and cells of inserts that rolled back, are swept
///   later: a sweep retires the empty, never-written cells that were already suspects at the
///   previous sweep of the stripe, so a cell made by an insert still in flight is not touched.
///
/// The lookups are inlinable, so that a client's specialized code finds a cell without
/// generic-metadata lookups; the rare housekeeping (sweeps, retirement) is not.
@usableFromInline
final class _KeyIndex<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  @usableFromInline typealias Slot = TVar<Value?>

  @usableFromInline
  struct Stripe {
    @usableFromInline var slots: [Key: Slot] = [:]
    /// Cells made since the last sweep.
    @usableFromInline var madeSinceSweep = 0
    /// Empty, never-written cells seen by the last sweep.
    var suspects: [Key] = []
    /// Retired cells, with the clock when they were retired: a transaction whose snapshot is
    /// older may still see its key in one, so enumeration keeps them until none can.
    @usableFromInline var retired: [Key: [(slot: Slot, clock: UInt64)]] = [:]
    @usableFromInline var retiredCount = 0
    /// `retiredCount` at which the next pruning runs: twice what the last one kept (at least
    /// 32), so that a long-running snapshot that pins many retired cells does not make every
    /// removal rescan them all.
    var pruneAt = 32
    /// Set while a sweep is on its way (see `sweepSoon`).
    @usableFromInline var sweepScheduled = false

    /// Whether enough cells were made since the last sweep to sweep again and none is on its
    /// way; if so, the caller must sweep (and it is now on its way).
    @inlinable
    mutating func claimSweep() -> Bool {
      guard !sweepScheduled, madeSinceSweep > 64 + slots.count / 2 else { return false }
      sweepScheduled = true
      return true
    }
  }

  @usableFromInline static var stripeCount: Int { 64 }
  @usableFromInline let stripes: [_Lock<Stripe>]

  init(minimumCapacity: Int = 0) {
    let perStripe = minimumCapacity / Self.stripeCount
    stripes = (0..<Self.stripeCount).map { _ in
      var stripe = Stripe()
      stripe.slots.reserveCapacity(perStripe)
      return _Lock(stripe)
    }
  }

  @inlinable @inline(__always)
  func stripe(for key: Key) -> _Lock<Stripe> {
    // The high bits pick the stripe, so the dictionary inside it still sees varied low bits.
    stripes[Int(UInt(bitPattern: key.hashValue) >> (UInt.bitWidth - 6))]
  }

  /// The key's cell, if the index has one.
  @inlinable
  func existingSlot(for key: Key) -> Slot? {
    stripe(for: key).withLock { $0.slots[key] }
  }

  /// The key's cell, made (holding nil) if the index has none.
  @inlinable
  func slot(for key: Key) -> Slot {
    let lock = stripe(for: key)
    let (slot, sweepDue) = lock.withLock { stripe in
      (Self.slot(for: key, in: &stripe), stripe.claimSweep())
    }
    if sweepDue { sweepSoon(lock) }
    return slot
  }

  /// The key's cell, and the cells retired after `snapshot` that held it: a transaction
  /// reading at `snapshot` finds the key's value in whichever of them holds one.
  @inlinable
  func slots(for key: Key, seenFrom snapshot: UInt64) -> (current: Slot, retired: [Slot]) {
    let lock = stripe(for: key)
    let (current, retired, sweepDue) = lock.withLock { stripe in
      let current = Self.slot(for: key, in: &stripe)
      var retired: [Slot] = []
      if stripe.retiredCount > 0, let cells = stripe.retired[key] {
        retired = cells.lazy.filter { $0.clock > snapshot }.map(\.slot)
      }
      return (current, retired, stripe.claimSweep())
    }
    if sweepDue { sweepSoon(lock) }
    return (current, retired)
  }

  @inlinable
  static func slot(for key: Key, in stripe: inout Stripe) -> Slot {
    if let slot = stripe.slots[key] { return slot }
    let slot = Slot(nil)
    stripe.slots[key] = slot
    stripe.madeSinceSweep += 1
    return slot
  }

  /// Sweeps `lock`'s stripe now, or, inside a transaction, once it has finished: a sweep
  /// retires empty cells, and the running transaction may have read one of them (a lookup of
  /// an absent key), which would make it rerun for nothing.
  @usableFromInline
  func sweepSoon(_ lock: _Lock<Stripe>) {
    let sweep = { lock.withLock { Self.sweep(&$0) } }
    if let transaction = Transaction._currentChecked {
      transaction.afterCommit(sweep)
      transaction.afterAbort(sweep)
    } else {
      sweep()
    }
  }

  static func sweep(_ stripe: inout Stripe) {
    stripe.sweepScheduled = false
    for key in stripe.suspects {
      guard let slot = stripe.slots[key] else { continue }
      retire(key, slot, in: &stripe)
    }
    stripe.suspects = []
    for (key, slot) in stripe.slots where slot._newestCommittedValue == nil {
      stripe.suspects.append(key)
    }
    stripe.madeSinceSweep = 0
  }

  /// After a removal of `key` committed: detaches its cell if it is still empty.
  @usableFromInline
  func detach(_ key: Key, _ slot: Slot) {
    stripe(for: key).withLock { stripe in
      guard let current = stripe.slots[key], current == slot else { return }
      Self.retire(key, slot, in: &stripe)
    }
  }

  private static func retire(_ key: Key, _ slot: Slot, in stripe: inout Stripe) {
    guard slot._retire(if: { $0 == nil }) else { return }
    stripe.slots[key] = nil
    stripe.retired[key, default: []].append((slot, _EngineClock.now))
    stripe.retiredCount += 1
    if stripe.retiredCount >= stripe.pruneAt {
      let oldest = _EngineClock.oldestRunningSnapshot()
      stripe.retired = stripe.retired.compactMapValues { cells in
        let kept = cells.filter { $0.clock > oldest }
        return kept.isEmpty ? nil : kept
      }
      stripe.retiredCount = stripe.retired.values.reduce(0) { $0 + $1.count }
      stripe.pruneAt = max(32, 2 * stripe.retiredCount)
    }
  }

  /// Every cell that a transaction running now may find a key in, stripe by stripe (not
  /// atomic: the caller reads the cells in a transaction). A key may have two cells here, a
  /// retired one and a fresh one; at any one snapshot at most one of them holds a value.
  func allSlots(seenFrom snapshot: UInt64) -> [(key: Key, slot: Slot)] {
    var all: [(key: Key, slot: Slot)] = []
    for stripe in stripes {
      stripe.withLock { stripe in
        all.reserveCapacity(all.count + stripe.slots.count + stripe.retiredCount)
        for (key, slot) in stripe.slots { all.append((key, slot)) }
        guard stripe.retiredCount > 0 else { return }
        for (key, cells) in stripe.retired {
          for cell in cells where cell.clock > snapshot { all.append((key, cell.slot)) }
        }
      }
    }
    return all
  }

  /// How many cells the index holds (including empty ones not yet swept); for tests.
  var cellCount: Int { stripes.reduce(0) { total, stripe in total + stripe.withLock { $0.slots.count } } }
}
