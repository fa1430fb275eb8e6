/// A node of a `TQueue`'s linked list. The node that `head` points at has been consumed (or is
/// the initial sentinel); the items waiting are the ones after it.
///
/// `@unchecked Sendable`: `link` is an immutable handle on a cell (a `TVar`, which is
/// `Sendable`); everything else is immutable and `Sendable`.
final class _QueueNode<Element: Sendable>: @unchecked Sendable {
  let item: Element?
  /// The cell of the link to the next node (written once, by the commit that appends it),
  /// held by hand: one retain, handed to `_DeferredRelease` when the node goes. A stored
  /// `TVar` would be released after `deinit` returns, which is too late to stop a long run of
  /// consumed nodes from freeing each other recursively.
  private let link: Unmanaged<AnyObject>

  var next: TVar<_QueueNode?> { TVar(_unretained: link) }

  init(_ item: Element?, next: _QueueNode? = nil) {
    self.item = item
    link = TVar(next)._retainedHandle
  }

  deinit {
    _DeferredRelease.release(link)
  }
}

/// The items a transaction enqueues: a delayed append anchored on the queue's tail. At commit
/// they are linked after the newest tail, in order, so producers never conflict.
final class _EnqueueBatch<Element: Sendable>: _DelayedAppend {
  typealias Anchor = _QueueNode<Element>
  var items: [Element] = []

  init() {}

  func copy() -> Self {
    let copy = Self()
    copy.items = items
    return copy
  }

  func land(onto tail: _QueueNode<Element>) -> (anchor: _QueueNode<Element>, writes: [_DelayedWrite]) {
    // Built back to front, so each new node is born pointing at its successor; only the old
    // tail's link is a write to a cell that readers can already reach.
    var first: _QueueNode<Element>?
    var last: _QueueNode<Element>?
    for item in items.reversed() {
      first = _QueueNode(item, next: first)
      if last == nil { last = first }
    }
    guard let first, let last else { return (tail, []) }
    return (last, [_DelayedWrite(tail.next, first)])
  }
}
