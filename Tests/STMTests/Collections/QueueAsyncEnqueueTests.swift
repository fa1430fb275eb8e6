import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// `TQueue.enqueue(_:fileID:line:) async`: a producer task suspends while a bounded queue is
  /// full, and stops waiting when the queue closes or the task is cancelled, enqueuing
  /// nothing then.
  @Suite struct QueueAsyncEnqueueTests {
    /// A full queue keeps the task waiting until a consumer frees a place; the item then lands
    /// after the ones already queued.
    @Test(.timeLimit(.minutes(1))) func anAsyncEnqueueWaitsForAPlace() async throws {
      let queue = TQueue<Int>(capacity: 2)
      try await queue.enqueue(1)
      try await queue.enqueue(2)
      let done = Gate()
      let producer = Task {
        try await queue.enqueue(3)
        done.open()
      }
      #expect(!done.wait(timeout: 0.2), "the enqueue did not wait for a place")
      #expect(queue.tryDequeue() == 1)
      try await producer.value
      #expect(queue.tryDequeue() == 2)
      #expect(queue.tryDequeue() == 3)
      #expect(queue.tryDequeue() == nil)
    }

    /// Cancelling a task that waits for a place ends the wait with `CancellationError`, the
    /// item not enqueued, and the place it did not get stays the queue's: after the one item
    /// queued is taken, exactly one more fits.
    @Test(.timeLimit(.minutes(1))) func cancellingAWaitingEnqueueThrowsAndEnqueuesNothing() async throws {
      let (queue, producer) = try await producerWaitingOnAFullQueue()
      producer.cancel()
      let outcome = await waitOrUnblock(producer, queue: queue)
      #expect(throws: CancellationError.self) { try outcome.get() }
      // The rest waits for places, which a queue left full by a failure would never free.
      guard case .failure(let error) = outcome, error is CancellationError else { return }
      #expect(queue.tryDequeue() == 1)
      #expect(queue.tryDequeue() == nil, "the cancelled enqueue left its item in the queue")
      try await queue.enqueue(3)
      let extra = Gate()
      let blocked = Task {
        try await queue.enqueue(4)
        extra.open()
      }
      #expect(!extra.wait(timeout: 0.2), "a place was added: the capacity is 1")
      blocked.cancel()
      _ = await blocked.result
      #expect(queue.tryDequeue() == 3)
    }

    /// A cancelled task's enqueue that finds a place takes it: cancellation ends waits only.
    @Test func aCancelledTasksEnqueueThatFindsAPlaceEnqueues() async throws {
      let queue = TQueue<Int>(capacity: 1)
      try await Task {
        withUnsafeCurrentTask { $0?.cancel() }
        try await queue.enqueue(7)
      }.value
      #expect(queue.tryDequeue() == 7)
    }

    /// A close ends the wait with `TQueueClosedError`; an enqueue on a closed queue throws at
    /// once. Neither enqueues its item.
    @Test(.timeLimit(.minutes(1))) func aCloseEndsAWaitingEnqueue() async throws {
      let (queue, producer) = try await producerWaitingOnAFullQueue()
      queue.close()
      let outcome = await waitOrUnblock(producer, queue: queue)
      #expect(throws: TQueueClosedError.self) { try outcome.get() }
      guard case .failure(let error) = outcome, error is TQueueClosedError else { return }
      await #expect(throws: TQueueClosedError.self) { try await queue.enqueue(3) }
      let unbounded = TQueue<Int>()
      unbounded.close()
      await #expect(throws: TQueueClosedError.self) { try await unbounded.enqueue(1) }
      #expect(queue.tryDequeue() == 1)
      #expect(queue.tryDequeue() == nil)
    }

    /// On an unbounded queue the task never waits, and its items keep their order.
    @Test func anUnboundedQueueTakesEveryItemInOrder() async throws {
      let queue = TQueue<Int>()
      for item in 0..<1_000 { try await queue.enqueue(item) }
      var taken: [Int] = []
      while let item = queue.tryDequeue() { taken.append(item) }
      #expect(taken == Array(0..<1_000))
    }

    /// The consumer's side: cancelling a task whose `dequeue()` (or whose iterator's
    /// `next()`) waits on an empty queue ends the wait with nil, taking nothing. If the wait
    /// has not ended within 10 s, a thread outside the shared pool enqueues an item, so that
    /// the test fails instead of hanging.
    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func cancellingAWaitingDequeueEndsItWithNil(iterating: Bool) async throws {
      let queue = TQueue<Int>()
      let consumer = Task { () -> Int? in
        guard iterating else { return await queue.dequeue() }
        var iterator = queue.makeAsyncIterator()
        return await iterator.next()
      }
      let deadline = Date().addingTimeInterval(10)
      while queue.waitingConsumers.parkedCount == 0 && Date() < deadline {
        try await Task.sleep(for: .milliseconds(1))
      }
      #expect(queue.waitingConsumers.parkedCount > 0, "the consumer never waited")
      consumer.cancel()
      let ended = Gate()
      _ = startThread {
        guard !ended.wait(timeout: 10) else { return }
        try? queue.enqueue(-1)
      }
      let taken = await consumer.value
      ended.open()
      #expect(taken == nil, "the cancelled wait did not end")
      try await queue.enqueue(5)
      #expect(queue.tryDequeue() == 5 && queue.tryDequeue() == nil)
    }
  }
}

/// A queue of capacity 1 holding 1, and a task enqueuing 2 into it, once the task waits for a
/// place (parked on the queue).
private func producerWaitingOnAFullQueue() async throws -> (TQueue<Int>, Task<Void, any Error>) {
  let queue = TQueue<Int>(capacity: 1)
  try await queue.enqueue(1)
  let producer = Task { try await queue.enqueue(2) }
  // Polled without blocking a thread of the shared pool, which the task may need.
  let deadline = Date().addingTimeInterval(10)
  while queue.waitingProducers!.parkedCount == 0 && Date() < deadline {
    try await Task.sleep(for: .milliseconds(1))
  }
  #expect(queue.waitingProducers!.parkedCount > 0, "the producer never waited")
  return (queue, producer)
}

/// `task`'s result; if it has not ended within 10 s (its wait was not ended as it should have
/// been), a thread outside the shared pool dequeues everything from `queue` so that the task
/// can finish and the test's expectations fail instead of hanging.
private func waitOrUnblock(_ task: Task<Void, any Error>, queue: TQueue<Int>) async -> Result<Void, any Error> {
  let ended = Gate()
  _ = startThread {
    guard !ended.wait(timeout: 10) else { return }
    while queue.tryDequeue() != nil {}
  }
  let result = await task.result
  ended.open()
  return result
}
