/// One change to a redo log's entries while a checkpoint is open, as its undo list keeps it.
enum _LogChange {
  /// An entry was added at the end.
  case appended
  /// The entry at `position` was about to change for the first time since the innermost open
  /// checkpoint; `entry` is its state before.
  case changed(position: Int, entry: _WriteEntry)
  /// The entry at `position` was taken out, and the last entry moved into its place.
  case removed(position: Int, entry: _WriteEntry)
  /// The batch of the entry at `position`, from before the innermost open checkpoint, was
  /// about to grow by appends, which go into the same box (see `_DelayedAppend`); it held
  /// `count` items.
  case batchGrew(position: Int, count: Int)

  /// The change with its entry's generations at 0 (see `_TransactionLog.startNewGeneration()`).
  func forgettingGenerations() -> _LogChange {
    switch self {
    case .appended, .batchGrew: return self
    case .changed(let position, var entry):
      entry.forgetGenerations()
      return .changed(position: position, entry: entry)
    case .removed(let position, var entry):
      entry.forgetGenerations()
      return .removed(position: position, entry: entry)
    }
  }
}

extension _WriteEntry {
  /// Sets every generation to 0, which no later generation of the log is.
  mutating func forgetGenerations() {
    generation = 0
    batchGeneration = 0
    savedGeneration = 0
    batch?.countSavedGeneration = 0
  }
}

/// Checkpoints (`orElse`, a nested `atomically` that can throw) as an undo list.
///
/// A checkpoint used to be a copy of the log, which shares the entries until the first change:
/// then they were all copied, with a retain and a release of each of their references, so
/// `orElse` in a transaction that had written *n* variables cost O(*n*), and a loop of them
/// O(*n*²) (30,000 writes, each in an `orElse`, took 24 s). Now a checkpoint records where the
/// undo list and the hook lists end; while one is open, the log records each entry it adds or
/// takes out, each older entry's state before its first change since the innermost
/// checkpoint, and each older batch's item count before appends go into its box. A rollback
/// replays the list backwards. (Batches' counts were first noted by the checkpoint, a look at
/// every entry once the transaction had appended: a loop of `orElse` after one append was
/// quadratic again; found by review.)
extension _TransactionLog {
  /// Where a checkpoint found the log: what a rollback to it restores.
  struct Marks {
    let undoCount: Int
    let afterCommitCount: Int
    let afterAbortCount: Int
    let wakeUpsCount: Int
    /// The count of the last wake-up entry, which later requests for the same lot add to.
    let lastWakeUps: Int
  }

  /// What a rollback took out of the log, for the caller to keep until the transaction ends:
  /// released while the log was changing, a value's deinit (the user's code) could change it
  /// too.
  struct Undone {
    var entries: [_WriteEntry] = []
    var afterCommit: [() -> Void] = []
    var afterAbort: [(number: Int, hook: () -> Void)] = []
    var wakeUps: [_WakeUps] = []
    /// The items trimmed from batches that had grown since the checkpoint.
    var items: [Any] = []
  }

  /// Opens a checkpoint: changes from now on are recorded, and made to fresh versions and
  /// batches (see `startNewGeneration()`).
  mutating func openCheckpoint() -> Marks {
    openCheckpoints += 1
    startNewGeneration()
    return Marks(
      undoCount: undo.count, afterCommitCount: afterCommit.count, afterAbortCount: afterAbort.count,
      wakeUpsCount: wakeAfterCommit.count, lastWakeUps: wakeAfterCommit.last?.count ?? 0)
  }

  /// Closes the innermost checkpoint. Once none is open, the undo list is not needed: it is
  /// handed back, for the caller to release once it has finished changing the log.
  mutating func closeCheckpoint() -> [_LogChange] {
    openCheckpoints -= 1
    guard openCheckpoints == 0, !undo.isEmpty else { return [] }
    var dropped: [_LogChange] = []
    swap(&dropped, &undo)
    return dropped
  }

  /// Saves the state of the entry at `position` before a change, if a checkpoint is open and
  /// the entry has not been saved (or made) since the innermost one.
  @inline(__always)
  mutating func prepareToChange(at position: Int) {
    if openCheckpoints > 0 && entries[position].savedGeneration != generation { saveBeforeChange(at: position) }
  }

  @inline(never)
  private mutating func saveBeforeChange(at position: Int) {
    undo.append(.changed(position: position, entry: entries[position]))
    entries[position].savedGeneration = generation
  }

  /// Saves the item count of the batch of the entry at `position` before appends that go into
  /// its box, if a checkpoint is open and the count has not been saved (nor the box made)
  /// since the innermost one. Kept on the box: the entry has no room left in its 64 bytes.
  @inline(__always)
  mutating func prepareToGrowBatch(at position: Int) {
    guard openCheckpoints > 0 else { return }
    let box = entries[position].batch.unsafelyUnwrapped
    if box.countSavedGeneration != generation { saveBatchCount(of: box, at: position) }
  }

  @inline(never)
  private mutating func saveBatchCount(of box: _AnyDelayedAppend, at position: Int) {
    undo.append(.batchGrew(position: position, count: box.itemCount))
    box.countSavedGeneration = generation
  }

  /// Records the entry just appended.
  @inline(never)
  mutating func noteAppended() {
    entries[entries.count - 1].savedGeneration = generation
    undo.append(.appended)
  }

  /// Undoes the changes recorded since `marks`, newest first, and drops the hooks added since.
  /// Batches of delayed appends that only grew keep their box, trimmed to their old count.
  mutating func rollBack(to marks: Marks) -> Undone {
    var undone = Undone()
    while undo.count > marks.undoCount {
      switch undo.removeLast() {
      case .appended:
        let entry = entries.removeLast()
        if index.isBuilt { entry.target._withUnsafeGuaranteedRef { index.remove($0) } }
        undone.entries.append(entry)
      case .changed(let position, let entry):
        undone.entries.append(entries[position])
        entries[position] = entry
      case .removed(let position, let entry):
        undoRemoval(of: entry, at: position)
      case .batchGrew(let position, let count):
        undone.items.append(entries[position].batch.unsafelyUnwrapped.removeItems(downTo: count))
      }
    }
    if afterCommit.count > marks.afterCommitCount {
      undone.afterCommit = Array(afterCommit[marks.afterCommitCount...])
      afterCommit.removeLast(afterCommit.count - marks.afterCommitCount)
    }
    if afterAbort.count > marks.afterAbortCount {
      undone.afterAbort = Array(afterAbort[marks.afterAbortCount...])
      afterAbort.removeLast(afterAbort.count - marks.afterAbortCount)
    }
    if wakeAfterCommit.count > marks.wakeUpsCount {
      undone.wakeUps = Array(wakeAfterCommit[marks.wakeUpsCount...])
      wakeAfterCommit.removeLast(wakeAfterCommit.count - marks.wakeUpsCount)
    }
    if marks.wakeUpsCount > 0 { wakeAfterCommit[marks.wakeUpsCount - 1].count = marks.lastWakeUps }
    return undone
  }

  /// Puts `entry` back at `position`, from where `remove(at:)` took it, and the entry that
  /// moved there back at the end.
  private mutating func undoRemoval(of entry: _WriteEntry, at position: Int) {
    if position < entries.count {
      let moved = entries[position]
      entries.append(moved)
      if index.isBuilt { moved.target._withUnsafeGuaranteedRef { index.move($0, to: entries.count - 1) } }
      entries[position] = entry
    } else {
      entries.append(entry)
    }
    if index.isBuilt { _ = entry.target._withUnsafeGuaranteedRef { index.insertIfAbsent($0, at: position) } }
  }
}
