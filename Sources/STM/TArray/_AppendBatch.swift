/// The elements a transaction appends to a `TArray`: a delayed append anchored on the count.
/// At commit they land in the slots just past the newest count, in order, so concurrent
/// appenders never conflict and their elements end up in commit order.
@usableFromInline
final class _AppendBatch<Element: Sendable>: _DelayedAppend {
  @usableFromInline typealias Anchor = Int
  @usableFromInline typealias MakeWrites = (_SlotDirectory<Element>, [Element], _ firstIndex: Int, inout [_DelayedWrite]) -> Void

  @usableFromInline var items: [Element] = []
  @usableFromInline let slots: _SlotDirectory<Element>
  /// ``writes(into:of:from:adding:)``, captured where `Element` is known: `land` runs in the engine's
  /// unspecialized generic code, where every generic type it touched would cost a metadata
  /// lookup per element.
  @usableFromInline let makeWrites: MakeWrites

  @inlinable
  init(slots: _SlotDirectory<Element>) {
    self.slots = slots
    makeWrites = Self.writes(into:of:from:adding:)
  }

  @usableFromInline
  init(slots: _SlotDirectory<Element>, items: [Element], makeWrites: @escaping MakeWrites) {
    self.slots = slots
    self.items = items
    self.makeWrites = makeWrites
  }

  @usableFromInline func copy() -> Self {
    Self(slots: slots, items: items, makeWrites: makeWrites)
  }

  /// Written out, not the protocol's default: with the anchor's type (`Int`) named here, the
  /// anchor's versions are read and made without run-time metadata lookups.
  @usableFromInline func _land(onto anchor: AnyObject, of cell: _Cell, into writes: inout [_DelayedWrite]) -> AnyObject {
    _anchorVersion(land(onto: _anchorValue(of: anchor, as: Int.self), into: &writes), of: cell)
  }

  @usableFromInline func land(onto count: Int, into writes: inout [_DelayedWrite]) -> Int {
    makeWrites(slots, items, count, &writes)
    slots.noteLanded(upTo: count + items.count)
    return count + items.count
  }

  /// Adds to `writes` the writes that put `items` into the slots from `firstIndex` on.
  @inlinable
  static func writes(
    into slots: _SlotDirectory<Element>, of items: [Element], from firstIndex: Int, adding writes: inout [_DelayedWrite]
  ) {
    writes.reserveCapacity(writes.count + items.count)
    for offset in items.indices {
      writes.append(_DelayedWrite(slots.slot(firstIndex + offset), .some(items[offset])))
    }
  }
}
