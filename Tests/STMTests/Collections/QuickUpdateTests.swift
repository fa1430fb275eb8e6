import Dispatch
import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

/// Runs `update` on the calling thread and returns how many drop-in updates it began on the
/// quick road meanwhile: the tests below must know that road was taken. The road needs the
/// thread's own segment free, so a test runs its updates on a thread started just after the
/// test's other one: threads take the segments in turn, so the two prefer different ones (a
/// test thread that happened to prefer the other's segment found it busy under Thread
/// Sanitizer, and took the general road).
private func quickUpdatesBegun(by update: () -> Void) -> Int {
  let before = _ThreadContext.current.quickUpdatesBegun
  update()
  return _ThreadContext.current.quickUpdatesBegun - before
}

/// A key whose `==` (the caller's code) waits, once, on the thread armed for it: it opens
/// `reached` and goes on when `resume` lets it.
private struct KeyWaitingInItsEquality: Hashable, Sendable {
  static let armedThread = Atomic<UInt>(0)
  static let reached = Gate(), resume = Gate()

  let id: Int

  func hash(into hasher: inout Hasher) { hasher.combine(id) }

  /// On the armed thread, once: says it is running, and waits to be let go.
  static func == (lhs: Self, rhs: Self) -> Bool {
    if armedThread.compareExchange(expected: UInt(pthread_self()), desired: 0, ordering: .acquiringAndReleasing).exchanged {
      reached.open()
      resume.wait()
    }
    return lhs.id == rhs.id
  }
}

/// A key whose `==` is its own code, not the standard library's (see
/// `_KeyHash.hasLibraryEquality(of:)`).
private struct KeyOfItsOwn: Hashable, Sendable {
  let id: Int
}

/// A transaction becomes inevitable and reads `key` twice, with a drop-in update of the key
/// started in between: the update must take the quick road, and land only after the
/// transaction ends.
private func expectAnUpdateToWaitForTheInevitableTransaction<Key: Hashable & Sendable>(key: Key) {
  let counts: TDictionary<Key, Int> = [key: 0]
  let inevitable = Gate(), finish = Gate()
  let seenInside = LockedBox<[Int?]>([])
  let holder = startThread {
    try! atomically { transaction in
      try transaction.becomeInevitable()
      seenInside.value.append(counts[key])
      inevitable.open()
      finish.wait()
      seenInside.value.append(counts[key])
    }
  }
  inevitable.wait()
  let begun = LockedBox(0)
  let updating = Gate()
  let updater = startThread {
    updating.open()
    begun.value = quickUpdatesBegun { counts[key, default: 0] += 1 }
  }
  updating.wait()
  let landedEarly = updater.wait(timeout: .now() + 0.3) == .success
  finish.open()
  holder.wait()
  updater.wait()
  #expect(begun.value == 1, "the update did not start on the quick road")
  #expect(!landedEarly, "a drop-in update committed while another transaction was inevitable")
  #expect(seenInside.value == [0, 0])
  #expect(counts[key] == 1)
}

/// After a test found an update and an inevitable transaction waiting for each other: takes
/// every quick update's mark off, so that both can finish and the test run can end. A
/// compare-and-swap from the marked word, so that a segment whose update ended meanwhile (it
/// was only slow) is left as it is.
private func takeQuickMarksOffByHand() {
  for segment in _Engine.shared.segments {
    let word = segment.occupancy.load(ordering: .acquiring)
    guard _SegmentOccupancy.isQuickUpdate(word) else { continue }
    _ = segment.occupancy.compareExchange(
      expected: word, desired: _SegmentOccupancy.announcedLookup(word), ordering: .sequentiallyConsistent)
  }
}

#if DEBUG
/// Holds an update outside a transaction on one thread at its first lock
/// (`_TestHooks.beforeInPlaceUpdateLocks`: its lookup done, nothing locked), until `resume`
/// opens; `reached` opens when it gets there. Only the first: an insert locks its key's cell
/// and then the count's.
private final class BeforeLockPause: Sendable {
  let reached = Gate(), resume = Gate()
  private let heldThread = Atomic<UInt>(0), paused = Atomic<Bool>(false)

  init() {
    _TestHooks.beforeInPlaceUpdateLocks.withLock { hook in
      hook = { [self] in
        guard UInt(pthread_self()) == heldThread.load(ordering: .acquiring),
          !paused.exchange(true, ordering: .relaxed)
        else { return }
        reached.open()
        resume.wait()
      }
    }
  }

  /// Makes the calling thread's next update the one held.
  func holdTheCallingThread() { heldThread.store(UInt(pthread_self()), ordering: .releasing) }

  /// Takes the hook away; call before the test ends.
  func remove() { _TestHooks.beforeInPlaceUpdateLocks.withLock { $0 = nil } }
}
#endif

extension LibraryTests {
  /// `dict[key, default: 0] += 1` on a present key outside `atomically` takes a quick road
  /// (`_QuickUpdate`). It must keep every rule of the general one: these are the cases where
  /// it must step aside, or where a shortcut would be tempting.
  @Suite struct QuickUpdateTests {
    /// While another transaction is inevitable, no commit may land; the quick road takes the
    /// general road (which waits) when it finds the token held: for a key whose `==` is the
    /// standard library's, right after it takes its segment, for another key when it enters
    /// its commit after the lookup. The updater is a new thread, whose first update must be
    /// able to take the quick road (a new thread's preferred segment lay beyond the pool, and
    /// the test passed on a quick road that ignored the token; found by review).
    @Test(arguments: [true, false]) func anUpdateOfAPresentKeyWaitsForTheInevitableTransaction(libraryKeys: Bool) {
      if libraryKeys {
        expectAnUpdateToWaitForTheInevitableTransaction(key: 1)
      } else {
        expectAnUpdateToWaitForTheInevitableTransaction(key: KeyOfItsOwn(id: 1))
      }
    }

    /// From its lookup on, a quick update of a key whose `==` is the standard library's is a
    /// commit in flight: its segment's occupancy word says so (it checked the inevitable token
    /// when it took that word, and no longer checks it when it locks), so a transaction that
    /// takes the token meanwhile waits for the update before it becomes inevitable, and then
    /// reads what the update wrote.
    @Test func aTransactionBecomingInevitableWaitsForAnUpdatePastItsLookup() {
      #if DEBUG
      let counts: TDictionary<Int, Int> = [1: 0]
      let pause = BeforeLockPause()
      defer { pause.remove() }
      let begun = LockedBox(0)
      let updater = startThread {
        pause.holdTheCallingThread()
        begun.value = quickUpdatesBegun { counts[1, default: 0] += 1 }
      }
      #expect(pause.reached.wait(timeout: 10), "the update did not reach its lock")
      let seen = LockedBox<Int?>(nil)
      let inevitable = startThread {
        try! atomically { transaction in
          try transaction.becomeInevitable()
          seen.value = counts[1]
        }
      }
      let becameEarly = inevitable.wait(timeout: .now() + 0.3) == .success
      pause.resume.open()
      updater.wait()
      inevitable.wait()
      #expect(begun.value == 1, "the update did not start on the quick road")
      #expect(!becameEarly, "a transaction became inevitable while a drop-in update past its lookup could still commit")
      #expect(seen.value == 1)
      #expect(counts[1] == 1)
      #endif
    }

    /// A key's own `==` runs before the quick road counts as a commit in flight: it is the
    /// caller's code, which may wait for anything (a lock of the caller's, a thread that is in
    /// an inevitable transaction), and a transaction becoming inevitable must not wait for it
    /// meanwhile (found by review: marked from the lookup for every key, a key's `==` that
    /// waited for an inevitable transaction and that transaction waited for each other for
    /// good). Only keys whose `==` is the standard library's are marked from their lookup. (A
    /// key's `==` may not use transactional data itself: that traps, see `KeyCodeMisuseTests`.)
    @Test func aTransactionBecomesInevitableWhileAKeysOwnEqualityRuns() {
      typealias Key = KeyWaitingInItsEquality
      let counts: TDictionary<Key, Int> = [Key(id: 1): 0]
      let witness = TVar(0)
      let begun = LockedBox(0)
      let updater = startThread {
        Key.armedThread.store(UInt(pthread_self()), ordering: .releasing)
        begun.value = quickUpdatesBegun { counts[Key(id: 1), default: 0] += 1 }
      }
      #expect(Key.reached.wait(timeout: 10), "the key's == did not run")
      let inevitable = startThread {
        try! atomically { transaction in
          try transaction.becomeInevitable()
          witness.value += 1
        }
      }
      let finished = inevitable.wait(timeout: .now() + 5) == .success
      #expect(finished, "the inevitable transaction waited for an update still in its key's ==")
      Key.resume.open()
      updater.wait()
      inevitable.wait()
      #expect(begun.value == 1, "the update did not start on the quick road")
      #expect(counts[Key(id: 1)] == 1)
      #expect(witness.value == 1)
    }

    /// An insert hands the quick road's segment to the general road without the quick mark:
    /// the general road waits for an inevitable transaction when it enters its commit, so a
    /// mark left on would make that transaction wait for it in turn, for good.
    @Test func anInsertHandedToTheGeneralRoadDoesNotHoldUpAnInevitableTransaction() {
      #if DEBUG
      let counts: TDictionary<Int, Int> = [1: 0]
      let pause = BeforeLockPause()
      defer { pause.remove() }
      let begun = LockedBox(0)
      let inserter = startThread {
        pause.holdTheCallingThread()
        // A store: `dict[key, default:]` ends the handed-over pass to compute its default.
        begun.value = quickUpdatesBegun { counts[2] = 1 }
      }
      #expect(pause.reached.wait(timeout: 10), "the insert did not reach its lock")
      let inevitable = startThread {
        try! atomically { transaction in
          try transaction.becomeInevitable()
          counts[3] = 3
        }
      }
      let finished = inevitable.wait(timeout: .now() + 5) == .success
      #expect(finished, "an inevitable transaction waited for an insert that had left the quick road")
      if !finished {
        takeQuickMarksOffByHand()
        inevitable.wait()
      }
      pause.resume.open()
      inserter.wait()
      #expect(begun.value == 1, "the insert did not start on the quick road")
      #expect(Dictionary(uniqueKeysWithValues: counts.map { ($0.key, $0.value) }) == [1: 0, 2: 1, 3: 3])
      #endif
    }

    /// A quick update shows `numbering` from before it locks (so that overwriting without a
    /// number needs no fence of its own): a reader that meets the lock while the update
    /// overwrites the value waits for it, then reads the new value at the old stamp.
    @Test func aReaderArrivingDuringAnOverwriteWaitsForIt() {
      let counts: TDictionary<Int, Int> = [1: 0]
      // A read at the clock's present value makes the next update take a number; the one
      // after it may then go without.
      _ = counts[1]
      counts[1, default: 0] += 1
      let pause = UnnumberedOverwritePause()
      defer { pause.remove() }
      let begun = LockedBox(0)
      let updating = startThread {
        pause.holdTheCallingThread()
        begun.value = quickUpdatesBegun { counts[1, default: 0] += 1 }
      }
      #expect(pause.chosen.wait(timeout: 10), "the update did not overwrite without a number")
      let seen = LockedBox<Int?>(nil)
      let reader = startThread { seen.value = counts[1] }
      let readEarly = reader.wait(timeout: .now() + 0.3) == .success
      pause.release.open()
      updating.wait()
      reader.wait()
      #expect(begun.value == 1, "the update did not start on the quick road")
      #expect(!readEarly, "a reader read the value while the update was overwriting it")
      #expect(seen.value == 2)
    }

    /// The update publishes like any commit: a transaction waiting in `retry()` for the key
    /// wakes up.
    @Test func anUpdateOfAPresentKeyWakesATransactionWaitingForIt() {
      let counts: TDictionary<Int, Int> = [1: 0]
      let seen = LockedBox(0)
      let waiter = startThread {
        seen.value = try! atomically { transaction in
          guard let value = counts[1], value > 0 else { try transaction.retry() }
          return value
        }
      }
      let cell = counts.storage.index.find(1, hash: counts.storage.index.hash(of: 1))!.takeUnretainedValue()
      #expect(waitForWaiters(on: [cell]), "the transaction never waited for the key")
      let begun = LockedBox(0)
      startThread { begun.value = quickUpdatesBegun { counts[1, default: 0] += 1 } }.wait()
      #expect(begun.value == 1, "the update did not start on the quick road")
      let woke = waiter.wait(timeout: .now() + 5) == .success
      #expect(woke, "the waiting transaction was not woken by the update")
      if !woke, let cell = counts.storage.index.find(1, hash: counts.storage.index.hash(of: 1))?.takeUnretainedValue() {
        // Let the thread go, so that the test run can end.
        _Engine.shared.retryWaiters.wakeWaiters(of: cell)
        _ = waiter.wait(timeout: .now() + 5)
      }
      #expect(seen.value == 1)
    }

    /// A snapshot that saw the key's value keeps seeing it: the update may write into the
    /// newest version only when no snapshot can see that version.
    @Test func aRunningSnapshotKeepsTheValueItSaw() {
      let counts: TDictionary<Int, Int> = [1: 0]
      let read = Gate(), updated = Gate()
      let seen = LockedBox<[Int?]>([])
      let reader = startThread {
        atomically { _ in
          seen.value.append(counts[1])
          read.open()
          updated.wait()
          seen.value.append(counts[1])
        }
      }
      read.wait()
      let begun = LockedBox(0)
      startThread { begun.value = quickUpdatesBegun { for _ in 0..<3 { counts[1, default: 0] += 1 } } }.wait()
      #expect(begun.value == 3, "the updates did not start on the quick road")
      updated.open()
      reader.wait()
      #expect(seen.value == [0, 0])
      #expect(counts[1] == 3)
    }

    /// `dict[key] = value` and `updateValue(_:forKey:)` of a present key take the quick road
    /// too, and give what `Dictionary` gives; an insert (the count changes) and a store of nil
    /// (a removal) step aside to the general road, with the count in step.
    @Test func storesOfAPresentKeyTakeTheQuickRoad() {
      let dict: TDictionary<Int, Int> = [1: 10, 2: 20]
      var mirror: [Int: Int] = [1: 10, 2: 20]
      #expect(quickUpdatesBegun { dict[1] = 11 } == 1, "the store did not start on the quick road")
      mirror[1] = 11
      let replaced = LockedBox<Int?>(nil)
      #expect(quickUpdatesBegun { replaced.value = dict.updateValue(12, forKey: 1) } == 1)
      #expect(replaced.value == mirror.updateValue(12, forKey: 1))
      #expect(dict.updateValue(30, forKey: 3) == mirror.updateValue(30, forKey: 3))
      dict[4] = 40
      mirror[4] = 40
      #expect(dict.count == 4)
      dict[2] = nil
      mirror[2] = nil
      #expect(dict.count == 3)
      dict[2] = 21
      mirror[2] = 21
      #expect(dict.count == 4)
      #expect(Dictionary(uniqueKeysWithValues: dict.map { ($0.key, $0.value) }) == mirror)
    }

    /// An insert of a key the index has no cell for begins on the quick road, whose lookup
    /// finds nothing, and the general road goes on from the segment and the announcement the
    /// quick road took, instead of taking its own (two fenced instructions more per insert).
    /// The inserts and the count are what `Dictionary` gives.
    @Test func anInsertContinuesFromTheQuickRoadsSegment() {
      let dict: TDictionary<Int, Int> = [1: 10]
      var mirror: [Int: Int] = [1: 10]
      let begun = LockedBox<(quick: Int, single: Int)>((0, 0))
      startThread {
        let context = _ThreadContext.current
        let (quickBefore, singleBefore) = (context.quickUpdatesBegun, context.singleOperationsBegun)
        dict[2] = 20
        dict[3, default: 30] += 1
        begun.value = (context.quickUpdatesBegun - quickBefore, context.singleOperationsBegun - singleBefore)
      }.wait()
      mirror[2] = 20
      mirror[3, default: 30] += 1
      #expect(begun.value.quick == 2, "the inserts did not begin on the quick road")
      // The default's insert ends its first pass, computes the default with nothing held, and
      // begins a second one of its own: one single operation, not two or three.
      #expect(begun.value.single == 1, "the general road began anew instead of continuing: \(begun.value.single)")
      #expect(dict.count == 3)
      #expect(Dictionary(uniqueKeysWithValues: dict.map { ($0.key, $0.value) }) == mirror)
    }

    /// `lock` decides whether the update may overwrite without a commit number (the segment's
    /// `unnumberedPosition`), before the caller's mutation; the update's end takes the position
    /// back, and so does a cancel when the key turns out absent, so that the segment's next
    /// update, which may take a number, does not end as an overwrite without one.
    @Test func aQuickUpdateDecidesItsOverwriteAtTheLockAndTakesItBackWhenCancelled() {
      let dict: TDictionary<Int, Int> = [1: 10]
      atomically { _ in #expect(dict[2] == nil) }  // leaves key 2 an empty cell
      let outcomes = LockedBox<[String]>([])
      startThread {
        // The insert's version has the initial empty one below it until an update trims it:
        // after that, the newest version is the only one, and may be overwritten.
        dict[1, default: 0] += 1
        for key in [1, 2] {
          guard let quick = _QuickUpdate.begin(on: .current, markingTheLookup: true) else {
            outcomes.value.append("\(key): the quick road was closed")
            continue
          }
          guard let cell = dict.storage.index.find(key, hash: dict.storage.index.hash(of: key)) else {
            outcomes.value.append("\(key): no cell")
            quick.cancel(nil)
            continue
          }
          let found = cell._withUnsafeGuaranteedRef { quick.lock($0) }
          let decided = quick.segment._withUnsafeGuaranteedRef { $0.unnumberedPosition != nil }
          switch found {
          case .some(.some(let value)):
            cell._withUnsafeGuaranteedRef { quick.publish(Optional(value + 1), in: $0) }
          case .some(.none):
            cell._withUnsafeGuaranteedRef { quick.cancel($0) }
          case .none:
            quick.cancel(nil)
          }
          let left = quick.segment._withUnsafeGuaranteedRef { $0.unnumberedPosition != nil }
          outcomes.value.append("\(key): found \(String(describing: found)), decided \(decided), left \(left)")
        }
      }.wait()
      #expect(
        outcomes.value == [
          "1: found Optional(Optional(11)), decided true, left false",
          "2: found Optional(nil), decided true, left false",
        ])
      #expect(dict[1] == 12)
      #expect(dict[2] == nil)
      #expect(dict.count == 1)
      // The segment's next updates end as they must: one that takes a number while a snapshot
      // runs, and inserts.
      let read = Gate(), updated = Gate()
      let reader = startThread {
        atomically { _ in
          _ = dict[1]
          read.open()
          updated.wait()
        }
      }
      read.wait()
      startThread {
        dict[1, default: 0] += 1
        dict[2, default: 20] += 1
      }.wait()
      updated.open()
      reader.wait()
      #expect(Dictionary(uniqueKeysWithValues: dict.map { ($0.key, $0.value) }) == [1: 13, 2: 21])
    }

    /// An absent key (with no cell, or with the empty cell a transaction's read of it left), a
    /// key removed before, and a present key all give what `Dictionary` gives, with the count
    /// in step.
    @Test func absentAndRemovedKeysTakeTheGeneralRoad() {
      let counts: TDictionary<String, Int> = ["a": 1]
      atomically { _ in #expect(counts["c"] == nil) }
      #expect(quickUpdatesBegun { counts["c", default: 20] += 1 } == 1, "the update did not start on the quick road")
      #expect(counts.count == 2)
      counts["b", default: 10] += 1
      #expect(counts.count == 3)
      #expect(counts.removeValue(forKey: "a") == 1)
      counts["a", default: 5] += 1
      counts["a", default: 5] += 1
      #expect(counts.count == 3)
      #expect(Dictionary(uniqueKeysWithValues: counts.map { ($0.key, $0.value) }) == ["a": 7, "b": 11, "c": 21])
    }
  }
}
