@testable import STM
import STMTestSupport
import Testing

extension LibraryTests {
  /// The items a transaction appends or enqueues before they land (`_PendingItems`): the same
  /// contents as an `Array` under the same operations, while the items it takes from the front
  /// stay behind as a prefix that is dropped once it is half of the storage.
  @Suite struct PendingItemsTests {
    @Test func randomOperationsMatchAnArray() {
      var random = SeededRandom(thread: 0)
      var items = _PendingItems<Int>()
      var expected: [Int] = []
      var next = 0
      for step in 0..<20_000 {
        switch random.below(10) {
        case 0..<5:
          items.append(next)
          expected.append(next)
          next += 1
        case 5..<8:
          guard !expected.isEmpty else { continue }
          #expect(items.removeFirst() == expected.removeFirst())
          // Taken items never outnumber the rest for long: the prefix goes at half.
          #expect(items.restStart < 16 || items.restStart * 2 < items.rest.count)
        case 8:
          #expect(items.popLast() == expected.popLast())
        default:
          guard !expected.isEmpty else { continue }
          let index = random.below(expected.count)
          items[index] = -index
          expected[index] = -index
        }
        #expect(items.count == expected.count)
        #expect(items.isEmpty == expected.isEmpty)
        if step % 97 == 0 { #expect(Array(items) == expected) }
        // Only taken items left: the storage starts over.
        if items.count <= 1 { #expect(items.rest.isEmpty && items.restStart == 0) }
      }
      #expect(Array(items) == expected)
      // Drained from the front, with appends now and then.
      while !expected.isEmpty {
        #expect(items.removeFirst() == expected.removeFirst())
        if random.chance(10) {
          items.append(next)
          expected.append(next)
          next += 1
        }
        #expect(Array(items) == expected)
        if items.count <= 1 { #expect(items.rest.isEmpty && items.restStart == 0) }
      }
    }

    /// Taking every item from the front leaves nothing behind, and the storage starts over.
    @Test func takingEveryItemEmptiesTheStorage() {
      var items = _PendingItems<Int>()
      items.append(contentsOf: 0..<1_000)
      for expected in 0..<1_000 { #expect(items.removeFirst() == expected) }
      #expect(items.isEmpty)
      #expect(items.rest.isEmpty && items.restStart == 0)
      items.append(7)
      items.append(8)
      #expect(Array(items) == [7, 8])
      #expect(items.popLast() == 8)
      #expect(items.popLast() == 7)
      #expect(items.popLast() == nil)
    }

    /// A transaction takes its own enqueued items first in, first out, however many it holds,
    /// and only those it did not take land.
    @Test func aTransactionTakesItsOwnItemsInOrder() throws {
      let queue = TQueue<Int>()
      let taken = try atomically { _ -> [Int] in
        var taken: [Int] = []
        for round in 0..<500 {
          for item in 0..<3 { try queue.enqueue(round * 3 + item) }
          for _ in 0..<2 { taken.append(queue.tryDequeue()!) }
        }
        return taken
      }
      var left: [Int] = []
      while let item = queue.tryDequeue() { left.append(item) }
      #expect(taken + left == Array(0..<1_500))
      #expect(left.count == 500)
    }

    /// A long transaction (its log indexed) that empties its own batches of appends again and
    /// again: each time, the batch's entry leaves the log and the last entry takes its place.
    /// With `orElse` rollbacks in between, whose checkpoints hold entries by position, every
    /// write and every item that should land still lands, and nothing else does.
    @Test func aLongTransactionThatEmptiesItsOwnBatchesKeepsEveryWrite() throws {
      let variables = (0..<40).map { TVar($0) }
      let array = TArray<Int>()
      let queue = TQueue<Int>(), kept = TQueue<Int>()
      try atomically { transaction in
        for (round, variable) in variables.enumerated() {
          array.append(round)
          try queue.enqueue(round)
          // Written after the batches: the log's last entry, moved where a batch was.
          variable.value += 100
          #expect(array.popLast() == round)
          #expect(queue.tryDequeue() == round)
          guard round % 10 == 9 else { continue }
          try transaction.orElse(
            { _ in
              array.append(-1)
              try queue.enqueue(-1)
              variables[0].value = -1
              #expect(array.popLast() == -1)
              try transaction.retry()
            },
            { _ in
              array.append(round)
              try kept.enqueue(round)
            })
        }
        for (offset, variable) in variables.enumerated() { #expect(variable.value == offset + 100) }
      }
      #expect(array.elements == [9, 19, 29, 39])
      #expect(queue.isEmpty)
      #expect(kept.elements == [9, 19, 29, 39])
      #expect(variables.enumerated().allSatisfy { $1.value == $0 + 100 })
    }
  }
}
