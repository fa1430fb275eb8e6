/// The items of a delayed append (`_AppendBatch`, `_EnqueueBatch`), the first kept inline: most
/// transactions append one item, and an array of one cost each of them an allocation and its
/// release.
@usableFromInline
struct _PendingItems<Element> {
  @usableFromInline var first: Element?
  /// The items after the first; empty while there are fewer than two.
  @usableFromInline var rest: [Element] = []

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
    rest.popLast() ?? first.take()
  }

  /// Removes and returns the first item; the caller checks that there is one.
  @inlinable
  mutating func removeFirst() -> Element {
    let item = first.take()!
    if !rest.isEmpty { first = rest.removeFirst() }
    return item
  }
}

extension _PendingItems: RandomAccessCollection, MutableCollection {
  @inlinable var startIndex: Int { 0 }
  @inlinable var endIndex: Int { first == nil ? 0 : 1 + rest.count }
  // Written out: the defaults go through generic index arithmetic.
  @inlinable var count: Int { endIndex }
  @inlinable var isEmpty: Bool { first == nil }

  @inlinable
  subscript(position: Int) -> Element {
    get { position == 0 ? first! : rest[position - 1] }
    set {
      if position == 0 { first = newValue } else { rest[position - 1] = newValue }
    }
  }
}

extension _PendingItems: Sendable where Element: Sendable {}
