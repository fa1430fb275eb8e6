@testable import STM
@testable import STMCore
import STMTestSupport
import Testing

/// One collection operation of a generated transaction; each records a result (or -1 for
/// "nothing") that the serial replay must reproduce.
private enum CollectionOperation: Sendable {
  case dictGet(Int)
  case dictSet(Int, Int)
  case dictAdd(Int, Int)
  case dictRemove(Int)
  case dictInsertIfAbsent(Int, Int)
  case dictCount
  case dictIsEmpty
  case setInsert(Int)
  case setRemove(Int)
  case setContains(Int)
  case setCount
  case setIsEmpty
  case arrayAppend(Int)
  case arrayCount
  /// Reads `index` if it is in bounds (checked in the same transaction).
  case arrayRead(Int)
  case arrayPopLast
  case enqueue(Int)
  case tryDequeue
  case counterAdd(Int)
  case counterValue
  case arrayFirst
  case arrayLast
  /// The sum of the values of the keys divisible by 3, through `filter` on a snapshot.
  case dictFilteredSum
}

/// The operations that may run outside a transaction in the oracle: each is one atomic step
/// that leaves its own serial position as the thread's last one, either because it always
/// commits a write (a set, an add, an append, an enqueue, a counter's add), or because it
/// reads at a snapshot (a key's value, a count, `isEmpty`, a member, the counter): the quick
/// and drop-in roads of each, replayed like any transaction. (An operation that may end up
/// changing nothing, such as a removal of an absent key, leaves no position of its own.)
private let atomicOutside: Set<Int> = [0, 1, 2, 5, 8, 9, 10, 11, 14, 16, 17, 18, 19, 20, 21, 22]

private struct CollectionPlan: Sendable {
  var operations: [CollectionOperation]
  var throwsAtEnd = false
  var outside = false

  static func random(_ random: inout SeededRandom, keys: Int, unique: inout Int) -> CollectionPlan {
    func operation(_ kind: Int) -> CollectionOperation {
      let key = random.below(keys), amount = random.below(21) - 10
      unique += 1
      switch kind {
      case 0: return .dictGet(key)
      case 1: return .dictSet(key, unique)
      case 2: return .dictAdd(key, amount)
      case 3: return .dictRemove(key)
      case 4: return .dictInsertIfAbsent(key, unique)
      case 5: return .dictCount
      case 6: return .setInsert(key)
      case 7: return .setRemove(key)
      case 8: return .setContains(key)
      case 9: return .setCount
      case 10: return .arrayAppend(unique)
      case 11: return .arrayCount
      case 12: return .arrayRead(random.below(64))
      case 13: return .arrayPopLast
      case 14: return .enqueue(unique)
      case 15: return .tryDequeue
      case 16: return .counterAdd(amount)
      case 17: return .counterValue
      case 18: return .dictIsEmpty
      case 19: return .setIsEmpty
      case 20: return .arrayFirst
      case 21: return .arrayLast
      default: return .dictFilteredSum
      }
    }
    if random.chance(20) {
      let kinds = atomicOutside.sorted()
      return CollectionPlan(operations: [operation(kinds[random.below(kinds.count)])], outside: true)
    }
    let operations = (0..<(1 + random.below(5))).map { _ in operation(random.below(23)) }
    return CollectionPlan(operations: operations, throwsAtEnd: random.chance(5))
  }
}

/// The collections under test, or their plain-Swift counterparts for the replay.
private protocol CollectionStore {
  func run(_ operation: CollectionOperation) -> Int
}

private struct TransactionalCollections: CollectionStore, Sendable {
  let dict = TDictionary<Int, Int>()
  let set = TSet<Int>()
  let array = TArray<Int>()
  let queue = TQueue<Int>()
  let counter = TCounter()

  func run(_ operation: CollectionOperation) -> Int {
    switch operation {
    case .dictGet(let key): return dict[key] ?? -1
    case .dictSet(let key, let value): dict[key] = value
    case .dictAdd(let key, let amount): dict[key, default: 0] += amount
    case .dictRemove(let key): return dict.removeValue(forKey: key) ?? -1
    case .dictInsertIfAbsent(let key, let value):
      let (inserted, stored) = dict.insertIfAbsent(value, forKey: key)
      return inserted ? stored : -stored - 2
    case .dictCount: return dict.count
    case .dictIsEmpty: return dict.isEmpty ? 1 : 0
    case .setInsert(let element): return set.insert(element).inserted ? 1 : 0
    case .setRemove(let element): return set.remove(element) ?? -1
    case .setContains(let element): return set.contains(element) ? 1 : 0
    case .setCount: return set.count
    case .setIsEmpty: return set.isEmpty ? 1 : 0
    case .arrayAppend(let element): array.append(element)
    case .arrayCount: return array.count
    case .arrayRead(let index): return index < array.count ? array[index] : -1
    case .arrayPopLast: return array.popLast() ?? -1
    case .enqueue(let item): try! queue.enqueue(item)
    case .tryDequeue: return queue.tryDequeue() ?? -1
    case .counterAdd(let amount): counter.add(amount)
    case .counterValue: return counter.value
    case .arrayFirst: return array.first ?? -1
    case .arrayLast: return array.last ?? -1
    case .dictFilteredSum: return dict.filter { $0.key % 3 == 0 }.values.reduce(0, +)
    }
    return 0
  }
}

private final class PlainCollections: CollectionStore {
  var dict: [Int: Int] = [:]
  var set: Set<Int> = []
  var array: [Int] = []
  var queue: [Int] = []
  var queueHead = 0
  var counter = 0

  func run(_ operation: CollectionOperation) -> Int {
    switch operation {
    case .dictGet(let key): return dict[key] ?? -1
    case .dictSet(let key, let value): dict[key] = value
    case .dictAdd(let key, let amount): dict[key, default: 0] += amount
    case .dictRemove(let key): return dict.removeValue(forKey: key) ?? -1
    case .dictInsertIfAbsent(let key, let value):
      if let existing = dict[key] { return -existing - 2 }
      dict[key] = value
      return value
    case .dictCount: return dict.count
    case .dictIsEmpty: return dict.isEmpty ? 1 : 0
    case .setInsert(let element): return set.insert(element).inserted ? 1 : 0
    case .setRemove(let element): return set.remove(element) ?? -1
    case .setContains(let element): return set.contains(element) ? 1 : 0
    case .setCount: return set.count
    case .setIsEmpty: return set.isEmpty ? 1 : 0
    case .arrayAppend(let element): array.append(element)
    case .arrayCount: return array.count
    case .arrayRead(let index): return index < array.count ? array[index] : -1
    case .arrayPopLast: return array.popLast() ?? -1
    case .enqueue(let item): queue.append(item)
    case .tryDequeue:
      guard queueHead < queue.count else { return -1 }
      queueHead += 1
      return queue[queueHead - 1]
    case .counterAdd(let amount): counter += amount
    case .counterValue: return counter
    case .arrayFirst: return array.first ?? -1
    case .arrayLast: return array.last ?? -1
    case .dictFilteredSum: return dict.filter { $0.key % 3 == 0 }.values.reduce(0, +)
    }
    return 0
  }
}

extension CollectionPlan {
  /// What an outside plan writes: a key of the dictionary, or a whole collection.
  var outsideTarget: String? {
    guard outside, let operation = operations.first else { return nil }
    switch operation {
    case .dictSet(let key, _), .dictAdd(let key, _): return "dict \(key)"
    case .arrayAppend: return "array"
    case .enqueue: return "queue"
    case .counterAdd: return "counter"
    default: return nil
    }
  }
}

private struct CommittedPlan: Sendable {
  let position: _SerialPosition
  let plan: CollectionPlan
  let results: [Int]
}

private struct PlannedRollback: Error {}

extension LibraryTests {
  /// Random transactions over every collection, from 8 threads (more than the cores), must be
  /// equivalent to running the committed ones serially, in commit order, on `Dictionary`,
  /// `Set`, `Array` and a plain queue (DESIGN.md: serializability, per-key conflicts, delayed
  /// appends landing in commit order).
  @Suite struct ConcurrencyCollectionOracleTests {
    /// Few keys make transactions collide often; many keys exercise growth and removal.
    @Test(arguments: [6, 200])
    func committedCollectionTransactionsReplaySeriallyInCommitOrder(keyCount: Int) throws {
      let threads = 8
      let perThread = TestScale.scaled(24_000) / threads
      let collections = TransactionalCollections()
      let logs = (0..<threads).map { _ in LockedBox<[CommittedPlan]>([]) }

      runThreads(threads) { thread in
        var random = SeededRandom(thread: thread)
        // Values and items are unique per thread, so the replay can tell them apart.
        var unique = thread * 10_000_000
        var log: [CommittedPlan] = []
        for _ in 0..<perThread {
          let plan = CollectionPlan.random(&random, keys: keyCount, unique: &unique)
          if plan.outside {
            let results = plan.operations.map(collections.run)
            log.append(CommittedPlan(position: _ThreadContext.current.lastCommit, plan: plan, results: results))
            continue
          }
          do {
            let results = try atomically { _ in
              let results = plan.operations.map(collections.run)
              if plan.throwsAtEnd { throw PlannedRollback() }
              return results
            }
            log.append(CommittedPlan(position: _ThreadContext.current.lastCommit, plan: plan, results: results))
          } catch {
            #expect(plan.throwsAtEnd, "only planned rollbacks may escape: \(error)")
          }
        }
        logs[thread].value = log
      }

      let history = logs.flatMap(\.value).sorted { $0.position < $1.position }
      let writers = history.filter { !$0.position.isReadOnly }
      expectWritersOrderedSerially(writers.map { ($0.position, $0.plan.outsideTarget) })
      #expect(history.count > perThread * threads * 7 / 10)

      let replay = PlainCollections()
      var mismatches = 0
      for transaction in history {
        let results = transaction.plan.operations.map(replay.run)
        if results != transaction.results {
          mismatches += 1
          if mismatches <= 5 {
            Issue.record("Replay differs at \(transaction.position): \(transaction.plan.operations) gave \(transaction.results), serially \(results)")
          }
        }
      }
      #expect(mismatches == 0)
      #expect(collections.dict.dictionary == replay.dict)
      #expect(collections.set.elements == replay.set)
      #expect(collections.array.elements == replay.array)
      #expect(collections.counter.value == replay.counter)
      var left: [Int] = []
      while let item = collections.queue.tryDequeue() { left.append(item) }
      #expect(left == Array(replay.queue[replay.queueHead...]))
    }
  }
}
