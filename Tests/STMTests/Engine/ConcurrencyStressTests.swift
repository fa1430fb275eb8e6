import Foundation
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// Oversubscribed stress: more threads than cores, released together, each checking an
  /// invariant that a race would break.
  @Suite struct ConcurrencyStressTests {
    /// Audits check the total inside the transaction body, so even an attempt that later aborts
    /// must see a consistent snapshot (opacity). `transfersReadTheTotal`: each transfer also
    /// reads every account after its writes, and must see one snapshot plus its own transfer
    /// (opacity for transactions that have written, which the audits do not exercise;
    /// suggested by review).
    @Test(arguments: [false, true]) func bankAuditsNeverSeeAWrongTotal(transfersReadTheTotal: Bool) {
      let accountCount = 32
      let accounts = (0..<accountCount).map { _ in TVar(100) }
      let expected = accountCount * 100
      let wrongTotals = Atomic<Int>(0)
      let audits = Atomic<Int>(0)
      let threads = 8
      let perThread = TestScale.scaled(20_000) / threads
      runThreads(threads) { thread in
        var random = SeededRandom(thread: thread)
        for step in 0..<perThread {
          if step % 100 == 99 {
            atomically { _ in
              let total = accounts.reduce(0) { $0 + $1.value }
              if total != expected { wrongTotals.add(1, ordering: .relaxed) }
            }
            audits.add(1, ordering: .relaxed)
            continue
          }
          let from = random.below(accountCount)
          let to = (from + 1 + random.below(accountCount - 1)) % accountCount
          let amount = 1 + random.below(10)
          atomically { _ in
            // Checked on every attempt, doomed ones included.
            let pair = accounts[from].value + accounts[to].value
            if accounts[from].value >= amount {
              accounts[from].value -= amount
              accounts[to].value += amount
            }
            if pair != accounts[from].value + accounts[to].value { wrongTotals.add(1, ordering: .relaxed) }
            if transfersReadTheTotal && accounts.reduce(0, { $0 + $1.value }) != expected {
              wrongTotals.add(1, ordering: .relaxed)
            }
          }
        }
      }
      #expect(wrongTotals.load(ordering: .relaxed) == 0)
      #expect(audits.load(ordering: .relaxed) == threads * (perThread / 100))
      #expect(accounts.reduce(0) { $0 + $1.value } == expected)
      #expect(accounts.allSatisfy { $0.value >= 0 })
    }

    @Test func outsideReadModifyWritesAreAtomic() {
      let counter = TVar(0)
      let threads = 8
      let perThread = TestScale.scaled(20_000) / threads
      runThreads(threads) { thread in
        for step in 0..<perThread {
          switch step % 3 {
          case 0: counter.value += 1
          case 1: atomically { _ in counter.value += 1 }
          default: counter.commute { $0 + 1 }
          }
        }
      }
      #expect(counter.value == threads * perThread)
    }

    /// Drop-in writes overwrite a version in place only when no snapshot reads below them:
    /// while they run, a transaction that reads a variable twice reads the same value, and no
    /// reader, in a transaction or outside, sees a variable go back to an older value.
    @Test func dropInWritesNeverChangeWhatARunningSnapshotReads() {
      let cells = (0..<4).map { _ in TVar(0) }
      let writers = 3, readers = 5
      let perWriter = TestScale.scaled(20_000) / writers
      let finishedWriters = Atomic<Int>(0)
      let changedUnderSnapshot = Atomic<Int>(0), wentBack = Atomic<Int>(0)
      runThreads(writers + readers) { thread in
        if thread < writers {
          var random = SeededRandom(thread: thread)
          for _ in 0..<perWriter { cells[random.below(cells.count)].value += 1 }
          finishedWriters.add(1, ordering: .relaxed)
          return
        }
        var lastSeen = [Int](repeating: 0, count: cells.count)
        var round = 0
        while finishedWriters.load(ordering: .relaxed) < writers || round < 100 {
          round += 1
          let index = round % cells.count
          let seen: Int
          if round % 2 == 0 {
            seen = atomically { _ in
              let first = cells[index].value
              // Long enough for writers to get in between the two reads.
              for other in 0..<64 { _ = cells[other % cells.count].value }
              if cells[index].value != first { changedUnderSnapshot.add(1, ordering: .relaxed) }
              return first
            }
          } else {
            seen = cells[index].value
          }
          if seen < lastSeen[index] { wentBack.add(1, ordering: .relaxed) }
          lastSeen[index] = seen
        }
      }
      #expect(changedUnderSnapshot.load(ordering: .relaxed) == 0)
      #expect(wentBack.load(ordering: .relaxed) == 0)
      #expect(cells.reduce(0) { $0 + $1.value } == writers * perWriter)
    }

    @Test func contendedIncrementsAreNeverLost() {
      let counter = TVar(0)
      let threads = 4
      let perThread = TestScale.scaled(100_000) / threads
      runThreads(threads) { thread in
        for step in 0..<perThread {
          if thread == 0 && step % 2 == 0 {
            counter.value += 1
          } else {
            atomically { _ in counter.value += 1 }
          }
        }
      }
      #expect(counter.value == threads * perThread)
    }

    @Test func onlyOneTransactionIsInevitableAtATimeAndItNeverAborts() {
      let cells = (0..<8).map { TVar($0) }
      let inside = Atomic<Int>(0)
      let overlaps = Atomic<Int>(0)
      let effects = Atomic<Int>(0)
      let stop = Atomic<Bool>(false)
      let inevitableThreads = 4, perThread = TestScale.scaled(40)
      runThreads(inevitableThreads + 4) { thread in
        if thread >= inevitableThreads {
          var random = SeededRandom(thread: thread)
          while !stop.load(ordering: .relaxed) {
            let cell = cells[random.below(cells.count)]
            atomically { _ in cell.value += 1 }
          }
          return
        }
        for _ in 0..<perThread {
          try! atomically { tx in
            let before = cells.reduce(0) { $0 + $1.value }
            try tx.becomeInevitable()
            // Everything from here runs exactly once per transaction.
            if inside.add(1, ordering: .sequentiallyConsistent).newValue != 1 {
              overlaps.add(1, ordering: .relaxed)
            }
            effects.add(1, ordering: .relaxed)
            usleep(200)
            // No other commit can change what an inevitable transaction read.
            #expect(cells.reduce(0) { $0 + $1.value } == before)
            cells[0].value += 1
            inside.subtract(1, ordering: .sequentiallyConsistent)
          }
        }
        if thread == 0 {
          // Let the writers run until every inevitable thread is done; thread 0 is not last,
          // so wait for the others through the effects counter.
          while effects.load(ordering: .relaxed) < inevitableThreads * perThread { usleep(1000) }
          stop.store(true, ordering: .relaxed)
        }
      }
      #expect(overlaps.load(ordering: .relaxed) == 0)
      #expect(effects.load(ordering: .relaxed) == inevitableThreads * perThread)
    }

    /// A long transaction that reads every cell and writes one keeps losing to writers until it
    /// is escalated (DESIGN.md invariant 4); escalated, it cannot lose again, and commits.
    /// (A transaction that only reads never loses: its snapshot is always consistent.)
    ///
    /// The writers stop on their own after `writerLimit` commits, so that without escalation the
    /// long transaction still commits in the end, having aborted far more often than allowed.
    @Test func aLongTransactionCommitsDespiteConstantWriters() {
      let cellCount = 10_000
      let cells = (0..<cellCount).map { _ in TVar(10) }
      let total = TVar(0)
      let stop = Atomic<Bool>(false)
      let writerCommits = Atomic<Int>(0)
      let writerLimit = 2_000_000
      let longStats = LockedBox(TransactionStatistics())
      let attempts = Atomic<Int>(0)
      runThreads(5) { thread in
        if thread > 0 {
          var random = SeededRandom(thread: thread)
          while !stop.load(ordering: .relaxed) && writerCommits.load(ordering: .relaxed) < writerLimit {
            let from = random.below(cellCount), to = random.below(cellCount)
            atomically { _ in
              cells[from].value -= 1
              cells[to].value += 1
            }
            writerCommits.add(1, ordering: .relaxed)
          }
          return
        }
        while writerCommits.load(ordering: .relaxed) < 100 { sched_yield() }
        let before = TransactionEngine.currentThreadStatistics
        atomically { tx in
          attempts.add(1, ordering: .relaxed)
          let start = writerCommits.load(ordering: .relaxed)
          total.value = cells.reduce(0) { $0 + $1.value }
          // Until escalated, stay open until writers have committed after this attempt's
          // snapshot (each counts its commit after making it, hence the margin of one per
          // writer), so that every such attempt is certain to lose whatever the scheduler
          // does. Escalated, writers wait for this one: no waiting then.
          if !tx.isInevitable {
            // Bounded, should writers ever be stuck behind this attempt: the counts below then
            // fail instead of the run hanging.
            let deadline = Date().addingTimeInterval(10)
            while writerCommits.load(ordering: .relaxed) < min(start + 5, writerLimit) && Date() < deadline { sched_yield() }
          }
        }
        longStats.value = TransactionEngine.currentThreadStatistics - before
        stop.store(true, ordering: .relaxed)
      }
      #expect(total.value == cellCount * 10)
      #expect(longStats.value.commits == 1)
      // Every attempt before the escalation lost, and the escalated one could not.
      #expect(writerCommits.load(ordering: .relaxed) < writerLimit)
      #expect(longStats.value.totalAborts == _TransactionRun.abortsBeforeEscalation)
      #expect(attempts.load(ordering: .relaxed) == _TransactionRun.abortsBeforeEscalation + 1)
    }
  }

  /// Memory stays flat: history is trimmed, cells and versions are freed.
  @Suite struct ReclamationTests {
    /// Runs `body` while another thread holds a transaction open (after reading `cell`), so that
    /// its snapshot keeps the versions written meanwhile from being trimmed; that transaction
    /// then runs `finish`, at the same snapshot.
    private func whileASnapshotIsPinned(
      reading cell: TVar<Int>, thenInside finish: @escaping @Sendable () -> Void = {}, _ body: () -> Void
    ) {
      let endSnapshot = pinSnapshot(reading: cell, thenInside: finish)
      body()
      endSnapshot()
    }

    @Test func historyOfAHotCellStaysShort() {
      let counter = TVar(0)
      let transactions = TestScale.scaled(100_000)
      runThreads(4) { _ in
        for step in 0..<(transactions / 4) {
          if step % 2 == 0 { atomically { _ in counter.value += 1 } } else { counter.value += 1 }
        }
      }
      #expect(counter.value == transactions)
      #expect(historyLength(counter) <= 6)
    }

    /// A write that no running snapshot reads below replaces the newest version outright: a
    /// cell keeps one version, not the one before as well, whether a transaction or a drop-in
    /// update wrote it.
    @Test func aWriteWithNoReaderRunningLeavesOneVersion() {
      let cell = TVar(0)
      for step in 1...3 {
        cell.value = step
        #expect(historyLength(cell) == 1)
        atomically { _ in cell.value += 1 }
        #expect(historyLength(cell) == 1)
      }
      #expect(cell.value == 4)
    }

    private func newestVersion<Value>(_ tvar: TVar<Value>) -> (identity: ObjectIdentifier, stamp: UInt64) {
      let newest = tvar.cell.head.load(ordering: .acquiring).takeUnretainedValue()
      return (ObjectIdentifier(newest), newest.stamp)
    }

    /// A drop-in write that no running snapshot reads below puts its value into the newest
    /// version itself: no version made, none dropped. After a snapshot read at the clock's
    /// present value it does so under a commit number of its own; with no snapshot since the
    /// last number it keeps the stamp (see `UnnumberedOverwriteTests`). That holds for a value
    /// that holds an object too; the object it replaces is released only once the cell's lock
    /// is let go (its deinit may run code that waits for that lock).
    @Test func aDropInWriteNoSnapshotPrecedesOverwritesTheNewestVersion() {
      let cell = TVar(0)
      let initial = newestVersion(cell)
      _ = cell.value
      cell.value = 1
      let afterSet = newestVersion(cell)
      cell.value += 1
      cell.commute { $0 + 1 }
      let afterAll = newestVersion(cell)
      #expect(afterSet.identity == initial.identity && afterAll.identity == initial.identity)
      #expect(initial.stamp < afterSet.stamp && afterSet.stamp == afterAll.stamp)
      #expect(afterAll.stamp <= _Engine.shared.clock.load(ordering: .acquiring))
      #expect(cell.value == 3 && historyLength(cell) == 1)

      let name = TVar("a")
      let before = newestVersion(name)
      _ = name.value
      name.value = "b"
      #expect(newestVersion(name).identity == before.identity)
      #expect(newestVersion(name).stamp > before.stamp)
      #expect(name.value == "b" && historyLength(name) == 1)

      let holder = TVar<ReleaseProbe?>(nil)
      let holderAtRelease = Atomic<Int>(-99)
      holder.value = ReleaseProbe { holderAtRelease.store(holder.cell.relaxedHolder, ordering: .relaxed) }
      let withProbe = newestVersion(holder)
      holder.value = nil
      #expect(newestVersion(holder).identity == withProbe.identity)
      // Released (exactly when the overwrite let go of it), with the cell unlocked by then.
      #expect(holderAtRelease.load(ordering: .relaxed) == 0)
    }

    /// A version that something besides its cell still holds (as a transaction that committed
    /// it holds it in its log until the log is emptied) is never overwritten.
    @Test func aVersionHeldElsewhereIsNotOverwritten() {
      let cell = TVar(5)
      let held = cell.cell.head.load(ordering: .acquiring).takeUnretainedValue() as! _Version<Int>
      cell.value = 6
      #expect(held.value == 5)
      #expect(newestVersion(cell).identity != ObjectIdentifier(held))
      #expect(cell.value == 6)
    }

    /// ... but a snapshot taken before the writes keeps the version it reads, and reads it.
    @Test func aWriteKeepsTheVersionAnOlderSnapshotReads() {
      let cell = TVar(0)
      let other = TVar(0)
      cell.value = 10
      let seen = LockedBox<Int?>(nil)
      whileASnapshotIsPinned(reading: other, thenInside: { seen.value = cell.value }) {
        cell.value = 11
        atomically { _ in cell.value = 12 }
        #expect(historyLength(cell) == 3)
      }
      #expect(seen.value == 10)
      #expect(cell.value == 12)
    }

    @Test func cellsAndVersionsAreFreedAfterManyTransactions() {
      let keep = (0..<4).map { TVar($0) }
      // Threads of earlier tests release their closures (and the cells they captured) a little
      // after they finish; start counting once that has settled. This thread's cache of
      // reusable versions is emptied before each count, and the reclamation list, which keeps
      // its cells alive until their history goes, drained.
      drainReclamationList()
      _ThreadContext.current.versionCache.removeAll()
      var versionsBefore = _LiveCounters.versions.load(ordering: .relaxed)
      var cellsBefore = _LiveCounters.cells.load(ordering: .relaxed)
      while true {
        usleep(20_000)
        let versions = _LiveCounters.versions.load(ordering: .relaxed)
        let cells = _LiveCounters.cells.load(ordering: .relaxed)
        if versions == versionsBefore && cells == cellsBefore { break }
        (versionsBefore, cellsBefore) = (versions, cells)
      }
      let temporaries = WeakCells()
      for step in 0..<TestScale.scaled(100_000) {
        let temporary = TVar(step)
        temporaries.track(temporary.cell)
        atomically { _ in
          temporary.value += keep[step % 4].value
          keep[step % 4].value = temporary.value % 1000
          keep[(step + 1) % 4].commute { $0 &+ 1 }
        }
      }
      drainReclamationList()
      #expect(temporaries.liveCount == 0)
      #expect(_LiveCounters.cells.load(ordering: .relaxed) == cellsBefore)
      // Each kept cell holds a short history; nothing else may survive.
      _ThreadContext.current.versionCache.removeAll()
      let extraVersions = _LiveCounters.versions.load(ordering: .relaxed) - versionsBefore
      #expect(extraVersions <= 4 * 6)
      #expect(keep.allSatisfy { historyLength($0) <= 6 })
    }

    /// Found in review: versions written while a long reader pinned them must go once it ends,
    /// even if their cell is never written again.
    @Test func historyPinnedByALongReaderIsReclaimedAfterIt() {
      let pinned = TVar(0)
      let other = TVar(0)
      whileASnapshotIsPinned(reading: other) {
        for step in 1...1_000 { atomically { _ in pinned.value = step } }
        #expect(historyLength(pinned) > 100)
      }
      // Later commits on other cells give the reclaimer its turns.
      for _ in 0..<(4 * _HistoryReclaimer.interval) { atomically { _ in other.value += 1 } }
      #expect(historyLength(pinned) == 1)
      #expect(historyLength(other) <= 5)
    }

    /// Found in profiling queue-mpmc: while an old snapshot held the horizon back, every commit
    /// to a hot cell walked its whole history looking for a cut, so n commits cost O(n²) steps.
    @Test func commitsWhileTheHorizonIsPinnedDoNotRewalkTheHistory() {
      let hot = TVar(0)
      let other = TVar(0)
      let commits = 5_000
      let stepsBefore = _TestHooks.historyStepsWalked.load(ordering: .relaxed)
      whileASnapshotIsPinned(reading: other) {
        for step in 1...commits { atomically { _ in hot.value = step } }
        #expect(historyLength(hot) > commits / 2)
      }
      let steps = _TestHooks.historyStepsWalked.load(ordering: .relaxed) - stepsBefore
      // A few steps per commit, and an occasional full walk when the horizon moves; rewalking
      // the history on every commit would be about commits² / 2 = 12,500,000.
      #expect(steps < 20 * commits)
      for _ in 0..<(4 * _HistoryReclaimer.interval) { atomically { _ in other.value += 1 } }
      #expect(historyLength(hot) <= 2)
    }

    @Test func droppedVersionsDoNotKeepObjectsAlive() {
      let cell = TVar<Tracked?>(nil)
      let other = TVar(0)
      let before = Tracked.live.load(ordering: .relaxed)
      // A reader pins the history, so that the versions holding objects are dropped together
      // later, with no write left to reuse (and so release) them.
      whileASnapshotIsPinned(reading: other) {
        for _ in 0..<6 { cell.value = Tracked() }
        cell.value = nil
      }
      for _ in 0..<(4 * _HistoryReclaimer.interval) { atomically { _ in other.value += 1 } }
      #expect(historyLength(cell) == 1)
      #expect(Tracked.live.load(ordering: .relaxed) == before)
    }

    @Test func retryWaitersAreRemovedAfterWaking() {
      let flag = TVar(false)
      let retried = Gate()
      let done = startThread {
        try! atomically { tx in
          if !flag.value {
            tx.afterAbort { retried.open() }
            try tx.retry()
          }
        }
      }
      retried.wait()
      flag.value = true
      done.wait()
      #expect(_Engine.shared.retryWaiters.pendingEntries == 0)
    }
  }
}

/// Weak references to cells, to check that every one of them was freed.
private final class WeakCells {
  private struct Reference { weak var cell: STMCore._Cell? }
  private var references: [Reference] = []
  func track(_ cell: STMCore._Cell) { references.append(Reference(cell: cell)) }
  var liveCount: Int { references.count { $0.cell != nil } }
}

/// An object that counts its live instances.
private final class Tracked: Sendable {
  static let live = Atomic<Int>(0)
  init() { Self.live.add(1, ordering: .relaxed) }
  deinit { Self.live.subtract(1, ordering: .relaxed) }
}

/// Runs `onDeinit` when released.
private final class ReleaseProbe: Sendable {
  let onDeinit: @Sendable () -> Void
  init(_ onDeinit: @escaping @Sendable () -> Void) { self.onDeinit = onDeinit }
  deinit { onDeinit() }
}
