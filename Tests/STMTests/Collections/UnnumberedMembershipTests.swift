import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

private var clockNow: UInt64 { _Engine.shared.clock.load(ordering: .acquiring) }
private var lastPosition: _SerialPosition { _ThreadContext.current.lastCommit }

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
      let reader = startThread {
        seen.value = atomically { _ in [dictionary.count, dictionary[3], dictionary.keys.count] }
      }
      let readEarly = reader.wait(timeout: .now() + 0.3) == .success
      #expect(!readEarly, "a reader read the count or the key while the insert was writing them")
      pause.release.open()
      inserting.wait()
      reader.wait()
      #expect(seen.value == [3, 30, 3])
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
      _Engine.shared.reclaimer.runHousekeeping()
      #expect(replacedTablesKept(by: dictionary) == 0)
      #expect(dictionary.count == 4_096 && dictionary[4_095] == 4_095)
    }
  }
}
