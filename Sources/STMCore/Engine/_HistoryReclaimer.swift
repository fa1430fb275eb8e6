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
  private let pending = _Lock(_PendingCells())
  private let count = Atomic<Int>(0)
  /// A segment's commits look at the list once per this many of its writing commits.
  static let interval = 64
  /// At most this many cells are trimmed at a time, to bound the pause of the thread doing it.
  static let batchSize = 64
  /// Collections' work that waits for running snapshots to end (see `_DeferredHousekeeping`),
  /// done in turn, this many at a time, when the list's turn comes.
  /// Held weakly: a collection that goes frees what it kept at once, not at the next turn.
  private let housekeeping = _Lock<[_WeakHousekeeping]>([])
  private let housekeepingCount = Atomic<Int>(0)
  static let housekeepingBatchSize = 16

  /// Remembers `job` until its `housekeep()` says nothing waits any more.
  func noteHousekeeping(_ job: any _DeferredHousekeeping) {
    housekeeping.withLock { $0.append(_WeakHousekeeping(job: job)) }
    housekeepingCount.add(1, ordering: .relaxed)
  }

  /// Remembers `cell`, whose history still has more than its newest version.
  func note(_ cell: _Cell) {
    guard !cell.markAwaitingReclamation() else { return }
    pending.withLock { $0.append(.passUnretained(cell)) }
    count.add(1, ordering: .relaxed)
  }

  /// Called from the `deinit` of a cell that is in the list.
  func forget(_ cell: _Cell) {
    let removed = pending.withLock { $0.remove(cell.address) }
    if removed { count.subtract(1, ordering: .relaxed) }
  }

  /// Called after each writing commit on `segment`, which `context`'s thread still holds.
  @inline(__always)
  func reclaimNow(ifDueFor context: _ThreadContext, using segment: _Segment) {
    segment.commitsSinceReclamation += 1
    guard segment.commitsSinceReclamation >= Self.interval else { return }
    takeTurn(using: segment, by: context)
  }

  /// The list's turn, once per `interval` writing commits of a segment. Out of line: inlined
  /// into every commit, it made each one retain and release the reclaimer.
  @inline(never)
  private func takeTurn(using segment: _Segment, by context: _ThreadContext) {
    segment.commitsSinceReclamation = 0
    if count.load(ordering: .relaxed) > 0 { reclaim(using: segment, by: context) }
    if housekeepingCount.load(ordering: .relaxed) > 0 { runHousekeeping() }
  }

  /// Does the next few collections' deferred work; those that must wait still go back to the
  /// end of the list. Run with no lock held: a job takes its collection's locks, and what it
  /// frees may free listed cells, whose deinit takes the list's.
  func runHousekeeping() {
    let jobs = housekeeping.withLock { list -> [_WeakHousekeeping] in
      let taken = Array(list.prefix(Self.housekeepingBatchSize))
      list.removeFirst(taken.count)
      return taken
    }
    var again: [_WeakHousekeeping] = []
    for entry in jobs {
      // Gone with its collection, or done: dropped.
      if let job = entry.job, job.housekeep() { again.append(entry) }
    }
    if !again.isEmpty { housekeeping.withLock { $0.append(contentsOf: again) } }
    housekeepingCount.subtract(jobs.count - again.count, ordering: .relaxed)
  }

  /// Trims the next batch of noted cells, in turn; cells still pinned, or locked right now, go
  /// back to the end of the list, so that a running snapshot that pins some cells cannot keep
  /// the others from their turn.
  func reclaim(using segment: _Segment, by context: _ThreadContext) {
    let engine = _Engine.shared
    engine.recomputeHorizon()
    // Trimming publishes nothing: readers and validators that meet these locks carry on.
    segment.commitNumber.store(_CommitNumber.unnumbered, ordering: .releasing)
    // What the trims drop is freed after the list's lock is released: freeing a version can
    // free the last reference to another listed cell, whose deinit takes that lock.
    var dropped: [_VersionBase] = []
    let trimmed = pending.withLock { list -> Int in
      var done = 0
      var again: [Unmanaged<_Cell>] = []
      for _ in 0..<Self.batchSize {
        guard let handle = list.popFirst() else { break }
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
        if finished { done += 1 } else { again.append(handle) }
      }
      // Put back after the batch, so that one round does not meet the same cell twice.
      for handle in again { list.append(handle) }
      return done
    }
    count.subtract(trimmed, ordering: .relaxed)
    dropped.removeAll()
  }
}

/// The reclamation list: cells in the order of their turns, and where each one is, so that a
/// cell's `deinit` takes it out in O(1).
private struct _PendingCells {
  /// The cells, from `head` on; nil where a cell was taken out.
  private var queue: [Unmanaged<_Cell>?] = []
  private var head = 0
  /// By address (`_Cell.address`), never by a reference: a cell may be in its `deinit`.
  private var positions: [UInt: Int] = [:]

  private static func address(_ cell: Unmanaged<_Cell>) -> UInt { UInt(bitPattern: cell.toOpaque()) }

  mutating func append(_ cell: Unmanaged<_Cell>) {
    positions[Self.address(cell)] = queue.count
    queue.append(cell)
  }

  /// Takes the cell at `address` out; returns whether it was listed.
  mutating func remove(_ address: UInt) -> Bool {
    guard let position = positions.removeValue(forKey: address) else { return false }
    queue[position] = nil
    return true
  }

  /// Takes out the cell whose turn is next.
  mutating func popFirst() -> Unmanaged<_Cell>? {
    while head < queue.count {
      let cell = queue[head]
      queue[head] = nil
      head += 1
      if let cell {
        positions[Self.address(cell)] = nil
        compactIfWorthIt()
        return cell
      }
    }
    compactIfWorthIt()
    return nil
  }

  /// Drops the taken prefix once it is at least half the storage: amortized O(1) per pop.
  private mutating func compactIfWorthIt() {
    guard head >= 64, head * 2 >= queue.count else { return }
    queue.removeFirst(head)
    head = 0
    positions = [:]
    for (position, cell) in queue.enumerated() {
      if let cell { positions[Self.address(cell)] = position }
    }
  }
}

/// Work a collection leaves for later because a running snapshot may still need what it would
/// free: an index's retired cells and replaced tables. Left to the collection's own next
/// changes, it waited for them, and a map idle after a long snapshot ended kept every cell
/// removed meanwhile (found by review). Hand it over with `_deferHousekeeping(_:)`.
package protocol _DeferredHousekeeping: AnyObject, Sendable {
  /// Frees what no running snapshot can need any more; returns whether something must wait
  /// still (the job is then called again later). Called with no engine lock held.
  func housekeep() -> Bool
}

/// A job of the housekeeping list, which does not keep it alive.
private struct _WeakHousekeeping: @unchecked Sendable {
  weak var job: (any _DeferredHousekeeping)?
}

/// Has the engine call `job.housekeep()` from time to time (with the history reclaimer's
/// turn) until it returns false, or until `job` is freed: the engine does not retain it.
package func _deferHousekeeping(_ job: any _DeferredHousekeeping) {
  _Engine.shared.reclaimer.noteHousekeeping(job)
}
