import Dispatch
import Foundation
import STMTestSupport
import Testing

@testable import STM
@testable import STMCore

/// `TQueue.enqueue(contentsOf:)`: a batch lands whole, in order, at one commit, or not at all.
extension LibraryTests {
  @Suite struct QueueBatchEnqueueTests {
    struct Abandoned: Error {}

    @Test func aBatchComesOutInOrderBetweenTheItemsAroundIt() throws {
      let queue = TQueue<Int>()
      try queue.enqueue(0)
      try queue.enqueue(contentsOf: 1...5)
      try queue.enqueue(6)
      #expect(queue.elements == Array(0...6))
      #expect(queue.count == 7)
      #expect((0...6).map { _ in queue.tryDequeue() } == Array(0...6))
    }

    /// Inside a transaction the batch joins the transaction's other items, in call order, and
    /// lands only if the transaction (or the nested part that enqueued it) commits.
    @Test func insideATransactionTheBatchLandsAtCommitOrNotAtAll() throws {
      let queue = TQueue<Int>()
      try atomically { _ in
        try queue.enqueue(1)
        try queue.enqueue(contentsOf: [2, 3])
        try queue.enqueue(4)
      }
      #expect(queue.elements == [1, 2, 3, 4])
      #expect(throws: Abandoned.self) {
        try atomically { _ in
          try queue.enqueue(contentsOf: [5, 6])
          throw Abandoned()
        }
      }
      #expect(queue.elements == [1, 2, 3, 4])
      // A nested part that throws takes back only its own batch.
      try atomically { _ in
        try queue.enqueue(7)
        _ = try? atomically { _ in
          try queue.enqueue(contentsOf: [8, 9])
          throw Abandoned()
        }
        try queue.enqueue(contentsOf: [10, 11])
      }
      #expect(queue.elements == [1, 2, 3, 4, 7, 10, 11])
    }

    @Test func aClosedQueueTakesNoBatchButAnEmptyOneIsNoError() throws {
      let queue = TQueue<Int>()
      try queue.enqueue(1)
      queue.close()
      #expect(throws: TQueueClosedError.self) { try queue.enqueue(contentsOf: [2, 3]) }
      #expect(throws: TQueueClosedError.self) { try atomically { _ in try queue.enqueue(contentsOf: [2, 3]) } }
      // Nothing to enqueue: nothing read, so nothing to refuse.
      try queue.enqueue(contentsOf: [])
      try atomically { _ in try queue.enqueue(contentsOf: []) }
      #expect(queue.elements == [1])
    }

    @Test func theAsyncFormOnAClosedQueue() async throws {
      let queue = TQueue<Int>()
      queue.close()
      await #expect(throws: TQueueClosedError.self) { try await queue.enqueue(contentsOf: [2, 3]) }
      try await queue.enqueue(contentsOf: [])
      #expect(queue.elements == [])
    }

    /// A `TArray` given as the batch is read in the enqueue's step; the items keep its order.
    @Test func aTransactionalCollectionIsEnqueuedInItsOrder() async throws {
      let queue = TQueue<Int>()
      let array: TArray = [3, 1, 2]
      try enqueueSynchronously(contentsOf: array, into: queue)
      try await queue.enqueue(contentsOf: array)
      #expect(queue.elements == [3, 1, 2, 3, 1, 2])
    }

    /// A `TArray` batch is read inside the batch's transaction: while the batch waits for room
    /// on a bounded queue, a change to the array wakes it, and it enqueues the array as it is
    /// then. (Read before the step, the batch kept waiting for room for the three elements.)
    @Test func aTransactionalCollectionIsReadInTheBatchsStep() throws {
      let queue = TQueue<Int>(capacity: 3)
      try queue.enqueue(0)
      let array: TArray = [1, 2, 3]
      let done = startThread { try! queue.enqueue(contentsOf: array) }
      #expect(waitForWaiters(on: [queue.producerBudget!.cell, queue.freedPlaces!.cell]), "the batch never waited")
      _ = array.removeLast()
      let woken = done.wait(timeout: .now() + 10) == .success
      #expect(woken, "the batch was not woken by the change to the array")
      if !woken {
        while queue.tryDequeue() != nil {}
        done.wait()
      }
      #expect(queue.elements == [0, 1, 2])
    }

    @Test func theAsyncFormReadsATransactionalCollectionInItsStep() async throws {
      let queue = TQueue<Int>(capacity: 3)
      try await queue.enqueue(0)
      let array: TArray = [1, 2, 3]
      let finished = LockedBox(false)
      let batch = Task {
        defer { finished.value = true }
        try await queue.enqueue(contentsOf: array)
      }
      #expect(await waitForWaitersWithoutBlocking(on: [array.countCell.cell]), "the batch never waited")
      _ = array.removeLast()
      let woken = await eventually { finished.value }
      #expect(woken, "the batch was not woken by the change to the array")
      if !woken { _ = queue.tryDequeue() }
      try await batch.value
      #expect(queue.elements == [0, 1, 2])
    }

    /// A task cancelled before it calls the async form still takes places that are free.
    @Test func theAsyncFormTakesFreePlacesWhenCancelled() async throws {
      let queue = TQueue<Int>(capacity: 2)
      let batch = Task {
        withUnsafeCurrentTask { $0?.cancel() }
        try await queue.enqueue(contentsOf: [1, 2])
      }
      try await batch.value
      #expect(queue.elements == [1, 2])
    }

    /// Producers of batches, producers of single items and a consumer, all at once: the
    /// consumer sees each batch whole (its items one after another), each producer's items in
    /// its own order, and every item once.
    @Test func concurrentBatchesLandWhole() {
      let queue = TQueue<Int>()
      let batchProducers = 3, batches = 150, batchSize = 8, singles = 400
      let total = batchProducers * batches * batchSize + singles
      let received = LockedBox<[Int]>([])
      runThreads(batchProducers + 2) { thread in
        if thread < batchProducers {
          for batch in 0..<batches {
            let first = (thread * batches + batch) * batchSize
            if batch % 2 == 0 {
              try! queue.enqueue(contentsOf: first..<(first + batchSize))
            } else {
              try! atomically { _ in try queue.enqueue(contentsOf: first..<(first + batchSize)) }
            }
          }
        } else if thread == batchProducers {
          // Single items, numbered after every batch's.
          for item in 0..<singles { try! queue.enqueue(batchProducers * batches * batchSize + item) }
        } else {
          var taken: [Int] = []
          while taken.count < total {
            if let item = queue.tryDequeue() { taken.append(item) }
          }
          received.value = taken
        }
      }
      let taken = received.value
      #expect(Set(taken).count == total)
      let batchItems = batchProducers * batches * batchSize
      var position = 0
      var lastBatchOf = [Int](repeating: -1, count: batchProducers)
      var lastSingle = -1
      while position < taken.count {
        let item = taken[position]
        if item >= batchItems {
          #expect(item > lastSingle, "single items out of order")
          lastSingle = item
          position += 1
          continue
        }
        #expect(item % batchSize == 0, "an item in the middle of a batch (\(item)) came out before its batch's first")
        let batch = item / batchSize, producer = batch / batches
        #expect(batch > lastBatchOf[producer], "producer \(producer)'s batches out of order")
        lastBatchOf[producer] = batch
        let run = Array(taken[position..<min(position + batchSize, taken.count)])
        #expect(run == Array(item..<(item + batchSize)), "batch \(batch) did not come out whole: \(run)")
        position += batchSize
      }
    }

    /// On a bounded queue a batch waits for a place for each of its items: one place free is
    /// not enough for two, and nothing lands until both are.
    @Test func aBatchOnABoundedQueueWaitsForRoomForAllItsItems() throws {
      let queue = TQueue<Int>(capacity: 4)
      try queue.enqueue(contentsOf: [1, 2, 3])
      let done = startThread { try! queue.enqueue(contentsOf: [4, 5]) }
      #expect(waitForWaiters(on: [queue.producerBudget!.cell, queue.freedPlaces!.cell]), "the batch never waited")
      #expect(queue.elements == [1, 2, 3])
      #expect(queue.tryDequeue() == 1)
      #expect(done.wait(timeout: .now() + 10) == .success, "the batch was not woken by the place freed")
      #expect(queue.elements == [2, 3, 4, 5])
    }

    /// A close wakes a batch waiting for places, which then throws, having enqueued nothing.
    @Test func aCloseEndsTheWaitOfABatch() throws {
      let queue = TQueue<Int>(capacity: 2)
      try queue.enqueue(contentsOf: [1, 2])
      let refused = LockedBox(false)
      let done = startThread {
        do { try queue.enqueue(contentsOf: [3]) } catch { refused.value = error is TQueueClosedError }
      }
      #expect(waitForWaiters(on: [queue.producerBudget!.cell, queue.freedPlaces!.cell]), "the batch never waited")
      queue.close()
      #expect(done.wait(timeout: .now() + 10) == .success, "the close did not wake the batch")
      #expect(refused.value)
      #expect(queue.elements == [1, 2])
      // Frees the batch, should the close not have woken it, so that no thread outlives the test.
      _ = queue.tryDequeue()
      done.wait()
    }

    /// The async form suspends while a bounded queue has no room, lands when room comes, and
    /// gives up, enqueueing nothing, when its task is cancelled.
    @Test func theAsyncFormWaitsForRoomAndGivesUpWhenCancelled() async throws {
      let queue = TQueue<Int>(capacity: 2)
      try await queue.enqueue(contentsOf: [1, 2])
      let cells = [queue.producerBudget!.cell, queue.freedPlaces!.cell]
      let finished = LockedBox(false)
      let cancelled = Task {
        defer { finished.value = true }
        try await queue.enqueue(contentsOf: [3])
      }
      #expect(await waitForWaitersWithoutBlocking(on: cells), "the async batch never waited")
      cancelled.cancel()
      // A batch that goes on waiting is freed by a place, and fails below instead of hanging.
      if await !eventually({ finished.value }) { _ = queue.tryDequeue() }
      await #expect(throws: CancellationError.self) { try await cancelled.value }
      #expect(queue.elements == [1, 2])

      let waiting = Task { try await queue.enqueue(contentsOf: [3, 4]) }
      #expect(await waitForWaitersWithoutBlocking(on: cells), "the async batch never waited")
      #expect(queue.tryDequeue() == 1)
      #expect(queue.elements == [2])
      #expect(queue.tryDequeue() == 2)
      try await waiting.value
      #expect(queue.elements == [3, 4])
    }

    /// With a deadline, a batch that never finds room for all its items gives up then,
    /// enqueueing none, outside a transaction or in one; places there now are taken whatever
    /// the deadline.
    @Test func aBatchWithADeadlineGivesUpThenHavingEnqueuedNothing() throws {
      let queue = TQueue<Int>(capacity: 3)
      try queue.enqueue(contentsOf: [1, 2], until: .now)
      #expect(timesOut(emptyingIfStuck: queue) { try queue.enqueue(contentsOf: [3, 4], until: .now + .milliseconds(20)) })
      #expect(queue.elements == [1, 2])
      #expect(timesOut(emptyingIfStuck: queue) {
        let deadline = ContinuousClock.now + .milliseconds(20)
        try atomically { _ in try queue.enqueue(contentsOf: [3, 4], until: deadline) }
      })
      #expect(queue.elements == [1, 2])
      // Room comes before the deadline: the batch lands.
      let done = startThread { try! queue.enqueue(contentsOf: [3, 4], until: .now + .seconds(60)) }
      #expect(waitForWaiters(on: [queue.producerBudget!.cell, queue.freedPlaces!.cell]), "the batch never waited")
      #expect(queue.tryDequeue() == 1)
      #expect(done.wait(timeout: .now() + 10) == .success, "the batch was not woken by the place freed")
      #expect(queue.elements == [2, 3, 4])
    }

    @Test func theAsyncFormWithADeadlineGivesUpThen() async throws {
      let queue = TQueue<Int>(capacity: 2)
      try await queue.enqueue(contentsOf: [1], until: .now)
      let finished = LockedBox(false)
      let attempt = Task {
        defer { finished.value = true }
        try await queue.enqueue(contentsOf: [2, 3], until: .now + .milliseconds(20))
      }
      // A batch that goes on waiting is freed by emptying the queue, and fails the test
      // instead of hanging it.
      guard await eventually({ finished.value }) else {
        while queue.tryDequeue() != nil {}
        _ = try? await attempt.value
        Issue.record("the batch went on waiting past its deadline")
        return
      }
      await #expect(throws: TQueueTimeoutError.self) { try await attempt.value }
      #expect(queue.elements == [1])
      try await queue.enqueue(contentsOf: [2], until: .now)
      #expect(queue.elements == [1, 2])
    }

    /// One batch wakes as many consumers parked on the empty queue as it has items: the first
    /// woken passes the wake-up on.
    @Test func aBatchWakesAParkedConsumerPerItem() throws {
      let queue = TQueue<Int>()
      let taken = LockedBox<[Int]>([])
      let consumers = (0..<2).map { _ in
        startThread {
          guard let item = try! queue.dequeue() else { return }
          taken.value.append(item)
        }
      }
      #expect(waitForParkedConsumers(on: queue, atLeast: 2))
      try queue.enqueue(contentsOf: [7, 8])
      let woken = consumers.map { $0.wait(timeout: .now() + 10) }
      #expect(woken == [.success, .success], "a consumer stayed parked after the batch landed")
      // Frees a consumer left parked, so that no thread outlives the test.
      queue.close()
      for consumer in consumers { consumer.wait() }
      #expect(taken.value.sorted() == [7, 8])
    }
  }
}

/// Whether `enqueue` throws `TQueueTimeoutError`, run on a thread of its own; one that is
/// still waiting after 10 s is freed by emptying `queue`, so that the test fails instead of
/// hanging.
private func timesOut(emptyingIfStuck queue: TQueue<Int>, _ enqueue: @escaping @Sendable () throws -> Void) -> Bool {
  let timedOut = LockedBox(false)
  let attempt = startThread {
    do { try enqueue() } catch { timedOut.value = error is TQueueTimeoutError }
  }
  if attempt.wait(timeout: .now() + 10) == .timedOut {
    while queue.tryDequeue() != nil {}
    attempt.wait()
  }
  return timedOut.value
}

/// The synchronous `enqueue(contentsOf:)`, which Swift does not pick in async code.
private func enqueueSynchronously<S: Sequence>(contentsOf items: S, into queue: TQueue<S.Element>) throws {
  try queue.enqueue(contentsOf: items)
}

/// `waitForWaiters(on:)` for async tests (see `eventually`).
func waitForWaitersWithoutBlocking(on cells: [_Cell], atLeast count: Int = 1) async -> Bool {
  await eventually { cells.reduce(0, { $0 + _Engine.shared.retryWaiters.pendingEntries(for: $1) }) >= count }
}

/// Whether `condition` holds within `timeout`: polls by sleeping the task, so that it leaves
/// the shared pool's threads to the tasks it waits for.
func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
  let deadline = ContinuousClock.now + timeout
  while !condition() {
    if ContinuousClock.now >= deadline { return false }
    try? await Task.sleep(for: .milliseconds(1))
  }
  return true
}
