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
final class _KeyIndex<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  typealias Slot = TVar<Value?>

  struct Stripe {
    var slots: [Key: Slot] = [:]
    /// Cells made since the last sweep.
    var madeSinceSweep = 0
    /// Empty, never-written cells seen by the last sweep.
    var suspects: [Key] = []
    /// Retired cells, with the clock when they were retired: a transaction whose snapshot is
    /// older may still see its key in one, so enumeration keeps them until none can.
    var retired: [Key: [(slot: Slot, clock: UInt64)]] = [:]
    var retiredCount = 0
  }

  static var stripeCount: Int { 64 }
  private let stripes: [_Lock<Stripe>]

  init(minimumCapacity: Int = 0) {
    let perStripe = minimumCapacity / Self.stripeCount
    stripes = (0..<Self.stripeCount).map { _ in
      var stripe = Stripe()
      stripe.slots.reserveCapacity(perStripe)
      return _Lock(stripe)
    }
  }

  @inline(__always)
  private func stripe(for key: Key) -> _Lock<Stripe> {
    // The high bits pick the stripe, so the dictionary inside it still sees varied low bits.
    stripes[Int(UInt(bitPattern: key.hashValue) >> (UInt.bitWidth - 6))]
  }

  /// The key's cell, if the index has one.
  func existingSlot(for key: Key) -> Slot? {
    stripe(for: key).withLock { $0.slots[key] }
  }

  /// The key's cell, made (holding nil) if the index has none.
  func slot(for key: Key) -> Slot {
    stripe(for: key).withLock { Self.slot(for: key, in: &$0) }
  }

  /// The key's cell, and the cells retired after `snapshot` that held it: a transaction
  /// reading at `snapshot` finds the key's value in whichever of them holds one.
  func slots(for key: Key, seenFrom snapshot: UInt64) -> (current: Slot, retired: [Slot]) {
    stripe(for: key).withLock { stripe in
      let current = Self.slot(for: key, in: &stripe)
      guard stripe.retiredCount > 0, let retired = stripe.retired[key] else { return (current, []) }
      return (current, retired.lazy.filter { $0.clock > snapshot }.map(\.slot))
    }
  }

  private static func slot(for key: Key, in stripe: inout Stripe) -> Slot {
    if let slot = stripe.slots[key] { return slot }
    let slot = Slot(nil)
    stripe.slots[key] = slot
    stripe.madeSinceSweep += 1
    if stripe.madeSinceSweep > 64 + stripe.slots.count / 2 { sweep(&stripe) }
    return slot
  }

  private static func sweep(_ stripe: inout Stripe) {
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
    if stripe.retiredCount >= 32 {
      let oldest = _EngineClock.oldestRunningSnapshot()
      stripe.retired = stripe.retired.compactMapValues { cells in
        let kept = cells.filter { $0.clock > oldest }
        return kept.isEmpty ? nil : kept
      }
      stripe.retiredCount = stripe.retired.values.reduce(0) { $0 + $1.count }
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
