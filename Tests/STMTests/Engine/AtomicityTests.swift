import STM
import Testing

private struct Refused: Error, Equatable {}

extension LibraryTests {
  @Suite struct AtomicityTests {
    @Test func aThrowingBodyLeavesNoTrace() {
      let first = TVar(1), second = TVar(2)
      var committedHookRan = false
      var abortHookRan = false
      #expect(throws: Refused.self) {
        try atomically { tx in
          first.value = 100
          second.commute { $0 + 1 }
          tx.afterCommit { committedHookRan = true }
          tx.afterAbort { abortHookRan = true }
          throw Refused()
        }
      }
      #expect(first.value == 1)
      #expect(second.value == 2)
      #expect(!committedHookRan)
      #expect(abortHookRan)
    }

    /// Found in review: abort hooks must run outside the dead transaction, seeing committed
    /// state, and what they write must stay written.
    @Test func abortHooksRunOutsideTheRolledBackTransaction() {
      let flag = TVar(0)
      var seenByHook = -1
      #expect(throws: Refused.self) {
        try atomically { tx in
          flag.value = 7
          tx.afterAbort {
            seenByHook = flag.value
            flag.value = 42
          }
          throw Refused()
        }
      }
      #expect(seenByHook == 0)
      #expect(flag.value == 42)
    }

    @Test func abortHooksOfARolledBackBranchRunWhenTheTransactionEnds() throws {
      let gate = TVar(false), log = TVar<[String]>([])
      var order: [String] = []
      try atomically { tx in
        _ = try tx.orElse({ tx in
          tx.afterAbort { order.append("branch rolled back, log has \(log.value.count)") }
          if !gate.value { try tx.retry() }
          return 0
        }, { _ in
          log.value.append("second branch")
          return 1
        })
        order.append("body finished")
      }
      #expect(order == ["body finished", "branch rolled back, log has 1"])
    }

    @Test func afterCommitHooksRunInOrderAfterTheChangesAreVisible() {
      let cell = TVar(0)
      var log: [String] = []
      atomically { tx in
        cell.value = 1
        tx.afterCommit { log.append("first saw \(cell.value)") }
        tx.afterCommit {
          // A hook runs outside any transaction, so it may start one.
          atomically { _ in cell.value += 1 }
          log.append("second")
        }
      }
      #expect(log == ["first saw 1", "second"])
      #expect(cell.value == 2)
    }

    @Test func aNestedBlockThatThrowsRollsBackOnlyItsOwnWrites() {
      let kept = TVar(0), discarded = TVar(0)
      var innerAbortHook = 0
      atomically { _ in
        kept.value = 1
        do {
          try atomically { tx in
            discarded.value = 1
            kept.value = 50
            tx.afterAbort { innerAbortHook += 1 }
            throw Refused()
          }
        } catch {}
        #expect(kept.value == 1)
        #expect(discarded.value == 0)
        kept.value += 1
      }
      #expect(kept.value == 2)
      #expect(discarded.value == 0)
      #expect(innerAbortHook == 1)
    }

    @Test func orElseRunsTheSecondBranchWhenTheFirstRetries() throws {
      let gate = TVar(false), written = TVar(0), other = TVar(0)
      let branch = try atomically { tx in
        try tx.orElse({ tx in
          written.value = 99
          if !gate.value { try tx.retry() }
          return "first"
        }, { _ in
          other.value = 7
          return "second"
        })
      }
      #expect(branch == "second")
      #expect(written.value == 0)
      #expect(other.value == 7)
    }

    @Test func orElseKeepsTheFirstBranchWhenItCompletes() throws {
      let gate = TVar(true), written = TVar(0)
      let branch = try atomically { tx in
        try tx.orElse({ tx in
          if !gate.value { try tx.retry() }
          written.value = 1
          return "first"
        }, { _ in "second" })
      }
      #expect(branch == "first")
      #expect(written.value == 1)
    }

    @Test func orElseRollsBackABranchThatThrowsAndPropagates() {
      let cell = TVar(0)
      #expect(throws: Refused.self) {
        try atomically { tx in
          cell.value = 1
          _ = try tx.orElse({ _ in
            cell.value = 2
            throw Refused()
          }, { _ in 0 })
        }
      }
      #expect(cell.value == 0)
    }

    /// The second branch too: its writes and hooks go when it throws, even if the body
    /// catches the error and commits (found by review).
    @Test func orElseRollsBackASecondBranchThatThrows() {
      let cell = TVar(0), gate = TVar(false)
      var commitHookRan = false, abortHookRan = false
      atomically { tx in
        cell.value = 1
        do {
          try tx.orElse({ _ in if !gate.value { try tx.retry() } }, { tx in
            cell.value = 5
            tx.afterCommit { commitHookRan = true }
            tx.afterAbort { abortHookRan = true }
            throw Refused()
          })
        } catch {}
      }
      #expect(cell.value == 1)
      #expect(!commitHookRan)
      // A hook of a part that rolled back runs once the transaction ends (see `afterAbort`).
      #expect(abortHookRan)
    }

    /// Abort hooks run newest first, whether the body registered them or a part that rolled
    /// back did, however the two interleave (found by review).
    @Test func abortHooksRunInReverseOrderOfRegistration() {
      let gate = TVar(false)
      var order: [String] = []
      #expect(throws: Refused.self) {
        try atomically { tx in
          tx.afterAbort { order.append("A") }
          try tx.orElse({ tx in
            tx.afterAbort { order.append("B") }
            if !gate.value { try tx.retry() }
          }, { _ in })
          tx.afterAbort { order.append("C") }
          try atomically { inner in
            inner.afterAbort { order.append("D") }
            throw Refused()
          }
        }
      }
      #expect(order == ["D", "C", "B", "A"])
      // Committed: only the hooks of the parts that rolled back run, newest first.
      order = []
      atomically { tx in
        tx.afterAbort { order.append("A") }
        try? tx.orElse({ tx in tx.afterAbort { order.append("B") }; throw Refused() }, { _ in })
        try? atomically { inner in inner.afterAbort { order.append("C") }; throw Refused() }
      }
      #expect(order == ["C", "B"])
    }

    @Test func becomingInevitableTwiceOrInANestedBlockDoesNotWait() throws {
      let cell = TVar(0)
      try atomically { tx in
        try tx.becomeInevitable()
        try tx.becomeInevitable()
        try atomically { inner in
          try inner.becomeInevitable()
          cell.value += 1
        }
        #expect(tx.isInevitable)
      }
      #expect(cell.value == 1)
    }

    @Test func becomingInevitableWithoutContentionCommitsOnce() throws {
      let cell = TVar(0)
      var effects = 0
      try atomically { tx in
        _ = cell.value
        try tx.becomeInevitable()
        #expect(tx.isInevitable)
        effects += 1
        cell.value += 1
      }
      #expect(effects == 1)
      #expect(cell.value == 1)
    }
  }
}
