/// A first-in, first-out list: an array read from a moving head, which drops the taken prefix
/// once it is at least half the storage (amortized O(1) per item). Not synchronized: its
/// owners keep it under a lock of theirs (the reclaimer's list, a `TransactionQueue`'s work).
package struct _FIFO<Element> {
  /// The items from `head` on; taken ones are cleared at once, so the list holds no reference
  /// to them.
  private var items: [Element?] = []
  private var head = 0

  package init() {}

  package var count: Int { items.count - head }
  package var isEmpty: Bool { head == items.count }

  package mutating func append(_ item: Element) { items.append(item) }

  /// Puts `item` before every other item.
  package mutating func prepend(_ item: Element) {
    if head > 0 {
      head -= 1
      items[head] = item
    } else {
      items.insert(item, at: 0)
    }
  }

  package mutating func popFirst() -> Element? {
    guard head < items.count else { return nil }
    let item = items[head]
    items[head] = nil
    head += 1
    if head == items.count {
      items.removeAll(keepingCapacity: true)
      head = 0
    } else if head >= 64 && head * 2 >= items.count {
      items.removeFirst(head)
      head = 0
    }
    return item
  }

  package mutating func removeAll() {
    items.removeAll()
    head = 0
  }
}
