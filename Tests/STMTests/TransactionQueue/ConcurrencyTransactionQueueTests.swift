import Foundation
import STM
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// The scheduler under load: more threads than cores, work added from callbacks (whose
  /// transactions conflict and rerun) and from outside threads during the run.
  @Suite struct ConcurrencyTransactionQueueTests {
    /// Every callback commits exactly once, including those added by callbacks whose
    /// transactions lose conflicts and rerun (an add from an attempt that rolled back must
    /// not be queued) and those added by other threads while the run is going.
    @Test func everyAddedCallbackCommitsExactlyOnce() throws {
      let queue = TransactionQueue()
      let commits = CommitCounts()
      let hot = TVar(0)  // every callback writes it: constant conflicts, many reruns
      let initial = TestScale.scaled(2_000), outsiders = 3, perOutsider = TestScale.scaled(500)
      // Ids: initial callbacks 0..<initial; each adds a child `initial + id`; outsider o adds
      // `2 * initial + o * perOutsider + j`.
      // Opened by the first callback to run: the outside threads add only once the run is going.
      let running = Gate()
      @Sendable func callback(_ id: Int) {
        running.open()
        hot.value += 1
        if id < initial { queue.add { callback(initial + id) } }
        commits.recordCommit(of: id)
      }
      for id in 0..<initial { queue.add { callback(id) } }
      // One callback keeps the run alive until the outside threads have added everything.
      let outsidersDone = TVar(0)
      queue.add {
        try atomically { tx in
          if outsidersDone.value < outsiders { try tx.retry() }
        }
      }
      let before = TransactionEngine.statistics
      let adders = DispatchGroup()
      for outsider in 0..<outsiders {
        adders.enter()
        Thread.detachNewThread {
          running.wait()
          for j in 0..<perOutsider {
            let id = 2 * initial + outsider * perOutsider + j
            queue.add { callback(id) }
          }
          atomically { _ in outsidersDone.value += 1 }
          adders.leave()
        }
      }
      try queue.run(threads: 6)
      adders.wait()
      let expected = 2 * initial + outsiders * perOutsider
      let counts = commits.all
      #expect(counts.count == expected)
      #expect(counts.values.allSatisfy { $0 == 1 })
      #expect(Set(counts.keys) == Set(0..<expected))
      #expect(hot.value == expected)
      #expect(queue.pendingCount == 0)
      // The workload conflicts by design, so this test must actually have exercised reruns.
      #expect((TransactionEngine.statistics - before).totalAborts > 0)
    }

    /// The scheduler's own state never conflicts: callbacks that touch nothing transactional
    /// commit without a single abort (PyPy-STM's first scheduler lost most of its time here).
    @Test func emptyCallbacksNeverAbort() throws {
      let queue = TransactionQueue()
      let count = TestScale.isLong ? 1_000_000 : 100_000
      queue.add(forEachOf: 0..<count) { _ in }
      let before = TransactionEngine.statistics
      try queue.run(threads: 4)
      let run = TransactionEngine.statistics - before
      #expect(run.totalAborts == 0)
      #expect(run.commits >= count)
      #expect(queue.pendingCount == 0)
    }

    /// The run is serializable: transfers between accounts, each a callback, conserve the total
    /// and each one's effect is applied exactly once (a per-callback log entry).
    @Test func transfersAsCallbacksConserveTheTotal() throws {
      let accounts = TDictionary<Int, Int>(Dictionary(uniqueKeysWithValues: (0..<16).map { ($0, 1_000) }))
      let applied = TDictionary<Int, Int>()
      let queue = TransactionQueue()
      let transfers = TestScale.scaled(4_000)
      let wrongAudits = Atomic<Int>(0)
      for id in 0..<transfers {
        queue.add {
          var random = SeededRandom(seed: UInt64(id))
          let from = random.below(16), to = (from + 1 + random.below(15)) % 16
          let amount = 1 + random.below(50)
          if accounts[from]! >= amount {
            accounts[from]! -= amount
            accounts[to]! += amount
            applied[id] = amount
          } else {
            applied[id] = 0
          }
          // An audit inside a transaction always sees the conserved total. Counted, not a
          // precondition, so that a failure fails this test, not the whole run.
          if id % 100 == 0 {
            let total = accounts.values.reduce(0, +)
            if total != 16_000 { wrongAudits.add(1, ordering: .relaxed) }
          }
        }
      }
      try queue.run(threads: 5)
      #expect(wrongAudits.load(ordering: .relaxed) == 0)
      #expect(accounts.values.reduce(0, +) == 16_000)
      #expect(applied.count == transfers)
      #expect(accounts.values.allSatisfy { $0 >= 0 })
      // Each balance is what the logged transfers make it, each applied once: a transfer whose
      // effect landed twice, or not at all, would leave the log and the balances apart.
      var expected = [Int](repeating: 1_000, count: 16)
      for id in 0..<transfers {
        var random = SeededRandom(seed: UInt64(id))
        let from = random.below(16), to = (from + 1 + random.below(15)) % 16
        let amount = 1 + random.below(50)
        let moved = try #require(applied[id])
        #expect(moved == 0 || moved == amount)
        expected[from] -= moved
        expected[to] += moved
      }
      #expect((0..<16).map { accounts[$0] } == expected)
    }
  }
}
