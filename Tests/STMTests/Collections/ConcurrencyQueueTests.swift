import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

/// Items collected by consumer threads.
private final class Received: @unchecked Sendable {
  private let lock = NSLock()
  private var items: [Int] = []
  func add(_ more: [Int]) { lock.withLock { items += more } }
  var all: [Int] { lock.withLock { items } }
}

/// How many of one consumer's `items` came before an item of the same producer enqueued
/// earlier: producer p enqueues p * perProducer, p * perProducer + 1, ... in that order.
private func itemsOutOfOrder(_ items: [Int], producers: Int, perProducer: Int) -> Int {
  var lastFromProducer = [Int](repeating: -1, count: producers), outOfOrder = 0
  for item in items {
    let producer = item / perProducer
    if item <= lastFromProducer[producer] { outOfOrder += 1 }
    lastFromProducer[producer] = item
  }
  return outOfOrder
}

/// An item that counts itself in its `count` while it exists (a plain atomic, one per test:
/// counting through the library would add commits, which drive the reclaimer, and a count
/// shared by tests would see one's leftovers freed during another).
private final class LiveItem: Sendable {
  final class Count: Sendable {
    let live = Atomic<Int>(0)
  }

  let count: Count
  init(_ count: Count) {
    self.count = count
    count.live.add(1, ordering: .relaxed)
  }
  deinit { count.live.subtract(1, ordering: .relaxed) }
}

extension LibraryTests {
  @Suite struct ConcurrencyQueueTests {
    /// A consumer waiting inside a transaction on an empty queue wakes when a transaction
    /// enqueues (a delayed append, which lands its item in the old tail's link at commit): the
    /// commit must wake the waiters of the cells its appends land in, not only of those it
    /// wrote in its body. (Mutation testing: not waking the landed cells' waiters survived
    /// every queue test but one, on a bounded queue.)
    @Test(arguments: [nil, 4] as [Int?])
    func aWaitingConsumerWakesForAnEnqueueInsideATransaction(capacity: Int?) throws {
      let queue = TQueue<Int>(capacity: capacity)
      let got = LockedBox<Int?>(nil)
      let consumer = startThread { got.value = try! atomically { _ in try queue.dequeue() } }
      // The consumer's transaction reads whether the queue is closed before it waits.
      #expect(waitForWaiters(on: [queue.closed.cell]), "the consumer never waited")
      try atomically { _ in try queue.enqueue(1) }
      #expect(consumer.wait(timeout: .now() + 10) == .success, "the consumer was never woken")
      #expect(got.value == 1)
      queue.close()
    }

    /// 4 producers and 4 consumers; some consumer transactions take an item and then throw, so
    /// the item must go back; every item arrives exactly once, each producer's in order.
    @Test(arguments: [nil, 16] as [Int?])
    func everyItemIsDeliveredExactlyOnce(capacity: Int?) throws {
      let queue = TQueue<Int>(capacity: capacity)
      let perProducer = TestScale.scaled(5_000), producers = 4, consumers = 4
      let received = Received()
      let barrier = StartBarrier(parties: producers + consumers)
      let done = Atomic<Int>(0), outOfOrder = Atomic<Int>(0)
      runThreads(producers + consumers) { thread in
        barrier.arriveAndWait()
        if thread < producers {
          for item in 0..<perProducer { try! queue.enqueue(thread * perProducer + item) }
          if done.add(1, ordering: .relaxed).newValue == producers { queue.close() }
          return
        }
        var mine: [Int] = [], random = SeededRandom(seed: UInt64(thread))
        struct GiveBack: Error {}
        while true {
          if random.chance(10) {
            // Take an item and roll back: it must be delivered again later.
            _ = try? atomically { _ throws in
              if try queue.dequeue() != nil { throw GiveBack() }
            }
            continue
          }
          guard let item = try! queue.dequeue() else { break }
          mine.append(item)
        }
        // A consumer sees each producer's items in the order they were enqueued.
        outOfOrder.add(itemsOutOfOrder(mine, producers: producers, perProducer: perProducer), ordering: .relaxed)
        received.add(mine)
      }
      #expect(outOfOrder.load(ordering: .relaxed) == 0)
      let all = received.all
      #expect(all.count == producers * perProducer)
      #expect(Set(all).count == all.count)
      #expect(all.reduce(0, +) == (0..<(producers * perProducer)).reduce(0, +))
      #expect(queue.tryDequeue() == nil)
    }

    /// 4 producer tasks with the `async` enqueue and 4 consumer threads (more threads than
    /// cores) through a queue of capacity 4, so that producers keep finding it full and
    /// suspend: every item arrives exactly once, each producer's in order, and no place is
    /// lost (the last producers would wait forever).
    @Test(.timeLimit(.minutes(2))) func asyncProducersDeliverEveryItemExactlyOnce() async throws {
      let queue = TQueue<Int>(capacity: 4)
      let perProducer = TestScale.scaled(2_000), producers = 4, consumers = 4
      let received = Received(), outOfOrder = Atomic<Int>(0)
      let consumerThreads = (0..<consumers).map { _ in
        startThread {
          var mine: [Int] = []
          while let item = try! queue.dequeue() { mine.append(item) }
          outOfOrder.add(itemsOutOfOrder(mine, producers: producers, perProducer: perProducer), ordering: .relaxed)
          received.add(mine)
        }
      }
      try await withThrowingTaskGroup(of: Void.self) { group in
        for producer in 0..<producers {
          group.addTask {
            for item in 0..<perProducer { try await queue.enqueue(producer * perProducer + item) }
          }
        }
        try await group.waitForAll()
      }
      queue.close()
      for thread in consumerThreads { thread.wait() }
      #expect(outOfOrder.load(ordering: .relaxed) == 0)
      let all = received.all
      #expect(all.count == producers * perProducer)
      #expect(Set(all).count == all.count)
      #expect(queue.tryDequeue() == nil)
    }

    @Test func droppingALongQueueReleasesNodesWithoutRecursion() throws {
      // Each node reaches the next through its cell's version; freed recursively, a queue
      // this long would overflow the stack of a debug build.
      var queue: TQueue<Int>? = TQueue<Int>()
      try atomically { _ in for item in 0..<300_000 { try queue!.enqueue(item) } }
      #expect(queue!.tryDequeue() == 0)
      queue = nil
      #expect(queue == nil)
    }

    @Test func closeDrainsThenEndsAndRefusesEnqueues() throws {
      let queue = TQueue<Int>()
      try queue.enqueue(1)
      queue.close()
      #expect(queue.isClosed)
      #expect(throws: TQueueClosedError.self) { try queue.enqueue(2) }
      #expect(try queue.dequeue() == 1)
      #expect(try queue.dequeue() == nil)
      // A consumer already waiting on an empty queue wakes up and ends when it is closed, inside
      // a transaction as outside. (Mutation testing: a waiting consumer that did not mark its
      // read of `closed` slept through the close, and only a time limit ended the run.)
      for insideTransaction in [false, true] {
        let other = TQueue<Int>()
        let waiting = startThread {
          let item = insideTransaction ? try! atomically { _ in try other.dequeue() } : try! other.dequeue()
          #expect(item == nil)
        }
        // Outside a transaction the consumer parks on the queue; inside, its transaction waits
        // for a change to what it read, `closed` among it.
        let waited = insideTransaction ? waitForWaiters(on: [other.closed.cell]) : waitForParkedConsumers(on: other)
        #expect(waited, "the consumer never waited")
        other.close()
        let woken = waiting.wait(timeout: .now() + 10) == .success
        let place = insideTransaction ? "inside" : "outside"
        #expect(woken, "a consumer waiting \(place) a transaction slept through close()")
        // A waiter that slept through the close is left waiting (it holds no segment while it
        // waits): nothing else could wake it, and the failure above says what went wrong.
      }
    }

    @Test func boundedQueueMakesProducersWait() throws {
      let queue = TQueue<Int>(capacity: 2)
      try queue.enqueue(1)
      try queue.enqueue(2)
      let third = Gate()
      let producer = startThread {
        try! queue.enqueue(3)
        third.open()
      }
      #expect(!third.wait(timeout: 0.1))
      #expect(queue.tryDequeue() == 1)
      third.wait()
      producer.wait()
      #expect(queue.tryDequeue() == 2 && queue.tryDequeue() == 3)
    }

    @Test
    func asyncSequenceEndsWhenClosed() async throws {
      let queue = TQueue<Int>()
      let consumer = Task {
        var sum = 0
        for await item in queue { sum += item }
        return sum
      }
      for item in 1...100 { try await queue.enqueue(item) }
      queue.close()
      #expect(await consumer.value == 5_050)
    }

    /// Consumers outside transactions take turns at the head's lock: 4 of them (more threads
    /// than cores) emptying one queue at once take every item exactly once and never rerun.
    @Test func dropInConsumersTakeTurnsInsteadOfConflicting() throws {
      let queue = TQueue<Int>()
      let total = TestScale.scaled(20_000), consumers = 4
      for item in 0..<total { try queue.enqueue(item) }
      let received = Received()
      let aborts = Atomic<Int>(0)
      runThreads(consumers) { _ in
        let before = TransactionEngine.currentThreadStatistics
        var mine: [Int] = []
        while let item = queue.tryDequeue() { mine.append(item) }
        aborts.add((TransactionEngine.currentThreadStatistics - before).totalAborts, ordering: .relaxed)
        // Items come out in order, to each consumer as to all.
        #expect(mine == mine.sorted())
        received.add(mine)
      }
      #expect(aborts.load(ordering: .relaxed) == 0)
      #expect(received.all.sorted() == Array(0..<total))
    }

    /// Consumers outside transactions that wait on an empty queue never rerun either: their
    /// transaction only waits for an item (it reads and takes nothing) and they take the item
    /// in place. 2 producers feed 4 waiting consumers (more threads than cores) until a close.
    @Test func waitingDropInConsumersNeverRerun() throws {
      let queue = TQueue<Int>()
      let producers = 2, consumers = 4, perProducer = TestScale.scaled(10_000)
      let received = Received()
      let consumerAborts = Atomic<Int>(0), producersDone = Atomic<Int>(0)
      runThreads(producers + consumers) { thread in
        if thread < producers {
          for item in 0..<perProducer { try! queue.enqueue(thread * perProducer + item) }
          if producersDone.add(1, ordering: .relaxed).newValue == producers { queue.close() }
          return
        }
        let before = TransactionEngine.currentThreadStatistics
        var mine: [Int] = []
        while let item = try! queue.dequeue() { mine.append(item) }
        consumerAborts.add((TransactionEngine.currentThreadStatistics - before).totalAborts, ordering: .relaxed)
        received.add(mine)
      }
      #expect(consumerAborts.load(ordering: .relaxed) == 0)
      #expect(received.all.sorted() == Array(0..<(producers * perProducer)))
    }

    /// Consumers that poll with `tryDequeue` outside transactions, racing producers (so that
    /// they often find the queue empty, or an item arriving just then), never rerun either.
    @Test func pollingDropInConsumersNeverRerun() throws {
      let queue = TQueue<Int>()
      let producers = 2, consumers = 4, perProducer = TestScale.scaled(10_000)
      let total = producers * perProducer
      let received = Received()
      let consumerAborts = Atomic<Int>(0), taken = Atomic<Int>(0)
      runThreads(producers + consumers) { thread in
        if thread < producers {
          for item in 0..<perProducer { try! queue.enqueue(thread * perProducer + item) }
          return
        }
        let before = TransactionEngine.currentThreadStatistics
        var mine: [Int] = []
        while taken.load(ordering: .relaxed) < total {
          guard let item = queue.tryDequeue() else { continue }
          mine.append(item)
          taken.add(1, ordering: .relaxed)
        }
        consumerAborts.add((TransactionEngine.currentThreadStatistics - before).totalAborts, ordering: .relaxed)
        received.add(mine)
      }
      #expect(consumerAborts.load(ordering: .relaxed) == 0)
      #expect(received.all.sorted() == Array(0..<total))
    }

    /// On a bounded queue, producers and consumers outside transactions take turns at the
    /// budget, the tail, the head and the tally of freed places, and never rerun: 4 producers
    /// and 4 slower consumers (more threads than cores) through a queue of capacity 4. The
    /// queue never holds more than that: enqueues that returned, less dequeues that started,
    /// is at most what it holds, and is checked against the capacity after every enqueue.
    @Test func boundedDropInQueueTakesTurnsAndKeepsItsCapacity() throws {
      let capacity = 4, producers = 4, consumers = 4, perProducer = TestScale.scaled(5_000)
      let queue = TQueue<Int>(capacity: capacity)
      let received = Received()
      let aborts = Atomic<Int>(0), producersDone = Atomic<Int>(0)
      let enqueued = Atomic<Int>(0), dequeuesStarted = Atomic<Int>(0), mostHeld = Atomic<Int>(0)
      runThreads(producers + consumers) { thread in
        let before = TransactionEngine.currentThreadStatistics
        defer { aborts.add((TransactionEngine.currentThreadStatistics - before).totalAborts, ordering: .relaxed) }
        if thread < producers {
          for item in 0..<perProducer {
            try! queue.enqueue(thread * perProducer + item)
            let held = enqueued.add(1, ordering: .sequentiallyConsistent).newValue - dequeuesStarted.load(ordering: .sequentiallyConsistent)
            mostHeld.max(held, ordering: .relaxed)
          }
          if producersDone.add(1, ordering: .relaxed).newValue == producers { queue.close() }
          return
        }
        var mine: [Int] = [], random = SeededRandom(seed: UInt64(thread))
        while true {
          dequeuesStarted.add(1, ordering: .sequentiallyConsistent)
          guard let item = try! queue.dequeue() else { break }
          mine.append(item)
          // Slower than the producers, so that the queue is full most of the time.
          for _ in 0..<random.next() % 200 { _ = random.next() }
        }
        received.add(mine)
      }
      #expect(aborts.load(ordering: .relaxed) == 0)
      #expect(mostHeld.load(ordering: .relaxed) <= capacity)
      #expect(received.all.sorted() == Array(0..<(producers * perProducer)))
    }

    /// A bounded queue's producer outside a transaction refills its budget from the places
    /// consumers freed, outside transactions and inside them, and waits once those are gone.
    @Test func boundedQueueRefillsItsBudgetFromFreedPlaces() throws {
      let queue = TQueue<Int>(capacity: 2)
      try queue.enqueue(1)
      try queue.enqueue(2)
      #expect(queue.tryDequeue() == 1)
      #expect(try atomically { _ in try queue.dequeue() } == 2)
      // The budget is spent; the two places come back from the consumers' tally.
      try queue.enqueue(3)
      try queue.enqueue(4)
      let fifth = Gate()
      let producer = startThread {
        try! queue.enqueue(5)
        fifth.open()
      }
      #expect(!fifth.wait(timeout: 0.1))
      #expect(try queue.dequeue() == 3)
      fifth.wait()
      producer.wait()
      #expect(queue.tryDequeue() == 4 && queue.tryDequeue() == 5)
    }

    /// A bounded queue's producer that is refused (the queue is closed) takes no place: on a
    /// closed queue, refusals spend nothing, and the items already in it all come out.
    @Test func aRefusedBoundedEnqueueSpendsNoPlace() throws {
      let queue = TQueue<Int>(capacity: 2)
      try queue.enqueue(1)
      queue.close()
      for _ in 0..<3 { #expect(throws: TQueueClosedError.self) { try queue.enqueue(2) } }
      #expect(queue.producerBudget?._newestCommittedValue == 1)
      #expect(try queue.dequeue() == 1)
      #expect(try queue.dequeue() == nil)
    }

    /// Every place of a bounded queue is, at every snapshot, in the producers' budget, in the
    /// consumers' tally, or held by an item: drop-in producers take their place in the commit
    /// that links their item, and drop-in consumers free theirs in the commit that takes it. A
    /// transaction that empties the queue (and rolls back) while they run finds all the
    /// places free. (Taking the place in a commit of its own, before the link, left a moment
    /// when a place was in none of the three: with a capacity of 1, an empty queue that was full.)
    @Test func aBoundedQueueAccountsForEveryPlaceAtEverySnapshot() throws {
      let capacity = 1
      let queue = TQueue<Int>(capacity: capacity)
      let stop = Atomic<Bool>(false), observations = TestScale.scaled(2_000)
      let misplaced = Atomic<Int>(0)
      struct Rollback: Error {}
      runThreads(5) { thread in
        switch thread {
        case 0, 1:
          var item = 0
          while !stop.load(ordering: .relaxed) {
            do { try queue.enqueue(item) } catch { break }
            item += 1
          }
        case 2, 3:
          while try! queue.dequeue() != nil {}
        default:
          for _ in 0..<observations {
            _ = try? atomically { _ throws in
              while queue.tryDequeue() != nil {}
              // The tally, read after this transaction's own takes, counts them as freed.
              let free = queue.producerBudget!.value + queue.freedPlaces!.value
              if free != capacity { misplaced.add(1, ordering: .relaxed) }
              throw Rollback()
            }
          }
          stop.store(true, ordering: .relaxed)
          queue.close()
        }
      }
      #expect(misplaced.load(ordering: .relaxed) == 0)
    }

    /// Producers outside transactions race a close: every enqueue that returned is delivered
    /// exactly once to consumers that end at the close, none that threw is, and a producer
    /// refused once is refused from then on. (An enqueue that checked for the close before
    /// taking its place in the commit order could slip in after the close, once the consumers
    /// had ended: its item would be lost.)
    @Test func dropInEnqueuesRacingACloseLoseNothing() throws {
      for round in 0..<TestScale.scaled(20) {
        let queue = TQueue<Int>()
        let producers = 4, consumers = 2, perProducer = 100_000
        let received = Received(), accepted = Received()
        let lateAcceptances = Atomic<Int>(0)
        runThreads(producers + consumers + 1) { thread in
          if thread < producers {
            var mine: [Int] = []
            for item in 0..<perProducer {
              do {
                try queue.enqueue(thread * perProducer + item)
                mine.append(thread * perProducer + item)
              } catch {
                // Refused: the queue is closed for good.
                if (try? queue.enqueue(-1)) != nil { lateAcceptances.add(1, ordering: .relaxed) }
                break
              }
            }
            accepted.add(mine)
          } else if thread < producers + consumers {
            var mine: [Int] = []
            while let item = try! queue.dequeue() { mine.append(item) }
            received.add(mine)
          } else {
            // Closes after a while that varies from round to round.
            for _ in 0..<(round % 5) * 200 { _ = queue.isEmpty }
            queue.close()
          }
        }
        #expect(lateAcceptances.load(ordering: .relaxed) == 0)
        #expect(received.all.sorted() == accepted.all.sorted())
        #expect(queue.tryDequeue() == nil)
      }
    }

    #if DEBUG
    /// A close that commits while a drop-in enqueue holds the tail with its commit number
    /// taken makes that enqueue throw: the enqueue looks for the close only once it has its
    /// number (looking before, it would miss a close committed in between, and its item would
    /// land after the close, perhaps once the consumers had ended).
    @Test func aCloseThatCommitsDuringADropInEnqueueRefusesIt() throws {
      let queue = TQueue<Int>()
      let pause = CommitNumberPause()
      defer { pause.remove() }
      let refused = Atomic<Bool>(false)
      let producer = startThread {
        pause.stopThisThreadsNextCommit()
        do { try queue.enqueue(1) } catch { refused.store(error is TQueueClosedError, ordering: .relaxed) }
      }
      pause.numbered.wait()
      queue.close()
      pause.release.open()
      producer.wait()
      let wasRefused = refused.load(ordering: .relaxed)
      #expect(wasRefused)
      #expect(try queue.dequeue() == nil)
    }

    /// A drop-in enqueue that finds a close committing (holding the queue's closed flag) does
    /// not guess: it enqueues in a transaction instead, which waits for the close and throws.
    @Test func aDropInEnqueueThatMeetsACommittingCloseWaitsForIt() throws {
      let queue = TQueue<Int>()
      let pause = CommitNumberPause()
      defer { pause.remove() }
      let closer = startThread {
        pause.stopThisThreadsNextCommit()
        queue.close()
      }
      pause.numbered.wait()
      let refused = Atomic<Bool>(false)
      let producer = startThread {
        do { try queue.enqueue(1) } catch { refused.store(error is TQueueClosedError, ordering: .relaxed) }
      }
      #expect(producer.wait(timeout: .now() + 0.3) == .timedOut)
      pause.release.open()
      closer.wait()
      producer.wait()
      let wasRefused = refused.load(ordering: .relaxed)
      #expect(wasRefused)
      #expect(try queue.dequeue() == nil)
    }
    #endif

    /// Items enqueued while another transaction runs are freed once they are dequeued and that
    /// transaction has ended, however they were enqueued and dequeued: at its end (it takes the
    /// reclaimer's turn for what it kept), or else at the next dequeue. An enqueue kept the
    /// version its link replaced (nil) for the running snapshot, and so noted the node for the
    /// reclaimer, whose list retained it, and through its link every node after it: the 101
    /// items of this test stayed alive until about 50 more enqueues and dequeues (found by a
    /// helper's review).
    @Test(arguments: [false, true], [false, true])
    func itemsDequeuedWhileASnapshotRanAreFreedOnceItEnds(enqueueInTransactions: Bool, dequeueInTransactions: Bool) throws {
      for readerTakesItsTurn in [false, true] {
        try dequeueWhileASnapshotRuns(
          enqueueInTransactions: enqueueInTransactions, dequeueInTransactions: dequeueInTransactions,
          readerTakesItsTurn: readerTakesItsTurn)
      }
    }

    private func dequeueWhileASnapshotRuns(
      enqueueInTransactions: Bool, dequeueInTransactions: Bool, readerTakesItsTurn: Bool
    ) throws {
      let items = LiveItem.Count()
      let queue = TQueue<LiveItem>()
      let other = TVar(0)
      let started = DispatchSemaphore(value: 0), finish = DispatchSemaphore(value: 0)
      let reader = startThread {
        _ThreadContext.current.keeperTurnAfter = readerTakesItsTurn ? .min : .max
        atomically { _ in
          _ = other.value
          started.signal()
          finish.wait()
        }
      }
      started.wait()
      for _ in 0..<100 {
        if enqueueInTransactions {
          try atomically { _ in try queue.enqueue(LiveItem(items)) }
        } else {
          try queue.enqueue(LiveItem(items))
        }
      }
      for _ in 0..<100 {
        let item = dequeueInTransactions ? try atomically { _ in try queue.dequeue() } : queue.tryDequeue()
        #expect(item != nil)
      }
      finish.signal()
      reader.wait()
      if readerTakesItsTurn {
        #expect(items.live.load(ordering: .relaxed) == 1, "what the reader kept did not go as it ended")
      }
      // One more of each, writing the head and the tail now that no snapshot needs their
      // history: what they kept for the reader goes.
      try queue.enqueue(LiveItem(items))
      #expect(queue.tryDequeue() != nil)
      #expect(historyLength(queue.head) == 1 && historyLength(queue.tail) == 1)
      // The queue keeps the item it dequeued last, as documented; nothing else.
      #expect(items.live.load(ordering: .relaxed) == 1)
    }

    @Test func dequeuedItemsAndRemovedKeysAreReclaimed() throws {
      #if DEBUG
      // Unbounded and bounded: their drop-in enqueues and dequeues take different roads (a
      // bounded queue's also update its budget and its tally of freed places).
      for capacity in [nil, 1_000] as [Int?] {
        let queue = TQueue<Int>(capacity: capacity)
        let baseline = _LiveCounters.cells.load(ordering: .relaxed)
        for round in 0..<20 {
          for item in 0..<1_000 { try queue.enqueue(round * 1_000 + item) }
          while queue.tryDequeue() != nil {}
        }
        // One cell per node; consumed nodes are freed, so only a handful remain.
        #expect(_LiveCounters.cells.load(ordering: .relaxed) - baseline < 100, "capacity \(String(describing: capacity))")
      }

      let dict = TDictionary<Int, Int>()
      for round in 0..<10 {
        for key in 0..<2_000 { dict[round * 2_000 + key] = key }
        for key in 0..<2_000 { dict.removeValue(forKey: round * 2_000 + key) }
        atomically { _ in for key in 0..<500 { _ = dict[-key - 1] } }   // lookups of absent keys
      }
      #expect(dict.isEmpty)
      // Removed keys leave the index; cells made by lookups are swept; a little stays.
      #expect(dict.storage.index.cellCount < 4_000)

      // A drop-in update that leaves an absent key absent makes an empty cell, which a
      // sweep must find just the same. However many such cells are made, a bounded number
      // stays: in an empty dictionary a stripe's empty cells settle at about 128 found by its
      // last sweep plus as many made since (the bound used to grow with the square root of
      // the cells made: about 29,000 here).
      for key in 0..<20_000 { dict.removeValue(forKey: -key - 1_000) }
      for key in 0..<20_000 { dict[key + 1_000_000] = nil }
      #expect(dict.isEmpty)
      #expect(dict.storage.index.cellCount < 64 * 2 * 130)
      #endif
    }
  }
}
