/// What a thread's transaction or drop-in update lets go of while it still holds its segment
/// or a cell's commit lock, kept to be freed once it holds neither.
///
/// Freeing a version frees the value it holds, and that value's `deinit` is the user's code:
/// it may read or write transactional data. Run while the thread still held its segment, such
/// code joined the transaction that was ending: its writes were lost, its reads came from a
/// withdrawn snapshot, and a write during a commit appended to the log that the commit was
/// walking (memory corruption). Run while a cell's lock was held, a `deinit` that read that
/// cell waited for itself. (All found by review.) So the attempt's log and read list are swapped
/// out of the segment, the versions a commit drops are handed here, and the thread frees them
/// all once it has let go of its locks and its segment (`_ThreadContext.releaseLeftovers()`),
/// where such a `deinit` runs as any code outside a transaction does.
struct _Leftovers {
  /// An ended attempt's redo log: its pending versions, delayed updates and appends, hooks.
  var log = _TransactionLog()
  /// An ended attempt's read list, which may hold the last reference to a cell.
  var reads = _CellList.unallocated
  /// Versions that commits dropped from their cells' histories (see `_Engine.trimHistory`).
  var versions: [_VersionBase] = []
  /// What a turn of the history reclaimer found that no snapshot needs any more (see
  /// `_HistoryReclaimer.releaseAfterRunningSnapshots(_:)`); a turn comes right after a commit.
  /// Also what the attempt's parts that rolled back made (see `_Segment.rollback(to:)`), in a
  /// box: a field of its own moved the thread context's fields after this one.
  var objects: [[AnyObject]] = []

  var isEmpty: Bool {
    log.isEmpty && !log.hasHooks && reads.isEmpty && versions.isEmpty
      && objects.isEmpty
  }

  /// Whether a drop-in update, which has no log or read list, set anything aside.
  var holdsDroppedObjects: Bool { !versions.isEmpty || !objects.isEmpty }

  /// Lets go of everything, keeping the buffers.
  mutating func release() {
    if !log.isEmpty || log.hasHooks { log.removeAll() }
    if !reads.isEmpty { reads.removeAll() }
    // Kept for the next commit, unless one huge commit grew it.
    if !versions.isEmpty { versions.removeAll(keepingCapacity: versions.capacity <= 4096) }
    if !objects.isEmpty { objects.removeAll() }
  }
}

extension _ThreadContext {
  /// Takes the log and read list of the attempt that `segment`'s thread is ending, leaving the
  /// segment empty ones (see `_Leftovers`).
  func setAside(logAndReadsOf segment: _Segment) {
    let hasLog = !segment.log.isEmpty || segment.log.hasHooks
    guard hasLog || !segment.reads.isEmpty || !segment.rolledBack.isEmpty else { return }
    // Beside `leftovers`, not swapped with its buffers, also while they still hold the log
    // or reads of an attempt that ended but was not let go of yet: a value freed as a
    // transaction ended, before its `releaseLeftovers`, whose deinit ran a transaction of its
    // own, swapped that attempt's log back into the segment, and the thread's next attempt
    // committed its writes and ran its hooks again (found by review).
    let holdsAnEndedAttempt =
      !leftovers.log.isEmpty || leftovers.log.hasHooks
      || !leftovers.reads.isEmpty
    guard !isReleasingLeftovers && !holdsAnEndedAttempt else {
      // Ended by a deinit that `releaseLeftovers` is running (`leftovers` is being emptied),
      // or by one run before it: these go beside it. The segment gets buffers without
      // capacity (a rare case).
      var nested = _Leftovers()
      if hasLog { swap(&segment.log, &nested.log) }
      if !segment.reads.isEmpty { swap(&segment.reads, &nested.reads) }
      if !segment.rolledBack.isEmpty { nested.objects.append([_RolledBackParts(taking: &segment.rolledBack)]) }
      setAsideWhileReleasing.append(nested)
      return
    }
    // Swapped with the emptied buffers of this thread's last attempt: no allocation.
    if hasLog { swap(&segment.log, &leftovers.log) }
    if !segment.reads.isEmpty { swap(&segment.reads, &leftovers.reads) }
    if !segment.rolledBack.isEmpty { leftovers.objects.append([_RolledBackParts(taking: &segment.rolledBack)]) }
  }

  /// Takes a version that a commit of this thread dropped from its cell's history.
  func setAside(_ version: consuming _VersionBase) {
    guard !isReleasingLeftovers else {
      var nested = _Leftovers()
      nested.versions.append(version)
      setAsideWhileReleasing.append(nested)
      return
    }
    leftovers.versions.append(version)
  }

  /// Takes what a turn of the history reclaimer on this thread found no snapshot needs.
  func setAside(objects: [[AnyObject]]) {
    guard !objects.isEmpty else { return }
    guard !isReleasingLeftovers else {
      var nested = _Leftovers()
      nested.objects = objects
      setAsideWhileReleasing.append(nested)
      return
    }
    leftovers.objects += objects
  }

  /// Frees what this thread set aside; it holds no segment and no commit lock.
  ///
  /// A `deinit` that runs here may end a transaction or an update of its own, which sets its
  /// leftovers aside beside these (`setAsideWhileReleasing`) instead of into the lists being
  /// emptied, and frees them as it ends, calling this again: a deinit that ran 2,000
  /// transactions kept all their logs and dropped versions until it returned, when they were
  /// left to the outer call (found by review). Nested `maximumReleaseNesting` levels at most:
  /// deeper, a deinit leaves what its transactions set aside to the innermost call's loop,
  /// which takes it up as it goes, so that a chain of values whose deinits free the next one
  /// in a transaction is freed one after another past that depth instead of one stack frame
  /// deeper per link (with no limit, a chain of 2,000 overflowed a thread's stack; with one
  /// level, a deinit freed by the nested call kept all its transactions left until it
  /// returned; both found by review).
  func releaseLeftovers() {
    if isReleasingLeftovers {
      guard setAsideReleaseDepth < Self.maximumReleaseNesting else { return }
      setAsideReleaseDepth += 1
      releaseWhatWasSetAsideWhileReleasing()
      setAsideReleaseDepth -= 1
      return
    }
    guard !leftovers.isEmpty else { return }
    isReleasingLeftovers = true
    leftovers.release()
    releaseWhatWasSetAsideWhileReleasing()
    isReleasingLeftovers = false
  }

  /// Frees `setAsideWhileReleasing`, and what the deinits this runs set aside meanwhile. A
  /// deinit that runs here and ends a transaction frees its own the same way, nested: the
  /// list is taken out first.
  private func releaseWhatWasSetAsideWhileReleasing() {
    while !setAsideWhileReleasing.isEmpty {
      var nested: [_Leftovers] = []
      swap(&nested, &setAsideWhileReleasing)
      for index in nested.indices {
        nested[index].release()
        nested[index].reads.deallocate()
      }
    }
  }
}

/// What an attempt's parts that rolled back made, as one object for `_Leftovers.objects`.
private final class _RolledBackParts {
  let parts: [Any]
  init(taking parts: inout [Any]) {
    self.parts = parts
    parts = []
  }
}
