#if DEBUG
import Synchronization

/// Seams for tests that stage an interleaving inside the engine. Compiled into debug builds
/// only, so release builds pay nothing.
enum _TestHooks {
  /// Called by a commit right after it took its number and before it shows it to readers:
  /// the narrowest window of the commit protocol.
  static let afterTakingCommitNumber = _Lock<(@Sendable () -> Void)?>(nil)
  /// Called by a drop-in update that has chosen to overwrite its cell without a commit number,
  /// before it writes the value: readers that meet the cell now must wait for it.
  static let afterChoosingUnnumberedOverwrite = _Lock<(@Sendable () -> Void)?>(nil)
  /// Called by a single read outside a transaction (`_SingleOperation.beginReading()`) right
  /// after it announced its snapshot and before it looks its key up.
  static let afterSingleReadAnnounced = _Lock<(@Sendable () -> Void)?>(nil)
  /// Called by an update outside a transaction (`_SingleOperation.beginUpdate(_:)`) after its
  /// lookup found the key's cell and before it locks it.
  static let beforeInPlaceUpdateLocks = _Lock<(@Sendable () -> Void)?>(nil)
  /// Called by `TVar._newestCommittedValueSatisfies(_:)` (a sweep's look at a cell) once it
  /// has let go of the cell, with the predicate's answer.
  static let afterHousekeepingRead = _Lock<(@Sendable (Bool) -> Void)?>(nil)
  /// Called by a commit that is about to list a cell for the history reclaimer (it kept
  /// history for a running snapshot), with the cell's commit lock held.
  static let beforeListingKeptHistory = _Lock<(@Sendable () -> Void)?>(nil)
  /// Called by a round of the history reclaimer once it has trimmed its batch, before it puts
  /// back the cells whose history must wait still.
  static let beforeReclaimerPutsCellsBack = _Lock<(@Sendable () -> Void)?>(nil)
  /// Long transactions' turns that found a round of the reclaimer under way and waited for it.
  static let longTurnsWaitingForRounds = Atomic<Int>(0)
  /// Versions that history trims have stepped over, in all: how much trimming costs.
  static let historyStepsWalked = Atomic<Int>(0)
  /// Pauses begun, in all: a test that holds a cell can wait until the transaction it stages
  /// against it has started waiting, instead of sleeping and hoping it has.
  static let pausesBegun = Atomic<Int>(0)
}
#endif

/// Calls `_TestHooks.afterHousekeepingRead`; nothing in release builds.
@usableFromInline
func _noteHousekeepingReadEnded(_ satisfied: Bool) {
  #if DEBUG
  if let hook = _TestHooks.afterHousekeepingRead.value { hook(satisfied) }
  #endif
}

/// Counts a pause that has just begun (`_TestHooks.pausesBegun`); nothing in release builds.
@inline(__always)
func _notePauseBegan() {
  #if DEBUG
  // Relaxed: an ordering here would synchronize every pair of pausing threads in the debug
  // build, where Thread Sanitizer could then miss a race on those very paths.
  _TestHooks.pausesBegun.add(1, ordering: .relaxed)
  #endif
}
