import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

private final class Lists: @unchecked Sendable {
  private let lock = NSLock()
  private var lists: [[Int]] = []
  func add(_ list: [Int]) { lock.withLock { lists.append(list) } }
  var all: [[Int]] { lock.withLock { lists } }
}

extension LibraryTests {
  /// A bounded `TQueue` under every kind of producer and consumer at once, inside and outside
  /// transactions, with rollbacks (written during a review of the drop-in bounded paths).
  @Suite struct ConcurrencyBoundedQueueStressTests {
    /// For capacities 1 to 4: 3 drop-in producers, 1 transactional producer (pairs, and
    /// enqueues rolled back), 2 blocking consumers, 1 polling consumer and 1 transactional
    /// consumer (takes rolled back, two takes in one transaction), beside an observer whose
    /// transactions walk the list: at every snapshot the tail is the last node, the budget
    /// and the tally of freed places and the items held add up to the capacity, and nothing
    /// is negative; every accepted item is received once, and each consumer sees each
    /// producer's items in order.
    @Test func everyProducerAndConsumerKindAtOnceKeepsThePlacesAccounted() throws {
      for round in 0..<4 {
        let capacity = 1 + round
        let queue = TQueue<Int>(capacity: capacity)
        let per = TestScale.scaled(1_000)
        let received = Lists(), accepted = Lists()
        let producersDone = Atomic<Int>(0), consumersDone = Atomic<Int>(0)
        let badSnapshot = Atomic<Int>(0), overCapacity = Atomic<Int>(0), observations = Atomic<Int>(0)
        struct Rollback: Error {}
        let dropInProducers = 3, txProducers = 1, producers = dropInProducers + txProducers
        let consumers = 4
        runThreads(producers + consumers + 1) { thread in
          var random = SeededRandom(seed: UInt64(thread * 7 + round + 1))
          if thread < dropInProducers {
            var mine: [Int] = []
            for i in 0..<per {
              let item = thread * 1_000_000 + i
              try! queue.enqueue(item)
              mine.append(item)
            }
            accepted.add(mine)
            if producersDone.add(1, ordering: .sequentiallyConsistent).newValue == producers { queue.close() }
          } else if thread < producers {
            var mine: [Int] = []
            var i = 0
            while i < per {
              let item = thread * 1_000_000 + i
              if random.chance(15) {
                _ = try? atomically { _ throws in
                  try queue.enqueue(item)
                  throw Rollback()
                }
                continue
              }
              if capacity >= 2 && i + 1 < per && random.chance(50) {
                try! atomically { _ in
                  try queue.enqueue(item)
                  try queue.enqueue(item + 1)
                }
                mine += [item, item + 1]
                i += 2
              } else {
                try! atomically { _ in try queue.enqueue(item) }
                mine.append(item)
                i += 1
              }
            }
            accepted.add(mine)
            if producersDone.add(1, ordering: .sequentiallyConsistent).newValue == producers { queue.close() }
          } else if thread < producers + 2 {
            var mine: [Int] = []
            while let item = try! queue.dequeue() { mine.append(item) }
            received.add(mine)
            consumersDone.add(1, ordering: .sequentiallyConsistent)
          } else if thread == producers + 2 {
            var mine: [Int] = []
            while true {
              if let item = queue.tryDequeue() { mine.append(item); continue }
              if queue.isClosed {
                if let item = queue.tryDequeue() { mine.append(item); continue }
                break
              }
              sched_yield()
            }
            received.add(mine)
            consumersDone.add(1, ordering: .sequentiallyConsistent)
          } else if thread == producers + 3 {
            var mine: [Int] = []
            loop: while true {
              switch random.below(10) {
              case 0, 1:
                _ = try? atomically { _ throws in
                  if try queue.dequeue() != nil { throw Rollback() }
                }
                if queue.isClosed && queue.isEmpty { break loop }
              case 2, 3:
                let (a, b) = try! atomically { _ in (try queue.dequeue(), queue.tryDequeue()) }
                if let a { mine.append(a) }
                if let b { mine.append(b) }
                if a == nil { break loop }
              default:
                guard let a = try! atomically({ _ in try queue.dequeue() }) else { break loop }
                mine.append(a)
              }
            }
            received.add(mine)
            consumersDone.add(1, ordering: .sequentiallyConsistent)
          } else {
            while consumersDone.load(ordering: .sequentiallyConsistent) < consumers {
              atomically { _ in
                var node = queue.head.value
                var held = 0
                while let next = node.next.value {
                  held += 1
                  node = next
                }
                let free = queue.producerBudget!.value + queue.freedPlaces!.value
                if queue.tail.value !== node || free + held != capacity || queue.producerBudget!.value < 0
                  || queue.freedPlaces!.value < 0
                {
                  badSnapshot.add(1, ordering: .relaxed)
                }
                if held > capacity { overCapacity.add(1, ordering: .relaxed) }
              }
              observations.add(1, ordering: .relaxed)
            }
          }
        }
        let all = received.all
        // FIFO per producer, seen by each consumer.
        var outOfOrder = 0
        for list in all {
          var last: [Int: Int] = [:]
          for item in list {
            let producer = item / 1_000_000
            if let previous = last[producer], previous >= item { outOfOrder += 1 }
            last[producer] = item
          }
        }
        let got = all.flatMap { $0 }.sorted()
        let expected = accepted.all.flatMap { $0 }.sorted()
        #expect(outOfOrder == 0, "round \(round)")
        #expect(got.count == expected.count, "round \(round): got \(got.count), expected \(expected.count)")
        #expect(got == expected, "round \(round)")
        #expect(badSnapshot.load(ordering: .relaxed) == 0, "round \(round): \(badSnapshot.load(ordering: .relaxed)) of \(observations.load(ordering: .relaxed))")
        #expect(overCapacity.load(ordering: .relaxed) == 0, "round \(round)")
        #expect(queue.producerBudget!._newestCommittedValue + queue.freedPlaces!._newestCommittedValue == capacity)
      }
    }

    /// Producers of every kind blocked on a full bounded queue end when it is closed; the
    /// item in it comes out; no place is lost.
    @Test func closingReleasesBlockedProducersOfEveryKind() throws {
      let queue = TQueue<Int>(capacity: 1)
      try queue.enqueue(0)
      let refused = Atomic<Int>(0)
      let a = startThread { do { try queue.enqueue(1) } catch { refused.add(1, ordering: .relaxed) } }
      let b = startThread { do { try queue.enqueue(2) } catch { refused.add(1, ordering: .relaxed) } }
      let c = startThread { do { try atomically { _ in try queue.enqueue(3) } } catch { refused.add(1, ordering: .relaxed) } }
      // The two outside transactions park on the queue; the one inside waits for a change to
      // what its transaction read, `closed` among it.
      #expect(waitForParkedProducers(on: queue, atLeast: 2), "a producer outside a transaction never waited")
      #expect(waitForWaiters(on: [queue.closed.cell]), "the producer inside a transaction never waited")
      queue.close()
      #expect(a.wait(timeout: .now() + 5) == .success)
      #expect(b.wait(timeout: .now() + 5) == .success)
      #expect(c.wait(timeout: .now() + 5) == .success)
      #expect(refused.load(ordering: .relaxed) == 3)
      #expect(try queue.dequeue() == 0)
      #expect(try queue.dequeue() == nil)
      #expect(queue.producerBudget!._newestCommittedValue + queue.freedPlaces!._newestCommittedValue == 1)
    }
  }
}
