@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// Random transactions over every collection — nested `atomically` blocks, `orElse` branches
  /// that retry or throw, transactions that throw at the end, and drop-in operations outside
  /// any transaction — must give the same results as the same plans run on plain Swift values
  /// (`Dictionary`, `Set`, `Array`, arrays for the queues, an `Int`), with a model of what a
  /// rollback undoes and which hooks run.
  ///
  /// Single-threaded, every result, the state after every plan and the hooks that ran are
  /// compared. Multi-threaded, the committed plans are replayed on the model in commit order
  /// (DESIGN.md: serializability), and every result must match.
  @Suite struct DifferentialModelTests {
    /// Two keys make every plan touch the same few entries; 300 exercise growth and removal.
    @Test(arguments: [2, 4, 16, 64, 300])
    func singleThreadedPlansMatchTheModel(keyCount: Int) {
      let seeds = TestScale.scaled(2), plansPerSeed = 300
      var failures = 0
      for seed in 1...seeds {
        if !runSingleThreaded(seed: seed, keyCount: keyCount, plans: plansPerSeed) { failures += 1 }
      }
      #expect(failures == 0, "\(failures) of \(seeds) seeds diverged from the model")
    }

    /// Six threads, more than the cores, so that transactions collide and rerun.
    @Test(arguments: [2, 5, 64, 300])
    func concurrentPlansReplaySeriallyInCommitOrder(keyCount: Int) {
      let threads = 6
      let perThread = TestScale.scaled(120)
      let library = Library()
      let logs = (0..<threads).map { _ in LockedBox<[CommittedPlan]>([]) }

      runThreads(threads) { thread in
        var generator = PlanGenerator(
          random: SeededRandom(thread: thread + keyCount), keyCount: keyCount,
          // Values are unique per thread, so that the replay can tell them apart.
          firstValue: (thread + 1) * 10_000_000,
          // Closing a queue from one thread would make most of the others' plans trivial.
          mayClose: false)
        var log: [CommittedPlan] = []
        for _ in 0..<perThread {
          let plan = generator.plan(concurrent: true)
          let previous = _ThreadContext.current.lastCommit
          guard let results = library.run(plan) else { continue }
          let position = _ThreadContext.current.lastCommit
          // A drop-in operation that changed nothing (a removal of an absent key) takes no
          // serial position of its own, so it has no place in the replay. An update without
          // a number may share the previous position, yet is a commit of its own.
          if case .dropIn = plan, position == previous, position.overwrite == 0 { continue }
          log.append(CommittedPlan(position: position, thread: thread, index: log.count,
                                   plan: plan, results: results))
        }
        logs[thread].value = log
      }

      let history = logs.flatMap(\.value).sorted { $0.replaysBefore($1) }
      // Most plans commit; a history missing most of them would check little.
      #expect(history.count > threads * perThread / 2)
      var model = Model()
      var mismatches = 0
      for (index, committed) in history.enumerated() {
        let expected = model.run(committed.plan)
        if expected != committed.results {
          mismatches += 1
          if mismatches <= 5 {
            Issue.record("""
              Replay differs at #\(index) \(committed.position): \(committed.plan)
                library gave \(committed.results), serially \(Self.describe(expected))
              """)
          }
        }
      }
      #expect(mismatches == 0)
      #expect(library.snapshot == model.snapshot)
      // Every committed plan's afterCommit hooks ran once, and no others. (Abort hooks run
      // also when a conflict reruns an attempt, which the replay cannot know.)
      let hooksRan = library.committedHooksRan.withLock { $0 }.sorted()
      let hooksCommitted = model.committedHooks.sorted()
      #expect(hooksRan == hooksCommitted, """
        afterCommit hooks that ran without a commit: \
        \(hooksRan.filter { !hooksCommitted.contains($0) }); \
        that did not run: \(hooksCommitted.filter { !hooksRan.contains($0) })
        """)
      let (queue, boundedQueue) = library.drainQueues()
      #expect(queue == model.queue)
      #expect(boundedQueue == model.boundedQueue)
    }

    /// Runs `plans` random plans of one seed on a fresh library and model; stops at the first
    /// divergence (every later result would differ too) and records it. Returns whether the
    /// run matched throughout.
    private func runSingleThreaded(seed: Int, keyCount: Int, plans: Int) -> Bool {
      let library = Library()
      var model = Model()
      var generator = PlanGenerator(
        random: SeededRandom(seed: UInt64(seed * 7919 + keyCount)), keyCount: keyCount,
        firstValue: 1000, mayClose: true)
      var recent: [Plan] = []
      for index in 0..<plans {
        let plan = generator.plan(concurrent: false)
        recent = recent.suffix(3) + [plan]
        library.committedHooksRan.withLock { $0 = [] }
        library.abortHooksRan.withLock { $0 = [] }
        model.startPlan()
        let got = library.run(plan)
        let expected = model.run(plan)
        model.endPlan(committed: expected != nil)

        var differences: [String] = []
        if got != expected {
          differences.append(
            "results: library \(Self.describe(got)), model \(Self.describe(expected))")
        }
        if library.snapshot != model.snapshot {
          differences.append("state: library \(library.snapshot)\n    model   \(model.snapshot)")
        }
        let committedHooksRan = library.committedHooksRan.withLock { $0 }
        if committedHooksRan != model.committedHooks {
          differences.append(
            "afterCommit hooks: library ran \(committedHooksRan), model \(model.committedHooks)")
        }
        // Which abort hooks ran, not in what order: those of a rolled-back branch or nested
        // block wait for the whole transaction to end, then run beside the others.
        let abortHooksRan = library.abortHooksRan.withLock { $0 }
        if abortHooksRan.sorted() != model.abortHooksRun.sorted() {
          differences.append(
            "afterAbort hooks: library ran \(abortHooksRan), model \(model.abortHooksRun)")
        }
        if !differences.isEmpty {
          Issue.record("""
            Seed \(seed), \(keyCount) keys, plan #\(index) differs from the model:
              \(differences.joined(separator: "\n  "))
            Last plans, this one last:
              \(recent.map(String.init(describing:)).joined(separator: "\n  "))
            """)
          return false
        }
      }
      let (queue, boundedQueue) = library.drainQueues()
      #expect(queue == model.queue, "seed \(seed): the queue's items")
      #expect(boundedQueue == model.boundedQueue, "seed \(seed): the bounded queue's items")
      return queue == model.queue && boundedQueue == model.boundedQueue
    }
  }
}

// MARK: - Plans

extension LibraryTests.DifferentialModelTests {
  /// The bounded queue's capacity: small, so that plans fill it.
  fileprivate static let boundedCapacity = 3

  /// One operation on one collection (or a hook). Each appends what it returns to the plan's
  /// results; `Outcome` names the values that stand for something other than a stored value.
  fileprivate enum Operation: Sendable {
    case dictionaryGet(key: Int)
    case dictionarySet(key: Int, value: Int)
    case dictionaryRemoveBySettingNil(key: Int)
    case dictionaryAddWithDefault(key: Int, amount: Int)
    case dictionaryUpdateValue(key: Int, value: Int)
    case dictionaryRemoveValue(key: Int)
    case dictionaryInsertIfAbsent(key: Int, value: Int)
    case dictionaryCount
    case dictionaryIsEmpty
    case dictionaryKeys
    case dictionaryValues
    case dictionaryIterate
    case dictionarySnapshot
    /// Merges `keys[i]: firstValue + i`, combining a duplicate as `old * 3 + new`.
    case dictionaryMerge(keys: [Int], firstValue: Int)
    case dictionaryRemoveAll
    /// Removes the keys whose values leave `remainder` when divided by 3.
    case dictionaryRemoveAllWhere(remainder: Int)
    case dictionaryUpdateWithDefault(key: Int, amount: Int)
    /// `dictionary[key]? += amount`: changes only a present key.
    case dictionaryAddIfPresent(key: Int, amount: Int)
    /// Adds through `subscript(_:default:)`'s modify accessor, then throws.
    case dictionaryAddWithDefaultThenThrow(key: Int, amount: Int)
    /// Adds through the optional subscript's modify accessor, then throws.
    case dictionaryAddOptionalThenThrow(key: Int, amount: Int)
    /// `update(forKey:default:)` whose closure adds, then throws.
    case dictionaryUpdateThenThrow(key: Int, amount: Int)
    /// A merge whose combining closure throws (on a duplicate or a present key).
    case dictionaryMergeThrowingOnDuplicate(keys: [Int], firstValue: Int)

    case setInsert(Int)
    case setRemove(Int)
    case setContains(Int)
    case setCount
    case setIsEmpty
    case setElements
    case setFormUnion([Int])
    case setSubtract([Int])
    case setFormIntersection([Int])
    case setFormSymmetricDifference([Int])
    case setRemoveAll
    /// Removes the elements that leave `remainder` when divided by 3.
    case setRemoveAllWhere(remainder: Int)
    case setUpdateWith(Int)
    case setIsSubset(of: [Int])
    case setIterate

    case arrayAppend(Int)
    case arrayAppendContents([Int])
    case arrayCount
    /// Reads `index` if it is in bounds.
    case arrayRead(index: Int)
    case arrayWrite(index: Int, value: Int)
    case arrayAdd(index: Int, amount: Int)
    /// Adds through the subscript's modify accessor, then throws.
    case arrayAddThenThrow(index: Int, amount: Int)
    case arrayPopLast
    /// Inserts at `index` if it is at most the count.
    case arrayInsert(index: Int, value: Int)
    /// Removes at `index` if it is in bounds.
    case arrayRemoveAt(index: Int)
    /// Swaps if both indices are in bounds.
    case arraySwap(Int, Int)
    /// Removes the elements that leave `remainder` when divided by 3.
    case arrayRemoveAllWhere(remainder: Int)
    /// `sort()`, or `sort(by: >)` if `descending`.
    case arraySort(descending: Bool)
    case arrayReverse
    case arrayRemoveLast
    case arrayElements
    case arrayIsEmpty
    case arrayIterate

    case queueEnqueue(Int)
    case queueTryDequeue
    case queueIsEmpty
    case queueClose
    case queueIsClosed
    /// `dequeue()`, or `Outcome.wouldWait` from an `orElse` when it would wait.
    case queueDequeueOrElse

    /// `enqueue(_:)`, or `Outcome.full` from an `orElse` when the queue is full.
    case boundedEnqueueOrElse(Int)
    case boundedTryDequeue
    case boundedIsEmpty
    case boundedClose

    case counterAdd(Int)
    case counterValue

    case afterCommitHook(Int)
    case afterAbortHook(Int)

    /// Operations that need a transaction: an `orElse`, a hook, or a throwing modify of an
    /// array element, which a drop-in runs as a transaction of its own that the throw rolls back.
    var needsTransaction: Bool {
      switch self {
      case .queueDequeueOrElse, .boundedEnqueueOrElse, .afterCommitHook, .afterAbortHook,
        .arrayAddThenThrow:
        return true
      default: return false
      }
    }

    /// Drop-in operations whose result depends on more than one atomic step: an index is
    /// checked against the count, then used. Another thread may pop in between.
    var checksThenActs: Bool {
      switch self {
      case .arrayRead, .arrayWrite, .arrayAdd, .arrayRemoveLast, .arrayInsert, .arrayRemoveAt, .arraySwap: return true
      default: return false
      }
    }
  }

  /// A transaction's body is a list of steps.
  fileprivate indirect enum Step: Sendable, CustomStringConvertible {
    case operation(Operation)
    /// A nested `atomically` block; it throws at its end (rolling back) if `throwsAtEnd`, and
    /// the enclosing body catches that.
    case nested([Step], throwsAtEnd: Bool)
    /// `orElse`: the first branch runs its steps, then retries, so that the second one runs;
    /// or, if `firstThrows`, throws an error instead, which ends the whole `orElse`. The
    /// second throws at its end if `secondThrows`.
    case orElse(first: [Step], second: [Step], firstThrows: Bool, secondThrows: Bool)

    static func describe(_ steps: [Step]) -> String {
      steps.map(\.description).joined(separator: ", ")
    }

    var description: String {
      switch self {
      case .operation(let operation): return "\(operation)"
      case .nested(let steps, let throwsAtEnd):
        return "nested\(throwsAtEnd ? " throwing" : "") [\(Step.describe(steps))]"
      case .orElse(let first, let second, let firstThrows, let secondThrows):
        return "orElse [\(Step.describe(first))\(firstThrows ? " throw" : " retry")]"
          + " else [\(Step.describe(second))\(secondThrows ? " throw" : "")]"
      }
    }
  }

  fileprivate enum Plan: Sendable, CustomStringConvertible {
    /// A top-level `atomically` block, which throws at its end (rolling back) if `throwsAtEnd`.
    case transaction([Step], throwsAtEnd: Bool)
    /// One operation outside any transaction.
    case dropIn(Operation)

    var description: String {
      switch self {
      case .transaction(let steps, let throwsAtEnd):
        return "atomically\(throwsAtEnd ? " throwing" : "") [\(Step.describe(steps))]"
      case .dropIn(let operation): return "drop-in \(operation)"
      }
    }
  }

  /// Results that are not stored values. Stored values are above 1000 or small sums of
  /// amounts; a collision could only hide a difference, never report a false one.
  fileprivate enum Outcome {
    static let absent = -1
    static let queueClosed = -2
    static let full = -3
    static let wouldWait = -4
    static let arrayWasEmpty = -5
    static let updateThrew = -6
    static let mergeThrew = -7
    static let nestedCommitted = 7
    static let nestedThrew = 8
    static let orElseCompleted = 9
    static let orElseThrew = 10
    static let succeeded = 0
    static let outOfBounds = 0
    static let inBounds = 1
  }

  /// The error that plans throw on purpose.
  fileprivate struct PlannedError: Error {}

  fileprivate struct CommittedPlan: Sendable {
    let position: _SerialPosition
    let thread: Int
    /// The plan's place among its thread's committed plans.
    let index: Int
    let plan: Plan
    let results: [Int]

    /// Commit order; plans that share a position (reads at one snapshot, updates without a
    /// number of different cells) do not depend on each other, except within one thread.
    func replaysBefore(_ other: CommittedPlan) -> Bool {
      (position, thread, index) < (other.position, other.thread, other.index)
    }
  }

  /// What the library and the model can both show without changing anything.
  fileprivate struct Snapshot: Equatable {
    var dictionary: [Int: Int]
    var set: Set<Int>
    var array: [Int]
    var counter: Int
    var queueIsClosed: Bool
    var boundedQueueIsClosed: Bool
  }
}

extension LibraryTests.DifferentialModelTests {
  /// An order-sensitive checksum, so that one result stands for a whole collection.
  fileprivate static func checksum(_ values: [Int]) -> Int {
    values.reduce(17) { $0 &* 1_000_003 &+ $1 }
  }

  /// A checksum of key-value pairs, independent of their order.
  fileprivate static func checksum(pairs: [(Int, Int)]) -> Int {
    checksum(pairs.sorted { $0.0 < $1.0 }.flatMap { [$0.0, $0.1] })
  }

  /// A plan's results, or what nil stands for.
  fileprivate static func describe(_ results: [Int]?) -> String {
    results.map { "\($0)" } ?? "none (rolled back)"
  }

  /// Changes `value` through the caller's modify accessor, then throws.
  fileprivate static func addThenThrow(_ value: inout Int, _ amount: Int) throws(PlannedError) {
    value += amount
    throw PlannedError()
  }

  /// Changes `value` through the caller's modify accessor, then throws.
  fileprivate static func addThenThrow(_ value: inout Int?, _ amount: Int) throws(PlannedError) {
    value = (value ?? 0) + amount
    throw PlannedError()
  }
}

// MARK: - Generator

extension LibraryTests.DifferentialModelTests {
  fileprivate struct PlanGenerator {
    var random: SeededRandom
    let keyCount: Int
    /// The last value handed out; every value is fresh, so that results tell writes apart.
    var lastValue: Int
    /// Whether plans may close the queues (a closed queue stays closed for the rest of the run).
    let mayClose: Bool
    /// Bounded enqueues left in this plan: at most the capacity, so that the queue is full
    /// now and then, not always.
    var boundedEnqueuesLeft = 0

    init(random: SeededRandom, keyCount: Int, firstValue: Int, mayClose: Bool) {
      self.random = random
      self.keyCount = keyCount
      self.lastValue = firstValue
      self.mayClose = mayClose
    }

    /// A plan: one in five is a drop-in operation, one in ten transactions throws at its end.
    /// A `concurrent` plan's drop-in is one atomic step, so that it has a place in the replay.
    mutating func plan(concurrent: Bool) -> Plan {
      boundedEnqueuesLeft = boundedCapacity
      if random.chance(20) {
        var candidate = operation()
        while candidate.needsTransaction || (concurrent && candidate.checksThenActs) {
          candidate = operation()
        }
        return .dropIn(candidate)
      }
      return .transaction(steps(depth: 0), throwsAtEnd: random.chance(10))
    }

    private mutating func steps(depth: Int) -> [Step] {
      (0..<(1 + random.below(5))).map { _ in
        if depth < 3 && random.chance(12) {
          return .nested(steps(depth: depth + 1), throwsAtEnd: random.chance(50))
        }
        if depth < 3 && random.chance(10) {
          return .orElse(
            first: steps(depth: depth + 1), second: steps(depth: depth + 1),
            firstThrows: random.chance(20), secondThrows: random.chance(40))
        }
        return .operation(operation())
      }
    }

    private mutating func key() -> Int { random.below(keyCount) }
    private mutating func value() -> Int {
      lastValue += 1
      return lastValue
    }
    private mutating func amount() -> Int { random.below(21) - 10 }
    private mutating func index() -> Int { random.below(12) }
    private mutating func fewKeys() -> [Int] { (0..<random.below(4)).map { _ in key() } }
    /// Up to `keyCount` keys, so that a subset test or an intersection keeps some elements.
    private mutating func manyKeys() -> [Int] { (0..<random.below(keyCount)).map { _ in key() } }
    private mutating func close(_ close: Operation, else fallback: Operation) -> Operation {
      mayClose && random.chance(2) ? close : fallback
    }

    /// A random operation; the common ones (gets, sets, inserts, appends) come twice as often.
    mutating func operation() -> Operation {
      switch random.below(76) {
      case 0, 1: return .dictionaryGet(key: key())
      case 2, 3: return .dictionarySet(key: key(), value: value())
      case 4: return .dictionaryRemoveBySettingNil(key: key())
      case 5, 6: return .dictionaryAddWithDefault(key: key(), amount: amount())
      case 7: return .dictionaryUpdateValue(key: key(), value: value())
      case 8, 9: return .dictionaryRemoveValue(key: key())
      case 10: return .dictionaryInsertIfAbsent(key: key(), value: value())
      case 11: return .dictionaryCount
      case 12: return .dictionaryIsEmpty
      case 13: return .dictionaryKeys
      case 14: return .dictionaryValues
      case 15: return .dictionaryIterate
      case 16: return .dictionarySnapshot
      case 17: return .dictionaryMerge(keys: fewKeys(), firstValue: value())
      case 18: return random.chance(30) ? .dictionaryRemoveAll : .dictionaryCount
      case 19: return .dictionaryUpdateWithDefault(key: key(), amount: amount())
      case 20: return .dictionaryAddIfPresent(key: key(), amount: amount())
      case 21, 22: return .setInsert(key())
      case 23: return .setRemove(key())
      case 24: return .setContains(key())
      case 25: return .setCount
      case 26: return .setIsEmpty
      case 27: return .setElements
      case 28: return .setFormUnion(fewKeys())
      case 29: return .setSubtract(fewKeys())
      case 30: return .setFormIntersection(manyKeys())
      case 31: return .setFormSymmetricDifference(fewKeys())
      case 32: return random.chance(30) ? .setRemoveAll : .setCount
      case 33: return .setUpdateWith(key())
      case 34: return .setIsSubset(of: manyKeys())
      case 35: return .setIterate
      case 36, 37: return .arrayAppend(value())
      case 38: return .arrayAppendContents((0..<random.below(4)).map { _ in value() })
      case 39: return .arrayCount
      case 40: return .arrayRead(index: index())
      case 41: return .arrayWrite(index: index(), value: value())
      case 42: return .arrayAdd(index: index(), amount: amount())
      case 43: return .arrayPopLast
      case 44: return .arrayRemoveLast
      case 45: return .arrayElements
      case 46: return .arrayIsEmpty
      case 47: return .arrayIterate
      case 48, 49: return .queueEnqueue(value())
      case 50: return .queueTryDequeue
      case 51: return .queueIsEmpty
      case 52: return close(.queueClose, else: .queueIsClosed)
      case 53: return .queueDequeueOrElse
      case 54:
        guard boundedEnqueuesLeft > 0 else { return .boundedIsEmpty }
        boundedEnqueuesLeft -= 1
        return .boundedEnqueueOrElse(value())
      case 55: return .boundedTryDequeue
      case 56: return .boundedIsEmpty
      case 57, 58: return .counterAdd(amount())
      case 59: return .counterValue
      case 60: return .dictionaryAddWithDefaultThenThrow(key: key(), amount: amount())
      case 61: return .dictionaryAddOptionalThenThrow(key: key(), amount: amount())
      case 62: return .dictionaryUpdateThenThrow(key: key(), amount: amount())
      case 63: return .dictionaryMergeThrowingOnDuplicate(keys: fewKeys(), firstValue: value())
      case 64: return .arrayAddThenThrow(index: index(), amount: amount())
      case 65: return .afterCommitHook(value())
      case 66: return .afterAbortHook(value())
      case 67: return .arrayInsert(index: index(), value: value())
      case 68: return .arrayRemoveAt(index: index())
      case 69: return .arraySwap(index(), index())
      case 70: return .dictionaryRemoveAllWhere(remainder: random.below(3))
      case 71: return .setRemoveAllWhere(remainder: random.below(3))
      case 72: return .arrayRemoveAllWhere(remainder: random.below(3))
      case 73: return .arraySort(descending: random.chance(50))
      case 74: return .arrayReverse
      default: return close(.boundedClose, else: .boundedIsEmpty)
      }
    }
  }
}

// MARK: - The library

extension LibraryTests.DifferentialModelTests {
  fileprivate final class Library: Sendable {
    let dictionary = TDictionary<Int, Int>()
    let set = TSet<Int>()
    let array = TArray<Int>()
    let queue = TQueue<Int>()
    let boundedQueue = TQueue<Int>(capacity: boundedCapacity)
    let counter = TCounter()
    /// What the hooks ran; a lock around the whole append, as hooks of several threads run at
    /// once.
    // `_Lock`, not `Mutex`: hooks run on several threads, and Thread Sanitizer cannot see the
    // ordering that `Mutex` gives on Linux (see `_Lock`), so it reported their appends as races.
    let committedHooksRan = _Lock<[Int]>([])
    let abortHooksRan = _Lock<[Int]>([])

    /// Runs `plan`; its results, or nil if it threw at its end and rolled back.
    func run(_ plan: Plan) -> [Int]? {
      switch plan {
      case .dropIn(let operation):
        var results: [Int] = []
        run(operation, in: nil, &results)
        return results
      case .transaction(let steps, let throwsAtEnd):
        do {
          return try atomically { transaction in
            // Fresh for every attempt: a conflict reruns the body.
            var results: [Int] = []
            try run(steps, in: transaction, &results)
            if throwsAtEnd { throw PlannedError() }
            return results
          }
        } catch {
          precondition(error is PlannedError, "unexpected error \(error)")
          return nil
        }
      }
    }

    private func run(_ steps: [Step], in transaction: Transaction, _ results: inout [Int]) throws {
      for step in steps {
        switch step {
        case .operation(let operation): run(operation, in: transaction, &results)
        case .nested(let inner, let throwsAtEnd):
          do {
            try atomically { nested in
              try run(inner, in: nested, &results)
              if throwsAtEnd { throw PlannedError() }
            }
            results.append(Outcome.nestedCommitted)
          } catch is PlannedError { results.append(Outcome.nestedThrew) }
        case .orElse(let first, let second, let firstThrows, let secondThrows):
          do {
            try transaction.orElse(
              { branch in
                try run(first, in: branch, &results)
                if firstThrows { throw PlannedError() }
                try branch.retry()
              },
              { branch in
                try run(second, in: branch, &results)
                if secondThrows { throw PlannedError() }
              })
            results.append(Outcome.orElseCompleted)
          } catch is PlannedError { results.append(Outcome.orElseThrew) }
        }
      }
    }

    /// Runs one operation, inside `transaction`, or as a drop-in when it is nil; mirrors
    /// `Model.run(_:inTransaction:_:)` case by case.
    private func run(_ operation: Operation, in transaction: Transaction?, _ results: inout [Int]) {
      func flag(_ value: Bool) { results.append(value ? 1 : 0) }
      switch operation {
      case .dictionaryGet(let key): results.append(dictionary[key] ?? Outcome.absent)
      case .dictionarySet(let key, let value): dictionary[key] = value
      case .dictionaryRemoveBySettingNil(let key): dictionary[key] = nil
      case .dictionaryAddWithDefault(let key, let amount): dictionary[key, default: 0] += amount
      case .dictionaryUpdateValue(let key, let value):
        results.append(dictionary.updateValue(value, forKey: key) ?? Outcome.absent)
      case .dictionaryRemoveValue(let key):
        results.append(dictionary.removeValue(forKey: key) ?? Outcome.absent)
      case .dictionaryInsertIfAbsent(let key, let value):
        let (inserted, stored) = dictionary.insertIfAbsent(value, forKey: key)
        flag(inserted)
        results.append(stored)
      case .dictionaryCount: results.append(dictionary.count)
      case .dictionaryIsEmpty: flag(dictionary.isEmpty)
      case .dictionaryKeys: results.append(checksum(dictionary.keys.sorted()))
      case .dictionaryValues: results.append(checksum(dictionary.values.sorted()))
      case .dictionaryIterate:
        var pairs: [(Int, Int)] = []
        for (key, value) in dictionary { pairs.append((key, value)) }
        results.append(pairs.count)
        results.append(checksum(pairs: pairs))
        // Inside a transaction, the iteration and the count read one snapshot.
        if transaction != nil { results.append(dictionary.count) }
      case .dictionarySnapshot:
        results.append(checksum(pairs: dictionary.dictionary.map { ($0.key, $0.value) }))
      case .dictionaryMerge(let keys, let firstValue):
        dictionary.merge(
          keys.enumerated().map { ($0.element, firstValue + $0.offset) },
          uniquingKeysWith: { $0 &* 3 &+ $1 })
      case .dictionaryRemoveAll: dictionary.removeAll()
      case .dictionaryRemoveAllWhere(let remainder): dictionary.removeAll { $0.value % 3 == remainder }
      case .dictionaryUpdateWithDefault(let key, let amount):
        results.append(dictionary.update(forKey: key, default: 100) { value in
          value += amount
          return value
        })
      case .dictionaryAddIfPresent(let key, let amount): dictionary[key]? += amount
      case .dictionaryAddWithDefaultThenThrow(let key, let amount):
        try? addThenThrow(&dictionary[key, default: 0], amount)
      case .dictionaryAddOptionalThenThrow(let key, let amount):
        try? addThenThrow(&dictionary[key], amount)
      case .dictionaryUpdateThenThrow(let key, let amount):
        do {
          try dictionary.update(forKey: key, default: 100) { (value: inout Int) throws(PlannedError) in
            value += amount
            throw PlannedError()
          }
          results.append(Outcome.succeeded)
        } catch { results.append(Outcome.updateThrew) }
      case .dictionaryMergeThrowingOnDuplicate(let keys, let firstValue):
        do {
          try dictionary.merge(
            keys.enumerated().map { ($0.element, firstValue + $0.offset) },
            uniquingKeysWith: { (_, _) throws(PlannedError) -> Int in throw PlannedError() })
          results.append(Outcome.succeeded)
        } catch { results.append(Outcome.mergeThrew) }

      case .setInsert(let element): flag(set.insert(element).inserted)
      case .setRemove(let element): results.append(set.remove(element) ?? Outcome.absent)
      case .setContains(let element): flag(set.contains(element))
      case .setCount: results.append(set.count)
      case .setIsEmpty: flag(set.isEmpty)
      case .setElements: results.append(checksum(set.elements.sorted()))
      case .setFormUnion(let elements): set.formUnion(elements)
      case .setSubtract(let elements): set.subtract(elements)
      case .setFormIntersection(let elements): set.formIntersection(elements)
      case .setFormSymmetricDifference(let elements): set.formSymmetricDifference(elements)
      case .setRemoveAll: set.removeAll()
      case .setRemoveAllWhere(let remainder): set.removeAll { $0 % 3 == remainder }
      case .setUpdateWith(let element): results.append(set.update(with: element) ?? Outcome.absent)
      case .setIsSubset(let elements): flag(set.isSubset(of: elements))
      case .setIterate:
        var elements: [Int] = []
        for element in set { elements.append(element) }
        results.append(checksum(elements.sorted()))

      case .arrayAppend(let element): array.append(element)
      case .arrayAppendContents(let elements): array.append(contentsOf: elements)
      case .arrayCount: results.append(array.count)
      case .arrayRead(let index): results.append(index < array.count ? array[index] : Outcome.absent)
      case .arrayWrite(let index, let value):
        if index < array.count {
          array[index] = value
          results.append(Outcome.inBounds)
        } else {
          results.append(Outcome.outOfBounds)
        }
      case .arrayAdd(let index, let amount):
        if index < array.count {
          array[index] += amount
          results.append(Outcome.inBounds)
        } else {
          results.append(Outcome.outOfBounds)
        }
      case .arrayAddThenThrow(let index, let amount):
        if index < array.count {
          try? addThenThrow(&array[index], amount)
          results.append(Outcome.inBounds)
        } else {
          results.append(Outcome.outOfBounds)
        }
      case .arrayPopLast: results.append(array.popLast() ?? Outcome.absent)
      case .arrayInsert(let index, let value):
        if index <= array.count {
          array.insert(value, at: index)
          results.append(Outcome.inBounds)
        } else {
          results.append(Outcome.outOfBounds)
        }
      case .arrayRemoveAt(let index): results.append(index < array.count ? array.remove(at: index) : Outcome.absent)
      case .arrayRemoveAllWhere(let remainder): array.removeAll { $0 % 3 == remainder }
      case .arraySort(let descending): descending ? array.sort(by: >) : array.sort()
      case .arrayReverse: array.reverse()
      case .arraySwap(let i, let j):
        if i < array.count && j < array.count {
          array.swapAt(i, j)
          results.append(Outcome.inBounds)
        } else {
          results.append(Outcome.outOfBounds)
        }
      case .arrayRemoveLast:
        results.append(array.count > 0 ? array.removeLast() : Outcome.arrayWasEmpty)
      case .arrayElements: results.append(checksum(array.elements))
      case .arrayIsEmpty: flag(array.isEmpty)
      case .arrayIterate:
        var elements: [Int] = []
        for element in array { elements.append(element) }
        results.append(checksum(elements))

      case .queueEnqueue(let item):
        do {
          try queue.enqueue(item)
          results.append(Outcome.succeeded)
        } catch is TQueueClosedError {
          results.append(Outcome.queueClosed)
        } catch {
          preconditionFailure("unexpected error \(error)")
        }
      case .queueTryDequeue: results.append(queue.tryDequeue() ?? Outcome.absent)
      case .queueIsEmpty: flag(queue.isEmpty)
      case .queueClose: queue.close()
      case .queueIsClosed: flag(queue.isClosed)
      case .queueDequeueOrElse:
        let queue = queue
        results.append(try! transaction!.orElse(
          { _ in try queue.dequeue() ?? Outcome.absent }, { _ in Outcome.wouldWait }))

      case .boundedEnqueueOrElse(let item):
        let queue = boundedQueue
        results.append(try! transaction!.orElse(
          { _ in
            // Only the closed queue's error: a full queue's retry must reach the `orElse`.
            do { try queue.enqueue(item) } catch is TQueueClosedError { return Outcome.queueClosed }
            return Outcome.succeeded
          },
          { _ in Outcome.full }))
      case .boundedTryDequeue: results.append(boundedQueue.tryDequeue() ?? Outcome.absent)
      case .boundedIsEmpty: flag(boundedQueue.isEmpty)
      case .boundedClose: boundedQueue.close()

      case .counterAdd(let amount): counter.add(amount)
      case .counterValue: results.append(counter.value)

      case .afterCommitHook(let value):
        transaction!.afterCommit { self.committedHooksRan.withLock { $0.append(value) } }
      case .afterAbortHook(let value):
        transaction!.afterAbort { self.abortHooksRan.withLock { $0.append(value) } }
      }
    }

    var snapshot: Snapshot {
      Snapshot(
        dictionary: dictionary.dictionary, set: set.elements, array: array.elements,
        counter: counter.value, queueIsClosed: queue.isClosed,
        boundedQueueIsClosed: boundedQueue.isClosed)
    }

    /// Empties both queues (observing their items without a transaction would take them).
    func drainQueues() -> (queue: [Int], boundedQueue: [Int]) {
      var items: [Int] = [], boundedItems: [Int] = []
      while let item = queue.tryDequeue() { items.append(item) }
      while let item = boundedQueue.tryDequeue() { boundedItems.append(item) }
      return (items, boundedItems)
    }
  }
}

// MARK: - The model

extension LibraryTests.DifferentialModelTests {
  /// The same collections as plain Swift values, and what a rollback does to them and to hooks.
  fileprivate struct Model {
    var dictionary: [Int: Int] = [:]
    var set: Set<Int> = []
    var array: [Int] = []
    var queue: [Int] = []
    var queueIsClosed = false
    var boundedQueue: [Int] = []
    var boundedQueueIsClosed = false
    var counter = 0
    /// `afterCommit` hooks that no rollback has discarded, in order.
    var committedHooks: [Int] = []
    /// `afterAbort` hooks registered on the current plan's live path: they run only if the
    /// whole plan rolls back.
    var pendingAbortHooks: [Int] = []
    /// `afterAbort` hooks that a rollback (of a branch, a nested block or the plan) has made run.
    var abortHooksRun: [Int] = []

    var snapshot: Snapshot {
      Snapshot(
        dictionary: dictionary, set: set, array: array, counter: counter,
        queueIsClosed: queueIsClosed, boundedQueueIsClosed: boundedQueueIsClosed)
    }

    /// Forgets the hooks of the previous plan (the single-threaded test checks each plan's).
    mutating func startPlan() {
      committedHooks = []
      pendingAbortHooks = []
      abortHooksRun = []
    }

    /// A committed plan's `afterAbort` hooks never run.
    mutating func endPlan(committed: Bool) {
      if committed { pendingAbortHooks = [] }
    }

    /// Undoes everything since `saved`, except that the abort hooks registered since run.
    private mutating func rollBack(to saved: Model) {
      let run = abortHooksRun + pendingAbortHooks[saved.pendingAbortHooks.count...]
      self = saved
      abortHooksRun = run
    }

    /// Runs `plan`; its results, or nil if it threw at its end and rolled back.
    mutating func run(_ plan: Plan) -> [Int]? {
      var results: [Int] = []
      switch plan {
      case .dropIn(let operation):
        run(operation, inTransaction: false, &results)
        return results
      case .transaction(let steps, let throwsAtEnd):
        let saved = self
        run(steps, &results)
        if throwsAtEnd {
          rollBack(to: saved)
          return nil
        }
        return results
      }
    }

    private mutating func run(_ steps: [Step], _ results: inout [Int]) {
      for step in steps {
        switch step {
        case .operation(let operation): run(operation, inTransaction: true, &results)
        case .nested(let inner, let throwsAtEnd):
          let saved = self
          run(inner, &results)
          if throwsAtEnd { rollBack(to: saved) }
          results.append(throwsAtEnd ? Outcome.nestedThrew : Outcome.nestedCommitted)
        case .orElse(let first, let second, let firstThrows, let secondThrows):
          let saved = self
          run(first, &results)
          // Either way the first branch rolls back: by its retry, or by its throw.
          rollBack(to: saved)
          if firstThrows {
            results.append(Outcome.orElseThrew)
            continue
          }
          run(second, &results)
          if secondThrows { rollBack(to: saved) }
          results.append(secondThrows ? Outcome.orElseThrew : Outcome.orElseCompleted)
        }
      }
    }

    /// Runs one operation on the plain values; mirrors `Library.run(_:in:_:)` case by case.
    private mutating func run(_ operation: Operation, inTransaction: Bool, _ results: inout [Int]) {
      func flag(_ value: Bool) { results.append(value ? 1 : 0) }
      switch operation {
      case .dictionaryGet(let key): results.append(dictionary[key] ?? Outcome.absent)
      case .dictionarySet(let key, let value): dictionary[key] = value
      case .dictionaryRemoveBySettingNil(let key): dictionary[key] = nil
      case .dictionaryAddWithDefault(let key, let amount),
        .dictionaryAddWithDefaultThenThrow(let key, let amount):
        // Swift writes a modify accessor's value back even when its caller throws.
        dictionary[key, default: 0] += amount
      case .dictionaryUpdateValue(let key, let value):
        results.append(dictionary.updateValue(value, forKey: key) ?? Outcome.absent)
      case .dictionaryRemoveValue(let key):
        results.append(dictionary.removeValue(forKey: key) ?? Outcome.absent)
      case .dictionaryInsertIfAbsent(let key, let value):
        if let existing = dictionary[key] {
          flag(false)
          results.append(existing)
        } else {
          dictionary[key] = value
          flag(true)
          results.append(value)
        }
      case .dictionaryCount: results.append(dictionary.count)
      case .dictionaryIsEmpty: flag(dictionary.isEmpty)
      case .dictionaryKeys: results.append(checksum(dictionary.keys.sorted()))
      case .dictionaryValues: results.append(checksum(dictionary.values.sorted()))
      case .dictionaryIterate:
        results.append(dictionary.count)
        results.append(checksum(pairs: dictionary.map { ($0.key, $0.value) }))
        if inTransaction { results.append(dictionary.count) }
      case .dictionarySnapshot: results.append(checksum(pairs: dictionary.map { ($0.key, $0.value) }))
      case .dictionaryMerge(let keys, let firstValue):
        dictionary.merge(
          keys.enumerated().map { ($0.element, firstValue + $0.offset) },
          uniquingKeysWith: { $0 &* 3 &+ $1 })
      case .dictionaryRemoveAll: dictionary.removeAll()
      case .dictionaryRemoveAllWhere(let remainder): dictionary = dictionary.filter { $0.value % 3 != remainder }
      case .dictionaryUpdateWithDefault(let key, let amount):
        let value = (dictionary[key] ?? 100) + amount
        dictionary[key] = value
        results.append(value)
      case .dictionaryAddIfPresent(let key, let amount): dictionary[key]? += amount
      case .dictionaryAddOptionalThenThrow(let key, let amount):
        dictionary[key] = (dictionary[key] ?? 0) + amount
      case .dictionaryUpdateThenThrow:
        // `update(forKey:default:)` rolls back what its throwing closure changed.
        results.append(Outcome.updateThrew)
      case .dictionaryMergeThrowingOnDuplicate(let keys, let firstValue):
        // The merge throws, changing nothing, as soon as it has two values for one key.
        if Set(keys).count != keys.count || keys.contains(where: { dictionary[$0] != nil }) {
          results.append(Outcome.mergeThrew)
        } else {
          for (offset, key) in keys.enumerated() { dictionary[key] = firstValue + offset }
          results.append(Outcome.succeeded)
        }

      case .setInsert(let element): flag(set.insert(element).inserted)
      case .setRemove(let element): results.append(set.remove(element) ?? Outcome.absent)
      case .setContains(let element): flag(set.contains(element))
      case .setCount: results.append(set.count)
      case .setIsEmpty: flag(set.isEmpty)
      case .setElements, .setIterate: results.append(checksum(set.sorted()))
      case .setFormUnion(let elements): set.formUnion(elements)
      case .setSubtract(let elements): set.subtract(elements)
      case .setFormIntersection(let elements): set.formIntersection(elements)
      case .setFormSymmetricDifference(let elements): set.formSymmetricDifference(elements)
      case .setRemoveAll: set.removeAll()
      case .setRemoveAllWhere(let remainder): set = set.filter { $0 % 3 != remainder }
      case .setUpdateWith(let element): results.append(set.update(with: element) ?? Outcome.absent)
      case .setIsSubset(let elements): flag(set.isSubset(of: elements))

      case .arrayAppend(let element): array.append(element)
      case .arrayAppendContents(let elements): array.append(contentsOf: elements)
      case .arrayCount: results.append(array.count)
      case .arrayRead(let index): results.append(index < array.count ? array[index] : Outcome.absent)
      case .arrayWrite(let index, let value):
        if index < array.count {
          array[index] = value
          results.append(Outcome.inBounds)
        } else {
          results.append(Outcome.outOfBounds)
        }
      case .arrayAdd(let index, let amount), .arrayAddThenThrow(let index, let amount):
        if index < array.count {
          array[index] += amount
          results.append(Outcome.inBounds)
        } else {
          results.append(Outcome.outOfBounds)
        }
      case .arrayPopLast: results.append(array.popLast() ?? Outcome.absent)
      case .arrayInsert(let index, let value):
        if index <= array.count {
          array.insert(value, at: index)
          results.append(Outcome.inBounds)
        } else {
          results.append(Outcome.outOfBounds)
        }
      case .arrayRemoveAt(let index): results.append(index < array.count ? array.remove(at: index) : Outcome.absent)
      case .arrayRemoveAllWhere(let remainder): array.removeAll { $0 % 3 == remainder }
      case .arraySort(let descending): descending ? array.sort(by: >) : array.sort()
      case .arrayReverse: array.reverse()
      case .arraySwap(let i, let j):
        if i < array.count && j < array.count {
          array.swapAt(i, j)
          results.append(Outcome.inBounds)
        } else {
          results.append(Outcome.outOfBounds)
        }
      case .arrayRemoveLast: results.append(array.isEmpty ? Outcome.arrayWasEmpty : array.removeLast())
      case .arrayElements, .arrayIterate: results.append(checksum(array))
      case .arrayIsEmpty: flag(array.isEmpty)

      case .queueEnqueue(let item):
        if queueIsClosed {
          results.append(Outcome.queueClosed)
        } else {
          queue.append(item)
          results.append(Outcome.succeeded)
        }
      case .queueTryDequeue: results.append(queue.isEmpty ? Outcome.absent : queue.removeFirst())
      case .queueIsEmpty: flag(queue.isEmpty)
      case .queueClose: queueIsClosed = true
      case .queueIsClosed: flag(queueIsClosed)
      case .queueDequeueOrElse:
        // `dequeue()` returns nil from a closed, empty queue, and waits on an open one.
        if !queue.isEmpty {
          results.append(queue.removeFirst())
        } else {
          results.append(queueIsClosed ? Outcome.absent : Outcome.wouldWait)
        }

      case .boundedEnqueueOrElse(let item):
        if boundedQueueIsClosed {
          results.append(Outcome.queueClosed)
        } else if boundedQueue.count < boundedCapacity {
          boundedQueue.append(item)
          results.append(Outcome.succeeded)
        } else {
          results.append(Outcome.full)
        }
      case .boundedTryDequeue:
        results.append(boundedQueue.isEmpty ? Outcome.absent : boundedQueue.removeFirst())
      case .boundedIsEmpty: flag(boundedQueue.isEmpty)
      case .boundedClose: boundedQueueIsClosed = true

      case .counterAdd(let amount): counter += amount
      case .counterValue: results.append(counter)

      case .afterCommitHook(let value): committedHooks.append(value)
      case .afterAbortHook(let value): pendingAbortHooks.append(value)
      }
    }
  }
}
