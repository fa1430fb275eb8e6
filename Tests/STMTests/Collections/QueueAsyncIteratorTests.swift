import Foundation
@testable import STM
import STMTestSupport
import Testing

extension LibraryTests {
  /// `TQueue` as an `AsyncSequence`. (Both tests failed before their fix; found by review.)
  @Suite struct QueueAsyncIteratorTests {
    /// Once `next()` has returned nil it keeps returning nil, as `AsyncIteratorProtocol` asks:
    /// a cancelled task's iterator ended on an empty queue, then handed out an item that
    /// came after.
    @Test(.timeLimit(.minutes(1))) func anIteratorThatEndedStaysEnded() async throws {
      let queue = TQueue<Int>()
      let (first, second) = await Task {
        withUnsafeCurrentTask { $0?.cancel() }
        var iterator = queue.makeAsyncIterator()
        let first = await iterator.next()
        try! await queue.enqueue(7)
        let second = await iterator.next()
        return (first, second)
      }.value
      #expect(first == nil)
      #expect(second == nil, "the iterator handed out an item after it had ended")
      #expect(queue.tryDequeue() == 7, "the item was taken and dropped")
    }

    /// Iteration ends once the task is cancelled, even while items keep coming (it took all
    /// 100), and leaves the items it did not take in the queue.
    @Test(.timeLimit(.minutes(1))) func aCancelledTasksIterationEndsAndTakesNothingMore() async throws {
      let queue = TQueue<Int>()
      for item in 0..<100 { try await queue.enqueue(item) }
      let taken = await Task {
        withUnsafeCurrentTask { $0?.cancel() }
        var count = 0
        for await _ in queue { count += 1 }
        return count
      }.value
      #expect(taken == 0)
      var left = 0
      while queue.tryDequeue() != nil { left += 1 }
      #expect(left == 100)
    }

    /// Producer tasks on a full bounded queue, enqueuing with the `async` enqueue or inside
    /// `async` `atomically`, suspend instead of blocking threads: more of them than the
    /// shared pool has threads still leave one for the consumer that frees their places. If
    /// they block, a watchdog thread (outside the pool) closes the queue after 20 s, which
    /// ends them and the consumer, so that the test fails instead of hanging.
    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func producerTasksOnAFullQueueLeaveThreadsForTheConsumer(insideAtomically: Bool) async throws {
      let queue = TQueue<Int>(capacity: 1)
      try await queue.enqueue(0)
      // More than the shared pool's threads (one per core) on any machine.
      let producers = max(8, ProcessInfo.processInfo.activeProcessorCount + 2)
      let finished = Gate(), inTime = LockedBox(true), taken = LockedBox<[Int]>([])
      let work = Task {
        defer { finished.open() }
        try await withThrowingTaskGroup(of: Void.self) { group in
          for item in 1...producers {
            if insideAtomically {
              group.addTask { try await atomically { _ in try queue.enqueue(item) } }
            } else {
              group.addTask { try await queue.enqueue(item) }
            }
          }
          group.addTask {
            for _ in 0...producers { if let item = await queue.dequeue() { taken.value.append(item) } }
          }
          try await group.waitForAll()
        }
      }
      _ = startThread {
        guard !finished.wait(timeout: 20) else { return }
        inTime.value = false
        queue.close()
      }
      let outcome = await work.result
      #expect(inTime.value, "producer tasks blocked the pool's threads; the consumer never ran")
      guard inTime.value else { return }
      try outcome.get()
      #expect(taken.value.sorted() == Array(0...producers))
    }
  }
}
