import Synchronization

/// The layout of a cell's `lockWord`: its commit lock, and the state that changes only while
/// that lock is held (but for one bit, `lookedUp`).
///
/// - Bits 0–15: the holder, as a signed 16-bit number. 0 while no one holds the cell; otherwise
///   the tag (index + 1) of the segment whose commit is publishing a new version, or
///   `_retireTag` (negative) for a collection's housekeeping, which publishes nothing.
/// - Bit 16, `retired`: a collection has detached the cell from its index (a removed key).
///   From then on no commit may write it, and a transaction that read it cannot commit,
///   because the key now lives, if at all, in a fresh cell (see `_retire(if:)`).
/// - Bit 17, `awaitingReclamation`: the cell waits in the reclamation list (see
///   `_HistoryReclaimer`).
/// - Bit 18, `recyclesVersions`: fixed when the cell is made (see `_Cell.recyclesVersions`).
///   Kept here rather than asked of the cell's class: a trim reads it on every write, and the
///   word is already in hand, where a dynamic call stalled the drop-in update.
/// - Bit 19, `pinned`: an inevitable transaction writes the cell; a collection may not retire
///   it until that transaction ends (see `_Cell.pinForInevitable()`).
/// - Bit 20, `replacedValuesHoldNothing`: fixed when the cell is made (see
///   `_Cell.leftoverWorthReclaiming`).
/// - Bit 21, `lookedUp`: a transaction found the cell empty (its key absent) since its
///   collection's last sweep cleared the bit, so a sweep leaves the cell, which that
///   transaction may still be reading, until the transactions that did have ended (see
///   `_Cell.noteLookedUp()` and the collection's newest mark). The
///   one bit set without the lock: a holder's release or a deep walk's memo, which store the
///   word they read, may drop it, which only lets a sweep retire the cell a round sooner.
/// - Bits 22–63, the deep-walk memo: the horizon (its low 42 bits) at which a trim last had to
///   walk far down this cell's history because an old snapshot held the horizon back. While
///   the horizon stays there the cut point cannot move, so trims skip the walk instead of
///   paying for the whole history on every commit. All ones: no memo.
///
/// Only the holder changes bits 16–63 (but `lookedUp`), so a locker can take the lock with one
/// compare-and-swap that expects the bits it just read with a holder of 0 (retrying if they
/// changed), and the holder releases it by storing the word it holds with the holder cleared.
@usableFromInline
enum _CellWord {
  // Computed, not stored: inlined into client modules, a stored constant would be read
  // through its global's accessor.
  @inlinable static var holderMask: Int { 0xFFFF }
  @inlinable static var retired: Int { 1 << 16 }
  @inlinable static var awaitingReclamation: Int { 1 << 17 }
  static var recyclesVersions: Int { 1 << 18 }
  static var pinned: Int { 1 << 19 }
  static var replacedValuesHoldNothing: Int { 1 << 20 }
  @inlinable static var lookedUp: Int { 1 << 21 }
  static let memoShift = 22
  /// Enough for 4.4 × 10¹² commits before two horizons can share a memo; a false match only
  /// delays one cell's trim until the horizon moves.
  static let memoMask: UInt64 = (1 << 42) - 1

  /// No holder, no flag, no memo.
  @usableFromInline static let initial = Int(bitPattern: UInt(memoMask) << UInt(memoShift))

  @inlinable @inline(__always)
  static func holder(_ word: Int) -> Int { Int(Int16(truncatingIfNeeded: word)) }

  static func memo(_ word: Int) -> UInt64 { UInt64(UInt(bitPattern: word) >> UInt(memoShift)) }

  static func word(_ word: Int, withMemo horizon: UInt64) -> Int {
    let cleared = UInt(bitPattern: word) & ~(UInt(memoMask) << UInt(memoShift))
    return Int(bitPattern: cleared | UInt(horizon & memoMask) << UInt(memoShift))
  }
}

extension _Cell {
  /// The tag of whoever holds the commit lock (a segment's tag, or `_retireTag`), 0 if no one;
  /// an acquiring load, so that what an earlier holder published is visible after it.
  @inlinable
  final var holder: Int { _CellWord.holder(lockWord.load(ordering: .acquiring)) }

  /// `holder`, read sequentially consistent: for a reader that announced its snapshot (a
  /// sequentially consistent store) and must then see the lock of any update whose scan of
  /// the snapshots missed it (see `_Engine.unnumberedOverwritePosition(for:)`). An acquiring
  /// load may be ordered before that store in the language's memory model (today the
  /// sequentially consistent clock load between them orders them on the processors this
  /// runs on); on x86 and arm64 the cost is the same or one instruction's ordering (found by
  /// review).
  @inlinable
  final var holderAfterAnnouncing: Int { _CellWord.holder(lockWord.load(ordering: .sequentiallyConsistent)) }

  /// `holder`, read without ordering: for spinning, and for checks whose answer needs nothing else.
  @inlinable
  final var relaxedHolder: Int { _CellWord.holder(lockWord.load(ordering: .relaxed)) }

  /// Takes the commit lock for `tag` unless someone holds it; returns whether it did, and
  /// otherwise the holder seen.
  @inlinable
  final func tryLock(as tag: Int) -> (locked: Bool, holder: Int) {
    var word = lockWord.load(ordering: .relaxed)
    while true {
      let holder = _CellWord.holder(word)
      guard holder == 0 else { return (false, holder) }
      let desired = word | (tag & _CellWord.holderMask)
      // Sequentially consistent (on x86 and arm64 the same instruction as acquire-release):
      // the drop-in update's quick road relies on it as the fence before its scan of the
      // snapshots (see `_Engine.enterCommitAfterQuickLookup(_:)`).
      let (exchanged, original) = lockWord.compareExchange(
        expected: word, desired: desired, ordering: .sequentiallyConsistent)
      if exchanged { return (true, 0) }
      // Taken meanwhile (or taken and released with its state changed): look again.
      word = original
    }
  }

  /// Takes the commit lock for `tag`, spinning while someone else holds it: for housekeeping
  /// that holds it briefly and never waits for anything while holding it.
  @inlinable
  final func spinLock(as tag: Int) {
    var backoff = _Backoff()
    while !tryLock(as: tag).locked { backoff.pause() }
  }

  /// Releases the commit lock (the caller holds it), keeping the state stored under it except
  /// the flags in `clearing`, which the same store clears.
  ///
  /// The reclaimer clears `awaitingReclamation` this way, as the cell leaves its list: once the
  /// flag is clear, a commit that leaves history again lists the cell anew.
  @inlinable
  final func unlock(clearing flags: Int = 0) {
    // Release: whoever takes the lock next sees what the holder published, and the flags.
    let word = lockWord.load(ordering: .relaxed)
    lockWord.store(word & ~(_CellWord.holderMask | flags), ordering: .releasing)
  }

  /// Whether a collection has detached the cell (see `_CellWord`); set under the lock.
  @inlinable
  final var isRetired: Bool { lockWord.load(ordering: .relaxed) & _CellWord.retired != 0 }

  /// Marks the cell retired; the caller holds the commit lock.
  @usableFromInline
  final func markRetired() {
    lockWord.bitwiseOr(_CellWord.retired, ordering: .relaxed)
  }

  /// Notes that a transaction's lookup found the cell in its index, empty
  /// (`_CellWord.lookedUp`): a read of the word the lookup has in hand, and a write only the
  /// first time since the last sweep. Releasing: a sweep that sees the mark (acquiring, in
  /// `wasLookedUp`) also sees what the caller wrote before it (its collection's newest mark).
  @inlinable
  package final func noteLookedUp() {
    if lockWord.load(ordering: .relaxed) & _CellWord.lookedUp == 0 {
      lockWord.bitwiseOr(_CellWord.lookedUp, ordering: .releasing)
    }
  }

  /// Whether a transaction's lookup found the cell empty since `clearLookedUp()`.
  @inlinable
  package final var wasLookedUp: Bool { lockWord.load(ordering: .acquiring) & _CellWord.lookedUp != 0 }

  /// Starts a new round of `noteLookedUp()`: a sweep that found the cell empty.
  @inlinable
  package final func clearLookedUp() {
    if wasLookedUp { lockWord.bitwiseAnd(~_CellWord.lookedUp, ordering: .relaxed) }
  }

  /// Whether an inevitable transaction has pinned the cell (see `pinForInevitable()`).
  @usableFromInline
  final var isPinned: Bool { lockWord.load(ordering: .relaxed) & _CellWord.pinned != 0 }

  /// Pins the cell for the inevitable transaction that writes it, so that no collection
  /// retires it before that transaction commits (an inevitable transaction cannot rerun, and a
  /// commit refuses retired cells); returns false, pinning nothing, if it is retired already.
  /// Taken under the commit lock, as a retirement is, so one of the two sees the other.
  func pinForInevitable() -> Bool {
    spinLock(as: _retireTag)
    let retired = isRetired
    if !retired { lockWord.bitwiseOr(_CellWord.pinned, ordering: .relaxed) }
    unlock()
    return !retired
  }

  /// Ends what `pinForInevitable()` began.
  func unpin() {
    spinLock(as: _retireTag)
    unlock(clearing: _CellWord.pinned)
  }

  /// Whether the cell waits in the reclamation list (which retains it).
  var isAwaitingReclamation: Bool { lockWord.load(ordering: .acquiring) & _CellWord.awaitingReclamation != 0 }

  /// Marks the cell as listed for reclamation, returning whether it already was; the caller
  /// holds the commit lock.
  func markAwaitingReclamation() -> Bool {
    lockWord.bitwiseOr(_CellWord.awaitingReclamation, ordering: .relaxed).oldValue & _CellWord.awaitingReclamation != 0
  }

  /// Whether `horizon` is the one the last deep walk of this cell's history stopped at (see
  /// `_CellWord`); the caller holds the commit lock.
  func deepWalkStopped(at horizon: UInt64) -> Bool {
    _CellWord.memo(lockWord.load(ordering: .relaxed)) == horizon & _CellWord.memoMask
  }

  /// Remembers that a deep walk stopped at `horizon`; the caller holds the commit lock, so no
  /// one else changes the word meanwhile.
  func noteDeepWalk(stoppedAt horizon: UInt64) {
    let word = lockWord.load(ordering: .relaxed)
    lockWord.store(_CellWord.word(word, withMemo: horizon), ordering: .relaxed)
  }
}
