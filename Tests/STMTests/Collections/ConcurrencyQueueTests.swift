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

extension LibraryTests {
  @Suite struct ConcurrencyQueueTests {
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
        var lastFromProducer = [Int](repeating: -1, count: producers)
        for item in mine {
          let producer = item / perProducer
          if item <= lastFromProducer[producer] { outOfOrder.add(1, ordering: .relaxed) }
          lastFromProducer[producer] = item
        }
        received.add(mine)
      }
      #expect(outOfOrder.load(ordering: .relaxed) == 0)
      let all = received.all
      #expect(all.count == producers * perProducer)
      #expect(Set(all).count == all.count)
      #expect(all.reduce(0, +) == (0..<(producers * perProducer)).reduce(0, +))
      #expect(queue.tryDequeue() == nil)
    }

    @Test func droppingALongQueueReleasesNodesWithoutRecursion() throws {
      // Each node reaches the next through a cell and a version; freed recursively, a queue
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
      // A consumer already waiting on an empty queue wakes up and ends when it is closed.
      let other = TQueue<Int>()
      let waiting = startThread { #expect(try! other.dequeue() == nil) }
      Thread.sleep(forTimeInterval: 0.05)
      other.close()
      waiting.wait()
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
      for item in 1...100 { try queue.enqueue(item) }
      queue.close()
      #expect(await consumer.value == 5_050)
    }

    @Test func dequeuedItemsAndRemovedKeysAreReclaimed() throws {
      #if DEBUG
      let queue = TQueue<Int>()
      let baseline = _LiveCounters.cells.load(ordering: .relaxed)
      for round in 0..<20 {
        for item in 0..<1_000 { try queue.enqueue(round * 1_000 + item) }
        while queue.tryDequeue() != nil {}
      }
      // One cell per node; consumed nodes are freed, so only a handful remain.
      #expect(_LiveCounters.cells.load(ordering: .relaxed) - baseline < 100)

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
