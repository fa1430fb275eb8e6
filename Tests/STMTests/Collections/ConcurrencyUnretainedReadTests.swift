import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// A transaction's read of a dictionary key lists the key's cell without retaining it (a
  /// retain wrote the cell's reference count, so two threads reading one key in transactions
  /// moved its cache line between them on every read). The index keeps the cell alive while
  /// the transaction's snapshot is announced instead, even when the index itself goes.
  @Suite struct ConcurrencyUnretainedReadTests {
    /// The cell that `dictionary`'s index holds for `key`; call it with a snapshot announced.
    private static func cell(of key: Int, in dictionary: TDictionary<Int, Int>) -> Unmanaged<_KeyedCell<Int, Int>> {
      let index = dictionary.storage.index
      return index.find(key, hash: index.hash(of: key))!
    }

    /// How many strong references `object` has.
    private static func references<Object: AnyObject>(to object: Unmanaged<Object>) -> UInt {
      _getRetainCount(object.takeUnretainedValue())
    }

    @Test func aTransactionsReadOfAKeyTakesNoReferenceToItsCell() {
      let dictionary: TDictionary<Int, Int> = [1: 10, 2: 20]
      atomically { _ in
        let first = Self.cell(of: 1, in: dictionary)
        let held = Self.references(to: first)
        #expect(dictionary[1] == 10)
        #expect(Self.references(to: first) == held)
        // Through the default subscript too, and in a transaction that also writes.
        let second = Self.cell(of: 2, in: dictionary)
        let secondHeld = Self.references(to: second)
        #expect(dictionary[2, default: 0] == 20)
        dictionary[3] = 30
        #expect(Self.references(to: second) == secondHeld)
      }
      // The check can see a read marker's reference: a plain variable's read takes one.
      let variable = TVar(5)
      let variableCell = Unmanaged.passUnretained(variable.cell)
      atomically { _ in
        withExtendedLifetime(variable) {
          let held = Self.references(to: variableCell)
          #expect(variable.value == 5)
          #expect(Self.references(to: variableCell) == held + 1)
        }
      }
    }

    /// A transaction reads keys of a dictionary that another thread then lets go of for good
    /// while the transaction still runs: the cells stay until the transaction has ended (its
    /// commit validates its reads, which touches them), and go at the next release turn.
    @Test func cellsOfAnIndexThatGoesWaitForTheTransactionsReadingThem() {
      final class Holder: @unchecked Sendable {
        let lock = NSLock()
        var dictionary: TDictionary<Int, Int>?
      }
      let holder = Holder()
      holder.dictionary = TDictionary(uniqueKeysWithValues: (0..<100).map { ($0, $0) })
      let other = TVar(0)
      let read = Gate(), dropped = Gate()
      let cells = LockedBox<[Unmanaged<_KeyedCell<Int, Int>>]>([])
      let reader = startThread {
        var attempts = 0
        let sum = atomically { _ -> Int in
          attempts += 1
          // Borrowed under the lock, so that this thread holds no reference to the
          // dictionary once the reads are done.
          let sum = holder.lock.withLock { () -> Int in
            guard let dictionary = holder.dictionary else { return -1 }
            if attempts == 1 { cells.value = (0..<100).map { Self.cell(of: $0, in: dictionary) } }
            return (0..<100).reduce(0) { $0 + (dictionary[$1] ?? 0) }
          }
          // A write, so that the commit validates the reads.
          other.value += 1
          if attempts == 1 {
            read.open()
            dropped.wait()
          }
          return sum
        }
        #expect(sum == 4_950)
        #expect(attempts == 1)
      }
      read.wait()
      weak let firstCell = cells.value.first?.takeUnretainedValue()
      weak let lastCell = cells.value.last?.takeUnretainedValue()
      holder.lock.withLock { holder.dictionary = nil }
      // Gone from the program, but kept while the reader's snapshot is announced.
      #expect(firstCell != nil && lastCell != nil)
      dropped.open()
      reader.wait()
      _Engine.shared.reclaimer.releaseWhatNoSnapshotNeeds()
      #expect(firstCell == nil && lastCell == nil)
      #expect(_Engine.shared.reclaimer.releasesWaiting == 0)
    }

    /// What `_releaseAfterRunningSnapshots(_:)` is handed goes at once when no snapshot is
    /// announced, and otherwise waits for the snapshots announced before it.
    @Test func aReleaseWaitsOnlyForTheSnapshotsAnnouncedBeforeIt() {
      final class Token {}
      weak var freeToken: Token?
      do {
        let token = Token()
        freeToken = token
        _releaseAfterRunningSnapshots([token])
      }
      #expect(freeToken == nil)

      let endTransaction = pinSnapshot(reading: TVar(0))
      weak var keptToken: Token?
      do {
        let token = Token()
        keptToken = token
        _releaseAfterRunningSnapshots([token])
      }
      _Engine.shared.reclaimer.releaseWhatNoSnapshotNeeds()
      #expect(keptToken != nil)
      endTransaction()
      _Engine.shared.reclaimer.releaseWhatNoSnapshotNeeds()
      #expect(keptToken == nil)
    }
  
    /// Maps dropped while another thread's snapshot is announced wait for it; once it has
    /// ended, the next map dropped outside a transaction lets go of them, with no writing
    /// commit needed (they piled up without bound while other threads ran read-only
    /// transactions: found by review).
    @Test func droppedIndexesGoAtTheNextDropOnceTheSnapshotsEnd() {
      let reclaimer = _Engine.shared.reclaimer
      reclaimer.releaseWhatNoSnapshotNeeds()
      let endTransaction = pinSnapshot(reading: TVar(0))
      for key in 0..<50 {
        let dictionary = TDictionary<Int, Int>()
        dictionary[key] = key
      }
      #expect(reclaimer.releasesWaiting == 50)
      endTransaction()
      _ = TDictionary<Int, Int>()
      #expect(reclaimer.releasesWaiting == 0)
    }

    /// The values of a map let go of at a reclaimer's turn, which comes at the end of a
    /// writing commit, run their deinits once that transaction has ended: a deinit that
    /// writes a variable then makes a drop-in update of its own. Run inside the finished
    /// transaction, the write joined its log and was lost (found by review).
    @Test func valuesLetGoOfAtATurnWriteOutsideTheFinishedTransaction() {
      final class CountsItsDeinit: Sendable {
        let deinits: TVar<Int>
        init(_ deinits: TVar<Int>) { self.deinits = deinits }
        deinit { deinits.value += 1 }
      }
      let reclaimer = _Engine.shared.reclaimer
      reclaimer.releaseWhatNoSnapshotNeeds()
      let deinits = TVar(0)
      let endTransaction = pinSnapshot(reading: TVar(0))
      do {
        let dictionary = TDictionary<Int, CountsItsDeinit>()
        dictionary[0] = CountsItsDeinit(deinits)
      }
      #expect(reclaimer.releasesWaiting == 1)
      // The map goes as the transaction ends; the value's cell, written while it ran, stays
      // on the reclaimer's list until a turn trims it.
      endTransaction()
      #expect(reclaimer.releasesWaiting == 0)
      // A turn comes once per 64 writing commits of a segment.
      let written = TVar(0)
      for _ in 0..<200 where deinits.value == 0 { atomically { _ in written.value += 1 } }
      #expect(deinits.value == 1)
    }
  }
}
