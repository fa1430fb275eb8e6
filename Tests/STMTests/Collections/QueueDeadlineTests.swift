import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// `TQueue`'s operations with a deadline: `dequeue(until:)` and `enqueue(_:until:)`, which
  /// throw `TQueueTimeoutError` once it passes. Outside a transaction they park on the queue,
  /// as the forms without a deadline do; inside one they wait through
  /// `Transaction.retry(until:)`.
  @Suite struct QueueDeadlineTests {
    /// An empty queue: the dequeue waits until the deadline, throws, and leaves the queue as
    /// it was, so the next item goes to the next consumer.
    @Test func aTimedDequeueOfAnEmptyQueueThrowsAtItsDeadline() throws {
      let queue = TQueue<Int>()
      let started = ContinuousClock.now
      #expect(throws: TQueueTimeoutError()) { try queue.dequeue(until: started + .milliseconds(150)) }
      #expect(ContinuousClock.now - started >= .milliseconds(150))
      #expect(queue.isEmpty && queue.count == 0)
      try queue.enqueue(1)
      #expect(try queue.dequeue(until: .now + .seconds(60)) == 1)
      // A deadline already passed takes what is there, and throws at once on an empty queue.
      try queue.enqueue(2)
      #expect(try queue.dequeue(until: .now - .seconds(1)) == 2)
      #expect(throws: TQueueTimeoutError()) { try queue.dequeue(until: .now - .seconds(1)) }
    }

    /// An item that arrives before the deadline, from a drop-in producer or a transaction,
    /// wakes the waiting consumer at once.
    @Test(arguments: [false, true])
    func aTimedDequeueTakesAnItemThatArrivesBeforeItsDeadline(inATransaction: Bool) throws {
      let queue = TQueue<Int>()
      let taken = _Lock<Int?>(nil)
      let deadline = ContinuousClock.now + .seconds(120)
      let consumer = startThread { taken.withLock { $0 = try? queue.dequeue(until: deadline) } }
      #expect(waitForParkedConsumers(on: queue))
      if inATransaction {
        try atomically { _ in try queue.enqueue(5) }
      } else {
        try queue.enqueue(5)
      }
      #expect(consumer.wait(timeout: .now() + 60) == .success)
      #expect(taken.withLock { $0 } == 5)
      #expect(ContinuousClock.now < deadline - .seconds(60))
    }

    /// A closed queue gives its items first, then nil at once; a close while a consumer waits
    /// ends the wait with nil, before the deadline.
    @Test func aTimedDequeueEndsWithNilOnceTheQueueIsClosedAndDrained() throws {
      let queue = TQueue<Int>()
      try queue.enqueue(1)
      queue.close()
      let deadline = ContinuousClock.now + .seconds(120)
      #expect(try queue.dequeue(until: deadline) == 1)
      #expect(try queue.dequeue(until: deadline) == nil)

      let open = TQueue<Int>()
      let ended = _Lock<Result<Int?, any Error>?>(nil)
      let consumer = startThread { ended.withLock { $0 = Result { try open.dequeue(until: deadline) } } }
      #expect(waitForParkedConsumers(on: open))
      open.close()
      #expect(consumer.wait(timeout: .now() + 60) == .success)
      #expect(try ended.withLock { $0 }?.get() == .some(nil))
      #expect(ContinuousClock.now < deadline - .seconds(60))
    }

    /// Inside a transaction, an empty queue makes the whole transaction wait; at the deadline
    /// the error rolls back what it did, and reaches the caller.
    @Test func aTimedDequeueInsideATransactionRollsItBackAtTheDeadline() throws {
      let queue = TQueue<Int>()
      let other = TQueue<Int>()
      let progress = TVar(0)
      let started = ContinuousClock.now
      #expect(throws: TQueueTimeoutError()) {
        try atomically { _ in
          progress.value = 1
          try other.enqueue(9)
          return try queue.dequeue(until: started + .milliseconds(150))
        }
      }
      #expect(ContinuousClock.now - started >= .milliseconds(150))
      #expect(progress.value == 0)
      #expect(other.isEmpty)
      // The transaction's own item is there to take: no wait.
      let own = try atomically { _ in
        try queue.enqueue(3)
        return try queue.dequeue(until: started)
      }
      #expect(own == 3 && queue.isEmpty)
    }

    /// A full bounded queue: the enqueue waits until the deadline, throws, and enqueues
    /// nothing; a place freed before the deadline lets it in at once. An unbounded queue never
    /// waits, and a closed one refuses the item.
    @Test func aTimedEnqueueWaitsForAPlaceUntilItsDeadline() throws {
      let queue = TQueue<Int>(capacity: 2)
      try queue.enqueue(1)
      try queue.enqueue(2)
      let started = ContinuousClock.now
      #expect(throws: TQueueTimeoutError()) { try queue.enqueue(3, until: started + .milliseconds(150)) }
      #expect(ContinuousClock.now - started >= .milliseconds(150))
      #expect(queue.elements == [1, 2])

      let deadline = ContinuousClock.now + .seconds(120)
      let producer = startThread { try! queue.enqueue(3, until: deadline) }
      #expect(waitForParkedProducers(on: queue))
      #expect(try queue.dequeue() == 1)
      #expect(producer.wait(timeout: .now() + 60) == .success)
      #expect(queue.elements == [2, 3])
      #expect(ContinuousClock.now < deadline - .seconds(60))

      let unbounded = TQueue<Int>()
      for item in 0..<100 { try unbounded.enqueue(item, until: .now - .seconds(1)) }
      #expect(unbounded.count == 100)
      queue.close()
      #expect(throws: TQueueClosedError()) { try queue.enqueue(4, until: deadline) }
    }

    /// A timed enqueue that finds a place links its item in place, and wakes a consumer parked
    /// outside transactions for it, as an untimed one does; so does the async form.
    @Test func aTimedEnqueueWakesAParkedConsumer() throws {
      let queue = TQueue<Int>(capacity: 4)
      let taken = _Lock<[Int]>([])
      let consumers = (0..<2).map { _ in
        startThread { if let item = try? queue.dequeue() { taken.withLock { $0.append(item) } } }
      }
      #expect(waitForParkedConsumers(on: queue, atLeast: 2))
      try queue.enqueue(1, until: .now + .seconds(60))
      // Taken before the next item lands: that one's wake-up, passed on, would hide a lost one.
      let deadline = Date().addingTimeInterval(10)
      while taken.withLock({ $0.isEmpty }) && Date() < deadline { usleep(1_000) }
      #expect(taken.withLock { $0 } == [1], "no consumer woke for the first item")
      let sent = DispatchSemaphore(value: 0)
      Task {
        try await queue.enqueue(2, until: .now + .seconds(60))
        sent.signal()
      }
      #expect(sent.wait(timeout: .now() + 60) == .success)
      for consumer in consumers { #expect(consumer.wait(timeout: .now() + 60) == .success) }
      #expect(taken.withLock { $0 }.sorted() == [1, 2])
    }

    /// Consumers waiting with deadlines outside transactions park on the queue: each item
    /// wakes one of them, where waits through `retry(until:)` would all wake for every item.
    @Test func timedConsumersAreWokenOnePerItem() throws {
      let queue = TQueue<Int>()
      let consumers = 6
      let taken = Atomic<Int>(0)
      let deadline = ContinuousClock.now + .seconds(120)
      let threads = (0..<consumers).map { _ in
        startThread { if (try? queue.dequeue(until: deadline)) != nil { taken.add(1, ordering: .relaxed) } }
      }
      #expect(waitForParkedConsumers(on: queue, atLeast: consumers))
      for item in 0..<consumers {
        try queue.enqueue(item)
        let waitEnd = Date().addingTimeInterval(30)
        while taken.load(ordering: .relaxed) <= item && Date() < waitEnd { usleep(1_000) }
      }
      for thread in threads { #expect(thread.wait(timeout: .now() + 60) == .success) }
      #expect(taken.load(ordering: .relaxed) == consumers)
      #expect(queue.waitingConsumers.wakeUps.load(ordering: .relaxed) == consumers)
      #expect(queue.waitingConsumers.parkedCount == 0)
    }

    /// A deadline centuries off parks a consumer once, and it sleeps until an item comes.
    /// (Dispatch's semaphore times out at once past about 146 years of uptime: the consumer
    /// parked again and again, spinning a core; found by review.)
    @Test func aTimedDequeueWithADeadlineCenturiesOffStillSleeps() throws {
      let queue = TQueue<Int>()
      let taken = _Lock<Int?>(nil)
      let deadline = ContinuousClock.now + .seconds(10_000_000_000)
      let consumer = startThread { taken.withLock { $0 = try? queue.dequeue(until: deadline) } }
      #expect(waitForParkedConsumers(on: queue))
      usleep(300_000)
      #expect(queue.waitingConsumers.ticketsIssued == 1, "parked \(queue.waitingConsumers.ticketsIssued) times")
      try queue.enqueue(4)
      #expect(consumer.wait(timeout: .now() + 60) == .success)
      #expect(taken.withLock { $0 } == 4)
    }

    /// A consumer whose deadline passes while it is parked leaves the queue's lot, so the next
    /// item's wake-up goes to a consumer still waiting, not to it; a thread and a task alike.
    @Test(arguments: [false, true])
    func aTimedOutConsumerLeavesTheWakeUpToOneStillWaiting(asATask: Bool) async throws {
      let queue = TQueue<Int>()
      // Parked first, so the oldest in the lot: if it stayed there, the item would wake it.
      let timed = TimedWait(asATask: asATask) {
        _ = try queue.dequeue(until: .now + .milliseconds(300))
      } inATask: {
        _ = try await queue.dequeue(until: .now + .milliseconds(300))
      }
      #expect(waitForParkedConsumers(on: queue))
      let taken = _Lock<Int?>(nil)
      let waiting = startThread { taken.withLock { $0 = try? queue.dequeue() } }
      #expect(timed.timedOut.wait(timeout: .now() + 60) == .success)
      #expect(timed.otherEnds.load(ordering: .relaxed) == 0)
      #expect(waitForParkedConsumers(on: queue))
      #expect(queue.waitingConsumers.parkedCount == 1)
      try await queue.enqueue(1)
      #expect(waiting.wait(timeout: .now() + 60) == .success)
      #expect(taken.withLock { $0 } == 1)
    }

    /// A producer whose deadline passes while it is parked on a full queue leaves the lot, so
    /// the next place freed wakes a producer still waiting; a thread and a task alike.
    @Test(arguments: [false, true])
    func aTimedOutProducerLeavesTheWakeUpToOneStillWaiting(asATask: Bool) async throws {
      let queue = TQueue<Int>(capacity: 1)
      try await queue.enqueue(0)
      let timed = TimedWait(asATask: asATask) {
        try queue.enqueue(9, until: .now + .milliseconds(300))
      } inATask: {
        try await queue.enqueue(9, until: .now + .milliseconds(300))
      }
      #expect(waitForParkedProducers(on: queue))
      let waiting = startThread { try! queue.enqueue(1) }
      #expect(timed.timedOut.wait(timeout: .now() + 60) == .success)
      #expect(timed.otherEnds.load(ordering: .relaxed) == 0)
      #expect(waitForParkedProducers(on: queue))
      #expect(queue.waitingProducers!.parkedCount == 1)
      #expect(await queue.dequeue() == 0)
      #expect(waiting.wait(timeout: .now() + 60) == .success)
      #expect(queue.elements == [1])
    }

    /// Inside a transaction, a full queue makes the whole transaction wait; at the deadline the
    /// error rolls it back.
    @Test func aTimedEnqueueInsideATransactionRollsItBackAtTheDeadline() throws {
      let queue = TQueue<Int>(capacity: 1)
      try queue.enqueue(1)
      let progress = TVar(0)
      // Taken before the transaction: taken in its body, it would move on with every rerun.
      let deadline = ContinuousClock.now + .milliseconds(100)
      #expect(throws: TQueueTimeoutError()) {
        try atomically { _ in
          progress.value = 1
          try queue.enqueue(2, until: deadline)
        }
      }
      #expect(progress.value == 0)
      #expect(queue.elements == [1])
    }

    /// The async forms suspend until the deadline (and throw), or until an item or a place
    /// comes; cancellation ends a dequeue's wait with nil and an enqueue's with
    /// `CancellationError`, as for the forms without a deadline.
    @Test func theAsyncFormsEndTheirWaitsAtTheDeadlineAChangeOrCancellation() async throws {
      let queue = TQueue<Int>(capacity: 1)
      let started = ContinuousClock.now
      await #expect(throws: TQueueTimeoutError()) { try await queue.dequeue(until: started + .milliseconds(100)) }
      #expect(ContinuousClock.now - started >= .milliseconds(100))

      let deadline = ContinuousClock.now + .seconds(120)
      let consumer = Task { try await queue.dequeue(until: deadline) }
      #expect(waitForParkedConsumers(on: queue))
      try await queue.enqueue(1)
      #expect(try await consumer.value == 1)

      try await queue.enqueue(2)
      await #expect(throws: TQueueTimeoutError()) { try await queue.enqueue(3, until: .now + .milliseconds(100)) }
      let producer = Task { try await queue.enqueue(3, until: deadline) }
      #expect(waitForParkedProducers(on: queue))
      #expect(try await queue.dequeue(until: deadline) == 2)
      try await producer.value
      #expect(queue.elements == [3])

      let cancelledProducer = Task { try await queue.enqueue(4, until: deadline) }
      #expect(waitForParkedProducers(on: queue))
      cancelledProducer.cancel()
      await #expect(throws: CancellationError.self) { try await cancelledProducer.value }
      #expect(try await queue.dequeue(until: deadline) == 3)
      let cancelledConsumer = Task { try await queue.dequeue(until: deadline) }
      #expect(waitForParkedConsumers(on: queue))
      cancelledConsumer.cancel()
      #expect(try await cancelledConsumer.value == nil)
      #expect(ContinuousClock.now < deadline - .seconds(60))
    }

    /// Deadlines that pass while items arrive lose none: producers enqueue (in place and in
    /// transactions, some with deadlines of their own on a bounded queue) while consumers take
    /// with deadlines of a millisecond, counting their timeouts, until the queue is closed and
    /// drained. Beside the timed consumers, on the same lot, one waits without a deadline and
    /// a task waits with deadlines: a timed-out waiter must not take a wake-up meant for them.
    /// Oversubscribed: more threads than cores.
    @Test(arguments: [nil, 8] as [Int?])
    func deadlinesThatPassWhileItemsArriveLoseNone(capacity: Int?) throws {
      let producers = 4, timedConsumers = 3
      let perProducer = TestScale.scaled(2_000)
      let queue = TQueue<Int>(capacity: capacity)
      let received = _Lock<[Int]>([])
      let timeouts = Atomic<Int>(0), otherErrors = Atomic<Int>(0)
      let start = StartBarrier(parties: producers + timedConsumers + 1)
      let noteError: @Sendable (any Error) -> Void = { error in
        if error is TQueueTimeoutError {
          timeouts.add(1, ordering: .relaxed)
        } else {
          otherErrors.add(1, ordering: .relaxed)
        }
      }
      var consumerThreads = (0..<timedConsumers).map { _ in
        startThread {
          start.arriveAndWait()
          var mine: [Int] = []
          while true {
            do {
              guard let item = try queue.dequeue(until: .now + .milliseconds(1)) else { break }
              mine.append(item)
            } catch {
              noteError(error)
            }
          }
          received.withLock { $0 += mine }
        }
      }
      consumerThreads.append(
        startThread {
          start.arriveAndWait()
          var mine: [Int] = []
          while let item = try? queue.dequeue() { mine.append(item) }
          received.withLock { $0 += mine }
        })
      let taskEnded = DispatchSemaphore(value: 0)
      Task {
        var mine: [Int] = []
        while true {
          do {
            guard let item = try await queue.dequeue(until: .now + .milliseconds(2)) else { break }
            mine.append(item)
          } catch {
            noteError(error)
          }
        }
        received.withLock { [mine] in $0 += mine }
        taskEnded.signal()
      }
      let producerThreads = (0..<producers).map { producer in
        startThread {
          start.arriveAndWait()
          for index in 0..<perProducer {
            let item = producer * perProducer + index
            while true {
              do {
                switch index % 3 {
                case 0: try queue.enqueue(item)
                case 1: try queue.enqueue(item, until: .now + .milliseconds(1))
                default:
                  let deadline = ContinuousClock.now + .milliseconds(1)
                  try atomically { _ in try queue.enqueue(item, until: deadline) }
                }
                break
              } catch {
                if !(error is TQueueTimeoutError) { otherErrors.add(1, ordering: .relaxed) }
              }
            }
          }
        }
      }
      for thread in producerThreads { #expect(thread.wait(timeout: .now() + 300) == .success) }
      // Consumers that find the queue drained time out now, at the latest, before the close.
      while !queue.isEmpty { usleep(1_000) }
      usleep(20_000)
      queue.close()
      for thread in consumerThreads { #expect(thread.wait(timeout: .now() + 300) == .success) }
      #expect(taskEnded.wait(timeout: .now() + 300) == .success)
      let all = received.withLock { $0 }.sorted()
      #expect(all == Array(0..<(producers * perProducer)))
      #expect(otherErrors.load(ordering: .relaxed) == 0)
      #expect(timeouts.load(ordering: .relaxed) > 0, "no deadline passed: the test did not test them")
    }
  }
}

/// A wait with a deadline, run on a thread of its own or in a task, and how it ended:
/// `timedOut` is signalled once it throws `TQueueTimeoutError`, and `otherEnds` counts any
/// other end (an item, nil, another error).
private final class TimedWait: Sendable {
  let timedOut = DispatchSemaphore(value: 0)
  let otherEnds = Atomic<Int>(0)

  init(
    asATask: Bool, onAThread wait: @escaping @Sendable () throws -> Void,
    inATask waitInATask: @escaping @Sendable () async throws -> Void
  ) {
    if asATask {
      Task {
        do {
          try await waitInATask()
          self.otherEnds.add(1, ordering: .relaxed)
        } catch {
          self.record(error)
        }
      }
    } else {
      _ = startThread {
        do {
          try wait()
          self.otherEnds.add(1, ordering: .relaxed)
        } catch {
          self.record(error)
        }
      }
    }
  }

  private func record(_ error: any Error) {
    if error is TQueueTimeoutError {
      timedOut.signal()
    } else {
      otherEnds.add(1, ordering: .relaxed)
    }
  }
}
