import Foundation
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

/// The newest version of `variable`'s cell: which object it is, and its stamp.
private func newest<Value>(_ variable: TVar<Value>) -> (identity: ObjectIdentifier, stamp: UInt64) {
  let version = variable.cell.head.load(ordering: .acquiring).takeUnretainedValue()
  return (ObjectIdentifier(version), version.stamp)
}

/// The engine's clock.
var clockNow: UInt64 { _Engine.shared.clock.load(ordering: .acquiring) }
/// Where the calling thread's last operation stands in the serial order.
var lastPosition: _SerialPosition { _ThreadContext.current.lastCommit }
/// Whether any segment announces a running snapshot.
var anySnapshotAnnounced: Bool {
  _Engine.shared.segments.contains { $0.announcedSnapshot.load(ordering: .acquiring) < _SnapshotSlot.withdrawn }
}

/// Holds an update on one thread just after it chose to overwrite without a commit number, its
/// locks taken and its place chosen, until `release` opens; `chosen` opens when it gets there.
final class UnnumberedOverwritePause: Sendable {
  let chosen = Gate(), release = Gate()
  private let heldThread = Atomic<UInt>(0)

  init() {
    _TestHooks.afterChoosingUnnumberedOverwrite.withLock { hook in
      hook = { [self] in
        guard UInt(pthread_self()) == heldThread.load(ordering: .acquiring) else { return }
        chosen.open()
        release.wait()
      }
    }
  }

  /// Makes the calling thread's next update without a number the one held.
  func holdTheCallingThread() { heldThread.store(UInt(pthread_self()), ordering: .releasing) }

  /// Takes the hook away; call before the test ends.
  func remove() { _TestHooks.afterChoosingUnnumberedOverwrite.withLock { $0 = nil } }
}

extension LibraryTests {
  /// A drop-in update of one cell that no snapshot can see overwrites the cell's only version
  /// without taking a commit number, so that updates of disjoint cells from several threads do
  /// not all write the clock (see `_Engine.unnumberedOverwritePosition(for:)`). These tests
  /// pin down when it may, what readers and waiters see, and where it stands in the order;
  /// the replay oracles (`ConcurrencyOracleTests`) check the order under load.
  @Suite struct UnnumberedOverwriteTests {
    /// After a snapshot taken at the clock's present value, the next update takes a number
    /// (that snapshot did not see it, so it must stand above it); the updates after it, with
    /// no snapshot in between, keep the stamp and the clock, and count themselves in the
    /// version instead.
    @Test func updatesAfterNoSnapshotKeepTheStampAndTheClock() {
      let variable = TVar(0)
      _ = variable.value
      variable.value = 1
      let numbered = newest(variable)
      #expect(numbered.stamp == clockNow)
      #expect(lastPosition == _SerialPosition(number: numbered.stamp, isReadOnly: false))

      variable.value += 1
      #expect(lastPosition == _SerialPosition(number: numbered.stamp, isReadOnly: false, overwrite: 1))
      variable.commute { $0 + 1 }
      #expect(lastPosition == _SerialPosition(number: numbered.stamp, isReadOnly: false, overwrite: 2))
      #expect(newest(variable) == numbered, "the version was replaced or restamped")
      #expect(clockNow == numbered.stamp, "the clock moved")

      #expect(variable.value == 3)
      variable.value += 1
      let renumbered = newest(variable)
      #expect(renumbered.identity == numbered.identity && renumbered.stamp > numbered.stamp)
      #expect(lastPosition == _SerialPosition(number: renumbered.stamp, isReadOnly: false))
      #expect(variable.value == 4 && historyLength(variable) == 1)
    }

    /// A snapshot that is still announced, even one older than the clock, makes the update
    /// take a number, and then (as it reads below that number) keep its version: it goes on
    /// seeing what it saw.
    @Test func aRunningOlderSnapshotKeepsItsValue() {
      let variable = TVar(0), other = TVar(0)
      let read = Gate(), updated = Gate()
      let seen = LockedBox<[Int]>([])
      let reader = startThread {
        atomically { _ in
          seen.value.append(variable.value)
          read.open()
          updated.wait()
          seen.value.append(variable.value)
        }
      }
      read.wait()
      // Moves the clock past the reader's snapshot, so that only its announcement stops an
      // unnumbered overwrite.
      other.value = 1
      _ = other.value
      other.value = 2
      variable.value += 5
      #expect(lastPosition.overwrite == 0, "the update overwrote without a number under a running snapshot")
      updated.open()
      reader.wait()
      #expect(seen.value == [0, 0])
      #expect(variable.value == 5)
    }

    /// A version recycled from the thread's cache (as trimming drops them) counts its updates
    /// without a number from the start again once a commit publishes it.
    @Test func aRecycledVersionCountsItsOverwritesAfresh() {
      // Made in a function of its own, so that nothing here keeps a reference to it (the
      // update below overwrites only a version that its cell alone holds).
      func offerUsedVersion() -> ObjectIdentifier {
        let earlier = _Version<Int>(0)
        earlier.overwrites = 7
        _ThreadContext.current.versionCache.offer(Unmanaged.passRetained(earlier))
        return ObjectIdentifier(earlier)
      }
      let earlierIdentity = offerUsedVersion()
      let variable = TVar(0), other = TVar(0)
      atomically { _ in variable.value = 1 }
      #expect(newest(variable).identity == earlierIdentity, "the commit did not reuse the cached version")
      // Leaves the published version alone in its cell (the one it replaced goes), then moves
      // the clock past the snapshots that took.
      drainReclamationList()
      other.value = 1
      #expect(historyLength(variable) == 1)
      variable.value += 1
      #expect(lastPosition.overwrite == 1)
    }

    /// A reader that meets the cell while the update writes it waits for the update, then
    /// reads the new value (at the old stamp, which its snapshot covers).
    @Test func aReaderArrivingDuringTheOverwriteWaitsForIt() {
      let variable = TVar(0)
      _ = variable.value
      variable.value = 1
      let pause = UnnumberedOverwritePause()
      defer { pause.remove() }
      let position = LockedBox<_SerialPosition?>(nil)
      let updating = startThread {
        pause.holdTheCallingThread()
        variable.value += 1
        position.value = lastPosition
      }
      #expect(pause.chosen.wait(timeout: 10), "the update did not overwrite without a number")
      let seen = LockedBox<Int?>(nil)
      let reader = startThread { seen.value = variable.value }
      let readEarly = reader.wait(timeout: .now() + 0.3) == .success
      #expect(!readEarly, "a reader read the cell while the update was writing it")
      pause.release.open()
      updating.wait()
      reader.wait()
      #expect(seen.value == 2)
      #expect(position.value?.overwrite == 1)
    }

    /// An update that depends on another cell's value (a queue's dequeue peeks at the first
    /// link) takes a number when an update without one wrote that value: two updates without
    /// numbers at one clock value are ordered only if they are of one cell. A value that a
    /// numbered commit wrote needs nothing.
    @Test func anUpdateThatPeekedAtAnUnnumberedWriteTakesANumber() {
      let peeked = TVar(0), updated = TVar(0)
      _ = peeked.value
      peeked.value = 1
      peeked.value += 1
      #expect(lastPosition.overwrite == 1, "the setup did not overwrite without a number")
      let clockBefore = clockNow

      func updateFromPeek() -> Int? {
        guard let update = updated._beginInPlaceUpdate() else { return nil }
        let seen = peeked._peekNewest(during: update)
        updated._endInPlaceUpdate(update, publishing: (seen ?? -1) * 10)
        return seen
      }
      #expect(updateFromPeek() == 2)
      #expect(lastPosition.overwrite == 0 && lastPosition.number > clockBefore, "it went without a number: \(lastPosition)")

      _ = peeked.value
      peeked.value = 3
      #expect(lastPosition.overwrite == 0)
      #expect(updateFromPeek() == 3)
      #expect(lastPosition.overwrite > 0, "a peek at a numbered value still forced a number")
      #expect(updated.value == 30)
    }

    /// While the conflict log records, an update that could overwrite without a number takes
    /// one: the log names each writer by its commit. (The quick road is closed meanwhile; this
    /// is the general road's decision.)
    @Test func whileTheConflictLogRecordsAnUpdateTakesANumber() throws {
      let variable = TVar(0)
      _ = variable.value
      variable.value = 1
      variable.value += 1
      // Just before, the same update of the same cell went without a number.
      #expect(lastPosition.overwrite > 0, "the setup did not overwrite without a number")
      try ConflictLog.start()
      let clockBefore = clockNow
      variable.value += 1
      let recorded = lastPosition
      _ = ConflictLog.stop()
      #expect(recorded.overwrite == 0 && recorded.number > clockBefore, "it went without a number: \(recorded)")
      #expect(variable.value == 3)
    }

    /// Values that hold objects take the road too, mutated in place by the caller's code while
    /// the cell is held (`TVar`'s `_modify`): writers appending to one array while readers
    /// take snapshots of it see every writer's elements in order, never a half-made array.
    @Test func arrayAppendsBesideSnapshotReadersStayConsistent() {
      let list = TVar<[Int]>([])
      let writers = 3, perWriter = TestScale.scaled(2_000)
      let unnumbered = Atomic<Int>(0)
      let problems = LockedBox<[String]>([])

      @Sendable func check(_ values: [Int]) -> String? {
        var next = [Int](repeating: 0, count: writers)
        for value in values {
          let (writer, index) = value.quotientAndRemainder(dividingBy: 1_000_000)
          guard writer < writers, index == next[writer] else { return "out of order at \(value) in \(values.count)" }
          next[writer] += 1
        }
        return nil
      }

      runThreads(writers + 2) { thread in
        if thread < writers {
          for index in 0..<perWriter {
            list.value.append(thread * 1_000_000 + index)
            if _ThreadContext.current.lastCommit.overwrite > 0 { unnumbered.add(1, ordering: .relaxed) }
          }
        } else {
          var lastCount = 0
          for _ in 0..<perWriter / 4 {
            let seen = list.value
            if let problem = check(seen) { problems.value.append(problem) }
            if seen.count < lastCount { problems.value.append("shrank from \(lastCount) to \(seen.count)") }
            lastCount = seen.count
            // A snapshot at the clock's value makes the next append take a number; pausing
            // between reads leaves the appends after it room to go without one.
            usleep(100)
          }
        }
      }
      #expect(problems.value.isEmpty, "\(problems.value.prefix(3))")
      let final = list.value
      #expect(final.count == writers * perWriter && check(final) == nil)
      #expect(unnumbered.load(ordering: .relaxed) > 0, "no append went without a number")
    }

    /// The update wakes a transaction waiting in `retry()` for the cell, though it changes no
    /// stamp: the waiter registered before it withdrew its snapshot, and the update, finding
    /// no snapshot, comes after that.
    @Test func anUpdateWakesATransactionWaitingForTheCell() {
      let variable = TVar(0), other = TVar(0)
      let seen = LockedBox(0)
      let waiter = startThread {
        seen.value = try! atomically { transaction in
          guard variable.value > 0 else { try transaction.retry() }
          return variable.value
        }
      }
      // Registered, and then (a moment later) the snapshot withdrawn: an update made in
      // between would take a number.
      #expect(waitForWaiters(on: [variable.cell]), "the transaction never waited for the cell")
      let deadline = Date().addingTimeInterval(10)
      while anySnapshotAnnounced && Date() < deadline { usleep(1_000) }
      // The waiter's snapshot was taken at the clock's present value; move it on.
      other.value = 1
      variable.value += 1
      #expect(lastPosition.overwrite == 1, "the update did not overwrite without a number")
      let woke = waiter.wait(timeout: .now() + 5) == .success
      #expect(woke, "the waiting transaction was not woken by the update")
      if !woke {
        // Let the thread go, so that the test run can end.
        _Engine.shared.retryWaiters.wakeWaiters(of: variable.cell)
        _ = waiter.wait(timeout: .now() + 5)
      }
      #expect(seen.value == 1)
    }
  }
}
