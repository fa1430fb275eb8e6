import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `dict-mixed`: a map of keys 0..<65536 (value = key) under transactions of 4
  /// random ops each over keys 0..<131072: 80% lookups, 10% upserts, 10% removals.
  static let dictMixed = Workload(
    name: "dict-mixed",
    summary: "4 random ops per transaction (80/10/10% lookup/upsert/remove), 131,072 keys; check vs logs",
    unit: "transactions"
  ) { size in
    let total = size.scaled(1_000_000)
    return [
      Implementation(name: "TDictionary", kind: .library) { threads in
        let dictionary = TDictionary<Int, Int>(minimumCapacity: DictMixed.keySpace)
        for key in 0..<DictMixed.initialKeyCount { dictionary[key] = key }
        let logs = DictMixed.Logs(threads: threads, total: total)
        return Trial(ops: total) { thread in
          DictMixed.run(thread: thread, threads: threads, total: total, logs: logs) { draws in
            // The four numbers were drawn before: a rerun of the body replays the same ops.
            atomically { _ in
              draws.perform(
                lookup: { dictionary[$0] },
                upsert: { dictionary[$0, default: 0] += 1 },
                remove: { _ = dictionary.removeValue(forKey: $0) })
            }
          }
        } verify: {
          var contents: [Int: Int] = [:]
          var recount = 0
          for (key, value) in dictionary {
            contents[key] = value
            recount += 1
          }
          return logs.check(count: dictionary.count, recount: recount, contents: contents)
        }
      },
      Implementation(name: "Mutex<[Int: Int]>", kind: .baseline) { threads in
        let dictionary = LockedDictionary(DictMixed.initialContents())
        let logs = DictMixed.Logs(threads: threads, total: total)
        return Trial(ops: total) { thread in
          DictMixed.run(thread: thread, threads: threads, total: total, logs: logs) { draws in
            dictionary.value.withLock { contents in
              draws.perform(
                lookup: { contents[$0] },
                upsert: { contents[$0, default: 0] += 1 },
                remove: { _ = contents.removeValue(forKey: $0) })
            }
          }
        } verify: {
          dictionary.value.withLock { contents in
            logs.check(
              count: contents.count, recount: contents.reduce(0) { n, _ in n + 1 }, contents: contents)
          }
        }
      },
      // Each op locks its own key's stripe: the four ops of a transaction are atomic one by one,
      // not as a group, so this baseline does less than the others promise.
      Implementation(name: "striped-64 (not atomic as a group)", kind: .baseline) { threads in
        let dictionary = StripedDictionary<Int, Int>(minimumCapacity: DictMixed.keySpace)
        for key in 0..<DictMixed.initialKeyCount {
          dictionary.withLock(forKey: key) { $0[key] = key }
        }
        let logs = DictMixed.Logs(threads: threads, total: total)
        return Trial(ops: total) { thread in
          DictMixed.run(thread: thread, threads: threads, total: total, logs: logs) { draws in
            draws.perform(
              lookup: { key in dictionary.withLock(forKey: key) { $0[key] } },
              upsert: { key in dictionary.withLock(forKey: key) { $0[key, default: 0] += 1 } },
              remove: { key in dictionary.withLock(forKey: key) { _ = $0.removeValue(forKey: key) } })
          }
        } verify: {
          var contents: [Int: Int] = [:]
          var recount = 0
          dictionary.forEach { key, value in
            contents[key] = value
            recount += 1
          }
          return logs.check(count: dictionary.count, recount: recount, contents: contents)
        }
      },
      Implementation(name: "actor", kind: .baseline) { threads in
        let dictionary = DictionaryActor(DictMixed.initialContents())
        let logs = DictMixed.Logs(threads: threads, total: total)
        return Trial(ops: total) { thread in
          waitForTask {
            // Each transaction's four operations are one call, so atomic as a group.
            await DictMixed.run(thread: thread, threads: threads, total: total, logs: logs) { draws in
              await dictionary.perform(draws, caller: thread)
            }
          }
        } verify: {
          let contents = waitForTask { await dictionary.snapshot }
          return logs.check(
            count: contents.count, recount: contents.reduce(0) { n, _ in n + 1 }, contents: contents)
        } detail: {
          waitForTask { await dictionary.turns.description }
        }
      },
    ]
  }
}

/// The formulas of BENCHMARKS.md ("Exact formulas", dict-mixed), shared by every
/// implementation.
enum DictMixed {
  /// Ops draw keys from 0..<131072.
  static let keySpace = 131_072
  /// The map starts with keys 0..<65536, each with itself as value.
  static let initialKeyCount = 65_536

  /// Keys 0..<65536 with value = key, with room for every key an op can insert.
  static func initialContents() -> [Int: Int] {
    var contents = [Int: Int](minimumCapacity: keySpace)
    for key in 0..<initialKeyCount { contents[key] = key }
    return contents
  }

  /// One op, from one draw r: `key = r & 131071`, `op = (r >> 32) % 100`: below 80 a lookup,
  /// below 90 an upsert (value + 1, or 1 if absent), else a removal.
  struct Op {
    enum Kind {
      case lookup
      case upsert
      case remove
    }

    let key: Int
    let kind: Kind

    @inline(__always)
    init(_ r: UInt64) {
      key = Int(r & 131_071)
      switch (r >> 32) % 100 {
      case ..<80: kind = .lookup
      case ..<90: kind = .upsert
      default: kind = .remove
      }
    }
  }

  /// The four ops of one transaction, drawn before it runs, so that a rerun reuses them.
  struct Draws {
    let op0, op1, op2, op3: Op

    @inline(__always)
    init(_ random: inout Xorshift64Star) {
      op0 = Op(random.next())
      op1 = Op(random.next())
      op2 = Op(random.next())
      op3 = Op(random.next())
    }

    @inline(__always)
    func forEach(_ body: (Op) -> Void) {
      body(op0)
      body(op1)
      body(op2)
      body(op3)
    }

    /// Runs the four ops in order with the given primitives, and returns the checksum of the
    /// values looked up (an absent key adds 0).
    @inline(__always)
    func perform(
      lookup: (Int) -> Int?, upsert: (Int) -> Void, remove: (Int) -> Void
    ) -> Int {
      var checksum = 0
      forEach { op in
        switch op.kind {
        case .lookup: checksum &+= lookup(op.key) ?? 0
        case .upsert: upsert(op.key)
        case .remove: remove(op.key)
        }
      }
      return checksum
    }
  }

  /// The checksum of thread 0's lookups when it runs all `total` transactions alone, computed
  /// on a plain `Dictionary`: what one thread's lookups must add up to.
  static func serialChecksum(total: Int) -> Int {
    var contents = initialContents()
    var random = Xorshift64Star(thread: 0)
    var checksum = 0
    for _ in 0..<total {
      checksum &+= Draws(&random).perform(
        lookup: { contents[$0] },
        upsert: { contents[$0, default: 0] += 1 },
        remove: { _ = contents.removeValue(forKey: $0) })
    }
    return checksum
  }

  /// Runs thread `thread`'s share of the transactions: draws the four numbers of each, runs it
  /// with `transaction` (which returns once it has committed, with its checksum), and only then
  /// logs what it did.
  @inline(__always)
  static func run(
    thread: Int, threads: Int, total: Int, logs: Logs, transaction: (Draws) -> Int
  ) {
    var random = Xorshift64Star(thread: thread)
    let log = logs.log(of: thread)
    var checksum = 0
    for _ in share(of: total, thread: thread, threads: threads) {
      let draws = Draws(&random)
      checksum &+= transaction(draws)
      log.record(draws)
    }
    log.keep(checksum: checksum)
  }

  /// `run(thread:threads:total:logs:transaction:)` for transactions that are `await`ed calls:
  /// the same draws, logged the same way.
  static func run(
    thread: Int, threads: Int, total: Int, logs: Logs, transaction: (Draws) async -> Int
  ) async {
    var random = Xorshift64Star(thread: thread)
    let log = logs.log(of: thread)
    var checksum = 0
    for _ in share(of: total, thread: thread, threads: threads) {
      let draws = Draws(&random)
      checksum &+= await transaction(draws)
      log.record(draws)
    }
    log.keep(checksum: checksum)
  }

  /// Per thread, what its committed transactions did: how many upserts of each key, and which
  /// keys it removed (or tried to: removing an absent key does nothing).
  final class Logs: @unchecked Sendable {
    // @unchecked: thread t writes only its own log, before it is joined; the check reads them
    // after every thread is joined.
    private let threads: Int
    /// How many transactions the threads run in all.
    private let total: Int
    /// `upserts[t * keySpace + key]`: thread t's upserts of `key`.
    private let upserts: UnsafeMutableBufferPointer<UInt32>
    /// `removed[t * keySpace + key]`: whether thread t removed `key`.
    private let removed: UnsafeMutableBufferPointer<Bool>
    /// `checksums[t * 16]`: thread t's checksum of looked-up values, kept so that the lookups
    /// have an observable result (slots 128 bytes apart, written once each).
    private let checksums: UnsafeMutableBufferPointer<Int>

    init(threads: Int, total: Int) {
      self.threads = threads
      self.total = total
      upserts = .allocate(capacity: threads * keySpace)
      upserts.initialize(repeating: 0)
      removed = .allocate(capacity: threads * keySpace)
      removed.initialize(repeating: false)
      checksums = .allocate(capacity: threads * 16)
      checksums.initialize(repeating: 0)
    }

    deinit {
      upserts.deallocate()
      removed.deallocate()
      checksums.deallocate()
    }

    /// Thread `thread`'s own log.
    func log(of thread: Int) -> Log {
      Log(
        upserts: upserts.baseAddress! + thread * keySpace,
        removed: removed.baseAddress! + thread * keySpace,
        checksum: checksums.baseAddress! + thread * 16)
    }

    struct Log {
      let upserts: UnsafeMutablePointer<UInt32>
      let removed: UnsafeMutablePointer<Bool>
      let checksum: UnsafeMutablePointer<Int>

      /// Records the ops of a transaction that has committed.
      @inline(__always)
      func record(_ draws: Draws) {
        draws.forEach { op in
          switch op.kind {
          case .lookup: break
          case .upsert: upserts[op.key] &+= 1
          case .remove: removed[op.key] = true
          }
        }
      }

      func keep(checksum: Int) { self.checksum.pointee = checksum }
    }

    /// The check of BENCHMARKS.md: the count equals a recount by iteration (and iteration
    /// returned no key twice); no key outside 0..<131072; and per key, from the logs: a key no
    /// one removed is present exactly when it was initial or upserted, with value
    /// `initial + upserts` (`key + u`, or `u`); a removed key is either absent or present with
    /// 1 ≤ value ≤ its upserts.
    func check(count: Int, recount: Int, contents: [Int: Int]) -> String? {
      var problems: [String] = []
      if recount != count { problems.append("iteration found \(recount) keys, count says \(count)") }
      if contents.count != recount {
        problems.append("iteration returned \(recount) pairs but \(contents.count) distinct keys")
      }
      let outside = contents.keys.filter { !(0..<keySpace).contains($0) }
      if let first = outside.min() {
        problems.append("\(outside.count) phantom keys outside 0..<\(keySpace) (first: \(first))")
      }
      var lost = 0, phantom = 0, wrongValue = 0
      var firstProblem: String?
      for key in 0..<keySpace {
        var upsertCount = 0
        var wasRemoved = false
        for thread in 0..<threads {
          upsertCount += Int(upserts[thread * keySpace + key])
          wasRemoved = wasRemoved || removed[thread * keySpace + key]
        }
        let value = contents[key]
        let problem: String?
        if wasRemoved {
          if let value, value < 1 || value > upsertCount {
            if upsertCount == 0 { phantom += 1 } else { wrongValue += 1 }
            problem = "removed key \(key) holds \(value) after \(upsertCount) upserts"
          } else {
            problem = nil
          }
        } else {
          let initial: Int? = key < initialKeyCount ? key : nil
          let expected = initial.map { $0 + upsertCount } ?? (upsertCount > 0 ? upsertCount : nil)
          switch (value, expected) {
          case (nil, nil):
            problem = nil
          case let (nil, expected?):
            lost += 1
            problem = "key \(key) is absent, expected \(expected)"
          case let (value?, nil):
            phantom += 1
            problem = "key \(key) holds \(value), expected absent"
          case let (value?, expected?):
            if value == expected {
              problem = nil
            } else {
              wrongValue += 1
              problem = "key \(key) holds \(value), expected \(expected)"
            }
          }
        }
        if firstProblem == nil { firstProblem = problem }
      }
      if let firstProblem {
        problems.append(
          "\(lost) lost keys, \(phantom) phantom keys, \(wrongValue) wrong values (first: \(firstProblem))")
      }
      // The lookups (80% of the ops) change nothing the checks above see. With one thread the
      // order of the transactions is known, so their checksum is too: a replay on a plain
      // `Dictionary` gives it.
      if threads == 1 {
        let expected = DictMixed.serialChecksum(total: total)
        if checksums[0] != expected { problems.append("the lookups' checksum is \(checksums[0]), expected \(expected)") }
      }
      return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
  }
}
