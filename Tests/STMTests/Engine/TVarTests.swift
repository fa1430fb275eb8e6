import Foundation
import STM
@testable import STMCore
import Testing

extension LibraryTests {
  @Suite struct TVarTests {
    @Test func readsAndWritesOutsideTransactions() {
      let cell = TVar(41)
      #expect(cell.value == 41)
      cell.value = 7
      #expect(cell.value == 7)
      cell.value += 3
      #expect(cell.value == 10)
      #expect(cell.swap(99) == 10)
      #expect(cell.value == 99)
    }

    @Test func inPlaceMutationOfACollectionValue() {
      let list = TVar<[Int]>([])
      for item in 0..<100 { list.value.append(item) }
      #expect(list.value == Array(0..<100))
    }

    @Test func transactionSeesItsOwnWritesAndOthersSeeThemAtCommit() {
      let cell = TVar(1)
      let seenInside = atomically { _ in
        cell.value = 2
        cell.value += 1
        return cell.value
      }
      #expect(seenInside == 3)
      #expect(cell.value == 3)
    }

    /// In a transaction, updates in place build on each other (writing into the version the
    /// transaction already made), but one in a nested block that fails is rolled back and leaves
    /// the outer block's value as it was.
    @Test func inPlaceUpdatesInATransactionBuildOnEachOtherAndRollBackPerBlock() {
      struct Failure: Error {}
      let cell = TVar(1)
      let seen = atomically { _ in
        cell.value += 1
        cell.value *= 10
        return cell.value
      }
      #expect(seen == 20 && cell.value == 20)
      let inside = atomically { _ in
        cell.value += 1
        try? atomically { _ throws(Failure) in
          cell.value += 100
          throw Failure()
        }
        return cell.value
      }
      #expect(inside == 21 && cell.value == 21)
    }

    @Test func commuteAppliesAtCommitAndAReadSeesItsOwnUpdates() {
      let counter = TVar(10)
      let observed = atomically { _ in
        counter.commute { $0 + 1 }
        counter.commute { $0 * 2 }
        return counter.value
      }
      #expect(observed == 22)
      #expect(counter.value == 22)
      counter.commute { $0 - 2 }
      #expect(counter.value == 20)
      atomically { _ in
        counter.value = 5
        counter.commute { $0 + 1 }
      }
      #expect(counter.value == 6)
    }

    /// Additions a counter records as a running sum (`_commuteAdding`) keep their place among
    /// closure commutes, build on the transaction's own value once it has one, and roll back
    /// with their block. (Sums that would overflow: see the next test.)
    @Test func additionsKeepTheirPlaceAmongCommutes() throws {
      let counter = TVar(10)
      func add(_ amount: Int) { counter._commuteAdding(amount, at: _CallSite(fileID: #fileID, line: #line)) }
      let observed = atomically { _ in
        add(5)
        counter.commute { $0 * 2 }
        add(3)
        add(-1)
        return counter.value
      }
      #expect(observed == (10 + 5) * 2 + 3 - 1)
      #expect(counter.value == 32)
      atomically { _ in
        add(1)
        counter.commute { $0 * 3 }
      }
      #expect(counter.value == (32 + 1) * 3)
      atomically { _ in
        _ = counter.value
        add(8)
        counter.commute { $0 - 100 }
        add(2)
      }
      #expect(counter.value == 99 + 8 - 100 + 2)
      atomically { _ in
        counter.value = 100
        add(1)
      }
      #expect(counter.value == 101)
      try atomically { transaction in
        try transaction.orElse({ _ in
          add(1_000)
          try transaction.retry()
        }, { _ in add(1) })
      }
      #expect(counter.value == 102)
      add(-2)
      #expect(counter.value == 100)
    }

    /// Additions kept as a running sum may not wrap where adding them one by one would not:
    /// -10 + Int.max + 5 is Int.max - 5, but the two amounts' sum overflows (it trapped at
    /// commit, found by review). A sum that would overflow is closed and a new one started.
    @Test func additionsWhoseSumOverflowsApplyOneStepAtATime() {
      let counter = TCounter(-10)
      atomically { _ in
        counter.add(Int.max)
        counter.add(5)
      }
      #expect(counter.value == Int.max - 5)
      atomically { _ in
        counter.add(-Int.max)
        counter.add(-10)
        counter.add(Int.max)
        #expect(counter.value == Int.max - 15)
      }
      #expect(counter.value == Int.max - 15)
    }

    @Test func identityEqualityAndDescription() {
      let first = TVar("a")
      let copy = first
      let other = TVar("a")
      #expect(first == copy)
      #expect(first != other)
      #expect(Set([first, copy, other]).count == 2)
      #expect(first.description == "TVar(a)")
    }

    @Test func nestedAtomicallyJoinsTheOuterTransaction() {
      let cell = TVar(0)
      atomically { _ in
        cell.value = 1
        let inner = atomically { _ in cell.value + 1 }
        #expect(inner == 2)
        atomically { _ in cell.value = inner }
        #expect(cell.value == 2)
      }
      #expect(cell.value == 2)
    }

    @Test func tvarsCreatedInsideATransactionWork() {
      let holder = TVar<TVar<Int>?>(nil)
      atomically { _ in
        let fresh = TVar(5)
        fresh.value += 1
        holder.value = fresh
      }
      #expect(holder.value?.value == 6)
    }

    @Test func statisticsCountCommitsOnThisThread() {
      let before = TransactionEngine.currentThreadStatistics
      let cell = TVar(0)
      for _ in 0..<10 { atomically { _ in cell.value += 1 } }
      _ = atomically { _ in cell.value }
      let spent = TransactionEngine.currentThreadStatistics - before
      // Ten writing transactions and one that only reads; no other test runs on this thread
      // meanwhile (the test never suspends).
      #expect(spent.commits == 11)
      #expect(spent.totalAborts == 0)
    }

    @Test func configurationIsFixedOnceStarted() {
      _ = TVar(0).value
      #expect(throws: TransactionEngineError.alreadyStarted) {
        try TransactionEngine.configure(segmentCount: 4)
      }
      #expect(throws: TransactionEngineError.invalidSegmentCount(0)) {
        try TransactionEngine.configure(segmentCount: 0)
      }
    }

    /// What comes before `configure` in a program leaves the engine unstarted, so that the
    /// call still works: making variables, arrays (from literals and sequences too), queues and
    /// counters, reading statistics (the thread's own too) and adding work to a
    /// `TransactionQueue`. The thread's statistics, the work and the arrays made from elements
    /// started it, and `configure` threw (found by reviews).
    @Test func configureStillWorksAfterWhatDoesNotStartTheEngine() async {
      await #expect(processExitsWith: .success) {
        _ = (TVar(0), TArray<Int>(), TQueue<Int>(), TQueue<Int>(capacity: 4), TCounter())
        let arrays: [TArray<Int>] = [[1, 2], [], TArray(0..<100)]
        _ = TransactionEngine.statistics
        #expect(TransactionEngine.currentThreadStatistics.commits == 0)
        let queue = TransactionQueue()
        queue.add {}
        queue.add(forEachOf: 0..<3) { _ in }
        do {
          try TransactionEngine.configure(segmentCount: 3)
        } catch {
          print("configure threw \(error)")
          exit(1)
        }
        try? queue.run(threads: 1)
        let queueRan = TransactionEngine.statistics.commits == 4
        let arraysHold = arrays.map(\.elements) == [[1, 2], [], Array(0..<100)] && arrays[2].count == 100
        exit(TransactionEngine.segmentCount == 3 && queueRan && arraysHold ? 0 : 2)
      }
    }

    @Test func segmentCountFromTheEnvironment() {
      #expect(_Configuration.environmentSegmentCount([:]) == nil)
      #expect(_Configuration.environmentSegmentCount(["STM_SEGMENTS": " 12 "]) == 12)
      #expect(_Configuration.parseSegmentCount("0") == nil)
      #expect(_Configuration.parseSegmentCount("1025") == nil)
      #expect(_Configuration.parseSegmentCount("eight") == nil)
      #expect(_Configuration.defaultSegmentCount >= 8)
    }

    @Test func aBadSegmentCountInTheEnvironmentTraps() async {
      await #expect(processExitsWith: .failure) {
        _ = _Configuration.environmentSegmentCount(["STM_SEGMENTS": "many"])
      }
    }

    @Test func statisticsDescriptionReadsLikeAReport() {
      var stats = TransactionStatistics()
      stats.commits = 3
      stats.aborts[.writeRead] = 2
      stats.secondsLostInAborts = 0.0125
      #expect(stats.description.contains("3 commits, 2 aborts (2x write-read)"))
      #expect(stats.description.contains("0.013s lost in aborts"))
    }

    /// A kind counted 0 is the same as a kind not listed, in `==`, in hashing and in the
    /// description: `-` leaves such kinds out, while `+` of counts that cancel keeps them, and
    /// the two were unequal.
    @Test func aKindCountedZeroEqualsAKindNotListed() {
      var some = TransactionStatistics()
      some.commits = 5
      some.aborts[.writeRead] = 2
      some.pauses[.freeSegment] = 1
      var cancelled = some + (TransactionStatistics() - some)
      #expect(cancelled.aborts[.writeRead] == 0)
      #expect(cancelled == TransactionStatistics())
      #expect(cancelled.hashValue == TransactionStatistics().hashValue)
      #expect(Set([cancelled, TransactionStatistics()]).count == 1)
      #expect(cancelled.description == TransactionStatistics().description)
      cancelled.aborts[.writeWrite] = 1
      #expect(cancelled != TransactionStatistics())
      var zeroSet = some
      zeroSet.aborts[.inevitable] = 0
      #expect(zeroSet == some)
      zeroSet.pauses[.freeSegment] = 2
      #expect(zeroSet != some)
      zeroSet.pauses[.freeSegment] = 1
      zeroSet.secondsPaused = 0.5
      #expect(zeroSet != some)
    }
  }
}
