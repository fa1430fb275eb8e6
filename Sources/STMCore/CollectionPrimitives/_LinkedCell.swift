/// A cell that carries an item beside the link it holds to the next cell of its kind: a
/// `TQueue`'s node, which is its own link's cell.
///
/// A node and its link were two objects, the node holding the link's cell: three allocations
/// per queue item with the link's version, and a retain, a pointer and a deferred release to
/// go from one to the other. As one object a node takes two, and a consumer reads the next
/// node from the node it holds.
///
/// `Item` is the queue's element type made optional (`Element?`: nil only in the sentinel),
/// made the class's own parameter so that its `deinit`, compiled once for every element type,
/// finds the item's type in the class instead of looking `Optional<Element>` up at run time.
///
/// `@unchecked Sendable`: `item` is immutable and `Sendable`; the link is the cell itself;
/// `position` is written only before the node is published.
@usableFromInline
package final class _LinkedCell<Item: Sendable>: _TypedCell<_LinkedCell<Item>?>, @unchecked Sendable {
  @usableFromInline package let item: Item
  /// How many nodes were linked before this one since the list began (the first, a queue's
  /// sentinel, is 0): set by whoever links the node, before it is published, and never again
  /// after. Two nodes' positions give the number of nodes from one to the other in O(1) (a
  /// queue's `count`).
  @inlinable package var position: Int {
    get { storedPosition }
    set { storedPosition = newValue }
  }

  /// `position`, without Swift's dynamic exclusivity checks: written once, by the thread that
  /// links the node, before any other thread can reach it, it is never accessed in two places
  /// at once. Reached only through `position`, whose body this module compiles: the checks stay
  /// off only where the access is compiled from this module's code, and the queue's own code
  /// (another module) used to make two calls into the runtime per drop-in enqueue, about 30
  /// instructions each.
  @exclusivity(unchecked) @usableFromInline var storedPosition: Int

  /// A node holding `item`, linked to `next`, at `position` (see ``position``).
  @inlinable
  package init(_ item: Item, next: _LinkedCell? = nil, position: Int = 0) {
    self.item = item
    self.storedPosition = position
    // The link is written once at most, from nil, when the next node is linked after this
    // one: no value it replaces holds anything (see `_Cell.leftoverWorthReclaiming`).
    super.init(next, replacedValuesHoldNothing: true)
  }

  /// What a conflict report calls the node when no operation noted its name (one that began
  /// before the ``ConflictLog`` started): not the cell's Swift type, which names internals.
  override var variableDescription: String { "TQueue node (\(Item.self))" }

  /// Its newest version may hold the next node, and that one the node after it: released
  /// through `_DeferredRelease`, a run of consumed nodes goes one after another instead of
  /// recursively.
  override func releaseHistory(_ newest: Unmanaged<_VersionBase>) {
    _DeferredRelease.release(Unmanaged<AnyObject>.fromOpaque(newest.toOpaque()))
  }
}
