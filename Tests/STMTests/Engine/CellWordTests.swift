#if canImport(Glibc)
import Glibc
#endif
@testable import STMCore
import Testing

extension LibraryTests {
  /// A cell's lock word: its commit lock, and the flags and memo that share the word because
  /// they change only under that lock (but for the mark of a transaction's lookup).
  @Suite struct CellWordTests {
    @Test func aNewCellIsFreeWithNoFlagAndNoMemo() {
      let cell = _TypedCell(0)
      #expect(cell.holder == 0)
      #expect(!cell.isRetired)
      #expect(!cell.isAwaitingReclamation)
      #expect(!cell.deepWalkStopped(at: 0))
      #expect(!cell.deepWalkStopped(at: 12))
    }

    @Test func theLockNamesItsHolderAndRefusesOthersUntilReleased() {
      let cell = _TypedCell(0)
      #expect(cell.tryLock(as: 3) == (locked: true, holder: 0))
      #expect(cell.holder == 3)
      #expect(cell.tryLock(as: 5) == (locked: false, holder: 3))
      cell.unlock()
      #expect(cell.holder == 0)
      // The largest segment tag the engine allows, and the negative housekeeping tag.
      #expect(cell.tryLock(as: 1024).locked)
      #expect(cell.relaxedHolder == 1024)
      cell.unlock()
      cell.spinLock(as: _retireTag)
      #expect(cell.holder == _retireTag)
      #expect(cell.tryLock(as: 1) == (locked: false, holder: _retireTag))
      cell.unlock()
      #expect(cell.holder == 0)
    }

    @Test func flagsAndMemoSetUnderTheLockSurviveItsRelease() {
      let cell = _TypedCell(0)
      cell.spinLock(as: 2)
      #expect(!cell.markAwaitingReclamation())
      #expect(cell.markAwaitingReclamation())
      cell.noteDeepWalk(stoppedAt: 41)
      cell.markRetired()
      cell.unlock()
      #expect(cell.holder == 0)
      #expect(cell.isRetired && cell.isAwaitingReclamation)
      #expect(cell.deepWalkStopped(at: 41) && !cell.deepWalkStopped(at: 40))

      // Locking again keeps all of it; clearing one flag leaves the rest.
      #expect(cell.tryLock(as: 7).locked)
      #expect(cell.holder == 7 && cell.isRetired && cell.deepWalkStopped(at: 41))
      cell.noteDeepWalk(stoppedAt: 1 << 40)
      cell.unlock(clearing: _CellWord.awaitingReclamation)
      #expect(!cell.isAwaitingReclamation && cell.isRetired)
      #expect(cell.deepWalkStopped(at: 1 << 40) && !cell.deepWalkStopped(at: 41))
      #expect(cell.holder == 0)
      // Nothing the flags set shows up as a holder.
      #expect(cell.tryLock(as: 9) == (locked: true, holder: 0))
      cell.unlock()
    }

    #if canImport(Glibc)
    /// The memory target of a 1,000,000-key `TDictionary<Int, Int>` depends on this: a cell
    /// is 32 bytes plus its key, which malloc serves from a 48-byte block (one field more and
    /// it takes 64).
    @Test func aDictionaryEntrysCellFitsA48ByteBlock() throws {
      // glibc's `malloc_usable_size` is not in the Glibc module's headers; look it up.
      typealias UsableSize = @convention(c) (UnsafeMutableRawPointer?) -> Int
      let symbol = try #require(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_usable_size"))
      let usableSize = unsafeBitCast(symbol, to: UsableSize.self)
      // malloc may serve a request from a larger free block when what it would split off is
      // too small to keep, so one allocation can report more than its size class: the
      // smallest of several is the class.
      let keyed = (0..<32).map { _KeyedCell<Int, Int>(key: $0) }
      let plain = (0..<32).map { _TypedCell($0) }
      func smallestUsableSize(_ objects: [AnyObject]) -> Int {
        objects.map { usableSize(Unmanaged.passUnretained($0).toOpaque()) }.min()!
      }
      // A 48-byte block holds 40 usable bytes; the next size up holds 56.
      #expect(smallestUsableSize(keyed) == 40)
      #expect(smallestUsableSize(plain) <= 40)
    }
    #endif
  }
}
