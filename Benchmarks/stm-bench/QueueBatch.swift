import STM

extension Workload {
  /// BENCHMARKS.md `queue-batch`: as `queue-mpmc`, but every transaction moves 16 items: a
  /// producer's enqueues 16 consecutive integers, a consumer's takes 16, waiting until 16 are
  /// there.
  static let queueBatch = Workload(
    name: "queue-batch",
    summary: "T producers, T consumers, 16 items per transaction; check every item once (count, sum)",
    unit: "items",
    workersPerThread: 2
  ) { size in
    let total = size.scaled(2_000_000)
    return [
      Implementation(name: "TQueue", kind: .library) { threads in
        let items = QueueTransfer.itemCount(total: total, batchSize: QueueBatch.batchSize, threads: threads)
        let queue = TQueue<Int>()
        let logs = QueueTransfer.Logs(total: items, consumers: threads)
        let aborts = QueueTransfer.AbortTally()
        return Trial(ops: items, workerCount: 2 * threads) { thread in
          aborts.count(isProducer: thread < threads) {
            if thread < threads {
              let own = share(of: items, thread: thread, threads: threads)
              for start in stride(from: own.lowerBound, to: own.upperBound, by: QueueBatch.batchSize) {
                // It cannot throw: the queue is never closed and is unbounded.
                try! atomically { _ in
                  for item in start..<(start + QueueBatch.batchSize) { try queue.enqueue(item) }
                }
              }
            } else {
              logs.receive(consumer: thread - threads) { log in
                var index = 0
                while index < log.count {
                  let first = index
                  // On an empty queue `dequeue` retries the whole transaction: it rolls back the
                  // items already taken and waits until the queue changes, so the transaction
                  // commits only with 16 items. A rerun rewrites the same log slots, so the
                  // body needs no state of its own. It throws nothing out of `atomically`.
                  let complete = try! atomically { _ in
                    for offset in 0..<QueueBatch.batchSize {
                      guard let item = try queue.dequeue() else { return false }
                      log[first + offset] = item
                    }
                    return true
                  }
                  // Only a closed and drained queue ends early, and this one is never closed.
                  guard complete else { break }
                  index += QueueBatch.batchSize
                }
                return index
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
      },
      .lockedRingQueue(total: total, batchSize: QueueBatch.batchSize),
      .queueActor(total: total, batchSize: QueueBatch.batchSize),
    ]
  }
}

enum QueueBatch {
  /// Items per transaction (per lock hold, for the baseline).
  static let batchSize = 16
}
