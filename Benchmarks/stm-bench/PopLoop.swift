import STM

extension Workload {
  /// BENCHMARKS.md `pop-loop`: each thread owns a list holding one element, and repeats, one
  /// transaction each: `x = removeLast(); append(x); total += x`.
  static let popLoop = Workload(
    name: "pop-loop",
    summary: "each thread pops and re-appends its own list's one element; check every thread's total",
    unit: "iterations"
  ) { size in
    // The default run does a fifth of the 10,000,000 iterations: at full size the library's
    // T=1 run alone takes about 16 s on 2 cores. `--full` runs them all.
    let total = size.scaled(10_000_000, standard: 2_000_000)
    return [
      Implementation(name: "TArray", kind: .library) { threads in
        let lists = (0..<threads).map { TArray([PopLoop.element(of: $0)]) }
        let totals = PopLoop.Totals(threads: threads)
        return Trial(ops: total) { thread in
          let list = lists[thread]
          var sum = 0
          for _ in share(of: total, thread: thread, threads: threads) {
            // The element comes out of the transaction and is added after it commits, so that
            // a rerun cannot count it twice.
            sum &+= atomically { _ in
              let element = list.removeLast()
              list.append(element)
              return element
            }
          }
          totals.store(sum, thread: thread)
        } verify: {
          totals.check(total: total) { thread in lists[thread].elements }
        }
      },
      Implementation(name: "serial Array", kind: .serial) { _ in
        let totals = PopLoop.Totals(threads: 1)
        let list = PopLoop.SerialList()
        return Trial(ops: total) { _ in
          var elements = [PopLoop.element(of: 0)]
          var sum = 0
          for _ in 0..<total {
            let element = elements.removeLast()
            elements.append(element)
            sum &+= element
          }
          totals.store(sum, thread: 0)
          list.elements = elements
        } verify: {
          totals.check(total: total) { _ in list.elements }
        }
      },
    ]
  }
}

/// The formulas of BENCHMARKS.md (pop-loop), shared by every implementation.
enum PopLoop {
  /// The one element of thread t's list: t + 1, so that each thread's total tells the threads
  /// apart and is never trivially 0.
  static func element(of thread: Int) -> Int { thread + 1 }

  /// Each thread's total, written by that thread once, at its end.
  final class Totals: @unchecked Sendable {
    // @unchecked: thread t writes only slot t, before it is joined; the check reads after.
    private let threads: Int
    private let totals: UnsafeMutableBufferPointer<Int>

    init(threads: Int) {
      self.threads = threads
      totals = .allocate(capacity: threads)
      totals.initialize(repeating: 0)
    }

    deinit { totals.deallocate() }

    func store(_ total: Int, thread: Int) { totals[thread] = total }

    /// Every thread's total is its iterations × its element, and its list, read back with
    /// `list`, holds just that element again.
    func check(total: Int, list: (Int) -> [Int]) -> String? {
      var problems: [String] = []
      for thread in 0..<threads {
        let element = PopLoop.element(of: thread)
        let expected = share(of: total, thread: thread, threads: threads).count * element
        if totals[thread] != expected {
          problems.append("thread \(thread)'s total is \(totals[thread]), expected \(expected)")
        }
        let contents = list(thread)
        if contents != [element] {
          problems.append("thread \(thread)'s list holds \(contents), expected [\(element)]")
        }
      }
      return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
  }

  /// The serial run's list, handed from its thread to the check.
  final class SerialList: @unchecked Sendable {
    // @unchecked: written by the one worker before it is joined, read after the join.
    var elements: [Int] = []
  }
}
