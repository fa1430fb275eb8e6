@testable import STM
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// `TQueue.blockingItems`: a consumer thread's loop, which blocks while the queue is empty
  /// and ends once it is closed and drained.
  @Suite struct QueueBlockingItemsTests {
    /// 2 producers and 3 consumer threads iterating (more threads than cores), started at
    /// once: every item reaches one consumer, each producer's in order, and every loop ends
    /// once the queue is closed and drained.
    @Test func consumerLoopsShareEveryItemAndEndAtClose() {
      let queue = TQueue<Int>()
      let producers = 2, consumers = 3, perProducer = TestScale.scaled(2_000)
      let received = (0..<consumers).map { _ in LockedBox<[Int]>([]) }
      let producersDone = Atomic<Int>(0)
      runThreads(producers + consumers) { thread in
        guard thread < producers else {
          var mine: [Int] = []
          for item in queue.blockingItems { mine.append(item) }
          received[thread - producers].value = mine
          return
        }
        for item in 0..<perProducer { try! queue.enqueue(thread * perProducer + item) }
        // The last producer to finish closes the queue.
        if producersDone.add(1, ordering: .acquiringAndReleasing).newValue == producers { queue.close() }
      }
      let all = received.flatMap(\.value)
      #expect(all.sorted() == Array(0..<(producers * perProducer)))
      for consumer in received {
        for producer in 0..<producers {
          let own = consumer.value.filter { $0 / perProducer == producer }
          #expect(own == own.sorted(), "a consumer saw producer \(producer)'s items out of order")
        }
      }
    }

    /// A loop waits, parked, while the queue is empty, takes an item as soon as one lands,
    /// and drains what is left after a close before it ends.
    @Test func aLoopWaitsForItemsAndDrainsAfterClose() throws {
      let queue = TQueue<String>()
      let received = LockedBox<[String]>([])
      let firstTaken = Gate()
      let consumer = startThread {
        for item in queue.blockingItems {
          received.value.append(item)
          firstTaken.open()
        }
      }
      #expect(waitForParkedConsumers(on: queue))
      try queue.enqueue("a")
      firstTaken.wait()
      #expect(waitForParkedConsumers(on: queue))
      try atomically { _ in
        try queue.enqueue("b")
        try queue.enqueue("c")
        queue.close()
      }
      consumer.wait()
      #expect(received.value == ["a", "b", "c"])
      // A closed, drained queue ends a new loop at once.
      var iterator = queue.blockingItems.makeIterator()
      #expect(iterator.next() == nil)
    }

    /// Inside a transaction a loop traps even where it would not wait (here, on a closed
    /// queue, where it would end at once): the rule does not depend on the queue's state.
    @Test func iteratingInsideATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let queue = TQueue<Int>()
        queue.close()
        atomically { _ in
          for item in queue.blockingItems { _ = item }
        }
      }
      #expect(standardError(of: result).contains("TQueue.blockingItems was iterated inside a transaction, where waiting for an item needs a retry. Use try queue.dequeue() there (it retries), or tryDequeue()."))
    }
  }
}
