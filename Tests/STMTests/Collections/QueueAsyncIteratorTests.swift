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
        try! queue.enqueue(7)
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
      for item in 0..<100 { try queue.enqueue(item) }
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
  }
}
