/// The elements a transaction appends to a `TArray`: a delayed append anchored on the count.
/// At commit they land in the slots just past the newest count, in order, so concurrent
/// appenders never conflict and their elements end up in commit order.
@usableFromInline
final class _AppendBatch<Element: Sendable>: _DelayedAppend {
  @usableFromInline typealias Anchor = Int
  @usableFromInline var items: [Element] = []
  @usableFromInline let slots: _SlotDirectory<Element>

  @inlinable init(slots: _SlotDirectory<Element>) { self.slots = slots }

  @usableFromInline func copy() -> Self {
    let copy = Self(slots: slots)
    copy.items = items
    return copy
  }

  @usableFromInline func land(onto count: Int) -> (anchor: Int, writes: [_DelayedWrite]) {
    var writes: [_DelayedWrite] = []
    writes.reserveCapacity(items.count)
    for (offset, item) in items.enumerated() {
      writes.append(_DelayedWrite(slots.slot(count + offset), .some(item)))
    }
    slots.noteLanded(upTo: count + items.count)
    return (count + items.count, writes)
  }
}
