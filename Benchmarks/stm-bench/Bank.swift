import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `bank`: transfers between 1,024 accounts, with an audit of all of them as
  /// every 10,000th transaction of each thread.
  static let bank = Workload(
    name: "bank",
    summary: "random transfers among 1,024 accounts, audits of all of them; check every total",
    unit: "transactions"
  ) { size in
    let total = size.scaled(1_000_000)
    return [
      Implementation(name: "TVar accounts", kind: .library) { threads in
        let accounts = (0..<Bank.accountCount).map { _ in TVar(Bank.initialBalance) }
        let tally = Bank.Tally()
        return Trial(ops: total) { thread in
          var audits = 0, badAudits = 0
          Bank.run(thread: thread, threads: threads, total: total) { transfer in
            atomically { _ in
              let balance = accounts[transfer.from].value
              if balance >= transfer.amount {
                accounts[transfer.from].value = balance - transfer.amount
                accounts[transfer.to].value += transfer.amount
              }
            }
          } audit: {
            let sum = atomically { _ in
              let sum = accounts.reduce(0) { $0 + $1.value }
              // Checked inside the body on purpose, so that every attempt counts, including
              // those that later abort: the engine promises even they see a consistent snapshot.
              if sum != Bank.expectedTotal { badAudits += 1 }
              return sum
            }
            if sum != Bank.expectedTotal { badAudits += 1 }
            audits += 1
          }
          tally.add(audits: audits, badAudits: badAudits)
        } verify: {
          tally.check(threads: threads, total: total, finalTotal: accounts.reduce(0) { $0 + $1.value })
        }
      },
      Implementation(name: "Mutex per account", kind: .baseline) { threads in
        let accounts = (0..<Bank.accountCount).map { _ in LockedAccount() }
        let tally = Bank.Tally()
        return Trial(ops: total) { thread in
          var audits = 0, badAudits = 0
          Bank.run(thread: thread, threads: threads, total: total) { transfer in
            // Taking the locks in index order rules out deadlock.
            let (first, second) = (min(transfer.from, transfer.to), max(transfer.from, transfer.to))
            accounts[first].balance.withLock { firstBalance in
              accounts[second].balance.withLock { secondBalance in
                if transfer.from == first {
                  if firstBalance >= transfer.amount {
                    firstBalance -= transfer.amount
                    secondBalance += transfer.amount
                  }
                } else if secondBalance >= transfer.amount {
                  secondBalance -= transfer.amount
                  firstBalance += transfer.amount
                }
              }
            }
          } audit: {
            if LockedAccount.sumHoldingAll(accounts) != Bank.expectedTotal { badAudits += 1 }
            audits += 1
          }
          tally.add(audits: audits, badAudits: badAudits)
        } verify: {
          tally.check(
            threads: threads, total: total, finalTotal: LockedAccount.sumHoldingAll(accounts))
        }
      },
      Implementation(name: "Mutex over array", kind: .baseline) { threads in
        let accounts = LockedArray(Array(repeating: Bank.initialBalance, count: Bank.accountCount))
        let tally = Bank.Tally()
        return Trial(ops: total) { thread in
          var audits = 0, badAudits = 0
          Bank.run(thread: thread, threads: threads, total: total) { transfer in
            accounts.value.withLock { balances in
              if balances[transfer.from] >= transfer.amount {
                balances[transfer.from] -= transfer.amount
                balances[transfer.to] += transfer.amount
              }
            }
          } audit: {
            if accounts.value.withLock({ $0.reduce(0, +) }) != Bank.expectedTotal { badAudits += 1 }
            audits += 1
          }
          tally.add(audits: audits, badAudits: badAudits)
        } verify: {
          tally.check(
            threads: threads, total: total, finalTotal: accounts.value.withLock { $0.reduce(0, +) })
        }
      },
    ]
  }
}

/// The formulas of BENCHMARKS.md ("Exact formulas", bank), shared by every implementation.
enum Bank {
  static let accountCount = 1024
  static let initialBalance = 1000
  static let expectedTotal = accountCount * initialBalance
  static let auditInterval = 10_000

  struct Transfer {
    let from: Int
    let to: Int
    let amount: Int

    /// One draw per transfer: `from = r % 1024`, `to = (from + 1 + (r >> 10) % 1023) % 1024`,
    /// `amount = 1 + (r >> 20) % 10`.
    init(_ r: UInt64) {
      from = Int(r % 1024)
      to = (from + 1 + Int((r >> 10) % 1023)) % 1024
      amount = 1 + Int((r >> 20) % 10)
    }
  }

  /// Runs thread `thread`'s share of the transactions: its transaction `j` (from 0) is an audit
  /// when `(j + 1) % 10000 == 0`, which draws no number; every other one is a transfer.
  @inline(__always)
  static func run(
    thread: Int, threads: Int, total: Int,
    transfer: (Transfer) -> Void, audit: () -> Void
  ) {
    var random = Xorshift64Star(thread: thread)
    for j in 0..<share(of: total, thread: thread, threads: threads).count {
      if (j + 1) % auditInterval == 0 {
        audit()
      } else {
        transfer(Transfer(random.next()))
      }
    }
  }

  /// How many audits ran and how many saw a wrong total, added up over the threads.
  final class Tally: Sendable {
    private let audits = Atomic<Int>(0)
    private let badAudits = Atomic<Int>(0)

    func add(audits: Int, badAudits: Int) {
      self.audits.wrappingAdd(audits, ordering: .relaxed)
      self.badAudits.wrappingAdd(badAudits, ordering: .relaxed)
    }

    /// Every audit saw 1,024,000, the final total is 1,024,000, and every thread ran
    /// ⌊its transactions / 10000⌋ audits.
    func check(threads: Int, total: Int, finalTotal: Int) -> String? {
      let expectedAudits = (0..<threads).reduce(0) {
        $0 + share(of: total, thread: $1, threads: threads).count / auditInterval
      }
      var problems: [String] = []
      let bad = badAudits.load(ordering: .relaxed)
      if bad != 0 { problems.append("\(bad) audits saw a total other than \(expectedTotal)") }
      if finalTotal != expectedTotal { problems.append("final total \(finalTotal), expected \(expectedTotal)") }
      let ran = audits.load(ordering: .relaxed)
      if ran != expectedAudits { problems.append("\(ran) audits ran, expected \(expectedAudits)") }
      return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
  }
}

/// An account under its own lock.
final class LockedAccount: Sendable {
  let balance = Mutex(Bank.initialBalance)

  /// The sum of every balance, read while holding every lock, taken in index order.
  static func sumHoldingAll(_ accounts: [LockedAccount], from index: Int = 0, sum: Int = 0) -> Int {
    guard index < accounts.count else { return sum }
    return accounts[index].balance.withLock { balance in
      sumHoldingAll(accounts, from: index + 1, sum: sum + balance)
    }
  }
}

/// An array under one lock.
final class LockedArray: Sendable {
  let value: Mutex<[Int]>
  init(_ value: [Int]) { self.value = Mutex(value) }
}
