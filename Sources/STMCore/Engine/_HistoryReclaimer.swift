import Synchronization

/// Cells whose history a commit could not trim completely (a running snapshot still needed
/// it), trimmed again later so that memory stays flat even for cells that are never written
/// again (DESIGN.md invariant 6).
///
/// The list retains its cells: a listed cell lives until its history is trimmed, so no cell
/// is ever freed while listed, and the reclaimer trims with no lock of its own held. (It
/// used to hold unretained cells and trim under the list's lock, which a listed cell's
/// `deinit` took to leave the list: a trim that freed the last reference to a cell then
/// waited for the lock its own thread held. Found by the long stress tests.)
final class _HistoryReclaimer: Sendable {
  /// The cells, in the order of their turns, retained.
  private let pending = _Lock(_FIFO<_Cell>())
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
  /// Objects let go of once no snapshot announced before they were handed over is running
  /// (see `_releaseAfterRunningSnapshots(_:)`), with the clock value they wait to pass, in
  /// the order they came.
  private let waitingReleases = _Lock<[(objects: [AnyObject], clock: UInt64)]>([])
  private let waitingReleaseCount = Atomic<Int>(0)
  /// Rounds of `reclaim(by:)` and `runHousekeeping(by:)` under way: each holds cells or jobs
  /// off their lists until it puts back those that must wait still, which a long
  /// transaction's turn must not miss (see `turnAfterLongTransaction(by:)`).
  private let roundsUnderWay = Atomic<Int>(0)
  /// The newest clock value objects were handed over at: only a transaction that ran at or
  /// below it can be what keeps them (see `releaseWhatTheEndedSnapshotKept(_:)`). Only
  /// ever raised.
  private let releasesKeptFor = Atomic<UInt64>(0)
  /// How long a transaction must have run, in nanoseconds, to take a turn as it ends if
  /// anything waits here (see `turnAfterLongTransaction(by:)`): ten milliseconds. Without it,
  /// only commits took turns, and what a long transaction kept stayed after it, for good in a
  /// program that had gone quiet, a dropped map's values included (found by a helper's
  /// review). Short transactions keep history from each other all the time where several run
  /// at once, and what they keep goes with the commits' turns, which come as often as they
  /// commit. A turn at the end of every transaction made `queue-mpmc`'s transactions a third
  /// slower; at the end of those that ran a millisecond (on 2 cores, many that were
  /// preempted), `queue-batch` an eighth slower at two threads, the thread that took the turn
  /// then letting go of a millisecond's worth of queue nodes. At ten, no workload changed.
  static let keeperTurnAfter = 10_000_000

  /// Remembers `job` until its `housekeep()` says nothing waits any more.
  func noteHousekeeping(_ job: any _DeferredHousekeeping) {
    housekeeping.withLock { $0.append(_WeakHousekeeping(job: job)) }
    housekeepingCount.add(1, ordering: .relaxed)
  }

  /// How many cells the list holds (and keeps alive).
  var listedCount: Int { count.load(ordering: .relaxed) }

  /// Remembers `cell`, whose history still has more than its newest version; the caller holds
  /// its commit lock. Returns whether the cell was not listed yet: then the caller looks at the
  /// running snapshots again (see `_Engine.trimHistory(below:of:noting:by:)`).
  func note(_ cell: _Cell) -> Bool {
    #if DEBUG
    if let hook = _TestHooks.beforeListingKeptHistory.value { hook() }
    #endif
    guard !cell.markAwaitingReclamation() else { return false }
    pending.withLock { $0.append(cell) }
    count.add(1, ordering: .relaxed)
    return true
  }

  /// As a transaction or a drop-in read that announced `snapshot` ends, with no segment and
  /// no lock held: lets go of the objects handed over that no running snapshot needs any
  /// more, if it may be what kept them. Not only after the keeper's turn threshold: a map
  /// dropped inside a short transaction waits for that transaction's snapshot, and nothing
  /// else came for it in a program that then ran only read-only transactions (found by
  /// review: 20,000 such transactions, each dropping a map, kept 20,000 maps, 614 MB). Only
  /// those running when objects were handed over look, so a long one that keeps them costs
  /// the others nothing. (Drop-in updates do not look: they come with the reclamation turn of
  /// their commits.)
  @inline(__always)
  func releaseWhatTheEndedSnapshotKept(_ snapshot: UInt64) {
    guard snapshot <= releasesKeptFor.load(ordering: .relaxed), waitingReleaseCount.load(ordering: .relaxed) > 0 else { return }
    releaseWhatNoSnapshotNeeds()
  }

  /// The turn of a transaction that ran for `keeperTurnAfter` or longer, as it ends, with no
  /// segment held, if anything waits here: a whole round of the listed history, the objects
  /// handed over and the collections' deferred work (what its snapshot kept may be anywhere in
  /// them). Out of line: rare.
  ///
  /// Whatever waits, not only what this transaction may have kept: the snapshot up to which
  /// an ending transaction looked was not raised for a cell listed already, and a long
  /// transaction that kept history in such a cell took no turn (found by review). A commit
  /// that lists a cell as this transaction ends is the other side of a handshake: the
  /// transaction withdrew its snapshot before the fence below, and the commit looks at the
  /// running snapshots again after listing (`_Engine.trimHistory(below:of:noting:by:)`), so
  /// that either this turn sees the cell or the commit sees the snapshot gone and trims the
  /// history itself. (A window stays: this turn may meet the cell while that commit still
  /// holds its lock, and put it back for a later turn, as it does any cell it finds locked.)
  ///
  /// A round of the reclaimer under way on another thread (a commit's turn, or another long
  /// transaction's) may hold cells whose history it kept for this transaction, trimmed before
  /// the snapshot was withdrawn and put back after this turn had looked at the list: nothing
  /// came for them in a program gone quiet (found by review). Such a round counts itself
  /// before it looks at the snapshots, and this turn waits for the rounds it sees under way
  /// after the fence: either it sees the round, or the round sees the snapshot gone.
  @inline(never)
  func turnAfterLongTransaction(by context: _ThreadContext) {
    atomicMemoryFence(ordering: .sequentiallyConsistent)
    waitForRoundsUnderWay()
    var rounds = (count.load(ordering: .relaxed) + Self.batchSize - 1) / Self.batchSize
    while rounds > 0 && count.load(ordering: .relaxed) > 0 {
      reclaim(by: context)
      rounds -= 1
    }
    if waitingReleaseCount.load(ordering: .relaxed) > 0 {
      context.setAside(objects: takeWhatNoSnapshotNeeds(oldest: _EngineClock.oldestRunningSnapshot()))
    }
    rounds = (housekeepingCount.load(ordering: .relaxed) + Self.housekeepingBatchSize - 1) / Self.housekeepingBatchSize
    while rounds > 0 && housekeepingCount.load(ordering: .relaxed) > 0 {
      runHousekeeping(by: context)
      rounds -= 1
    }
  }

  /// Waits until no round of the reclaimer is under way, up to about 0.1 s: a round takes
  /// microseconds, and longer only while its thread is off its core, but where rounds come
  /// one after another it must not wait for good. (Rounds hold no lock and wait for no one,
  /// so the wait cannot close a cycle.)
  private func waitForRoundsUnderWay() {
    guard roundsUnderWay.load(ordering: .relaxed) > 0 else { return }
    #if DEBUG
    _TestHooks.longTurnsWaitingForRounds.add(1, ordering: .relaxed)
    #endif
    var backoff = _Backoff()
    var pauses = 0
    while roundsUnderWay.load(ordering: .acquiring) > 0 && pauses < 2_000 {
      backoff.pause()
      pauses += 1
    }
  }

  /// Counts a round of `reclaim(by:)` or `runHousekeeping(by:)` as under way, before it looks
  /// at the running snapshots (see `turnAfterLongTransaction(by:)`). The fence makes that
  /// handshake hold in the memory model, not only on x86 and arm64, whose read-modify-writes
  /// fence anyway: the round's later loads are not all sequentially consistent (noted by
  /// review).
  private func beginRound() {
    roundsUnderWay.add(1, ordering: .sequentiallyConsistent)
    atomicMemoryFence(ordering: .sequentiallyConsistent)
  }

  /// Ends what `beginRound()` began, once the round has put back what must wait still.
  private func endRound() {
    roundsUnderWay.subtract(1, ordering: .releasing)
  }

  /// Called after each writing commit on `segment`, which `context`'s thread still holds.
  /// Returns whether the list had its turn (which may set objects aside in the thread's
  /// leftovers).
  @inline(__always) @discardableResult
  func reclaimNow(ifDueFor context: _ThreadContext, using segment: _Segment) -> Bool {
    segment.commitsSinceReclamation += 1
    guard segment.commitsSinceReclamation >= Self.interval else { return false }
    takeTurn(using: segment, by: context)
    return true
  }

  /// The list's turn, once per `interval` writing commits of a segment. Out of line: inlined
  /// into every commit, it made each one retain and release the reclaimer.
  @inline(never)
  private func takeTurn(using segment: _Segment, by context: _ThreadContext) {
    segment.commitsSinceReclamation = 0
    if count.load(ordering: .relaxed) > 0 { reclaim(by: context) }
    if housekeepingCount.load(ordering: .relaxed) > 0 { runHousekeeping(by: context) }
    if waitingReleaseCount.load(ordering: .relaxed) > 0 {
      // Let go of by the caller once its transaction or update has ended (see `_Leftovers`).
      context.setAside(objects: takeWhatNoSnapshotNeeds(oldest: _EngineClock.oldestRunningSnapshot()))
    }
  }

  /// Keeps `objects` until every snapshot announced now is withdrawn; lets go of them at once
  /// when none is. Outside a transaction, also lets go of what earlier calls left that no
  /// snapshot needs any more: otherwise only a turn, after 64 writing commits of a segment,
  /// did, and maps dropped one after another while other threads ran read-only transactions
  /// piled up without bound (found by review).
  func releaseAfterRunningSnapshots(_ objects: [AnyObject]) {
    // Moved on, as for a replaced table (see `_KeyIndex.replaceTable`): a snapshot announced
    // from now on is above `clock`, and the clock cannot stay at `clock` for good.
    let clock = _EngineClock.advance() &- 1
    if clock >= _EngineClock.oldestRunningSnapshot() {
      waitingReleases.withLock { $0.append((objects, clock)) }
      releasesKeptFor.raise(to: clock)
      waitingReleaseCount.add(1, ordering: .relaxed)
    }
    // Inside a transaction, the deinits of what goes would run in it (see `_Leftovers`): that
    // waits for the transaction's end, a turn or a later call. So it does inside the user's
    // code that the engine runs with the thread barred from transactional data, which shows
    // no segment either (a drop-in update's closure, a commute's transform): freed there, a
    // map dropped elsewhere had its values' deinits trap, blaming that code (found by review).
    // Outside, the running snapshots are looked at again now that these wait: a transaction
    // that ended since the first look may have missed them as it ended.
    let state = _ThreadState.current
    if waitingReleaseCount.load(ordering: .relaxed) > 0 && state.pointee.segment == nil && state.pointee.forbiddenAccess == nil {
      releaseWhatNoSnapshotNeeds()
    }
  }

  /// Lets go of the objects that no running snapshot can need any more, now. Called with no
  /// lock held and outside any transaction. Out of line: rare.
  @inline(never)
  func releaseWhatNoSnapshotNeeds() {
    _ = takeWhatNoSnapshotNeeds(oldest: _EngineClock.oldestRunningSnapshot())
  }

  /// Takes the objects handed over before `oldest`, the oldest snapshot still announced, off
  /// the list, for the caller to let go of with no lock held: their deinits may free a great
  /// deal, or hand more objects over.
  private func takeWhatNoSnapshotNeeds(oldest: UInt64) -> [[AnyObject]] {
    let taken = waitingReleases.withLock { list -> [[AnyObject]] in
      // Nearly in clock order (two hand-overs may append in the other order): the ones to
      // drop are taken from the front, up to the first that must wait.
      let count = list.firstIndex { $0.clock >= oldest } ?? list.count
      let taken = list.prefix(count).map(\.objects)
      list.removeFirst(count)
      return taken
    }
    if !taken.isEmpty { waitingReleaseCount.subtract(taken.count, ordering: .relaxed) }
    return taken
  }

  /// How many hand-overs of `releaseAfterRunningSnapshots(_:)` still wait.
  var releasesWaiting: Int { waitingReleaseCount.load(ordering: .relaxed) }

  /// Does the next few collections' deferred work; those that must wait still go back to the
  /// end of the list. Run with no lock held: a job takes its collection's locks. What the jobs
  /// let go of goes to `context`'s leftovers, freed once the thread holds no segment: a turn
  /// comes right after a commit, and a key's deinit run by a job under its collection's lock
  /// hung on a write to the same collection, or ran in the committed transaction and lost its
  /// writes (found by review).
  func runHousekeeping(by context: _ThreadContext) {
    // Before the jobs look at the running snapshots.
    beginRound()
    defer { endRound() }
    let jobs = housekeeping.withLock { list -> [_WeakHousekeeping] in
      let taken = Array(list.prefix(Self.housekeepingBatchSize))
      list.removeFirst(taken.count)
      return taken
    }
    var again: [_WeakHousekeeping] = []
    var dropped: [AnyObject] = []
    for entry in jobs {
      // Gone with its collection, or done: dropped.
      guard let job = entry.job else { continue }
      // Kept with what it drops: a collection dropped on another thread meanwhile may be held
      // by this reference last, and freed here it would free its keys and values inside the
      // transaction whose commit took this turn (noted by review).
      dropped.append(job)
      if job.housekeep(droppingInto: &dropped) { again.append(entry) }
    }
    context.setAside(objects: dropped.isEmpty ? [] : [dropped])
    if !again.isEmpty {
      housekeeping.withLock { $0.append(contentsOf: again) }
    }
    housekeepingCount.subtract(jobs.count - again.count, ordering: .relaxed)
  }

  /// Trims the next batch of noted cells, in turn; cells still pinned, or locked right now, go
  /// back to the end of the list, so that a running snapshot that pins some cells cannot keep
  /// the others from their turn.
  func reclaim(by context: _ThreadContext) {
    let engine = _Engine.shared
    // Before the horizon is read.
    beginRound()
    defer { endRound() }
    engine.recomputeHorizon()
    let batch = pending.withLock { list in
      var taken: [_Cell] = []
      while taken.count < Self.batchSize, let cell = list.popFirst() { taken.append(cell) }
      return taken
    }
    // What the trims drop, and the cells that leave the list (the list may hold a cell's last
    // reference, and with it its newest value's), are freed with no lock held, once the
    // thread has let go of its segment (see the end).
    var dropped: [_VersionBase] = []
    var again: [_Cell] = []
    var leaving: [AnyObject] = []
    for cell in batch {
      // Taken as housekeeping (`_retireTag`): trimming publishes nothing, so readers and
      // validators that meet these locks carry on, and the committing segment keeps showing
      // the number of the commit it just made (the turn comes right after a commit, and the
      // conflict log matches a version's stamp against that number to name the write a pause
      // waited for; storing `unnumbered` for the trim made it name the transaction instead).
      guard cell.tryLock(as: _retireTag).locked else {
        again.append(cell)
        continue
      }
      var cut: _VersionBase?
      let historyRemains = engine.trimHistory(
        below: cell.head.load(ordering: .acquiring), of: cell, noting: false, handingOver: &cut, by: context
      ).remains
      if let cut { dropped.append(cut) }
      // Cleared under the lock, as `note` sets it: a commit that leaves history after this
      // lists the cell again.
      cell.unlock(clearing: historyRemains ? 0 : _CellWord.awaitingReclamation)
      if historyRemains { again.append(cell) } else { leaving.append(cell) }
    }
    #if DEBUG
    if let hook = _TestHooks.beforeReclaimerPutsCellsBack.value { hook() }
    #endif
    // Put back after the batch, so that one round does not meet the same cell twice.
    if !again.isEmpty {
      pending.withLock { list in for cell in again { list.append(cell) } }
    }
    count.subtract(leaving.count, ordering: .relaxed)
    // Freed once the thread has let go of its segment, like what its commit dropped: a turn
    // comes right after a commit, and the deinits of the values these hold would otherwise
    // run in the committed transaction, and their writes be lost (found by review; for the
    // cells, whose list held the last reference once their variable or map had gone, by a
    // test of it).
    for version in dropped { context.setAside(version) }
    context.setAside(objects: leaving.isEmpty ? [] : [leaving])
  }
}

/// Work a collection leaves for later because a running snapshot may still need what it would
/// free: an index's retired cells and replaced tables. Left to the collection's own next
/// changes, it waited for them, and a map idle after a long snapshot ended kept every cell
/// removed meanwhile (found by review). Hand it over with `_deferHousekeeping(_:)`.
package protocol _DeferredHousekeeping: AnyObject, Sendable {
  /// Lets go of what no running snapshot can need any more, into `dropped`, which the engine
  /// frees once the thread holds no lock and no segment; returns whether something must wait
  /// still (the job is then called again later). Called with no engine lock held, but maybe
  /// inside a transaction that has just committed: what a job drops may hold the last
  /// reference to a key or a value, whose deinit is the user's code (see `_Leftovers`).
  func housekeep(droppingInto dropped: inout [AnyObject]) -> Bool
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

/// Lets go of `objects`, which a collection took out of its structures under its own lock and
/// which may hold the last references to keys and values: at once, with that lock released,
/// outside a transaction; inside one, once it has ended (the thread's leftovers), so that
/// their deinits, the user's code, run outside it as everywhere else (see `_Leftovers`).
@usableFromInline package func _letGoOutsideTransactions(_ objects: [AnyObject]) {
  guard !objects.isEmpty else { return }
  let state = _ThreadState.current
  guard state.pointee.segment != nil else { return }
  state.pointee.context._withUnsafeGuaranteedRef { $0.setAside(objects: [objects]) }
}

/// Keeps `objects` alive until every snapshot announced now (by a transaction, or by a
/// single operation's lookup) is withdrawn, and then lets go of them at the next call made
/// outside a transaction or the history reclaimer's next turn; at once when no snapshot is
/// announced. For an index that goes while a running transaction may still hold some of its
/// cells without a retain (see `_Segment.read(_:retaining:)`).
package func _releaseAfterRunningSnapshots(_ objects: [AnyObject]) {
  _Engine.shared.reclaimer.releaseAfterRunningSnapshots(objects)
}

extension Atomic where Value == UInt64 {
  /// Raises the value to `value` if it is lower; never lowers it. Relaxed: for bounds that
  /// only ever rise, whose readers a late raise only makes look once more.
  @inlinable
  package func raise(to value: UInt64) {
    var current = load(ordering: .relaxed)
    while current < value {
      let (exchanged, original) = compareExchange(expected: current, desired: value, ordering: .relaxed)
      if exchanged { return }
      current = original
    }
  }
}
