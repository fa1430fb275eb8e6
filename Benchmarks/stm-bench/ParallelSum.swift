import Foundation
import STM

extension Workload {
  /// BENCHMARKS.md `parallel-sum`: the sum of 1...n split into T intervals, each thread adding
  /// its partial sum into one shared counter every 1,000,000 numbers.
  static let parallelSum = Workload(
    name: "parallel-sum",
    summary: "sum of 1...n split into T intervals, one commit per 1,000,000 numbers; check n(n+1)/2",
    unit: "numbers"
  ) { size in
    let n = size.scaled(100_000_000)
    let expected = n * (n + 1) / 2
    return [
      Implementation(name: "TVar total", kind: .library) { threads in
        let total = TVar(0)
        return Trial(ops: n) { thread in
          ParallelSum.forEachChunk(thread: thread, threads: threads, n: n) { partial in
            atomically { _ in total.value += partial }
          }
        } verify: {
          ParallelSum.check(total.value, expected)
        }
      },
      Implementation(name: "serial loop", kind: .serial) { _ in
        let result = ParallelSum.Result()
        return Trial(ops: n) { _ in
          var total = 0
          ParallelSum.forEachChunk(thread: 0, threads: 1, n: n) { partial in total &+= partial }
          result.store(total)
        } verify: {
          ParallelSum.check(result.load(), expected)
        }
      },
    ]
  }
}

enum ParallelSum {
  static let chunk = 1_000_000

  /// Zero, as a value the optimizer cannot know, so that it cannot replace the summing loop with
  /// n(n+1)/2: XOR with an unknown is not an arithmetic progression.
  static let opaqueZero = ProcessInfo.processInfo.processIdentifier < 0 ? 1 : 0

  /// Calls `add` with the partial sum of each run of up to 1,000,000 numbers of thread
  /// `thread`'s interval of 1...n. The library and the serial reference share this, so that the
  /// per-number work is identical and their ratio at T=1 measures only the STM's cost.
  @inline(__always)
  static func forEachChunk(thread: Int, threads: Int, n: Int, add: (Int) -> Void) {
    let interval = share(of: n, thread: thread, threads: threads)
    let salt = opaqueZero
    var start = interval.lowerBound + 1
    let end = interval.upperBound + 1
    while start < end {
      let stop = min(start + chunk, end)
      add(sum(start..<stop, salt: salt))
      start = stop
    }
  }

  @inline(never)
  static func sum(_ numbers: Range<Int>, salt: Int) -> Int {
    var sum = 0
    for number in numbers { sum &+= number ^ salt }
    return sum
  }

  static func check(_ value: Int, _ expected: Int) -> String? {
    value == expected ? nil : "sum is \(value), expected \(expected)"
  }

  /// The serial reference's result, handed from its thread to the check.
  final class Result: @unchecked Sendable {
    // @unchecked: written by the one worker before it is joined, read after the join.
    private var value = 0
    func store(_ value: Int) { self.value = value }
    func load() -> Int { value }
  }
}
