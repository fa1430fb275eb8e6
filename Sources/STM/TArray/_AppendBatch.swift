/// The elements a transaction appends to a `TArray`: a delayed append anchored on the count.
/// At commit they land in the slots just past the newest count, in order, so concurrent
/// appenders never conflict and their elements end up in commit order.
@usableFromInline
struct _AppendBatch<Element: Sendable>: _DelayedAppend {
  @usableFromInline typealias Anchor = Int
  @usableFromInline typealias Land = (UnsafePointer<_AppendBatch>, _ count: Int, inout [_DelayedWrite]) -> Int

  /// ``land(_:onto:into:)``, captured where `Element` is known: the engine lands the batch
  /// from its unspecialized generic code, where every generic type touched (the items, even
  /// their count) would cost a metadata lookup. First, so that its offset does not depend on
  /// `Element`, and that code reads it without asking the type's layout.
  @usableFromInline let landItems: Land
  @usableFromInline let slots: _SlotDirectory<Element>
  @usableFromInline var items = _PendingItems<Element>()
  /// The offsets in `items` of the elements that the transaction's code is mutating on a copy
  /// right now (`array[i] += 1` on one of its own appends): reading or writing one meanwhile
  /// traps. Kept here, not on the index's cell, which such an element may not have yet: made
  /// for the guard, the cells stayed for good when the appends never landed (found by review).
  @usableFromInline var itemsBeingMutated: [Int] = []

  @inlinable
  init(slots: _SlotDirectory<Element>) {
    self.slots = slots
    landItems = Self.land(_:onto:into:)
  }

  @usableFromInline var _itemCount: Int { items.count }
  @usableFromInline mutating func _removeItems(downTo count: Int) -> Any { items.removeLast(downTo: count) }

  /// Written out, not the protocol's default: with the anchor's type (`Int`) named here, the
  /// anchor's versions are read and made without run-time metadata lookups.
  @usableFromInline static func _land(
    _ batch: UnsafePointer<Self>, onto anchor: AnyObject, of cell: _Cell, into writes: inout [_DelayedWrite]
  ) -> AnyObject {
    _anchorVersion(batch.pointee.landItems(batch, _anchorValue(of: anchor, as: Int.self), &writes), of: cell)
  }

  /// The protocol's typed form; the engine calls `_land(_:onto:of:into:)` instead.
  @usableFromInline func land(onto count: Int, into writes: inout [_DelayedWrite]) -> Int {
    withUnsafePointer(to: self) { landItems($0, count, &writes) }
  }

  /// Adds to `writes` the writes that put the items of `batch` into the slots from `count` on,
  /// and returns the count after them.
  @inlinable
  static func land(_ batch: UnsafePointer<_AppendBatch>, onto count: Int, into writes: inout [_DelayedWrite]) -> Int {
    let items = batch.pointee.items.count
    writes.reserveCapacity(forAppending: items)
    for offset in 0..<items {
      writes.append(_DelayedWrite(batch.pointee.slots.slot(count + offset), .some(batch.pointee.items[offset])))
    }
    batch.pointee.slots.noteLanded(upTo: count + items)
    return count + items
  }
}
