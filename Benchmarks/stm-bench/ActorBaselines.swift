import Dispatch
import Synchronization

// The `actor` baselines of BENCHMARKS.md ("where it makes sense, an `actor`"): the shared state
// a Swift 6 programmer is steered towards first. Every access is an `await`ed call into the
// actor, which runs one call at a time, so each call is atomic as a group, as a transaction is.
//
// The harness's threads are plain threads, and an actor is reached only from async code: each
// thread runs its share as a task on Swift's global concurrent executor and blocks until the
// task ends (`waitForTask`). The tasks run on the cooperative thread pool, one thread per core,
// as any actor code does; they are created inside the timed region, which costs a few
// microseconds against runs of tenths of a second.
//
// Each actor counts how often its calls switched from one task to another (`Turns`), which the
// progress line shows. A task whose loop does nothing between two calls into the actor but
// what needs no executor (an integer step, say) never leaves the actor in between: the
// optimizer leaves out the hop back to the task's own executor (in a release build with Swift
// 6.3, the loop's SIL hops to the actor before each call and nowhere else), so the task keeps
// the actor until its loop ends while the others wait. Such a run at T=2 is two runs one after
// the other (a few switches), not interleaved calls; `counter-hot` and `dict-grow` run so, and
// `dict-disjoint`, `list-append` and `queue-batch` (whose loops' key arithmetic or private
// random numbers need no executor either) have run either way from one run to the next.

/// Runs `body` as a task on the global concurrent executor and blocks the calling thread, which
/// must not be one of that executor's own, until the task returns.
func waitForTask<Result: Sendable>(_ body: @escaping @Sendable () async -> Result) -> Result {
  let result = Mutex<Result?>(nil)
  let done = DispatchSemaphore(value: 0)
  Task.detached {
    let value = await body()
    result.withLock { $0 = value }
    done.signal()
  }
  done.wait()
  return result.withLock { $0.take()! }
}

/// How often an actor's call came from another caller than the call before it: the progress
/// line's measure of whether the tasks' calls interleaved.
struct Turns {
  private var lastCaller: Int?
  private(set) var switches = 0

  mutating func note(_ caller: Int) {
    if let lastCaller, lastCaller != caller { switches += 1 }
    lastCaller = caller
  }

  var description: String { "the actor's calls switched tasks \(switches == 1 ? "once" : "\(switches) times")" }
}

/// A dictionary shared through an actor, with the operations the dictionary workloads make,
/// each one call; `caller` is the calling thread's number (see `Turns`).
actor DictionaryActor {
  private var contents: [Int: Int]
  private(set) var turns = Turns()

  init(_ contents: [Int: Int] = [:]) {
    self.contents = contents
  }

  /// `dict-disjoint`'s update.
  func increment(_ key: Int, caller: Int) {
    turns.note(caller)
    contents[key, default: 0] += 1
  }

  /// `dict-grow`'s insert.
  func updateValue(_ value: Int, forKey key: Int, caller: Int) {
    turns.note(caller)
    contents.updateValue(value, forKey: key)
  }

  /// One `dict-mixed` transaction, its four operations in one call; returns the checksum of
  /// the values looked up.
  func perform(_ draws: DictMixed.Draws, caller: Int) -> Int {
    turns.note(caller)
    return draws.perform(
      lookup: { contents[$0] },
      upsert: { contents[$0, default: 0] += 1 },
      remove: { _ = contents.removeValue(forKey: $0) })
  }

  /// A copy of the contents, for the checks.
  var snapshot: [Int: Int] { contents }
}

/// A counter shared through an actor.
actor CounterActor {
  private(set) var value = 0
  private(set) var turns = Turns()

  func increment(caller: Int) {
    turns.note(caller)
    value += 1
  }
}

/// A list shared through an actor, for `list-append`.
actor ListActor {
  private(set) var items: [UInt64]
  private(set) var turns = Turns()

  init(capacity: Int) {
    items = []
    items.reserveCapacity(capacity)
  }

  func append(_ item: UInt64, caller: Int) {
    turns.note(caller)
    items.append(item)
  }
}

/// The items an actor's queue holds, first in, first out: those from `head` on. The consumed
/// prefix is dropped once it is at least half the array, so that each item is moved at most
/// once more.
struct QueuedItems {
  private var items: [Int] = []
  private var head = 0

  var count: Int { items.count - head }

  mutating func append(_ item: Int) { items.append(item) }

  mutating func append(contentsOf batch: Range<Int>) { items.append(contentsOf: batch) }

  /// Removes and returns the first item; the queue must not be empty.
  mutating func removeFirst() -> Int {
    let item = items[head]
    head += 1
    dropConsumedPrefix()
    return item
  }

  /// Removes and returns the first `count` items; the queue must hold that many.
  mutating func removeFirst(_ count: Int) -> [Int] {
    let batch = Array(items[head..<(head + count)])
    head += count
    dropConsumedPrefix()
    return batch
  }

  /// Removes every item and returns how many there were.
  mutating func removeAll() -> Int {
    defer {
      items.removeAll()
      head = 0
    }
    return count
  }

  private mutating func dropConsumedPrefix() {
    if head >= 1024 && 2 * head >= items.count {
      items.removeFirst(head)
      head = 0
    }
  }
}

/// A FIFO queue shared through an actor, for `queue-mpmc` (one item per call) and
/// `queue-batch` (a batch per call): a consumer that finds too few items suspends until
/// producers have brought its item, or its whole batch, without blocking a thread.
actor QueueActor {
  /// A consumer waiting, for one item or for a batch of `count`.
  private enum Waiter {
    case item(CheckedContinuation<Int, Never>)
    case batch(count: Int, CheckedContinuation<[Int], Never>)

    var count: Int {
      switch self {
      case .item: 1
      case .batch(let count, _): count
      }
    }
  }

  private var items = QueuedItems()
  /// The consumers waiting, oldest first, from `firstWaiter` on. While one waits, fewer items
  /// than it takes are there.
  private var waiters: [Waiter] = []
  private var firstWaiter = 0
  private(set) var turns = Turns()

  func enqueue(_ item: Int, caller: Int) {
    turns.note(caller)
    items.append(item)
    serveWaiters()
  }

  func enqueue(contentsOf batch: Range<Int>, caller: Int) {
    turns.note(caller)
    items.append(contentsOf: batch)
    serveWaiters()
  }

  func dequeue(caller: Int) async -> Int {
    turns.note(caller)
    if firstWaiter == waiters.count && items.count > 0 { return items.removeFirst() }
    return await withCheckedContinuation { waiters.append(.item($0)) }
  }

  /// The first `count` items, taken together once they are all there. A consumer that arrives
  /// while another waits queues behind it, so items go to consumers in the order they asked.
  func dequeue(count: Int, caller: Int) async -> [Int] {
    turns.note(caller)
    if firstWaiter == waiters.count && items.count >= count { return items.removeFirst(count) }
    return await withCheckedContinuation { waiters.append(.batch(count: count, $0)) }
  }

  /// Takes every item left and returns how many there were; for the check after the join.
  func drain() -> Int { items.removeAll() }

  /// Hands items to the consumers waiting, oldest first, while there are enough for the next.
  private func serveWaiters() {
    while firstWaiter < waiters.count && items.count >= waiters[firstWaiter].count {
      let waiter = waiters[firstWaiter]
      firstWaiter += 1
      switch waiter {
      case .item(let continuation): continuation.resume(returning: items.removeFirst())
      case .batch(let count, let continuation): continuation.resume(returning: items.removeFirst(count))
      }
    }
    if firstWaiter > 0 && firstWaiter == waiters.count {
      waiters.removeAll(keepingCapacity: true)
      firstWaiter = 0
    }
  }
}

/// A buffer a consumer task fills for its thread, which waits for the task to end before
/// reading it.
struct UncheckedLog: @unchecked Sendable {
  let buffer: UnsafeMutableBufferPointer<Int>
}

extension Implementation {
  /// The `actor` baseline of both queue workloads: T producer tasks and T consumer tasks,
  /// each call moving one item, or a batch of `batchSize`.
  static func queueActor(total: Int, batchSize: Int) -> Implementation {
    Implementation(name: "actor", kind: .baseline) { threads in
      let items = QueueTransfer.itemCount(total: total, batchSize: batchSize, threads: threads)
      let queue = QueueActor()
      let logs = QueueTransfer.Logs(total: items, consumers: threads)
      return Trial(ops: items, workerCount: 2 * threads) { thread in
        if thread < threads {
          let own = share(of: items, thread: thread, threads: threads)
          waitForTask {
            if batchSize == 1 {
              for item in own { await queue.enqueue(item, caller: thread) }
            } else {
              for start in stride(from: own.lowerBound, to: own.upperBound, by: batchSize) {
                await queue.enqueue(contentsOf: start..<(start + batchSize), caller: thread)
              }
            }
          }
        } else {
          logs.receive(consumer: thread - threads) { log in
            let log = UncheckedLog(buffer: log)
            return waitForTask {
              if batchSize == 1 {
                for index in log.buffer.indices { log.buffer[index] = await queue.dequeue(caller: thread) }
              } else {
                // Each consumer's share is whole batches (see `QueueTransfer.itemCount`).
                for first in stride(from: 0, to: log.buffer.count, by: batchSize) {
                  let batch = await queue.dequeue(count: batchSize, caller: thread)
                  for (offset, item) in batch.enumerated() { log.buffer[first + offset] = item }
                }
              }
              return log.buffer.count
            }
          }
        }
      } verify: {
        logs.check(threads: threads, leftInQueue: waitForTask { await queue.drain() })
      } detail: {
        waitForTask { await queue.turns.description }
      }
    }
  }
}
