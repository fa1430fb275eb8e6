/// A node of a `TQueue`'s linked list (see `_LinkedCell`). The node that `head` points at has
/// been consumed (or is the initial sentinel); the items waiting are the ones after it.
@usableFromInline
typealias _QueueNode<Item: Sendable> = _LinkedCell<Item>

extension _LinkedCell {
  /// The link to the next node: the node's own cell.
  @inlinable var next: TVar<_LinkedCell?> { TVar(_cell: self) }
}

/// The items a transaction enqueues: a delayed append anchored on the queue's tail. At commit
/// they are linked after the newest tail, in order, so producers never conflict.
@usableFromInline
struct _EnqueueBatch<Element: Sendable>: _DelayedAppend {
  @usableFromInline typealias Anchor = _QueueNode<Element?>
  @usableFromInline typealias Link = (
    _ batch: UnsafePointer<_EnqueueBatch>, _ tail: AnyObject, _ of: _Cell, _ into: inout [_DelayedWrite]
  ) -> AnyObject

  /// ``land(_:onto:of:into:)``, captured where `Element` is known (see `_AppendBatch.landItems`,
  /// also for why it comes first): the engine lands the batch through it, so that neither the
  /// nodes nor the tail's versions are made by generic code that looks up their types'
  /// metadata at run time.
  @usableFromInline let linkItems: Link
  @usableFromInline var items = _PendingItems<Element>()

  @inlinable
  init() { linkItems = Self.land(_:onto:of:into:) }

  @usableFromInline var _itemCount: Int { items.count }
  @usableFromInline mutating func _removeItems(downTo count: Int) -> Any { items.removeLast(downTo: count) }

  @usableFromInline static func _land(
    _ batch: UnsafePointer<Self>, onto tail: AnyObject, of cell: _Cell, into writes: inout [_DelayedWrite]
  ) -> AnyObject {
    batch.pointee.linkItems(batch, tail, cell, &writes)
  }

  /// The protocol's typed form; the engine calls `_land(_:onto:of:into:)` instead.
  @usableFromInline func land(onto tail: _QueueNode<Element?>, into writes: inout [_DelayedWrite]) -> _QueueNode<Element?> {
    Self.link(items, after: tail, into: &writes)
  }

  /// `_land(_:onto:of:into:)` for the items of `batch`: links them after the tail version
  /// `tail` of `cell`.
  @inlinable
  static func land(
    _ batch: UnsafePointer<_EnqueueBatch>, onto tail: AnyObject, of cell: _Cell, into writes: inout [_DelayedWrite]
  ) -> AnyObject {
    let newTail = link(batch.pointee.items, after: _anchorValue(of: tail, as: _QueueNode<Element?>.self), into: &writes)
    return _anchorVersion(newTail, of: cell)
  }

  /// New nodes for `items`; adds the write that links the first after `tail`, and returns the
  /// new tail.
  @inlinable
  static func link(
    _ items: _PendingItems<Element>, after tail: _QueueNode<Element?>, into writes: inout [_DelayedWrite]
  ) -> _QueueNode<Element?> {
    // Built back to front, so each new node is born pointing at its successor (and knowing
    // its position); only the old tail's link is a write to a cell that readers can already
    // reach.
    var first: _QueueNode<Element?>?
    var last: _QueueNode<Element?>?
    var position = tail.position + items.count
    for item in items.reversed() {
      first = _QueueNode<Element?>(item, next: first, position: position)
      position -= 1
      if last == nil { last = first }
    }
    guard let first, let last else { return tail }
    writes.append(_DelayedWrite(tail.next, first))
    return last
  }
}
