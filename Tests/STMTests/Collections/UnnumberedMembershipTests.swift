import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

/// How many replaced tables the stripes of `dictionary`'s index still keep.
private func replacedTablesKept(by dictionary: TDictionary<Int, Int>) -> Int {
  dictionary.storage.index.stripes.reduce(0) { kept, stripe in
    kept + stripe._withUnsafeGuaranteedRef { $0.state.withLock { $0.replacedTables.count } }
  }
}

extension LibraryTests {
  /// A drop-in insert or removal writes its key's cell and its segment's count cell together.
  /// When no snapshot can see them, it gives both their new values in place without a commit
  /// number, as an update of one cell does, so that threads inserting different keys do not
  /// all write the clock (see `_Engine.unnumberedOverwrite(of:commutingWith:by:)`).
  @Suite struct UnnumberedMembershipTests {
    /// Inserts and removals with no snapshot running keep the clock where it was (a removal's
    /// retirement of the cell moves it afterwards, as its own step).
    @Test func insertsAndRemovalsWithNoSnapshotTakeNoNumber() {
      let dictionary = TDictionary<Int, Int>()
      dictionary[0] = 0
      let clock = clockNow
      dictionary[1] = 10
      #expect(lastPosition.overwrite > 0, "the insert took a commit number")
      #expect(dictionary.updateValue(20, forKey: 2) == nil)
      #expect(lastPosition.overwrite > 0, "the insert took a commit number")
      #expect(clockNow == clock, "the inserts moved the clock")
      #expect(dictionary.removeValue(forKey: 1) == 10)
      #expect(lastPosition.overwrite > 0, "the removal took a commit number")
      #expect(dictionary.count == 2 && dictionary[1] == nil && dictionary[2] == 20)
      let set = TSet<Int>()
      set.insert(0)
      #expect(set.insert(1).inserted)
      #expect(lastPosition.overwrite > 0, "the set's insert took a commit number")
      #expect(set.count == 2)
    }

    /// A transaction that starts while an insert is writing without a number waits for it,
    /// then sees the new key and the count that includes it, never one without the other.
    @Test func aReaderArrivingDuringAnInsertSeesTheKeyAndTheCountTogether() {
      let dictionary = TDictionary<Int, Int>()
      dictionary[1] = 10
      dictionary[2] = 20
      let pause = UnnumberedOverwritePause()
      defer { pause.remove() }
      let inserting = startThread {
        pause.holdTheCallingThread()
        dictionary[3] = 30
      }
      #expect(pause.chosen.wait(timeout: 10), "the insert did not overwrite without a number")
      let seen = LockedBox<[Int?]>([])
      let readerStarted = Gate()
      let reader = startThread {
        readerStarted.open()
        seen.value = atomically { _ in [dictionary.count, dictionary[3], dictionary.keys.count] }
      }
      #expect(readerStarted.wait(timeout: 10))
      let readEarly = reader.wait(timeout: .now() + 0.3) == .success
      #expect(!readEarly, "a reader read the count or the key while the insert was writing them")
      pause.release.open()
      inserting.wait()
      reader.wait()
      #expect(seen.value == [3, 30, 3])
    }

    /// A transaction waiting (`retry`) for the dictionary to stop being empty, which reads only
    /// the count, is woken by an insert that takes no number: the insert wakes the count's
    /// waiters as well as its key's.
    @Test func aTransactionWaitingOnTheCountWakesForAnInsertWithoutANumber() {
      let dictionary = TDictionary<Int, Int>()
      let other = TVar(0)
      let seen = LockedBox(-1)
      let waiter = startThread {
        seen.value = try! atomically { transaction in
          guard !dictionary.isEmpty else { try transaction.retry() }
          return dictionary.count
        }
      }
      // Registered, and then (a moment later) the snapshot withdrawn: an insert made in
      // between would take a number.
      #expect(waitForWaiters(on: dictionary.storage.count.cells.map(\.cell)), "the transaction never waited for the count")
      let deadline = Date().addingTimeInterval(10)
      while anySnapshotAnnounced && Date() < deadline { usleep(1_000) }
      // The waiter's snapshot was taken at the clock's present value; move it on.
      other.value = 1
      dictionary[5] = 50
      #expect(lastPosition.overwrite > 0, "the insert took a commit number")
      let woke = waiter.wait(timeout: .now() + 5) == .success
      #expect(woke, "the transaction waiting on the count was not woken by the insert")
      if !woke {
        // Let the thread go, so that the test run can end.
        for cell in dictionary.storage.count.cells { _Engine.shared.retryWaiters.wakeWaiters(of: cell.cell) }
        _ = waiter.wait(timeout: .now() + 5)
      }
      #expect(seen.value == 1)
    }

    /// The count's version counts the changes it took without a number, as a key's does; the
    /// change that would make that count wrap takes a number instead (and starts it afresh).
    @Test func theCountTakesANumberBeforeItsOverwritesWrap() {
      let dictionary = TDictionary<Int, Int>()
      dictionary[0] = 0
      let countCell = dictionary.storage.count.cells[_ThreadContext.current.preferredSegment].cell
      countCell.head.load(ordering: .acquiring)._withUnsafeGuaranteedRef { $0.overwrites = .max - 1 }
      dictionary[1] = 1
      #expect(lastPosition.overwrite > 0, "one short of the limit, the insert took a number")
      let clock = clockNow
      dictionary[2] = 2
      #expect(lastPosition.overwrite == 0 && clockNow > clock, "at the limit, the insert took no number")
      dictionary[3] = 3
      #expect(lastPosition.overwrite > 0, "after a numbered change, the count's overwrites did not start afresh")
      #expect(dictionary.count == 4)
    }

    /// Two threads insert and remove their own keys outside transactions (most changes
    /// taking no number) while a third checks, in transactions, that the count always equals
    /// the keys it can enumerate.
    @Test func theCountMatchesTheKeysUnderDropInChurn() {
      let dictionary = TDictionary<Int, Int>()
      let keysPerThread = 97
      let unnumbered = Atomic<Int>(0), writersDone = Atomic<Int>(0)
      let mismatches = LockedBox<[String]>([])
      runThreads(3) { thread in
        guard thread < 2 else {
          while writersDone.load(ordering: .acquiring) < 2 {
            let (count, enumerated) = atomically { _ in (dictionary.count, dictionary.dictionary.count) }
            if count != enumerated { mismatches.value.append("count \(count), keys \(enumerated)") }
            // Gaps with no snapshot running, in which changes may go without a number.
            usleep(200)
          }
          return
        }
        for round in 0..<TestScale.scaled(20_000) {
          let key = thread * 1_000_000 + round % keysPerThread
          if round / keysPerThread % 2 == 0 { dictionary[key] = round } else { dictionary.removeValue(forKey: key) }
          if lastPosition.overwrite > 0 { unnumbered.add(1, ordering: .relaxed) }
        }
        writersDone.add(1, ordering: .releasing)
      }
      #expect(mismatches.value.isEmpty, "\(mismatches.value.prefix(3))")
      #expect(unnumbered.load(ordering: .relaxed) > 0, "no change went without a number")
      let present = (0..<2).flatMap { thread in (0..<keysPerThread).map { thread * 1_000_000 + $0 } }.filter { dictionary[$0] != nil }
      #expect(dictionary.count == present.count && dictionary.dictionary.count == present.count)
    }

    /// A table that grew is freed once no lookup can be searching it, even when no numbered
    /// commit follows: the growth moves the clock itself. (Left to the commits that followed,
    /// it would wait for good behind inserts and updates that take no number, and every
    /// housekeeping turn would try it again.)
    @Test func aReplacedTableIsFreedWhenOnlyUnnumberedUpdatesFollow() {
      let dictionary = TDictionary<Int, Int>()
      // Every stripe starts with 16 words and grows several times.
      for key in 0..<4_096 { dictionary[key] = key }
      #expect(lastPosition.overwrite > 0, "the last insert took a commit number")
      // A turn takes a batch of the stripes waiting; enough turns reach every stripe.
      let context = _ThreadState.current.pointee.context.takeUnretainedValue()
      for _ in 0..<64 where replacedTablesKept(by: dictionary) > 0 { _Engine.shared.reclaimer.runHousekeeping(by: context) }
      context.releaseLeftovers()
      #expect(replacedTablesKept(by: dictionary) == 0)
      #expect(dictionary.count == 4_096 && dictionary[4_095] == 4_095)
    }
  }
}
