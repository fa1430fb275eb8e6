import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `primes`, the PyPy-STM Tornado example: 4,000 tasks on the library's
  /// transaction scheduler; task i counts the primes up to 10,000 by trial division, stores the
  /// count in a shared dictionary under key i and adds 1 to a shared commutative counter.
  static let primes = Workload(
    name: "primes",
    summary: "TransactionQueue tasks each count primes ≤ 10,000 into a shared map; check 1,229 each",
    unit: "tasks"
  ) { size in
    let tasks = size.scaled(4_000)
    return [
      Implementation(name: "TransactionQueue", kind: .library) { threads in
        let counts = TDictionary<Int, Int>(minimumCapacity: tasks)
        let requests = TCounter()
        let queue = TransactionQueue()
        for task in 0..<tasks {
          queue.add {
            // Different keys and a commutative counter: tasks never conflict.
            counts[task] = Primes.countPrimes(upTo: Primes.limit)
            requests.increment()
          }
        }
        return Trial(ops: tasks, workerCount: 1) { _ in
          // The scheduler starts its own threads; this one is one of them.
          runToCompletion(queue, threads: threads, workload: "primes")
        } verify: {
          Primes.check(counts.dictionary, requests: requests.value, tasks: tasks)
        }
      },
      Implementation(name: "threads + Mutex<[Int: Int]>", kind: .baseline) { threads in
        let counts = LockedDictionary([Int: Int](minimumCapacity: tasks))
        let requests = Atomic<Int>(0), nextTask = Atomic<Int>(0)
        return Trial(ops: tasks) { _ in
          // Each thread takes the next task number until none is left.
          while case let task = nextTask.add(1, ordering: .relaxed).oldValue, task < tasks {
            let count = Primes.countPrimes(upTo: Primes.limit)
            counts.value.withLock { $0[task] = count }
            requests.add(1, ordering: .relaxed)
          }
        } verify: {
          Primes.check(
            counts.value.withLock { $0 }, requests: requests.load(ordering: .relaxed), tasks: tasks)
        }
      },
      Implementation(name: "serial", kind: .serial) { _ in
        let result = Primes.SerialResult()
        return Trial(ops: tasks) { _ in
          var counts = [Int: Int](minimumCapacity: tasks), requests = 0
          for task in 0..<tasks {
            counts[task] = Primes.countPrimes(upTo: Primes.limit)
            requests += 1
          }
          result.counts = counts
          result.requests = requests
        } verify: {
          Primes.check(result.counts, requests: result.requests, tasks: tasks)
        }
      },
    ]
  }
}

/// Runs `queue` on `threads` threads for a seed workload, whose tasks never throw.
func runToCompletion(_ queue: TransactionQueue, threads: Int, workload: String) {
  do {
    try queue.run(threads: threads)
  } catch {
    fatalError("\(workload): a task threw \(error)")
  }
}

enum Primes {
  static let limit = 10_000
  /// The number of primes up to 10,000.
  static let expectedCount = 1_229

  /// The primes up to `limit`, counted by trial division.
  ///
  /// The Tornado example's `is_prime` tried every divisor below n; this one stops at √n, which
  /// gives the same answer with about 1/50 of the divisions, so that the 4,000 tasks fit the
  /// harness's default run. A task is still pure computation (about 100,000 divisions) with no
  /// shared state until it stores its result.
  static func countPrimes(upTo limit: Int) -> Int {
    var count = 0
    for candidate in 2...limit where isPrime(candidate) { count += 1 }
    return count
  }

  @inline(never)  // one task's work must not be folded into the caller's loop
  static func isPrime(_ n: Int) -> Bool {
    var divisor = 2
    while divisor * divisor <= n {
      if n % divisor == 0 { return false }
      divisor += 1
    }
    return true
  }

  /// Every task stored 1,229 under its own key, and the counter counted every task.
  static func check(_ counts: [Int: Int], requests: Int, tasks: Int) -> String? {
    var problems: [String] = []
    if counts.count != tasks { problems.append("\(counts.count) results stored, expected \(tasks)") }
    if let wrong = counts.first(where: { $0.value != expectedCount }) {
      problems.append("task \(wrong.key) stored \(wrong.value), expected \(expectedCount)")
    }
    if let missing = (0..<tasks).first(where: { counts[$0] == nil }), counts.count == tasks {
      problems.append("task \(missing) stored nothing")
    }
    if requests != tasks { problems.append("request counter is \(requests), expected \(tasks)") }
    return problems.isEmpty ? nil : problems.joined(separator: "; ")
  }

  /// The serial run's results, handed from its thread to the check.
  final class SerialResult: @unchecked Sendable {
    // @unchecked: written by the one worker before it is joined, read after the join.
    var counts: [Int: Int] = [:]
    var requests = 0
  }
}
