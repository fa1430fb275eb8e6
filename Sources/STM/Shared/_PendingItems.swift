/// The items of a delayed append (`_AppendBatch`, `_EnqueueBatch`), the first kept inline: most
/// transactions append one item, and an array of one cost each of them an allocation and its
/// release.
///
/// A queue's transaction takes its own items from the front (`removeFirst`). Shifting the
/// array for each made taking them all quadratic (320,000 items took 19 s), so the items taken
/// stay in `rest`, before `restStart`, until they are half of it: each take is O(1),
/// amortized, and a taken item's last copy goes at that compaction, or when the batch does.
@usableFromInline
struct _PendingItems<Element> {
  /// Nil only when there are no items.
  @usableFromInline var first: Element?
  /// The items after the first, from `restStart` on; empty while there are fewer than two.
  @usableFromInline var rest: [Element] = []
  /// How many items at the start of `rest` have been taken already (see the type's comment).
  @usableFromInline var restStart = 0

  @inlinable
  init() {}

  @inlinable
  mutating func append(_ item: Element) {
    if first == nil { first = item } else { rest.append(item) }
  }

  @inlinable
  mutating func append(contentsOf items: some Sequence<Element>) {
    for item in items { append(item) }
  }

  @inlinable
  mutating func popLast() -> Element? {
    guard rest.count > restStart else {
      dropRest()
      return first.take()
    }
    let item = rest.popLast()
    if rest.count == restStart { dropRest() }
    return item
  }

  /// Removes and returns the first item; the caller checks that there is one.
  @inlinable
  mutating func removeFirst() -> Element {
    let item = first.take()!
    guard restStart < rest.count else {
      dropRest()
      return item
    }
    first = rest[restStart]
    restStart += 1
    if restStart == rest.count {
      dropRest()
    } else if restStart >= 16 && restStart * 2 >= rest.count {
      rest.removeFirst(restStart)
      restStart = 0
    }
    return item
  }

  /// Removes the newest items past the first `count`, and returns them, newest first, for the
  /// caller to let go of where their deinits may run (see `_DelayedAppend._removeItems`).
  @inlinable
  mutating func removeLast(downTo count: Int) -> [Element] {
    var removed: [Element] = []
    while self.count > count, let item = popLast() { removed.append(item) }
    return removed
  }

  /// Empties `rest`, which holds only taken items.
  @inlinable
  mutating func dropRest() {
    if !rest.isEmpty { rest.removeAll() }
    restStart = 0
  }
}

extension _PendingItems: RandomAccessCollection, MutableCollection {
  @inlinable var startIndex: Int { 0 }
  @inlinable var endIndex: Int { first == nil ? 0 : 1 + rest.count - restStart }
  // Written out: the defaults go through generic index arithmetic.
  @inlinable var count: Int { endIndex }
  @inlinable var isEmpty: Bool { first == nil }

  @inlinable
  subscript(position: Int) -> Element {
    get { position == 0 ? first! : rest[restStart + position - 1] }
    set {
      if position == 0 { first = newValue } else { rest[restStart + position - 1] = newValue }
    }
  }
}

extension _PendingItems: Sendable where Element: Sendable {}
