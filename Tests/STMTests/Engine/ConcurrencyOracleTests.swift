import Foundation
@testable import STMCore
import STMTestSupport
import Testing

/// One operation of a generated transaction. Each records a result that the serial replay
/// must reproduce.
private enum Operation: Sendable {
  case read(Int)
  case write(Int, Int)
  case add(Int, Int)
  case commute(Int, Int)
  case commuteThenRead(Int, Int)
  /// `orElse`: the first branch reads `probe` and retries when it is a multiple of 3, else
  /// writes `probe + 1` to `target`; the second branch reads `fallback` and commutes `target`.
  case choose(probe: Int, target: Int, fallback: Int)
  /// `becomeInevitable()` at this point of the transaction; nothing in the replay.
  case becomeInevitable
}

private struct Plan: Sendable {
  var operations: [Operation]
  var throwsAtEnd: Bool
  /// Run the single operation outside any transaction, as its own single-operation transaction.
  var outside = false

  static func random(_ random: inout SeededRandom, cells: Int, outsidePercent: Int) -> Plan {
    if random.chance(outsidePercent) {
      let cell = random.below(cells)
      let operation: Operation = switch random.below(4) {
      case 0: .read(cell)
      case 1: .write(cell, random.below(1000))
      case 2: .add(cell, random.below(21) - 10)
      default: .commute(cell, random.below(21) - 10)
      }
      return Plan(operations: [operation], throwsAtEnd: false, outside: true)
    }
    var operations: [Operation] = []
    for _ in 0..<(1 + random.below(5)) {
      let cell = random.below(cells)
      let amount = random.below(21) - 10
      switch random.below(12) {
      case 0..<4: operations.append(.read(cell))
      case 4..<6: operations.append(.write(cell, random.below(1000)))
      case 6..<8: operations.append(.add(cell, amount))
      case 8..<10: operations.append(.commute(cell, amount))
      case 10: operations.append(.commuteThenRead(cell, amount))
      default:
        operations.append(.choose(probe: cell, target: random.below(cells), fallback: random.below(cells)))
      }
    }
    if random.chance(3) {
      operations.insert(.becomeInevitable, at: random.below(operations.count + 1))
    }
    return Plan(operations: operations, throwsAtEnd: random.chance(5))
  }
}

extension Plan {
  /// The cell an outside plan writes, if it writes one.
  var outsideTarget: String? {
    guard outside, let operation = operations.first else { return nil }
    switch operation {
    case .write(let cell, _), .add(let cell, _), .commute(let cell, _): return "cell \(cell)"
    default: return nil
    }
  }
}

private struct Committed: Sendable {
  let position: _SerialPosition
  let plan: Plan
  let results: [Int]
}

private struct PlannedFailure: Error {}

/// Runs a plan against transactional cells (inside a transaction) or plain values (replay).
private protocol Store {
  func get(_ cell: Int) -> Int
  func set(_ cell: Int, _ value: Int)
  func add(_ cell: Int, _ amount: Int)
  func commute(_ cell: Int, _ amount: Int)
  func becomeInevitable() throws
}

/// Used inside a transaction (then `becomeInevitable` needs the handle), or outside one, where
/// each operation is a single-operation transaction.
private struct TransactionalStore: Store {
  let cells: [TVar<Int>]
  var transaction: Transaction? = nil
  func get(_ cell: Int) -> Int { cells[cell].value }
  func set(_ cell: Int, _ value: Int) { cells[cell].value = value }
  func add(_ cell: Int, _ amount: Int) { cells[cell].value += amount }
  func commute(_ cell: Int, _ amount: Int) { cells[cell].commute { $0 + amount } }
  func becomeInevitable() throws { try transaction?.becomeInevitable() }
}

private final class PlainStore: Store {
  var values: [Int]
  init(_ values: [Int]) { self.values = values }
  func get(_ cell: Int) -> Int { values[cell] }
  func set(_ cell: Int, _ value: Int) { values[cell] = value }
  func add(_ cell: Int, _ amount: Int) { values[cell] += amount }
  func commute(_ cell: Int, _ amount: Int) { values[cell] += amount }
  func becomeInevitable() {}
}

/// Executes `plan`; `retry` abandons the first branch of a choice (and, in a transaction, rolls
/// it back through `orElse`).
private func execute(_ plan: Plan, on store: some Store, choose: (() throws -> Int, () throws -> Int) throws -> Int) throws -> [Int] {
  var results: [Int] = []
  for operation in plan.operations {
    switch operation {
    case .read(let cell):
      results.append(store.get(cell))
    case .write(let cell, let value):
      store.set(cell, value)
    case .add(let cell, let amount):
      store.add(cell, amount)
    case .commute(let cell, let amount):
      store.commute(cell, amount)
    case .commuteThenRead(let cell, let amount):
      store.commute(cell, amount)
      results.append(store.get(cell))
    case .becomeInevitable:
      try store.becomeInevitable()
    case .choose(let probe, let target, let fallback):
      results.append(try choose({
        let value = store.get(probe)
        if value % 3 == 0 { throw _RetrySignal() }
        store.set(target, value + 1)
        return value
      }, {
        let value = store.get(fallback)
        store.commute(target, 1)
        return -value - 1
      }))
    }
  }
  return results
}

extension LibraryTests {
  /// Random transactions from 8 threads (more than the cores) must be equivalent to running the
  /// committed ones serially in commit order.
  @Suite struct ConcurrencyOracleTests {
    /// Twelve cells give a mix of conflicting and independent transactions; three make nearly
    /// every pair conflict, which is what exposes narrow windows in the commit protocol.
    ///
    /// Mostly drop-in operations (80 in 100 outside a transaction) make many updates that
    /// overwrite their cell without a commit number, between snapshot reads that force the
    /// next one to take a number: the mix that checks where those updates stand in the order.
    @Test(arguments: [(12, 10), (3, 10), (12, 80)])
    func committedTransactionsReplaySeriallyInCommitOrder(cellCount: Int, outsidePercent: Int) throws {
      let threads = 8
      let perThread = TestScale.scaled(100_000) / threads
      let initial = (0..<cellCount).map { $0 * 10 }
      let cells = initial.map { TVar($0) }
      let logs = (0..<threads).map { _ in LockedBox<[Committed]>([]) }

      runThreads(threads) { thread in
        var random = SeededRandom(thread: thread)
        var log: [Committed] = []
        log.reserveCapacity(perThread)
        let outsideStore = TransactionalStore(cells: cells)
        for _ in 0..<perThread {
          let plan = Plan.random(&random, cells: cellCount, outsidePercent: outsidePercent)
          if plan.outside {
            let results = try! execute(plan, on: outsideStore) { first, _ in try first() }
            log.append(Committed(position: _ThreadContext.current.lastCommit, plan: plan, results: results))
            continue
          }
          do {
            let results = try atomically { tx in
              let store = TransactionalStore(cells: cells, transaction: tx)
              let results = try execute(plan, on: store) { first, second in
                try tx.orElse({ _ in try first() }, { _ in try second() })
              }
              if plan.throwsAtEnd { throw PlannedFailure() }
              return results
            }
            log.append(Committed(position: _ThreadContext.current.lastCommit, plan: plan, results: results))
          } catch {
            #expect(plan.throwsAtEnd, "only planned failures may escape: \(error)")
          }
        }
        logs[thread].value = log
      }

      let history = logs.flatMap(\.value).sorted { $0.position < $1.position }
      let writers = history.filter { !$0.position.isReadOnly }
      expectWritersOrderedSerially(writers.map { ($0.position, $0.plan.outsideTarget) })
      if outsidePercent >= 50 {
        #expect(writers.contains { $0.position.overwrite > 0 }, "some drop-in updates overwrote without a commit number")
      }
      #expect(history.count > perThread * threads * 8 / 10)

      let replay = PlainStore(initial)
      var mismatches = 0
      for transaction in history {
        let results = try execute(transaction.plan, on: replay) { first, second in
          if let value = try? first() { return value }
          return try second()
        }
        if results != transaction.results {
          mismatches += 1
          if mismatches <= 5 {
            Issue.record("Replay differs at \(transaction.position): \(transaction.plan.operations) gave \(transaction.results), serially \(results)")
          }
        }
      }
      #expect(mismatches == 0)
      #expect(cells.map(\.value) == replay.values)
    }
  }
}

/// A value guarded by a lock, for collecting results from worker threads.
final class LockedBox<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: Value
  init(_ value: Value) { stored = value }
  /// Read, written and changed in place under the lock: `box.value.append(x)` from several
  /// threads at once loses nothing (with a getter and a setter alone, it read and wrote under
  /// separate holds of the lock, and two appends could keep only one).
  var value: Value {
    get { lock.withLock { stored } }
    set { lock.withLock { stored = newValue } }
    _modify {
      lock.lock()
      defer { lock.unlock() }
      yield &stored
    }
  }
}
