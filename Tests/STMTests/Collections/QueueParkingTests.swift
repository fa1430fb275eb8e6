import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

/// A count that threads and tasks add to.
private final class Tally: Sendable {
  private let count = Atomic<Int>(0)
  func add() { count.add(1, ordering: .relaxed) }
  var value: Int { count.load(ordering: .relaxed) }
}

/// Starts `consumers` threads that each dequeue one item from the empty `queue` (every other
/// one from a task it starts, if `everyOtherAsATask`), and waits until they have all parked;
/// returns the threads, and the tally of items taken.
private func parkConsumers(_ consumers: Int, on queue: TQueue<Int>, everyOtherAsATask: Bool = false) -> (threads: [ThreadHandle], delivered: Tally) {
  let delivered = Tally()
  let threads = (0..<consumers).map { index in
    startThread {
      if everyOtherAsATask && index % 2 == 0 {
        let done = DispatchSemaphore(value: 0)
        Task {
          if await queue.dequeue() != nil { delivered.add() }
          done.signal()
        }
        done.wait()
      } else if (try? queue.dequeue()) != nil {
        delivered.add()
      }
    }
  }
  #expect(waitForParkedConsumers(on: queue, atLeast: consumers), "the consumers never parked")
  return (threads, delivered)
}

/// Fills the bounded `queue` with -1, -2, …, starts `producers` threads that each enqueue
/// their number, and waits until they have all parked; returns the threads, and the tally of
/// the enqueues that succeeded.
private func parkProducers(_ producers: Int, onFull queue: TQueue<Int>) throws -> (threads: [ThreadHandle], enqueued: Tally) {
  for item in 0..<queue.capacity! { try queue.enqueue(-1 - item) }
  let enqueued = Tally()
  let threads = (0..<producers).map { producer in
    startThread {
      if (try? queue.enqueue(producer)) != nil { enqueued.add() }
    }
  }
  #expect(waitForParkedProducers(on: queue, atLeast: producers), "the producers never parked")
  return (threads, enqueued)
}

/// Waits until `tally` reaches `target`, or 10 s have passed; returns whether it did.
private func waitUntil(_ tally: Tally, reaches target: Int) -> Bool {
  let deadline = Date().addingTimeInterval(10)
  while tally.value < target {
    if Date() >= deadline { return false }
    sched_yield()
  }
  return true
}

extension LibraryTests {
  /// Consumers that wait outside transactions park on the queue, and each item that lands
  /// wakes one of them (`_Parking`): not every waiting consumer, as a `retry()` on the
  /// queue's head would. Producers waiting on a full bounded queue park the same way, each
  /// woken by one place freed.
  @Suite struct QueueParkingTests {
    /// Eight consumers wait on an empty queue; eight items, enqueued one at a time, wake one
    /// consumer each. (Waking every parked consumer per item, as the wait in a retrying
    /// transaction did, takes 8 + 7 + ... + 1 = 36 wake-ups here.)
    @Test(arguments: [false, true])
    func eachItemWakesOneParkedConsumer(enqueueInTransactions: Bool) throws {
      let queue = TQueue<Int>()
      let consumers = 8
      let (threads, delivered) = parkConsumers(consumers, on: queue)
      let wakeUpsBefore = queue.waitingConsumers.wakeUps.load(ordering: .relaxed)
      for item in 0..<consumers {
        if enqueueInTransactions {
          try atomically { _ in try queue.enqueue(item) }
        } else {
          try queue.enqueue(item)
        }
        #expect(waitUntil(delivered, reaches: item + 1), "item \(item) was never taken")
        // The other consumers stay parked.
        #expect(queue.waitingConsumers.parkedCount == consumers - item - 1)
      }
      #expect(queue.waitingConsumers.wakeUps.load(ordering: .relaxed) - wakeUpsBefore == consumers)
      queue.close()
      for thread in threads { #expect(thread.wait(timeout: .now() + 10) == .success) }
    }

    /// One transaction's items reach as many parked consumers as it has items: the commit
    /// wakes one consumer, and each woken consumer that takes an item and sees another wakes
    /// the next. Each consumer takes one item and ends.
    @Test(arguments: [false, true])
    func aTransactionsItemsReachAsManyParkedConsumers(async: Bool) throws {
      let queue = TQueue<Int>()
      let consumers = 4
      // Half of the consumers wait as tasks, when `async`.
      let (threads, delivered) = parkConsumers(consumers, on: queue, everyOtherAsATask: async)
      try atomically { _ in
        for item in 0..<consumers { try queue.enqueue(item) }
      }
      #expect(waitUntil(delivered, reaches: consumers), "only \(delivered.value) of \(consumers) items were taken while consumers waited")
      // Ends consumers left waiting, so that a failure above does not hang the run.
      queue.close()
      for thread in threads { #expect(thread.wait(timeout: .now() + 10) == .success) }
    }

    /// One consumer and one producer in lockstep: each item is enqueued as soon as the one
    /// before it was taken, so items often land while the consumer is between finding the
    /// queue empty and sleeping. A consumer that parked without looking again slept through
    /// such an item, which nothing else would take.
    @Test(arguments: [false, true])
    func anItemLandingAsTheConsumerParksWakesIt(async: Bool) throws {
      let queue = TQueue<Int>()
      let items = TestScale.scaled(20_000)
      let taken = Tally()
      let consumer = startThread {
        if async {
          let done = DispatchSemaphore(value: 0)
          Task {
            for await _ in queue { taken.add() }
            done.signal()
          }
          done.wait()
        } else {
          while (try? queue.dequeue()) ?? nil != nil { taken.add() }
        }
      }
      for item in 0..<items {
        try queue.enqueue(item)
        guard waitUntil(taken, reaches: item + 1) else {
          Issue.record("item \(item) of \(items) waited 10 s while the consumer slept")
          break
        }
      }
      queue.close()
      #expect(consumer.wait(timeout: .now() + 10) == .success)
    }

    /// Eight producers wait on a full queue of capacity 1; each of eight items taken (on its
    /// own, or inside a transaction) frees a place that wakes one producer, which fills it.
    @Test(arguments: [false, true])
    func eachFreedPlaceWakesOneParkedProducer(takeInTransactions: Bool) throws {
      let queue = TQueue<Int>(capacity: 1)
      let producers = 8
      let (threads, enqueued) = try parkProducers(producers, onFull: queue)
      let waitingProducers = try #require(queue.waitingProducers)
      let wakeUpsBefore = waitingProducers.wakeUps.load(ordering: .relaxed)
      for taken in 0..<producers {
        let item = takeInTransactions ? try atomically { _ in try queue.dequeue() } : try queue.dequeue()
        #expect(item != nil)
        #expect(waitUntil(enqueued, reaches: taken + 1), "no producer filled place \(taken)")
        // The other producers stay parked.
        #expect(waitingProducers.parkedCount == producers - taken - 1)
      }
      #expect(waitingProducers.wakeUps.load(ordering: .relaxed) - wakeUpsBefore == producers)
      queue.close()
      for thread in threads { #expect(thread.wait(timeout: .now() + 10) == .success) }
    }

    /// A lot's line of waiters, against an array: parking, withdrawing any of them (or a ticket
    /// no longer there) and waking the oldest keep the rest in the order they parked.
    @Test func aLineKeepsItsWaitersInTheOrderTheyParked() {
      var line = _Parking.Line()
      var model: [(ticket: UInt64, waiter: _Waiter)] = []
      var generator = SeededRandom(seed: 5)
      var nextTicket: UInt64 = 0
      var mismatches = 0
      for _ in 0..<5_000 {
        switch generator.next() % 4 {
        case 0, 1:
          let waiter = _Waiter()
          line.append(waiter, ticket: nextTicket)
          model.append((nextTicket, waiter))
          nextTicket += 1
        case 2:
          let ticket = generator.next() % (nextTicket + 1)
          let removed = line.remove(ticket)
          if let index = model.firstIndex(where: { $0.ticket == ticket }) {
            if removed !== model[index].waiter { mismatches += 1 }
            model.remove(at: index)
          } else if removed != nil {
            mismatches += 1
          }
        default:
          if line.popOldest() !== model.first?.waiter { mismatches += 1 }
          if !model.isEmpty { model.removeFirst() }
        }
        if line.isEmpty != model.isEmpty { mismatches += 1 }
      }
      #expect(mismatches == 0)
      #expect(!model.isEmpty, "the mix should leave waiters parked")
      while let waiter = line.popOldest() {
        #expect(waiter === model.first?.waiter)
        model.removeFirst()
      }
      #expect(model.isEmpty && line.isEmpty)
    }

    /// A transaction that takes three items from a full queue of capacity 3 frees three places,
    /// and its commit wakes three of the five parked producers at once; each fills a place, and
    /// the other two stay parked.
    @Test func aTransactionsFreedPlacesWakeAsManyParkedProducersAtOnce() throws {
      let capacity = 3, producers = 5
      let queue = TQueue<Int>(capacity: capacity)
      let (threads, enqueued) = try parkProducers(producers, onFull: queue)
      let waitingProducers = try #require(queue.waitingProducers)
      let wakeUpsBefore = waitingProducers.wakeUps.load(ordering: .relaxed)
      let taken = try atomically { _ in try (0..<capacity).map { _ in try queue.dequeue() } }
      #expect(taken == [-1, -2, -3])
      #expect(waitingProducers.wakeUps.load(ordering: .relaxed) - wakeUpsBefore == capacity, "the commit did not wake one producer per place")
      #expect(waitUntil(enqueued, reaches: capacity), "only \(enqueued.value) of \(capacity) places were filled")
      #expect(waitingProducers.parkedCount == producers - capacity)
      queue.close()
      for thread in threads { #expect(thread.wait(timeout: .now() + 10) == .success) }
      #expect(enqueued.value == capacity)
    }

    /// A transaction that takes from two full queues in turn (one, the other, the first again)
    /// wakes two of the first queue's parked producers and one of the second's.
    @Test func placesFreedOnTwoQueuesInTurnWakeTheirOwnProducers() throws {
      let first = TQueue<Int>(capacity: 2), second = TQueue<Int>(capacity: 2)
      let (firstThreads, firstEnqueued) = try parkProducers(3, onFull: first)
      let (secondThreads, secondEnqueued) = try parkProducers(3, onFull: second)
      let firstLot = try #require(first.waitingProducers), secondLot = try #require(second.waitingProducers)
      let before = (firstLot.wakeUps.load(ordering: .relaxed), secondLot.wakeUps.load(ordering: .relaxed))
      try atomically { _ in
        _ = try first.dequeue()
        _ = try second.dequeue()
        _ = try first.dequeue()
      }
      #expect(firstLot.wakeUps.load(ordering: .relaxed) - before.0 == 2)
      #expect(secondLot.wakeUps.load(ordering: .relaxed) - before.1 == 1)
      #expect(waitUntil(firstEnqueued, reaches: 2) && waitUntil(secondEnqueued, reaches: 1), "the woken producers did not fill the places")
      first.close()
      second.close()
      for thread in firstThreads + secondThreads { #expect(thread.wait(timeout: .now() + 10) == .success) }
      #expect(firstEnqueued.value == 2 && secondEnqueued.value == 1)
    }

    /// The wake-ups that a part of a transaction asked for go when the part rolls back: a
    /// transaction takes one item, then an `orElse` branch takes two more and retries, and the
    /// commit wakes one parked producer, for the one place it freed.
    @Test func aRolledBackPartsWakeUpsAreDropped() throws {
      let capacity = 3, producers = 5
      let queue = TQueue<Int>(capacity: capacity)
      let (threads, enqueued) = try parkProducers(producers, onFull: queue)
      let waitingProducers = try #require(queue.waitingProducers)
      let wakeUpsBefore = waitingProducers.wakeUps.load(ordering: .relaxed)
      let taken = try atomically { transaction in
        let first = try queue.dequeue()
        let more = try transaction.orElse({ _ in
          _ = try queue.dequeue()
          _ = try queue.dequeue()
          try transaction.retry()
        }, { _ in 0 })
        return [first, more]
      }
      #expect(taken == [-1, 0])
      #expect(waitingProducers.wakeUps.load(ordering: .relaxed) - wakeUpsBefore == 1, "the commit woke producers for places it did not free")
      #expect(waitUntil(enqueued, reaches: 1), "no producer filled the place")
      #expect(waitingProducers.parkedCount == producers - 1)
      queue.close()
      for thread in threads { #expect(thread.wait(timeout: .now() + 10) == .success) }
      #expect(enqueued.value == 1)
    }

    /// One producer and one consumer in lockstep on a queue of capacity 1: each place is freed
    /// as soon as the producer has filled it, so places are often freed while the producer is
    /// between finding the queue full and sleeping. A producer that parked without looking
    /// again slept through such a place.
    @Test(arguments: [false, true])
    func aPlaceFreedAsTheProducerParksWakesIt(async: Bool) throws {
      let queue = TQueue<Int>(capacity: 1)
      let items = TestScale.scaled(20_000)
      let producer = startThread {
        if async {
          let done = DispatchSemaphore(value: 0)
          Task {
            for item in 0..<items { try? await queue.enqueue(item) }
            done.signal()
          }
          done.wait()
        } else {
          for item in 0..<items { try? queue.enqueue(item) }
        }
      }
      for item in 0..<items {
        let deadline = Date().addingTimeInterval(10)
        var taken: Int?
        while taken == nil && Date() < deadline {
          taken = queue.tryDequeue()
          if taken == nil { sched_yield() }
        }
        guard let taken else {
          Issue.record("item \(item) of \(items) was not enqueued in 10 s while its place was free")
          break
        }
        #expect(taken == item)
      }
      queue.close()
      #expect(producer.wait(timeout: .now() + 10) == .success)
    }

    /// Parked consumers wake as the transaction that lands an item (or closes the queue)
    /// commits, before its `afterCommit` hooks: a hook that waits for a consumer to get the
    /// item, or to end, does not wait forever. (Woken from an `afterCommit` hook of their own,
    /// they slept until the user's hook registered before it returned; found by review.)
    @Test(arguments: [false, true])
    func parkedConsumersWakeBeforeTheTransactionsHooksRun(closing: Bool) throws {
      let queue = TQueue<Int>()
      let taken = Tally()
      let consumer = startThread {
        while (try? queue.dequeue()) ?? nil != nil { taken.add() }
      }
      #expect(waitForParkedConsumers(on: queue), "the consumer never parked")
      let consumerDone = LockedBox(false)
      try atomically { transaction in
        transaction.afterCommit {
          if closing {
            consumerDone.value = consumer.wait(timeout: .now() + 5) == .success
          } else {
            consumerDone.value = waitUntil(taken, reaches: 1)
          }
        }
        if closing { queue.close() } else { try queue.enqueue(1) }
      }
      #expect(consumerDone.value, "the consumer slept until the transaction's hooks had run")
      queue.close()
      #expect(consumer.wait(timeout: .now() + 10) == .success)
    }

    /// Parked consumers wake before the values that the transaction landing an item drops are
    /// freed: a deinit that waits for a consumer to get the item does not wait out its time.
    /// (Woken after the transaction's end, they slept until such a deinit returned; found by
    /// review.)
    @Test func parkedConsumersWakeBeforeTheValuesATransactionDropsAreFreed() throws {
      final class WaitsForTheItem: Sendable {
        let taken: Tally
        let sawItTaken: LockedBox<Bool?>
        init(_ taken: Tally, _ sawItTaken: LockedBox<Bool?>) {
          self.taken = taken
          self.sawItTaken = sawItTaken
        }
        deinit { sawItTaken.value = waitUntil(taken, reaches: 1) }
      }
      let queue = TQueue<Int>()
      let taken = Tally()
      let sawItTaken = LockedBox<Bool?>(nil)
      let holder = TVar<WaitsForTheItem?>(WaitsForTheItem(taken, sawItTaken))
      let consumer = startThread {
        while (try? queue.dequeue()) ?? nil != nil { taken.add() }
      }
      #expect(waitForParkedConsumers(on: queue), "the consumer never parked")
      try atomically { _ in
        try queue.enqueue(1)
        holder.value = nil
      }
      #expect(sawItTaken.value == true, "the consumer slept until the dropped value's deinit had returned")
      queue.close()
      #expect(consumer.wait(timeout: .now() + 10) == .success)
    }

    /// An item goes to a parked thread before a parked task, even one that parked earlier: a
    /// task woken while every thread of the shared pool is busy cannot run, and held the item
    /// while the thread slept (found by review). Here CPU-bound tasks fill the pool.
    @Test func aParkedThreadIsWokenBeforeAParkedTask() throws {
      let queue = TQueue<Int>()
      let taskTook = Tally(), threadTook = Tally()
      let task = Task.detached {
        if await queue.dequeue() != nil { taskTook.add() }
      }
      #expect(waitForParkedConsumers(on: queue, atLeast: 1), "the task never parked")
      let thread = startThread {
        if (try? queue.dequeue()) ?? nil != nil { threadTook.add() }
      }
      #expect(waitForParkedConsumers(on: queue, atLeast: 2), "the thread never parked")
      let stop = Tally()
      let spinners = (0..<ProcessInfo.processInfo.activeProcessorCount + 2).map { _ in
        Task.detached {
          while stop.value == 0 {}
        }
      }
      try queue.enqueue(1)
      #expect(waitUntil(threadTook, reaches: 1), "the parked thread slept while the item went to a task that could not run")
      stop.add()
      queue.close()
      #expect(thread.wait(timeout: .now() + 10) == .success)
      let done = DispatchSemaphore(value: 0)
      Task.detached {
        for spinner in spinners { await spinner.value }
        await task.value
        done.signal()
      }
      #expect(done.wait(timeout: .now() + 10) == .success)
      #expect(taskTook.value + threadTook.value == 1)
    }

    /// Oversubscribed: 2 producers (enqueues on their own, transactions of 1 to 3 items, and
    /// async enqueues) and 6 consumers (threads, and tasks cancelled at random) on 2 cores. In
    /// each of many rounds the producers enqueue a few items and the queue is then drained
    /// without being closed: an item left in the queue while every consumer sleeps (a wake-up
    /// lost) fails the round. Every item arrives exactly once.
    @Test(.timeLimit(.minutes(3)))
    func noItemWaitsWhileConsumersSleep() async throws {
      let queue = TQueue<Int>()
      let rounds = TestScale.scaled(1_000)
      let taken = LockedBox<[Int]>([])
      let takenCount = Tally()
      let consumerThreads = (0..<4).map { _ in
        startThread {
          while let item = try? queue.dequeue() {
            taken.value.append(item)
            takenCount.add()
          }
        }
      }
      var enqueued = 0
      var random = SeededRandom(thread: 7)
      var tasks: [Task<Void, Never>] = []
      for round in 0..<rounds {
        // Task consumers come and go: a cancelled one that a producer had woken must pass the
        // wake-up on.
        tasks.removeAll { task in
          guard Int.random(in: 0..<4, using: &random) == 0 else { return false }
          task.cancel()
          return true
        }
        while tasks.count < 2 {
          tasks.append(Task.detached {
            var iterator = queue.makeAsyncIterator()
            while let item = await iterator.next() {
              taken.value.append(item)
              takenCount.add()
            }
          })
        }
        let counts = (0..<2).map { _ in Int.random(in: 1...3, using: &random) }
        let kinds = (0..<2).map { _ in Int.random(in: 0..<3, using: &random) }
        let base = enqueued
        let producers = (0..<2).map { producer in
          startThread {
            let first = base + (producer == 0 ? 0 : counts[0])
            let items = Array(first..<first + counts[producer])
            switch kinds[producer] {
            case 0: for item in items { try! queue.enqueue(item) }
            case 1: try! atomically { _ in for item in items { try queue.enqueue(item) } }
            default:
              let done = DispatchSemaphore(value: 0)
              Task.detached {
                for item in items { try! await queue.enqueue(item) }
                done.signal()
              }
              done.wait()
            }
          }
        }
        for producer in producers { #expect(producer.wait(timeout: .now() + 10) == .success) }
        enqueued += counts.reduce(0, +)
        let drained = waitUntil(takenCount, reaches: enqueued)
        #expect(drained, "round \(round): \(enqueued - takenCount.value) items waited while consumers slept")
        if !drained { break }
      }
      queue.close()
      for thread in consumerThreads { #expect(thread.wait(timeout: .now() + 10) == .success) }
      for task in tasks { await task.value }
      #expect(taken.value.sorted() == Array(0..<enqueued))
    }
  }
}
