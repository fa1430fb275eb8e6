import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `dict-disjoint`: a map of keys 0..<65536; thread t owns the keys with
  /// `k % T == t`, and each op adds 1 to one of them, so threads never touch the same key.
  static let dictDisjoint = Workload(
    name: "dict-disjoint",
    summary: "add 1 to a key of the thread's own (k % T == t) among 65,536; check sum == total",
    unit: "ops"
  ) { size in
    let total = size.scaled(4_000_000)
    return [
      Implementation(name: "TDictionary", kind: .library) { threads in
        let dictionary = TDictionary<Int, Int>(minimumCapacity: DictDisjoint.keyCount)
        for key in 0..<DictDisjoint.keyCount { dictionary[key] = 0 }
        return Trial(ops: total) { thread in
          DictDisjoint.forEachKey(thread: thread, threads: threads, total: total) { key in
            // Outside `atomically`, an in-place update is one atomic read-modify-write, ordered
            // among transactions as one of its own; it holds the key's cell instead of running one.
            dictionary[key, default: 0] += 1
          }
        } verify: {
          DictDisjoint.check(dictionary, total: total)
        }
      },
      // The same update in a transaction of its own: what each one costs when it must be able to
      // join others (the drop-in update above holds the key's cell instead of running one).
      Implementation(name: "TDictionary atomically", kind: .library) { threads in
        let dictionary = TDictionary<Int, Int>(minimumCapacity: DictDisjoint.keyCount)
        for key in 0..<DictDisjoint.keyCount { dictionary[key] = 0 }
        return Trial(ops: total) { thread in
          DictDisjoint.forEachKey(thread: thread, threads: threads, total: total) { key in
            atomically { _ in dictionary[key, default: 0] += 1 }
          }
        } verify: {
          DictDisjoint.check(dictionary, total: total)
        }
      },
      Implementation(name: "Mutex<[Int: Int]>", kind: .baseline) { threads in
        let dictionary = LockedDictionary(DictDisjoint.initialContents())
        return Trial(ops: total) { thread in
          DictDisjoint.forEachKey(thread: thread, threads: threads, total: total) { key in
            dictionary.value.withLock { $0[key, default: 0] += 1 }
          }
        } verify: {
          dictionary.value.withLock { contents in
            DictDisjoint.check(
              count: contents.count, recount: contents.reduce(0) { n, _ in n + 1 },
              sum: contents.values.reduce(0, +), total: total)
          }
        }
      },
      Implementation(name: "striped-64", kind: .baseline) { threads in
        let dictionary = StripedDictionary<Int, Int>(minimumCapacity: DictDisjoint.keyCount)
        for key in 0..<DictDisjoint.keyCount {
          dictionary.withLock(forKey: key) { $0[key] = 0 }
        }
        return Trial(ops: total) { thread in
          DictDisjoint.forEachKey(thread: thread, threads: threads, total: total) { key in
            dictionary.withLock(forKey: key) { $0[key, default: 0] += 1 }
          }
        } verify: {
          var sum = 0, recount = 0
          dictionary.forEach { _, value in
            sum += value
            recount += 1
          }
          return DictDisjoint.check(count: dictionary.count, recount: recount, sum: sum, total: total)
        }
      },
      Implementation(name: "actor", kind: .baseline) { threads in
        let dictionary = DictionaryActor(DictDisjoint.initialContents())
        return Trial(ops: total) { thread in
          let ops = share(of: total, thread: thread, threads: threads).count
          waitForTask {
            for j in 0..<ops { await dictionary.increment(DictDisjoint.key(op: j, thread: thread, threads: threads), caller: thread) }
          }
        } verify: {
          let contents = waitForTask { await dictionary.snapshot }
          return DictDisjoint.check(
            count: contents.count, recount: contents.reduce(0) { n, _ in n + 1 },
            sum: contents.values.reduce(0, +), total: total)
        } detail: {
          waitForTask { await dictionary.turns.description }
        }
      },
    ]
  }
}

/// The formulas of BENCHMARKS.md ("Exact formulas", dict-disjoint), shared by every
/// implementation.
enum DictDisjoint {
  static let keyCount = 65_536

  /// Keys 0..<65536, every value 0.
  static func initialContents() -> [Int: Int] {
    var contents = [Int: Int](minimumCapacity: keyCount)
    for key in 0..<keyCount { contents[key] = 0 }
    return contents
  }

  /// Calls `add` with the key of each of thread `thread`'s ops: its op j (from 0) adds 1 to key
  /// `((j &* 7919) % (65536 / T)) * T + t`.
  @inline(__always)
  static func forEachKey(thread: Int, threads: Int, total: Int, add: (Int) -> Void) {
    for j in 0..<share(of: total, thread: thread, threads: threads).count {
      add(key(op: j, thread: thread, threads: threads))
    }
  }

  /// The key of thread `thread`'s op `j`, as `forEachKey` gives them.
  @inline(__always)
  static func key(op j: Int, thread: Int, threads: Int) -> Int {
    ((j &* 7919) % (keyCount / threads)) * threads + thread
  }

  /// `check(count:recount:sum:total:)` of a `TDictionary`, recounted by iteration.
  static func check(_ dictionary: TDictionary<Int, Int>, total: Int) -> String? {
    var sum = 0, recount = 0
    for (_, value) in dictionary {
      sum += value
      recount += 1
    }
    return check(count: dictionary.count, recount: recount, sum: sum, total: total)
  }

  /// The sum of the values is the total, and the map still holds its 65,536 keys (by its count
  /// and by a recount by iteration).
  static func check(count: Int, recount: Int, sum: Int, total: Int) -> String? {
    var problems: [String] = []
    if sum != total { problems.append("sum of values is \(sum), expected \(total)") }
    if count != keyCount { problems.append("count is \(count), expected \(keyCount)") }
    if recount != count { problems.append("iteration found \(recount) keys, count says \(count)") }
    return problems.isEmpty ? nil : problems.joined(separator: "; ")
  }
}
