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

  var isEmpty: Bool {
    log.isEmpty && log.afterCommit.isEmpty && log.afterAbort.isEmpty && reads.isEmpty && versions.isEmpty
  }

  /// Lets go of everything, keeping the buffers.
  mutating func release() {
    if !log.isEmpty || !log.afterCommit.isEmpty || !log.afterAbort.isEmpty { log.removeAll() }
    if !reads.isEmpty { reads.removeAll() }
    if !versions.isEmpty { versions.removeAll(keepingCapacity: true) }
  }
}

extension _ThreadContext {
  /// Frees this thread's leftovers; the thread holds no segment and no commit lock.
  ///
  /// What it frees is moved out first, so that a `deinit` that runs a transaction of its own
  /// (which ends by leaving, and freeing, its own leftovers here) never meets a list that is
  /// being emptied. The emptied buffers are then kept for the next attempt.
  func releaseLeftovers() {
    guard !leftovers.isEmpty else { return }
    var taken = _Leftovers()
    repeat {
      swap(&taken, &leftovers)
      taken.release()
    } while !leftovers.isEmpty
    swap(&taken, &leftovers)
    taken.reads.deallocate()
  }
}
