import Synchronization

/// Cells whose history a commit could not trim completely (a running snapshot still needed
/// it), trimmed again later so that memory stays flat even for cells that are never written
/// again (DESIGN.md invariant 6).
///
/// The list does not retain its cells: a cell that is freed takes its history with it, and its
/// `deinit` removes it from the list. The reclaimer trims while holding the list's lock, so a
/// cell whose `deinit` waits for that lock is still valid memory while it is trimmed; and it
/// frees what it trimmed only after releasing that lock, since that can free listed cells.
final class _HistoryReclaimer: Sendable {
  private let pending = _Lock<[ObjectIdentifier: Unmanaged<_Cell>]>([:])
  private let count = Atomic<Int>(0)
  /// A thread looks at the list once per this many of its writing commits.
  static let interval = 64
  /// At most this many cells are trimmed at a time, to bound the pause of the thread doing it.
  static let batchSize = 64

  /// Remembers `cell`, whose history still has more than its newest version.
  func note(_ cell: _Cell) {
    guard !cell.markAwaitingReclamation() else { return }
    pending.withLock { $0[ObjectIdentifier(cell)] = Unmanaged.passUnretained(cell) }
    count.add(1, ordering: .relaxed)
  }

  /// Called from the `deinit` of a cell that is in the list.
  func forget(_ cell: _Cell) {
    let removed = pending.withLock { $0.removeValue(forKey: ObjectIdentifier(cell)) != nil }
    if removed { count.subtract(1, ordering: .relaxed) }
  }

  /// Called after each writing commit of `context`, while it still holds `segment`.
  func reclaimNow(ifDueFor context: _ThreadContext, using segment: _Segment) {
    context.commitsSinceReclamation += 1
    guard context.commitsSinceReclamation >= Self.interval else { return }
    context.commitsSinceReclamation = 0
    guard count.load(ordering: .relaxed) > 0 else { return }
    reclaim(using: segment, by: context)
  }

  /// Trims a batch of noted cells; cells still pinned, or locked right now, stay in the list.
  func reclaim(using segment: _Segment, by context: _ThreadContext) {
    let engine = _Engine.shared
    engine.recomputeHorizon()
    // Trimming publishes nothing: readers and validators that meet these locks carry on.
    segment.commitNumber.store(_CommitNumber.unnumbered, ordering: .releasing)
    // What the trims drop is freed after the list's lock is released: freeing a version can
    // free the last reference to another listed cell, whose deinit takes that lock.
    var dropped: [_VersionBase] = []
    let trimmed = pending.withLock { list -> Int in
      var done: [ObjectIdentifier] = []
      for (key, handle) in list.prefix(Self.batchSize) {
        let finished = handle._withUnsafeGuaranteedRef { cell -> Bool in
          guard cell.tryLock(as: segment.tag).locked else {
            return false
          }
          var cut: _VersionBase?
          let historyRemains = engine.trimHistory(
            below: cell.head.load(ordering: .acquiring), of: cell, noting: false,
            handingOver: &cut, by: context)
          if let cut { dropped.append(cut) }
          // Without history left the cell leaves the list, and may be freed as soon as this
          // store lands: touch it no more.
          cell.unlock(clearing: historyRemains ? 0 : _CellWord.awaitingReclamation)
          return !historyRemains
        }
        if finished { done.append(key) }
      }
      for key in done { list[key] = nil }
      return done.count
    }
    count.subtract(trimmed, ordering: .relaxed)
    dropped.removeAll()
  }
}
