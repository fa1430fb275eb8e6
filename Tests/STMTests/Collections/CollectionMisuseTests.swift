import Foundation
import STM
import Testing

/// Whether a trap's report names this file, where the bad call is, as its location, and not
/// the library's.
private func trapsAtTheCallersLine(_ result: ExitTest.Result?) -> Bool {
  let report = standardError(of: result)
  return report.contains("CollectionMisuseTests.swift:") && !report.contains("TArray.swift:")
    && !report.contains("TArray+InsertingAndRemoving.swift:")
}

/// Whether a trap's report is `TQueue.enqueue(contentsOf:)`'s for 3 items into a capacity of
/// 2, at this file's line.
private func trapsAsABatchTooLarge(_ result: ExitTest.Result?) -> Bool {
  let report = standardError(of: result)
  return report.contains("enqueue(contentsOf:) was given 3 items for a TQueue of capacity 2")
    && report.contains("CollectionMisuseTests.swift:") && !report.contains("TQueue+Batches.swift:")
}

/// Each collection's bad input traps with a message that names the mistake and says what to do
/// (enqueueing on a closed queue throws instead: see `ConcurrencyQueueTests`).
extension LibraryTests {
  @Suite struct CollectionMisuseTests {
    @Test func readingAnArrayPastItsEndTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        _ = array[2]
      }
      #expect(standardError(of: result).contains("TArray index 2 is out of range: the array has 2 elements"))
      #expect(trapsAtTheCallersLine(result))
    }

    @Test func writingAnArrayPastItsEndTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        array[-1] = 0
      }
      #expect(standardError(of: result).contains("TArray index -1 is out of range: the array has 2 elements"))
      #expect(trapsAtTheCallersLine(result))
    }

    /// A plain write, outside a transaction, to an index whose cell exists but is past the end
    /// (emptied by a pop) traps too, instead of storing an element there that reads of the
    /// index would then see.
    @Test func writingAnArrayPastItsEndAfterAPopTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        _ = array.popLast()
        array[1] = 5
      }
      #expect(standardError(of: result).contains("TArray index 1 is out of range: the array has 1 element. Outside atomically, elements may go between a check of count and the access: make both in one atomically block."))
    }

    /// Inside a transaction a write at `count` traps as well, with or without appends of the
    /// transaction's own: it must not become an append.
    @Test func writingAnArrayAtItsCountInsideATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        atomically { _ in array[2] = 9 }
      }
      #expect(standardError(of: result).contains("TArray index 2 is out of range: the array has 2 elements. Check the index against count in the same transaction."))
      let withAppend = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        atomically { _ in
          array.append(3)
          array[3] = 9
        }
      }
      #expect(standardError(of: withAppend).contains("TArray index 3 is out of range: the array has 3 elements"))
      #expect(trapsAtTheCallersLine(result) && trapsAtTheCallersLine(withAppend))
    }

    @Test func updatingAnArrayElementPastItsEndTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        _ = array.popLast()
        array[1] += 1
      }
      #expect(standardError(of: result).contains("TArray index 1 is out of range: the array has 1 element. Outside atomically, elements may go between a check of count and the access: make both in one atomically block."))
      #expect(trapsAtTheCallersLine(result))
    }

    @Test func removeLastOnAnEmptyArrayTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        TArray<Int>().removeLast()
      }
      #expect(standardError(of: result).contains("removeLast() was called on an empty array. Use popLast()"))
      #expect(trapsAtTheCallersLine(result))
    }

    @Test func insertingIntoAnArrayPastItsEndTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        array.insert(0, at: 3)
      }
      #expect(standardError(of: result).contains("TArray.insert(_:at:) was given index 3, out of range: the array has 2 elements, so it takes an index in 0...2. Outside atomically, elements may go between a check of count and the call: make both in one atomically block."))
      #expect(trapsAtTheCallersLine(result))
    }

    /// Inside a transaction the count includes its own appends, and the advice changes.
    @Test func removingAtAnIndexPastTheEndInsideATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        atomically { _ in
          array.append(3)
          array.remove(at: 3)
        }
      }
      #expect(standardError(of: result).contains("TArray.remove(at:) was given index 3, out of range: the array has 3 elements, so it takes an index in 0..<3. Check the index against count in the same transaction."))
      #expect(trapsAtTheCallersLine(result))
    }

    @Test func swappingWithANegativeIndexTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        array.swapAt(0, -1)
      }
      #expect(standardError(of: result).contains("TArray.swapAt(_:_:) was given index -1, out of range: the array has 2 elements, so it takes an index in 0..<2."))
      #expect(trapsAtTheCallersLine(result))
    }

    @Test func removeFirstOnAnEmptyArrayTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1]
        atomically { _ in
          _ = array.popLast()
          array.removeFirst()
        }
      }
      #expect(standardError(of: result).contains("TArray.removeFirst() was called on an empty array. Check isEmpty in the same transaction first."))
      #expect(trapsAtTheCallersLine(result))
      // Outside a transaction, a check of `isEmpty` first would not help on its own.
      let outside = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        TArray<Int>().removeFirst()
      }
      #expect(standardError(of: outside).contains("TArray.removeFirst() was called on an empty array. Outside atomically, the last element may go between a check of isEmpty and the call: make both in one atomically block."))
      #expect(trapsAtTheCallersLine(outside))
    }

    @Test func removingAtAnIndexOfAnEmptyArrayTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        TArray<String>().remove(at: 0)
      }
      #expect(standardError(of: result).contains("TArray.remove(at:) was given index 0, out of range: the array has 0 elements, so it takes no index."))
      #expect(trapsAtTheCallersLine(result))
    }

    @Test func waitingForAnItemInAnInevitableTransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let queue = TQueue<Int>()
        _ = try? atomically { transaction in
          try transaction.becomeInevitable()
          return try queue.dequeue()
        }
      }
      #expect(standardError(of: result).contains("retry() was called after becomeInevitable(), by the transaction's code (retry(), or retry(until:) before its deadline) or by an operation that waits (TQueue.dequeue() on an empty queue"))
    }

    /// Inside `orElse`, the retry of an empty queue's dequeue picks the other branch: nothing
    /// waits, so an inevitable transaction may do it. (It trapped; found by review.)
    @Test func dequeueingInOrElseOfAnInevitableTransactionFallsBack() throws {
      let queue = TQueue<Int>()
      let taken = try atomically { transaction in
        try transaction.becomeInevitable()
        return try transaction.orElse({ _ in try queue.dequeue() }, { _ in -1 })
      }
      #expect(taken == -1)
      try queue.enqueue(5)
      let next = try atomically { transaction in
        try transaction.becomeInevitable()
        return try transaction.orElse({ _ in try queue.dequeue() }, { _ in -1 })
      }
      #expect(next == 5)
    }

    @Test func aRepeatedKeyAmongUniqueKeysTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        _ = TDictionary(uniqueKeysWithValues: [("a", 1), ("a", 2)])
      }
      #expect(standardError(of: result).contains("was given the key a more than once"))
    }

    /// As the pair is read, as `Dictionary`'s initializer does: read to its end first, an
    /// endless sequence never got to the trap (found by review). The sequence ends the
    /// process with status 3 after a million pairs, so a missing trap fails the test.
    @Test func aRepeatedKeyTrapsAsItIsRead() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        var read = 0
        let endless = AnyIterator<(Int, Int)> {
          read += 1
          if read > 1_000_000 { exit(3) }
          return (0, read)
        }
        _ = TDictionary(uniqueKeysWithValues: endless)
      }
      #expect(standardError(of: result).contains("was given the key 0 more than once"))
    }

    /// One transaction's items must fit in a bounded queue together: more than the capacity
    /// could never land, and the transaction would wait for room forever.
    @Test func enqueueingMoreThanTheCapacityInOneTransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        let queue = TQueue<Int>(capacity: 2)
        try? atomically { _ in
          try queue.enqueue(1)
          try queue.enqueue(2)
          try queue.enqueue(3)
        }
      }
      #expect(standardError(of: result).contains("A transaction enqueued 3 items into a TQueue of capacity 2"))
    }

    /// One transaction's items must fit together: a batch that would give it more than the
    /// capacity traps, at the caller's line, with a message that says to split the transaction.
    @Test func aBatchThatOverfillsItsTransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        let queue = TQueue<Int>(capacity: 3)
        try? atomically { _ in
          try queue.enqueue(1)
          try queue.enqueue(2)
          try queue.enqueue(contentsOf: [3, 4])
        }
      }
      let report = standardError(of: result)
      #expect(report.contains("A transaction enqueued 4 items into a TQueue of capacity 3"))
      #expect(report.contains("spreading the rest over separate transactions"))
      #expect(report.contains("CollectionMisuseTests.swift:") && !report.contains("TQueue.swift:"))
    }

    /// A batch that could never fit traps at once, at the caller's line, instead of waiting
    /// forever for places.
    @Test func enqueueingABatchLargerThanTheCapacityTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        try? TQueue<Int>(capacity: 2).enqueue(contentsOf: [1, 2, 3])
      }
      #expect(trapsAsABatchTooLarge(result))
    }

    @Test func enqueueingABatchLargerThanTheCapacityInATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        let queue = TQueue<Int>(capacity: 2)
        try? atomically { _ in try queue.enqueue(contentsOf: [1, 2, 3]) }
      }
      #expect(trapsAsABatchTooLarge(result))
    }

    #if compiler(>=6.2)
    /// A task that a transaction's body starts synchronously runs in that transaction until it
    /// suspends. There the async `dequeue()` took an item in place for good, though the
    /// transaction rolled back, and on an empty queue trapped as the library's internal error
    /// (found by review). It traps as a misuse, whether an item waits or not, and so does a
    /// `for await` loop.
    @Test func anAsyncDequeueOfAnEmptyQueueInsideATransactionsBodyTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        await dequeueInATaskThatATransactionStarts(itemWaiting: false, inALoop: false)
      }
      #expect(standardError(of: result).contains(asyncDequeueInATransactionMessage))
    }

    @Test func anAsyncDequeueOfAnItemInsideATransactionsBodyTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        await dequeueInATaskThatATransactionStarts(itemWaiting: true, inALoop: false)
      }
      #expect(standardError(of: result).contains(asyncDequeueInATransactionMessage))
    }

    @Test func aForAwaitLoopOverAQueueInsideATransactionsBodyTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        await dequeueInATaskThatATransactionStarts(itemWaiting: false, inALoop: true)
      }
      #expect(standardError(of: result).contains(asyncDequeueInATransactionMessage))
    }

    /// The async `enqueue` joined a transaction whose body ran it: on a full bounded queue the
    /// task received the engine's internal retry signal as its error, and the transaction reran
    /// for it; where it did not wait, the task went on as if the item were sent even when the
    /// attempt rolled back (found by reviews). It traps, full or not.
    @Test func anAsyncEnqueueOfAFullQueueInsideATransactionsBodyTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        await enqueueInATaskThatATransactionStarts(capacity: 1)
      }
      #expect(standardError(of: result).contains("TQueue's async enqueue(_:) ran inside a transaction's body"))
    }

    @Test func anAsyncBatchEnqueueInsideATransactionsBodyTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        await enqueueInATaskThatATransactionStarts(capacity: nil, asABatch: true)
      }
      #expect(standardError(of: result).contains("TQueue's async enqueue(contentsOf:) ran inside a transaction's body"))
    }

    @Test func anAsyncEnqueueInsideATransactionsBodyTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        await enqueueInATaskThatATransactionStarts(capacity: nil)
      }
      #expect(standardError(of: result).contains("TQueue's async enqueue(_:) ran inside a transaction's body"))
    }

    /// The async `atomically` joined a transaction whose body ran it: a `retry()` or a rerun
    /// reached the task as the engine's internal signals, and the task kept what attempts that
    /// then rolled back returned, processing one job twice (found by review). It traps.
    @Test func anAsyncAtomicallyInsideATransactionsBodyTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        let jobs = TVar([1, 2, 3])
        func startTheTaskInATransaction() {
          atomically { _ in
            _ = Task.immediate { _ = await atomically { _ in jobs.value.popLast() } }
          }
        }
        startTheTaskInATransaction()
        try? await Task.sleep(for: .seconds(10))
      }
      #expect(standardError(of: result).contains("The async atomically ran inside a transaction's body"))
      #expect(standardError(of: result).contains("start the task once the transaction has committed"))
    }
    #endif

    /// An element the transaction appended is guarded during its own mutation like any other,
    /// even far past the cells made ahead of the appends: such an element had no cell, and a
    /// read from inside the mutation saw the old element, a write was lost (found by review).
    @Test func readingAnOwnAppendedElementFromInsideItsMutationTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array = TArray<Int>()
        atomically { _ in
          // One by one: cells are made only a few ahead of them.
          for element in 0..<100 { array.append(element) }
          array[60].increment(after: { _ = array[60] })
        }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    /// The same for a write, and for an element near the end, whose cell is made ahead.
    @Test func writingAnOwnAppendedElementFromInsideItsMutationTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array = TArray<Int>()
        atomically { _ in
          for element in 0..<100 { array.append(element) }
          array[1].increment(after: { array[1] = 7 })
        }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    /// And for a pop: popped from inside its own mutation, an element the transaction appended
    /// came back as the mutation ended, over whatever was appended since (found by review).
    @Test func poppingAnOwnAppendedElementFromInsideItsMutationTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array = TArray<Int>()
        atomically { _ in
          for element in 0..<3 { array.append(element) }
          array[2].increment(after: {
            _ = array.popLast()
            array.append(9)
          })
        }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    @Test func aQueueCapacityBelowOneTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        _ = TQueue<Int>(capacity: 0)
      }
      #expect(standardError(of: result).contains("needs a capacity of at least 1, not 0"))
    }
  }
}

#if compiler(>=6.2)
let asyncDequeueInATransactionMessage =
  "TQueue's async dequeue() (or a for-await loop over the queue) ran inside a transaction's body"

/// Runs, in an exit test, a transaction whose body starts a task synchronously
/// (`Task.immediate`) that dequeues with the async `dequeue()` or a `for await` loop. Ends the
/// process as a success after 5 s, should nothing trap, so that the test fails instead of
/// hanging.
func dequeueInATaskThatATransactionStarts(itemWaiting: Bool, inALoop: Bool) async {
  endAsASuccessAfterFiveSeconds()
  let queue = TQueue<Int>()
  if itemWaiting { try? await queue.enqueue(5) }
  // Synchronous, as a transaction's body is, so that the task starts inside it.
  func startTheTaskInATransaction() {
    atomically { _ in
      _ = Task.immediate {
        if inALoop {
          for await _ in queue { break }
        } else {
          _ = await queue.dequeue()
        }
      }
    }
  }
  startTheTaskInATransaction()
  try? await Task.sleep(for: .seconds(10))
}
/// Runs, in an exit test, a transaction whose body starts a task synchronously
/// (`Task.immediate`) that enqueues with the async `enqueue(_:)` (or, `asABatch`, the async
/// `enqueue(contentsOf:)`), on a queue of `capacity` that is full if it has one; ends as a
/// success after 5 s should nothing trap.
func enqueueInATaskThatATransactionStarts(capacity: Int?, asABatch: Bool = false) async {
  endAsASuccessAfterFiveSeconds()
  let queue = capacity.map { TQueue<Int>(capacity: $0) } ?? TQueue<Int>()
  if capacity != nil { try! await queue.enqueue(0) }
  func startTheTaskInATransaction() {
    atomically { _ in
      _ = Task.immediate {
        if asABatch {
          try? await queue.enqueue(contentsOf: [1])
        } else {
          try? await queue.enqueue(1)
        }
      }
    }
  }
  startTheTaskInATransaction()
  try? await Task.sleep(for: .seconds(10))
}
#endif

extension Int {
  /// Adds 1 once `callback` has run: a mutating method whose callback can reach the element
  /// being mutated.
  fileprivate mutating func increment(after callback: () -> Void) {
    callback()
    self += 1
  }
}

/// In an exit test that expects a trap, ends the process as a success after 5 s should the trap
/// be missing and the code wait for good, so that the expectation fails rather than hangs.
func endAsASuccessAfterFiveSeconds() {
  Thread.detachNewThread {
    Thread.sleep(forTimeInterval: 5)
    exit(0)
  }
}
