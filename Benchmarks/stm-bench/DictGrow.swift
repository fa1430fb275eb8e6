import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `dict-grow`: an empty map that the threads fill, thread t inserting the keys
  /// t, t+T, t+2T, … below the total, each with itself as value, one insert per transaction.
  static let dictGrow = Workload(
    name: "dict-grow",
    summary: "insert keys t, t+T, … into an empty map, one per transaction; check every key",
    unit: "inserts"
  ) { size in
    let total = size.scaled(2_000_000)
    // No capacity is reserved anywhere: the workload measures growing, and a user of a shared
    // map that fills up rarely knows its final size.
    return [
      Implementation(name: "TDictionary", kind: .library) { threads in
        let dictionary = TDictionary<Int, Int>()
        return Trial(ops: total) { thread in
          for key in DictGrow.keys(thread: thread, threads: threads, total: total) {
            // Outside `atomically`: a transaction of its own.
            dictionary.updateValue(key, forKey: key)
          }
        } verify: {
          DictGrow.check(count: dictionary.count, total: total) { dictionary[$0] }
        }
      },
      Implementation(name: "Mutex<[Int: Int]>", kind: .baseline) { threads in
        let dictionary = LockedDictionary<Int, Int>([:])
        return Trial(ops: total) { thread in
          for key in DictGrow.keys(thread: thread, threads: threads, total: total) {
            dictionary.value.withLock { _ = $0.updateValue(key, forKey: key) }
          }
        } verify: {
          dictionary.value.withLock { contents in
            DictGrow.check(count: contents.count, total: total) { contents[$0] }
          }
        }
      },
      Implementation(name: "striped-64", kind: .baseline) { threads in
        let dictionary = StripedDictionary<Int, Int>()
        return Trial(ops: total) { thread in
          for key in DictGrow.keys(thread: thread, threads: threads, total: total) {
            dictionary.withLock(forKey: key) { _ = $0.updateValue(key, forKey: key) }
          }
        } verify: {
          DictGrow.check(count: dictionary.count, total: total) { key in
            dictionary.withLock(forKey: key) { $0[key] }
          }
        }
      },
      Implementation(name: "actor", kind: .baseline) { threads in
        let dictionary = DictionaryActor()
        return Trial(ops: total) { thread in
          waitForTask {
            for key in DictGrow.keys(thread: thread, threads: threads, total: total) {
              await dictionary.updateValue(key, forKey: key, caller: thread)
            }
          }
        } verify: {
          let contents = waitForTask { await dictionary.snapshot }
          return DictGrow.check(count: contents.count, total: total) { contents[$0] }
        } detail: {
          waitForTask { await dictionary.turns.description }
        }
      },
    ]
  }
}

/// The formulas of BENCHMARKS.md ("Exact formulas", dict-grow), shared by every implementation.
enum DictGrow {
  /// Thread `thread`'s keys: t, t+T, t+2T, … below `total`, so that the threads together insert
  /// exactly the keys 0..<total.
  @inline(__always)
  static func keys(thread: Int, threads: Int, total: Int) -> StrideTo<Int> {
    stride(from: thread, to: total, by: threads)
  }

  /// The count is the total, and every key 0..<total, read back one by one with `value`,
  /// holds itself.
  static func check(count: Int, total: Int, value: (Int) -> Int?) -> String? {
    var problems: [String] = []
    if count != total { problems.append("count is \(count), expected \(total)") }
    var missing = 0, wrong = 0
    var firstProblem: String?
    for key in 0..<total {
      switch value(key) {
      case nil:
        missing += 1
        firstProblem = firstProblem ?? "key \(key) is absent"
      case let stored? where stored != key:
        wrong += 1
        firstProblem = firstProblem ?? "key \(key) holds \(stored)"
      default:
        break
      }
    }
    if let firstProblem {
      problems.append("\(missing) keys absent, \(wrong) with a wrong value (first: \(firstProblem))")
    }
    return problems.isEmpty ? nil : problems.joined(separator: "; ")
  }
}
