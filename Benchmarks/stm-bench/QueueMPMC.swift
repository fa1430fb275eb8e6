import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `queue-mpmc`: T producers enqueue the integers 0..<total, one per
  /// transaction, and T consumers dequeue them, one per transaction, waiting while the queue is
  /// empty.
  static let queueMPMC = Workload(
    name: "queue-mpmc",
    summary: "T producers, T consumers, one item per transaction; check every item once (count, sum)",
    unit: "items",
    workersPerThread: 2
  ) { size in
    let total = size.scaled(2_000_000)
    return [
      // Outside `atomically`, each enqueue and dequeue is atomic on its own, ordered among
      // transactions as one of its own; it holds the tail's (or the head's) lock instead of
      // running one. A dequeue blocks the thread (without spinning) while the queue is empty.
      // Neither can throw: the queue is never closed and is unbounded.
      .tQueue(name: "TQueue", total: total, enqueue: { queue, item in try! queue.enqueue(item) }, dequeue: { queue in
        try! queue.dequeue()
      }),
      // Each in a transaction of its own: what they cost when they must be able to join others.
      .tQueue(name: "TQueue atomically", total: total, enqueue: { queue, item in
        try! atomically { _ in try queue.enqueue(item) }
      }, dequeue: { queue in
        try! atomically { _ in try queue.dequeue() }
      }),
      .lockedRingQueue(total: total, batchSize: 1),
      .queueActor(total: total, batchSize: 1),
    ]
  }
}

extension Implementation {
  /// `queue-mpmc` on a `TQueue<Int>`, one item per `enqueue` and per `dequeue`, as given.
  static func tQueue(
    name: String, total: Int, enqueue: @escaping @Sendable (TQueue<Int>, Int) -> Void,
    dequeue: @escaping @Sendable (TQueue<Int>) -> Int?
  ) -> Implementation {
    Implementation(name: name, kind: .library) { threads in
      let queue = TQueue<Int>()
      let logs = QueueTransfer.Logs(total: total, consumers: threads)
      let aborts = QueueTransfer.AbortTally()
      return Trial(ops: total, workerCount: 2 * threads) { thread in
        aborts.count(isProducer: thread < threads) {
          if thread < threads {
            for item in share(of: total, thread: thread, threads: threads) { enqueue(queue, item) }
          } else {
            logs.receive(consumer: thread - threads) { log in
              for index in log.indices {
                guard let item = dequeue(queue) else { return index }
                log[index] = item
              }
              return log.count
            }
          }
        }
      } verify: {
        logs.check(threads: threads, leftInQueue: QueueTransfer.drain(queue))
      } detail: {
        aborts.description
      } producerAborts: {
        aborts.producerCount
      }
    }
  }

  /// The queue baseline that both queue workloads share: producers and consumers move
  /// `batchSize` items per lock hold, consumers waiting on a condition variable.
  static func lockedRingQueue(total: Int, batchSize: Int) -> Implementation {
    Implementation(name: "pthread mutex + cond ring", kind: .baseline) { threads in
      let items = QueueTransfer.itemCount(total: total, batchSize: batchSize, threads: threads)
      let queue = LockedRingQueue<Int>()
      let logs = QueueTransfer.Logs(total: items, consumers: threads)
      return Trial(ops: items, workerCount: 2 * threads) { thread in
        if thread < threads {
          let own = share(of: items, thread: thread, threads: threads)
          if batchSize == 1 {
            for item in own { queue.enqueue(item) }
          } else {
            for start in stride(from: own.lowerBound, to: own.upperBound, by: batchSize) {
              queue.enqueue(contentsOf: start..<(start + batchSize))
            }
          }
        } else {
          logs.receive(consumer: thread - threads) { log in
            var index = 0
            while index < log.count {
              queue.dequeue(batchSize) { item in
                log[index] = item
                index += 1
              }
            }
            return index
          }
        }
      } verify: {
        logs.check(threads: threads, leftInQueue: queue.drain())
      }
    }
  }
}

/// The formulas of BENCHMARKS.md ("Exact formulas", queues), shared by both queue workloads
/// and every implementation: producer p enqueues `[p·total/T, (p+1)·total/T)` in increasing
/// order, and each consumer takes total/T items.
enum QueueTransfer {
  /// The total for a run with `threads` producers: with batches, a multiple of 32·T (so that
  /// every producer's share and every consumer's share is whole batches), the largest not
  /// above the workload's total.
  static func itemCount(total: Int, batchSize: Int, threads: Int) -> Int {
    guard batchSize > 1 else { return total }
    let unit = 2 * batchSize * threads
    return total / unit * unit
  }

  /// Takes every item left in `queue`, without waiting, and returns how many there were (for a
  /// check after the threads are joined).
  static func drain(_ queue: TQueue<Int>) -> Int {
    var left = 0
    while queue.tryDequeue() != nil { left += 1 }
    return left
  }

  /// The producer whose share holds `item`.
  static func producer(of item: Int, total: Int, threads: Int) -> Int {
    var producer = min(threads - 1, item * threads / total)
    // The estimate can be off by one where the shares' floor divisions round differently.
    while share(of: total, thread: producer, threads: threads).lowerBound > item { producer -= 1 }
    while share(of: total, thread: producer, threads: threads).upperBound <= item { producer += 1 }
    return producer
  }

  /// What each consumer received, in the order it received it: consumer c writes only its own
  /// log, sized for its share.
  final class Logs: @unchecked Sendable {
    // @unchecked: consumer c writes only `logs[c]` and `received[c]`, before it is joined; the
    // check reads them after every thread is joined.
    private let total: Int
    private let consumers: Int
    private let logs: [UnsafeMutableBufferPointer<Int>]
    private let received: UnsafeMutableBufferPointer<Int>

    init(total: Int, consumers: Int) {
      self.total = total
      self.consumers = consumers
      // Allocated and touched up front, so that no consumer page-faults its log in while timed.
      logs = (0..<consumers).map { consumer in
        let log = UnsafeMutableBufferPointer<Int>.allocate(
          capacity: share(of: total, thread: consumer, threads: consumers).count)
        log.initialize(repeating: -1)
        return log
      }
      received = .allocate(capacity: consumers)
      received.initialize(repeating: 0)
    }

    deinit {
      for log in logs { log.deallocate() }
      received.deallocate()
    }

    /// Runs consumer `consumer`'s loop: `body` fills the log it is given, in order, and returns
    /// how many items it received (fewer than the log holds only if the queue ran dry for good).
    func receive(consumer: Int, _ body: (UnsafeMutableBufferPointer<Int>) -> Int) {
      received[consumer] = body(logs[consumer])
    }

    /// The check of BENCHMARKS.md: the count and the sum of what the consumers received, and no
    /// item twice (a bitmap); which with the count means every item exactly once. Also, as the
    /// queues promise FIFO per producer, each consumer received each producer's items in
    /// increasing order. The consumers stop after their share, so the count alone cannot see
    /// an item the queue made up: `leftInQueue`, how many items the queue still holds after the
    /// join, must be 0.
    func check(threads: Int, leftInQueue: Int) -> String? {
      var problems: [String] = []
      let count = received.reduce(0, +)
      if count != total { problems.append("consumers received \(count) items, expected \(total)") }
      if leftInQueue != 0 { problems.append("the queue still holds \(leftInQueue) items after every consumer took its share") }
      var seen = [UInt64](repeating: 0, count: (total + 63) / 64)
      var sum = 0, duplicates = 0, outside = 0, outOfOrder = 0
      var firstProblem: String?
      for consumer in 0..<consumers {
        var lastFromProducer = [Int](repeating: -1, count: threads)
        for item in logs[consumer].prefix(received[consumer]) {
          sum &+= item
          guard (0..<total).contains(item) else {
            outside += 1
            firstProblem = firstProblem ?? "consumer \(consumer) received \(item), outside 0..<\(total)"
            continue
          }
          let (word, bit) = (item / 64, UInt64(1) << (item % 64))
          if seen[word] & bit != 0 {
            duplicates += 1
            firstProblem = firstProblem ?? "item \(item) received twice"
          }
          seen[word] |= bit
          let producer = QueueTransfer.producer(of: item, total: total, threads: threads)
          if item < lastFromProducer[producer] {
            outOfOrder += 1
            firstProblem = firstProblem
              ?? "consumer \(consumer) received \(item) after \(lastFromProducer[producer]) (producer \(producer))"
          }
          lastFromProducer[producer] = item
        }
      }
      let expectedSum = total * (total - 1) / 2
      if sum != expectedSum { problems.append("sum is \(sum), expected \(expectedSum)") }
      if let firstProblem {
        problems.append(
          "\(duplicates) duplicates, \(outside) out of range, \(outOfOrder) out of producer order (first: \(firstProblem))")
      }
      return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
  }

  /// The aborts of the producers' and of the consumers' transactions, told apart: producers of
  /// a `TQueue` should never abort (enqueues are delayed appends), while consumers conflict
  /// with one another over the head.
  final class AbortTally: Sendable {
    private let producers = Atomic<Int>(0)
    private let consumers = Atomic<Int>(0)

    /// Runs `body` and counts the aborts of the transactions it ran on this thread.
    func count(isProducer: Bool, _ body: () -> Void) {
      let before = TransactionEngine.currentThreadStatistics
      body()
      let aborts = (TransactionEngine.currentThreadStatistics - before).totalAborts
      // Relaxed: the runner's join orders these adds before the read.
      if isProducer {
        producers.wrappingAdd(aborts, ordering: .relaxed)
      } else {
        consumers.wrappingAdd(aborts, ordering: .relaxed)
      }
    }

    var producerCount: Int { producers.load(ordering: .relaxed) }

    var description: String {
      "producers \(producers.load(ordering: .relaxed)) aborts, "
        + "consumers \(consumers.load(ordering: .relaxed)) aborts"
    }
  }
}
