import Synchronization

/// A segment: the private state of one running transaction (snapshot, read markers, redo log),
/// reused by whichever thread takes it next. The pool is fixed; threads beyond it wait.
///
/// The atomics are read by other threads; every other stored property belongs to the thread
/// holding the segment, which is what makes reads cheap: marking a read writes no engine state
/// that another thread reads. (It retains the cell, to keep it alive until the commit has
/// validated it, unless something else does: an index's cells, see `read(_:retaining:)`.)
@usableFromInline
final class _Segment: @unchecked Sendable {
  /// The pool's segments are allocated one after another, and each thread keeps to its own:
  /// padding at both ends keeps one segment's fields off the cache lines of its neighbours'.
  private let paddingAtStart = _CacheLinePadding()
  @usableFromInline let index: Int
  /// The holder this segment writes into a cell's `lockWord` while its commit holds the cell.
  @usableFromInline let tag: Int

  /// Whether a thread holds the segment, and the lookup it announced: one word (see
  /// `_SegmentOccupancy`), so that the drop-in update's quick road takes the segment and
  /// announces its lookup with one compare-and-swap, where a flag and a slot cost it two
  /// fenced instructions.
  let occupancy = Atomic<UInt64>(_SegmentOccupancy.free)
  /// True from just before a commit takes its first lock until it has published everything.
  /// The quick road's update after a marked lookup sets it without a fence (see
  /// `mayBeCommitting`).
  let committing = Atomic<Bool>(false)
  /// The number of the commit in progress, or one of the `_CommitNumber` sentinels.
  let commitNumber = Atomic<UInt64>(_CommitNumber.unnumbered)
  /// While the conflict log records: the number of the running transaction's `atomically`
  /// call site, read by transactions that wait for or lose to this one (0 otherwise).
  let siteNumber = Atomic<UInt32>(0)
  private let paddingBeforeSnapshot = _CacheLinePadding()
  /// The snapshot this segment reads at, or at least `_SnapshotSlot.withdrawn` (above any
  /// snapshot) when it reads nothing (see `_Engine`).
  /// On a line of its own: every commit reads those of all segments in use (see
  /// `trimHistory` and `_Engine.segmentsInUse`), and the fields above change on every drop-in
  /// update, which reads at no snapshot.
  ///
  /// Withdrawn, it holds `_SnapshotSlot.withdrawn` plus the newest snapshot the segment has
  /// announced: a drop-in update may leave the clock where it is only if no snapshot was taken
  /// at the clock's present value (see `_Engine.unnumberedOverwritePosition(for:)`), and one
  /// load per segment tells it both things. Still above any snapshot, as `.max` would be.
  let announcedSnapshot = Atomic<UInt64>(_SnapshotSlot.withdrawn)
  /// The snapshot this segment last announced (holding thread only), for its withdrawal.
  @exclusivity(unchecked) var newestSnapshot: UInt64 = 0
  private let paddingAfterSnapshot = _CacheLinePadding()

  // MARK: State of the running transaction (holding thread only)

  // Only the thread holding the segment touches these, so Swift's dynamic exclusivity checks
  // (which dominated the cost of a transaction) are switched off for them.

  @exclusivity(unchecked) @usableFromInline var snapshot: UInt64 = 0
  /// Increases with every attempt, so that a `Transaction` handle kept past its block is caught.
  @exclusivity(unchecked) @usableFromInline var attempt: UInt64 = 0
  @exclusivity(unchecked) @usableFromInline var isRunning = false
  @exclusivity(unchecked) @usableFromInline var log = _TransactionLog()
  /// Read markers: the cells this attempt read from committed state (a short list may hold a
  /// cell twice; a long one is deduplicated).
  @exclusivity(unchecked) var reads = _CellList()
  /// Holds the inevitable token.
  @usableFromInline @exclusivity(unchecked) var isInevitable = false
  /// The body asked for inevitability itself (rather than the engine escalating it).
  @exclusivity(unchecked) var isInevitableByRequest = false
  /// The attempt cannot commit and must rerun (an internal signal was swallowed by user code).
  @exclusivity(unchecked) var isDoomed = false
  /// The kind of the abort that a doomed attempt counts: the kind of the stale read that doomed
  /// it (an inevitable transaction's write, as at a commit, was counted as write-read; found
  /// by review).
  @exclusivity(unchecked) var doomedBy = ContentionKind.writeRead
  /// The body called `retry()` (even if user code swallowed the error).
  @exclusivity(unchecked) var retryRequested = false
  /// The earliest deadline of the attempt's `retry(until:)` calls that asked for a wait: the
  /// wait, if the attempt ends in one, ends then at the latest (an `orElse` branch's wait
  /// included, when the other branch retries too). In Dispatch's uptime nanoseconds, or
  /// `_RetryWait.noDeadline` (see `_RetryWait.deadline`).
  @exclusivity(unchecked) var retryDeadline = _RetryWait.noDeadline
  @exclusivity(unchecked) var attemptStarted = 0
  /// Writing commits on this segment since one of them last looked at the reclamation list.
  /// Counted per segment, not per thread: segments outlive threads, so threads that each
  /// commit a few writes and exit (a `TransactionQueue`'s workers) still bring the list's turn
  /// round (found by review).
  @exclusivity(unchecked) var commitsSinceReclamation = 0
  /// Nanoseconds this attempt spent in pauses, which the statistics count as paused: an abort
  /// counts the rest of the attempt as lost, so that no time is counted twice.
  @exclusivity(unchecked) var pausedInAttempt = 0
  /// While the conflict log records: the site of the transaction that made this attempt's
  /// commit fail, for the abort's log entry.
  @exclusivity(unchecked) var conflictingSite: UInt32 = 0
  /// The cell that made this attempt's commit fail, for the conflict log (unretained: the read
  /// set or the redo log holds it until the attempt ends), and whether it was read or written.
  @exclusivity(unchecked) var conflictingCell: Unmanaged<_Cell>?
  @exclusivity(unchecked) var conflictingCellWasRead = false
  /// Abort hooks of `orElse` branches and nested blocks that rolled back; they run when the
  /// whole transaction ends, outside it, whatever its outcome.
  @exclusivity(unchecked) var rolledBackHooks: [(number: Int, hook: () -> Void)] = []
  /// How many abort hooks the attempt has registered: each hook's number, so that the hooks
  /// of parts rolled back and those of the body run in reverse order of registration, as
  /// `Transaction.afterAbort` says, however they interleave.
  @exclusivity(unchecked) var abortHooksRegistered = 0
  @usableFromInline @exclusivity(unchecked) unowned(unsafe) var context: _ThreadContext?
  /// Whether the newest version of the cell an in-place mutation holds is its only one (see
  /// `newestVersion(ofLocked:)`).
  @exclusivity(unchecked) var lockedNewestIsAlone = false
  /// Set while this segment's in-place update overwrites its cell without a commit number: its
  /// place in the serial order (see `_Engine.unnumberedOverwritePosition(for:)`). The quick
  /// road reads it to know how its update ends (`_QuickUpdate.publish(_:in:)`).
  @usableFromInline @exclusivity(unchecked) var unnumberedPosition: UInt64?
  /// Set when this segment's in-place update peeked at another cell whose newest value an
  /// update without a commit number wrote: this update must then take a number (see
  /// `_EngineEntry.lockToPeek(_:during:)`).
  @exclusivity(unchecked) var peekedUnnumberedWrite = false
  /// Empty storage for the next commit's landed writes (see `keepForReuse`).
  @exclusivity(unchecked) var reusableLandingWrites: [_DelayedWrite]?
  /// The cells whose values the transaction's code is mutating on a copy, innermost last: a
  /// `_modify` accessor that writes its copy back when the mutation ends (the first update of
  /// a variable in a block) lists its cell meanwhile, and using a listed cell traps, as a
  /// pending version flagged `mutatingInPlace` does. Without it, what such a use wrote was
  /// silently overwritten by the copy.
  @exclusivity(unchecked) var cellsBeingMutated: [Unmanaged<_Cell>] = []
  /// The cells this inevitable transaction pinned (see `_Cell.pinForInevitable()`), unpinned
  /// when it ends.
  @exclusivity(unchecked) var pinnedCells: [_Cell] = []
  /// What parts that rolled back made (see `rollback(to:)`), kept until the whole
  /// transaction ends and then freed with its leftovers. Last, so that adding it moved none
  /// of the fields that every transaction and drop-in update touches.
  @exclusivity(unchecked) var rolledBack: [Any] = []
  private let paddingAtEnd = _CacheLinePadding()

  init(index: Int) {
    self.index = index
    self.tag = index + 1
  }

  func tryAcquire() -> Bool {
    occupancy.compareExchange(
      expected: _SegmentOccupancy.free, desired: _SegmentOccupancy.held, ordering: .acquiring
    ).exchanged
  }

  /// Takes the segment if it is free, announcing in the same instruction a lookup at
  /// `announced` (see `_Engine.announceForLookup(for:after:)`). Sequentially consistent, as
  /// the announcement's own store is: the lookup's loads of an index's words come after it.
  @inline(__always)
  func tryAcquire(announcingLookup announced: UInt64) -> Bool {
    occupancy.compareExchange(
      expected: _SegmentOccupancy.free, desired: announced, ordering: .sequentiallyConsistent
    ).exchanged
  }

  /// Whether this segment may be committing, for a transaction that holds the inevitable
  /// token and waits until no other is: it is (`committing`), or it is on the quick road
  /// between a marked lookup and its commit lock (`_SegmentOccupancy.quickUpdate`). The
  /// occupancy word is read first: the quick road marks itself committing before it withdraws
  /// its lookup (a releasing store), so a reader that finds the lookup withdrawn finds the mark.
  var mayBeCommitting: Bool {
    _SegmentOccupancy.isQuickUpdate(occupancy.load(ordering: .sequentiallyConsistent))
      || committing.load(ordering: .sequentiallyConsistent)
  }

  /// Lets the segment go, withdrawing any lookup it still announces.
  func release() {
    occupancy.store(_SegmentOccupancy.free, ordering: .releasing)
  }

  private var engine: _Engine { _Engine.shared }

  // MARK: Reads

  /// The version of `cell` that this transaction sees: its own pending write if it has one,
  /// otherwise the newest committed version at its snapshot, which it marks as read.
  @usableFromInline
  func read(_ cell: _Cell) -> Unmanaged<_VersionBase> {
    read(cell, retaining: true)
  }

  /// `read(_:)`; with `retaining` false, the read marker holds no retain on `cell`, for a
  /// caller that guarantees that the cell outlives this transaction's snapshot: an index's
  /// cell, which the index frees only once every snapshot announced before the cell left it
  /// (or before the index itself went) is withdrawn (see `_KeyIndex`). The markers are used
  /// only while the snapshot is announced (validation, `retry`'s registration), and a retain
  /// wrote the cell's reference count, the one shared write of a read: two threads reading
  /// one key in transactions ran slower than one.
  @usableFromInline
  func read(_ cell: _Cell, retaining: Bool) -> Unmanaged<_VersionBase> {
    checkNotBeingMutated(cell)
    if !log.isEmpty, let position = log.find(cell) {
      if let version = log.entries[position].version {
        version.checkNotMutatingInPlace()
        return Unmanaged.passUnretained(version)
      }
      // Only a delayed append so far: the anchor reads as at the snapshot (see `_DelayedAppend`).
      if log.entries[position].commutes.isEmpty && log.entries[position].sum == nil { return markRead(cell, retaining: retaining) }
      // Only commuted so far: read the snapshot value, apply the delayed updates, and from now
      // on treat the result as an ordinary write (so a concurrent commit conflicts with it).
      let base = markRead(cell, retaining: retaining)
      let (commutes, sum) = (log.entries[position].commutes, log.entries[position].sum)
      let owner = context ?? _ThreadState.current.pointee.context.takeUnretainedValue()
      let version = runningTransforms {
        base._withUnsafeGuaranteedRef { _WriteEntry.applying(commutes, sum, to: $0, settingAsideIn: owner) }
      }
      log.prepareToChange(at: position)
      log.entries[position].version = version
      log.entries[position].commutes = []
      log.entries[position].sum = nil
      log.entries[position].generation = log.generation
      return Unmanaged.passUnretained(version)
    }
    return markRead(cell, retaining: retaining)
  }

  /// The value of `cell` this transaction would read, without marking it read: its own
  /// pending write if it has one, otherwise the newest committed version at its snapshot.
  /// Nil, where a read would compute or trap, when the transaction's own value is not known
  /// now: it has only delayed updates of the cell (appends, commutes), or its code is
  /// mutating the value right now. A read that leaves no mark cannot make the transaction
  /// conflict, so nothing it returns may decide the transaction's result unless a marked read
  /// backs it (see `TVar._peek(in:)`).
  @usableFromInline
  func peek(_ cell: _Cell) -> Unmanaged<_VersionBase>? {
    if !cellsBeingMutated.isEmpty && isListed(cell) { return nil }
    if !log.isEmpty, let position = log.find(cell) {
      guard let version = log.entries[position].version, version.flags & _VersionFlags.mutatingInPlace == 0 else { return nil }
      return Unmanaged.passUnretained(version)
    }
    return visibleVersion(of: cell)
  }

  private func markRead(_ cell: _Cell, retaining: Bool) -> Unmanaged<_VersionBase> {
    if !reads.lastIs(cell) { reads.append(cell, retaining: retaining) }
    return visibleVersion(of: cell)
  }

  /// The newest version of `cell` stamped at or before the snapshot.
  ///
  /// A commit locks its cells before it takes its number, and takes its number before it
  /// publishes. So if a commit numbered at or below our snapshot still holds the cell, its version
  /// may not be in the chain yet, and we wait for it (briefly: it is publishing). A commit whose
  /// number is above our snapshot cannot matter to us, and neither can one still showing
  /// `_CommitNumber.unnumbered` (see there for why its number will be above our snapshot).
  @usableFromInline
  func visibleVersion(of cell: _Cell) -> Unmanaged<_VersionBase> {
    var pausedSince = 0, holderSite: UInt32 = 0, pausedHolder = 0
    var backoff = _Backoff()
    while true {
      let holder = cell.holderAfterAnnouncing
      // A negative holder is a retirement (`_retireTag`), which publishes nothing.
      if holder > 0 && holder != tag {
        let number = engine.commitNumberForReader(ofSegmentTagged: holder)
        if _CommitNumber.mayPrecede(number, snapshot) {
          if pausedSince == 0 {
            pausedSince = _monotonicNanoseconds()
            holderSite = engine.site(ofSegmentTagged: holder)
            pausedHolder = holder
            _notePauseBegan()
          }
          backoff.pause()
          continue
        }
      }
      var version = cell.head.load(ordering: .acquiring)
      while version._withUnsafeGuaranteedRef({ $0.stamp }) > snapshot {
        // Safe without retaining: versions at or above the horizon are not freed while this
        // segment's snapshot is announced.
        version = version._withUnsafeGuaranteedRef { Unmanaged.passUnretained($0.older!) }
      }
      if pausedSince != 0, let context {
        let site = version._withUnsafeGuaranteedRef {
          engine.site(of: $0, ifPublishedBySegmentTagged: pausedHolder, otherwise: holderSite)
        }
        engine.notePause(.writeRead, since: pausedSince, context: context, segment: self, conflictingSite: site, cell: cell, reading: true)
      }
      return version
    }
  }

  /// The newest version of `cell`, whose commit lock this segment's in-place mutation has just
  /// taken; notes whether it is the only version, for `_Engine.overwritableVersions`. Asked
  /// here, as the caller starts fetching the value: on a large map the version's header is
  /// often on another cache line than its value, and the two misses then overlap instead of
  /// the header's coming at the end of the update.
  func newestVersion(ofLocked cell: _Cell) -> Unmanaged<_VersionBase> {
    let newest = cell.head.load(ordering: .acquiring)
    lockedNewestIsAlone = newest._withUnsafeGuaranteedRef { $0.older == nil }
    return newest
  }

  // MARK: Writes

  /// This transaction's pending version of `cell`, if it may be overwritten in place.
  @usableFromInline
  func writableVersion(of cell: _Cell) -> _VersionBase? {
    checkNotBeingMutated(cell)
    guard !log.isEmpty, let position = log.find(cell) else { return nil }
    // Field by field: a copy of the whole entry retained and released every reference in it.
    guard log.entries[position].generation == log.generation, log.entries[position].commutes.isEmpty,
      log.entries[position].sum == nil, let version = log.entries[position].version
    else { return nil }
    version.checkNotMutatingInPlace()
    return version
  }

  /// Buffers `version` as the new value of `cell`, replacing any earlier write or commute.
  /// Takes `version` over (consumed: the caller made it for this write, and passing it
  /// borrowed cost a retain here and a release there).
  @usableFromInline
  func recordWrite(_ cell: _Cell, _ version: consuming _VersionBase) {
    checkNotBeingMutated(cell)
    if let position = log.find(cell) {
      log.entries[position].version?.checkNotMutatingInPlace()
      log.prepareToChange(at: position)
      log.entries[position].version = consume version
      log.entries[position].commutes = []
      log.entries[position].sum = nil
      log.entries[position].generation = log.generation
    } else {
      log.append(_WriteEntry(cell: cell, version: consume version, commutes: [], generation: log.generation))
    }
  }

  /// Buffers a delayed update of `cell`. It reads nothing now, so it validates nothing at commit.
  @usableFromInline
  func recordCommute(_ cell: _Cell, _ transform: @escaping (_VersionBase) -> _VersionBase) {
    checkNotBeingMutated(cell)
    if let position = log.find(cell) {
      log.prepareToChange(at: position)
      if let version = log.entries[position].version {
        version.checkNotMutatingInPlace()
        // The transaction already has its own value: apply the update to it right away.
        log.entries[position].version = runningTransforms { transform(version) }
        log.entries[position].generation = log.generation
      } else {
        if let sum = log.entries[position].sum {
          // Additions recorded before this update come before it.
          log.entries[position].commutes.append { _Version<Int>.adding(sum, to: $0) }
          log.entries[position].sum = nil
        }
        log.entries[position].commutes.append(transform)
      }
    } else {
      log.append(_WriteEntry(cell: cell, version: nil, commutes: [transform], generation: log.generation))
    }
  }

  /// Runs `body`, which applies commute transforms during the transaction's body, as the
  /// commit runs them: with the thread taken out of the transaction and barred from
  /// transactional data, so that a transform that touches a `TVar` or the handle traps with
  /// the message for it. (It joined the transaction instead, and one that read its own variable
  /// recursed until the stack overflowed; found by review.)
  private func runningTransforms<Result>(_ body: () -> Result) -> Result {
    guard let context else { return body() }
    let barredBefore = context.forbiddenAccess
    context.state.pointee.segment = nil
    context.forbiddenAccess = .transactionalAccessInCommute
    defer {
      context.forbiddenAccess = barredBefore
      context.state.pointee.segment = Unmanaged.passUnretained(self)
    }
    return body()
  }

  /// Buffers a delayed addition of `amount` to `cell`, which holds an `Int`: as
  /// `recordCommute` with `{ $0 + amount }`, kept as a running sum instead of a closure.
  /// A sum that would overflow is closed as a step of its own, and a new one starts: applying
  /// the steps traps only where adding the amounts one by one would.
  @usableFromInline
  func recordAddition(_ cell: _Cell, _ amount: Int) {
    checkNotBeingMutated(cell)
    if let position = log.find(cell) {
      log.prepareToChange(at: position)
      if let version = log.entries[position].version {
        version.checkNotMutatingInPlace()
        log.entries[position].version = _Version<Int>.adding(amount, to: version)
        log.entries[position].generation = log.generation
      } else if let sum = log.entries[position].sum {
        let (total, overflows) = sum.addingReportingOverflow(amount)
        if overflows {
          // The additions so far become a step of their own, applied before this one: a sum
          // that wrapped would trap at commit where adding them one by one may not.
          log.entries[position].commutes.append { _Version<Int>.adding(sum, to: $0) }
          log.entries[position].sum = amount
        } else {
          log.entries[position].sum = total
        }
      } else {
        log.entries[position].sum = amount
      }
    } else {
      log.append(_WriteEntry(cell: cell, version: nil, commutes: [], sum: amount, generation: log.generation))
    }
  }

  /// Whether this transaction has a pending write, commute or delayed append of `cell`.
  @usableFromInline
  func hasWrite(of cell: _Cell) -> Bool {
    !log.isEmpty && log.find(cell) != nil
  }

  // MARK: Pins of an inevitable transaction

  /// Pins `cell` for this inevitable transaction; false if the cell is retired.
  @usableFromInline
  func pin(_ cell: _Cell) -> Bool {
    // Pinned already, by this transaction (only the inevitable one pins): a key updated again.
    if cell.isPinned { return true }
    guard cell.pinForInevitable() else { return false }
    pinnedCells.append(cell)
    return true
  }

  /// Pins every cell this transaction has written, as it becomes inevitable; false if one of
  /// them is retired already (the transaction must rerun: its write could never commit).
  func pinWrittenCells() -> Bool {
    for position in log.entries.indices where !log.entries[position].target._withUnsafeGuaranteedRef({ pin($0) }) {
      // For the conflict log's abort: the written cell a collection retired.
      (conflictingCell, conflictingCellWasRead) = (log.entries[position].target, false)
      return false
    }
    return true
  }

  /// Unpins what this transaction pinned; at its end.
  func unpinAll() {
    for cell in pinnedCells { cell.unpin() }
    pinnedCells.removeAll()
  }

  // MARK: Mutations of copies

  /// Lists `cell` as being mutated on a copy until `endMutatingCopy(of:)` (see
  /// `cellsBeingMutated`).
  @usableFromInline
  func beginMutatingCopy(of cell: _Cell) {
    cellsBeingMutated.append(.passUnretained(cell))
  }

  /// Ends what `beginMutatingCopy(of:)` began.
  @usableFromInline
  func endMutatingCopy(of cell: _Cell) {
    let wanted = Unmanaged.passUnretained(cell).toOpaque()
    // The innermost, almost always the last: mutations end in the order opposite to their starts.
    if cellsBeingMutated.last?.toOpaque() == wanted {
      cellsBeingMutated.removeLast()
    } else if let position = cellsBeingMutated.lastIndex(where: { $0.toOpaque() == wanted }) {
      cellsBeingMutated.remove(at: position)
    }
  }

  /// Traps if the transaction's code is mutating a copy of `cell`'s value right now.
  @inline(__always)
  private func checkNotBeingMutated(_ cell: _Cell) {
    // One load and a branch on every access; the list is empty but during such a mutation.
    if !cellsBeingMutated.isEmpty { checkNotListed(cell) }
  }

  private func checkNotListed(_ cell: _Cell) {
    if isListed(cell) { _misuse(.accessDuringOwnInPlaceUpdate) }
  }

  private func isListed(_ cell: _Cell) -> Bool {
    let address = Unmanaged.passUnretained(cell).toOpaque()
    return cellsBeingMutated.contains(where: { $0.toOpaque() == address })
  }

  // MARK: Checkpoints (orElse and nested atomically)

  @usableFromInline
  struct Checkpoint {
    let marks: _TransactionLog.Marks
  }

  /// Opens a checkpoint, which ``endCheckpoint()`` closes, whether or not the part rolled
  /// back to it. O(1).
  @usableFromInline
  func checkpoint() -> Checkpoint {
    Checkpoint(marks: log.openCheckpoint())
  }

  /// Closes the innermost checkpoint.
  @usableFromInline
  func endCheckpoint() {
    // Released here, once the log is no longer changing: a value's deinit may write to it.
    let dropped = log.closeCheckpoint()
    withExtendedLifetime(dropped) {}
  }

  /// Undoes the writes, commutes and hooks recorded since `checkpoint`; reads stay marked
  /// (a retry after `orElse` waits on what both branches read). The abort hooks that the
  /// rolled-back part registered run when the transaction ends, outside it.
  ///
  /// What the part made and still held (the pending versions that hold the values it wrote,
  /// its commutes and commit hooks, the items it appended) is kept until the transaction
  /// ends, and freed with its leftovers: a value's deinit is the user's code, and run here,
  /// inside the transaction, an append or enqueue it made went into a batch that this
  /// rollback then trimmed, and was lost (found by review). (A value the part replaced itself
  /// was freed as it replaced it, inside the part, as plain Swift frees it: what its deinit
  /// did is the part's, and goes with it.)
  @usableFromInline
  func rollback(to checkpoint: Checkpoint) {
    let undone = log.rollBack(to: checkpoint.marks)
    if !undone.entries.isEmpty { rolledBack.append(undone.entries) }
    if !undone.afterCommit.isEmpty { rolledBack.append(undone.afterCommit) }
    if !undone.wakeUps.isEmpty { rolledBack.append(undone.wakeUps) }
    if !undone.items.isEmpty { rolledBack.append(undone.items) }
    log.startNewGeneration()
    rolledBackHooks += undone.afterAbort
  }

  // MARK: Commit

  enum CommitOutcome {
    case committed(_SerialPosition)
    case conflict(ContentionKind)
  }

  /// Validates and publishes the redo log as one step with respect to every other commit.
  func commit(context: _ThreadContext) -> CommitOutcome {
    guard !log.isEmpty else { return .committed(_SerialPosition(number: snapshot, isReadOnly: true)) }
    return context.engine._withUnsafeGuaranteedRef { commit(context: context, engine: $0) }
  }

  private func commit(context: _ThreadContext, engine: _Engine) -> CommitOutcome {
    engine.enterCommit(self, context: context)
    log.sortForLocking()
    // The log is not changed during the commit, except that publishing moves each pending
    // version out of its entry; reading it through a buffer pointer spares a retain and release
    // of every entry's fields on each pass.
    return log.entries.withUnsafeMutableBufferPointer { mutableEntries in
      let entries = UnsafeBufferPointer(mutableEntries)
      // By index, here and below: a closure given whole entries would copy them, retaining
      // every reference in each.
      let hasBatches = entries.indices.contains { entries[$0].batch != nil }
      // Commute transforms and delayed appends run while the commit holds locks; while they do,
      // the thread is taken out of its transaction and barred from transactional data.
      let runsUserCode = hasBatches || entries.indices.contains { !entries[$0].commutes.isEmpty }
      if runsUserCode {
        context.state.pointee.segment = nil
        context.forbiddenAccess = .transactionalAccessInCommute
      }
      defer {
        if runsUserCode {
          context.forbiddenAccess = nil
          context.state.pointee.segment = Unmanaged.passUnretained(self)
        }
      }
      var landing = lockAll(entries, landingBatches: hasBatches, context: context)
      defer { if landing != nil { keepForReuse(&landing!.writes) } }
      if let retired = entries.indices.first(where: { entries[$0].target._withUnsafeGuaranteedRef { $0.isRetired } }) {
        (conflictingCell, conflictingCellWasRead) = (entries[retired].target, false)
        unlock(entries, &landing)
        engine.leaveCommit(self)
        return .conflict(.writeWrite)
      }
      let number = _CommitNumber.take(for: self, from: engine)
      if !isInevitable, let kind = conflict(before: number, writes: entries, engine: engine) {
        unlock(entries, &landing)
        engine.leaveCommit(self)
        return .conflict(kind)
      }
      // Nothing is read after validation: withdrawing the snapshot first lets the truncation
      // below drop the versions that only this transaction still pinned.
      engine.withdrawSnapshot(for: self)
      let flags = isInevitable ? _VersionFlags.byInevitable : 0
      if landing != nil {
        publish(mutableEntries, landed: &landing, number: number, flags: flags, engine: engine, by: context)
      } else {
        for index in entries.indices {
          publish(mutableEntries.baseAddress! + index, number: number, flags: flags, engine: engine, by: context)
        }
      }
      unlock(entries, &landing)
      engine.leaveCommit(self)
      // Pairs with the fence in `_RetryRegistry.register`.
      atomicMemoryFence(ordering: .sequentiallyConsistent)
      for index in entries.indices {
        entries[index].target._withUnsafeGuaranteedRef { engine.retryWaiters.wakeWaiters(of: $0) }
      }
      if landing != nil {
        landing!.forEachWrite { $0.pointee.target._withUnsafeGuaranteedRef { engine.retryWaiters.wakeWaiters(of: $0) } }
      }
      return .committed(_SerialPosition(number: number, isReadOnly: false))
    }
  }

  /// Publishes the entries of a commit that landed delayed appends (`landing` is not nil): the
  /// anchors' landed versions, the other entries' own, and then the cells the items landed in.
  /// The landed versions are moved out of the landing into their cells, and everything is
  /// reached in place: copies of the landing, or of its elements, retained every reference
  /// they held and released it again.
  @inline(__always)
  private func publish(
    _ entries: UnsafeMutableBufferPointer<_WriteEntry>, landed landing: inout Landing?, number: UInt64, flags: UInt8,
    engine: _Engine, by context: _ThreadContext
  ) {
    for index in entries.indices {
      if let version = landing!.anchors.takeVersion(ofEntry: index) {
        entries[index].target._withUnsafeGuaranteedRef { cell in
          engine.publish(
            version, in: cell, replacing: cell.head.load(ordering: .acquiring), number: number,
            flags: flags, site: publishedSite(of: cell), by: context)
        }
      } else {
        publish(entries.baseAddress! + index, number: number, flags: flags, engine: engine, by: context)
      }
    }
    // After the entries: a slot this transaction also wrote ends with the landed item.
    landing!.writes.withUnsafeMutableBufferPointer { writes in
      for position in writes.indices {
        let version = Unmanaged.passRetained(writes[position].version.take().unsafelyUnwrapped)
        let site = writes[position].site
        // The retain above pairs with the end of the moved-out reference: no call is made.
        writes[position].target._withUnsafeGuaranteedRef { cell in
          engine.publish(
            version, in: cell, replacing: cell.head.load(ordering: .acquiring), number: number, flags: flags, site: site,
            by: context)
        }
      }
    }
  }

  /// What the delayed appends of a commit decided, with their anchors locked (nil for a commit
  /// that lands none: building and destroying an empty one retained and released its arrays).
  struct Landing {
    /// The new version of each anchor, by entry position, in increasing position.
    var anchors = Anchors()
    /// The other cells the items land in; the commit holds their locks too (each write says
    /// whether its lock was taken for it or was already held, as an entry's or an earlier
    /// write's).
    var writes: [_DelayedWrite] = []

    /// Calls `body` with each write in turn, in place: a loop over `writes`, or a closure
    /// given each write, copied it, retaining and releasing its cell and its version.
    @inline(__always)
    func forEachWrite(_ body: (UnsafePointer<_DelayedWrite>) -> Void) {
      writes.withUnsafeBufferPointer { writes in
        for index in writes.indices { body(writes.baseAddress! + index) }
      }
    }
  }

  /// The landed anchors of a commit, the first kept inline: a commit almost always lands one
  /// batch, and an array of one cost it an allocation and its release.
  struct Anchors {
    private var firstEntry = -1
    private var firstVersion: _VersionBase?
    private var rest: [(entry: Int, version: _VersionBase?)] = []
    /// How many of `rest` `takeVersion(ofEntry:)` has handed out.
    private var restTaken = 0

    /// Adds the landed version of the entry at `position`; positions come in increasing order.
    mutating func append(entry position: Int, version: consuming _VersionBase) {
      if firstEntry < 0 {
        firstEntry = position
        firstVersion = consume version
      } else {
        rest.append((position, consume version))
      }
    }

    /// The landed version of the entry at `position`, if it is an anchor, moved out with its
    /// retain for the caller to hand to the cell. Ask for positions in increasing order.
    mutating func takeVersion(ofEntry position: Int) -> Unmanaged<_VersionBase>? {
      if position == firstEntry, let version = firstVersion.take() {
        // Moved, not copied: the retain pairs with the end of `version` right here.
        return Unmanaged.passRetained(consume version)
      }
      guard restTaken < rest.count, rest[restTaken].entry == position else { return nil }
      restTaken += 1
      return Unmanaged.passRetained(rest[restTaken - 1].version.take().unsafelyUnwrapped)
    }
  }

  /// Locks every written cell in address order and, when there are delayed appends, lands
  /// them and locks the cells they land in. Those cells are known only once the anchor is
  /// locked, so they cannot join the address order: they are only tried, and if one is busy
  /// every lock is dropped and the whole sequence starts again (a write-write pause), so
  /// that no two commits can wait for each other.
  private func lockAll(_ entries: UnsafeBufferPointer<_WriteEntry>, landingBatches: Bool, context: _ThreadContext) -> Landing? {
    var started = 0
    var backoff = _Backoff()
    while true {
      for index in entries.indices {
        entries[index].target._withUnsafeGuaranteedRef { lock($0, context: context) }
      }
      guard landingBatches else { return nil }
      var landing: Landing? = Landing(writes: reusableLandingWrites.take() ?? [])
      for index in entries.indices where entries[index].batch != nil {
        let landedFrom = landing!.writes.count
        let anchor = land(entries.baseAddress! + index, into: &landing!.writes)
        landing!.anchors.append(entry: index, version: consume anchor)
        // Published under the anchor's write: without it, a conflict over a landed cell (a
        // queue's link that a consumer read) named the `atomically` call, not the enqueue
        // (found by review). Off, the site is 0, which every landed write starts with.
        let site = entries[index].target._withUnsafeGuaranteedRef { publishedSite(of: $0) }
        if site != 0 {
          landing!.writes.withUnsafeMutableBufferPointer { writes in
            for position in landedFrom..<writes.count { writes[position].site = site }
          }
        }
      }
      let allLocked = landing!.writes.withUnsafeMutableBufferPointer { writes in
        for position in writes.indices {
          let locked = writes[position].target._withUnsafeGuaranteedRef { cell -> Bool? in
            if cell.relaxedHolder == tag { return nil }
            return cell.tryLock(as: tag).locked
          }
          guard let locked else { continue }
          guard locked else { return false }
          writes[position].isLockedByLanding = true
        }
        return true
      }
      if allLocked {
        if started != 0 { engine.notePause(.writeWrite, since: started, context: context, segment: self, conflictingSite: 0) }
        return landing
      }
      unlock(entries, &landing)
      keepForReuse(&landing!.writes)
      if started == 0 {
        started = _monotonicNanoseconds()
        _notePauseBegan()
      }
      backoff.pause()
    }
  }

  /// Lands the batch of the entry at `entry`, whose anchor this commit holds: reached in
  /// place, since a bound copy of the batch or of the entry's version retained it.
  private func land(_ entry: UnsafePointer<_WriteEntry>, into writes: inout [_DelayedWrite]) -> _VersionBase {
    entry.pointee.target._withUnsafeGuaranteedRef { cell in
      let base = entry.pointee.version.map(Unmanaged.passUnretained) ?? cell.head.load(ordering: .acquiring)
      let batch = Unmanaged.passUnretained(entry.pointee.batch.unsafelyUnwrapped)
      guard !entry.pointee.commutes.isEmpty || entry.pointee.sum != nil else {
        return base._withUnsafeGuaranteedRef { base in
          batch._withUnsafeGuaranteedRef { $0.land(onto: base, of: cell, into: &writes) }
        }
      }
      let value = _WriteEntry.applying(
        entry.pointee.commutes, entry.pointee.sum, to: base.takeUnretainedValue(), settingAsideIn: context.unsafelyUnwrapped)
      return batch._withUnsafeGuaranteedRef { $0.land(onto: value, of: cell, into: &writes) }
    }
  }

  /// Empties `writes` and keeps its storage for the segment's next landing: a commit that
  /// lands a delayed append allocated and freed an array for its writes every time. A large
  /// one is let go, so that one huge append does not pin its memory in the segment.
  private func keepForReuse(_ writes: inout [_DelayedWrite]) {
    guard writes.capacity <= 256 else { return }
    // Element by element: `removeAll(keepingCapacity:)` costs a generic range replacement.
    while writes.popLast() != nil {}
    reusableLandingWrites = consume writes
    writes = []
  }

  /// Releases the locks of `entries` and those that `landing` took. In place (`inout`): a
  /// borrowed landing was copied, retaining all it holds.
  private func unlock(_ entries: UnsafeBufferPointer<_WriteEntry>, _ landing: inout Landing?) {
    landing?.forEachWrite { write in
      if write.pointee.isLockedByLanding { write.pointee.target._withUnsafeGuaranteedRef { $0.unlock() } }
    }
    for index in entries.indices {
      entries[index].target._withUnsafeGuaranteedRef { $0.unlock() }
    }
  }

  /// Takes the commit lock of `cell`, waiting (a write-write pause) while another commit holds it.
  /// Commits lock in address order, so waiting cannot deadlock.
  func lock(_ cell: _Cell, context: _ThreadContext) {
    // The failed exchange returns the holder: loading it again could find it gone already.
    let (locked, holder) = cell.tryLock(as: tag)
    if !locked { waitToLock(cell, heldBy: holder, context: context) }
  }

  /// `lock(_:context:)` when `holder` holds the lock: waits for it, noting the pause. Out of
  /// line, so that taking a free lock costs no stack frame for the waiting code.
  @inline(never)
  private func waitToLock(_ cell: _Cell, heldBy holder: Int, context: _ThreadContext) {
    let started = _monotonicNanoseconds()
    _notePauseBegan()
    let holderSite = engine.site(ofSegmentTagged: holder)
    var backoff = _Backoff()
    repeat {
      // Test before test-and-set: waiting on a plain load keeps the line shared.
      repeat { backoff.pause() } while cell.relaxedHolder != 0
    } while !cell.tryLock(as: tag).locked
    // Under the lock the head can be neither replaced nor freed.
    let site = cell.head.load(ordering: .acquiring)._withUnsafeGuaranteedRef {
      engine.site(of: $0, ifPublishedBySegmentTagged: holder, otherwise: holderSite)
    }
    engine.notePause(.writeWrite, since: started, context: context, segment: self, conflictingSite: site, cell: cell)
  }

  /// The first reason this transaction cannot commit as number `number`, if any.
  private func conflict(before number: UInt64, writes: UnsafeBufferPointer<_WriteEntry>, engine: _Engine) -> ContentionKind? {
    var readConflict: ContentionKind?
    let staleRead = reads.first { cell in
      let holder = cell.holder
      if holder > 0 && holder != tag {
        // Another commit is publishing this cell. If it is ordered before us, our read is stale;
        // while it is taking its number we cannot tell, and assume the worst. An unnumbered
        // holder will be ordered after us (see `_CommitNumber`).
        if _CommitNumber.mayPrecede(engine.commitNumber(ofSegmentTagged: holder), number - 1) {
          readConflict = .writeRead
          conflictingSite = _Engine.shared.site(ofSegmentTagged: holder)
          return true
        }
      }
      readConflict = staleness(of: cell, readKind: .writeRead)
      // A retired cell was detached from its collection: a key it held may have been inserted
      // again into a fresh cell, which this transaction never read (see `_CellWord`).
      if readConflict == nil && cell.isRetired { readConflict = .writeRead }
      return readConflict != nil
    }
    if let readConflict {
      (conflictingCell, conflictingCellWasRead) = (staleRead.map(Unmanaged.passUnretained), true)
      return readConflict
    }
    for index in writes.indices where !writes[index].isDelayedOnly {
      let kind = writes[index].target._withUnsafeGuaranteedRef { staleness(of: $0, readKind: .writeWrite) }
      if let kind {
        (conflictingCell, conflictingCellWasRead) = (writes[index].target, false)
        return kind
      }
    }
    return nil
  }

  private func staleness(of cell: _Cell, readKind: ContentionKind) -> ContentionKind? {
    cell.head.load(ordering: .acquiring)._withUnsafeGuaranteedRef { newest in
      guard newest.stamp > snapshot else { return nil }
      conflictingSite = newest.site
      return newest.flags & _VersionFlags.byInevitable != 0 ? .inevitable : readKind
    }
  }

  /// Whether every read so far still sees the newest committed version, and of a cell still in
  /// use: a retired cell's key may have been inserted again into a fresh cell, as in
  /// `conflict(before:writes:engine:)`.
  /// If not, the conflict log's abort names the read (as `conflict(before:writes:engine:)` does).
  func readsAreCurrent() -> Bool {
    var kind = ContentionKind.writeRead
    let stale = reads.first { cell in
      let holder = cell.holder
      if holder != 0 {
        conflictingSite = _Engine.shared.site(ofSegmentTagged: holder)
        return true
      }
      if let staleKind = staleness(of: cell, readKind: .writeRead) {
        kind = staleKind
        return true
      }
      return cell.isRetired
    }
    guard let stale else { return true }
    doomedBy = kind
    (conflictingCell, conflictingCellWasRead) = (Unmanaged.passUnretained(stale), true)
    return false
  }

  /// Publishes the new value of `entry`'s cell: its pending version, with the entry's delayed
  /// updates applied. The entry is reached in place through a pointer: passed as a value, even
  /// borrowed, it was copied, retaining and releasing each of its four references. The pending
  /// version is moved out of it into the cell, so that handing it over retains nothing and
  /// emptying the log releases nothing.
  private func publish(
    _ entry: UnsafeMutablePointer<_WriteEntry>, number: UInt64, flags: UInt8, engine: _Engine, by context: _ThreadContext
  ) {
    entry.pointee.target._withUnsafeGuaranteedRef { cell in
      let previous = cell.head.load(ordering: .acquiring)
      let site = publishedSite(of: cell)
      if entry.pointee.commutes.isEmpty, entry.pointee.sum == nil, let version = entry.pointee.version.take() {
        // Moved, not copied: the retain pairs with the end of `version` right here.
        engine.publish(
          Unmanaged.passRetained(consume version), in: cell, replacing: previous, number: number, flags: flags, site: site,
          by: context)
        return
      }
      let version = _WriteEntry.applying(
        entry.pointee.commutes, entry.pointee.sum, to: entry.pointee.version ?? previous.takeUnretainedValue(),
        settingAsideIn: context)
      engine.publish(Unmanaged.passRetained(version), in: cell, replacing: previous, number: number, flags: flags, site: site, by: context)
    }
  }
}

extension _Engine {
  /// Makes `version` the newest of `cell`; the caller, whose thread's context is `context`,
  /// holds the cell's commit lock.
  ///
  /// Takes over the caller's retain on `version`, which becomes the cell's.
  func publish(
    _ version: Unmanaged<_VersionBase>, in cell: _Cell, replacing previous: Unmanaged<_VersionBase>, number: UInt64, flags: UInt8,
    site: UInt32 = 0, by context: _ThreadContext
  ) {
    version._withUnsafeGuaranteedRef { version in
      version.stamp = number
      version.flags = flags
      // Always stored: a recycled version must not keep the site or the count of an earlier
      // commit.
      version.site = site
      version.overwrites = 0
      // The cell's retain on the previous head moves into the new version's link (which is
      // empty: a pending version has no history).
      version.older = previous.takeRetainedValue()
    }
    cell.head.store(version, ordering: .releasing)
    trimHistory(below: version, of: cell, by: context)
  }

  /// Makes `version` the newest of `cell` under `number`: restamps it if it is the newest
  /// already (overwritten in place; see `overwritableVersions`), and otherwise publishes it,
  /// taking over the caller's retain. The caller holds the cell's commit lock.
  @inline(__always)
  func publishOrRestamp(
    _ version: Unmanaged<_VersionBase>, in cell: _Cell, number: UInt64, site: UInt32, by context: _ThreadContext
  ) {
    let newest = cell.head.load(ordering: .relaxed)
    if version.toOpaque() == newest.toOpaque() {
      restamp(version, number: number, site: site)
    } else {
      publish(version, in: cell, replacing: newest, number: number, flags: 0, site: site, by: context)
    }
  }

  /// Makes `version`, the newest of its cell and just given a new value in place, the
  /// commit numbered `number`'s; the caller holds the cell's commit lock.
  private func restamp(_ version: Unmanaged<_VersionBase>, number: UInt64, site: UInt32) {
    version._withUnsafeGuaranteedRef { version in
      version.stamp = number
      version.flags = 0
      version.overwrites = 0
      version.site = site
    }
  }

  /// Marks `version`, the newest and only version of its cell, given a new value in place
  /// without a commit number (`unnumberedOverwrite(of:by:)`), as the cell's latest value under
  /// its old stamp; returns its count of such overwrites, this one included. The caller holds
  /// the cell's commit lock.
  func restampUnnumbered(_ version: Unmanaged<_VersionBase>, site: UInt32) -> UInt16 {
    version._withUnsafeGuaranteedRef { version in
      version.flags = 0
      version.site = site
      version.overwrites &+= 1
      return version.overwrites
    }
  }

  /// `cell`'s newest version, if this segment's in-place update (holding `cell`'s commit lock)
  /// may give it its new value without taking a commit number; then its place in the serial
  /// order is in `segment.unnumberedPosition`. Not while the conflict log records (its
  /// reports name commits by number), and not once the version has been overwritten so
  /// often that its count would wrap.
  @inline(__always)
  func unnumberedOverwrite(of cell: _Cell, by segment: _Segment) -> Unmanaged<_VersionBase>? {
    guard mayOverwriteWithoutNumber(segment), let own = belowOverwriteLimit(overwriteCandidate(cell)),
      takeUnnumberedPosition(for: segment)
    else { return nil }
    return own
  }

  /// As `unnumberedOverwrite(of:by:)`, for an update that also adds to `companion`, a count
  /// (also locked by the update): the newest versions of both, when both may take their new
  /// values without a commit number.
  ///
  /// Two such updates may share a position and a count; they are ordered by the count's lock,
  /// but nothing records that order: neither returns or decides anything from the count, and
  /// additions commute, so either order gives every reader what it sees (readers at the
  /// position see both; see `unnumberedOverwritePosition(for:)`). An update that does use its
  /// companion's value takes a number (`numberInPlaceMutation(of:_:_:companion:)`).
  @inline(__always)
  func unnumberedOverwrite(of cell: _Cell, commutingWith companion: _Cell, by segment: _Segment)
    -> (own: Unmanaged<_VersionBase>, companion: Unmanaged<_VersionBase>)?
  {
    guard mayOverwriteWithoutNumber(segment), let own = belowOverwriteLimit(overwriteCandidate(cell)),
      let other = belowOverwriteLimit(soleOverwriteCandidate(companion)),
      takeUnnumberedPosition(for: segment)
    else { return nil }
    return (own, other)
  }

  /// What every update without a number needs of the segment making it: the newest version of
  /// its cell is the only one, it peeked at no value written without a number, and the
  /// conflict log is not recording.
  @inline(__always)
  private func mayOverwriteWithoutNumber(_ segment: _Segment) -> Bool {
    segment.lockedNewestIsAlone && !segment.peekedUnnumberedWrite && !_ConflictRecorder.isRecording
  }

  /// `candidate`, unless its count of overwrites without a number would wrap.
  @inline(__always)
  private func belowOverwriteLimit(_ candidate: Unmanaged<_VersionBase>?) -> Unmanaged<_VersionBase>? {
    guard let candidate, candidate._withUnsafeGuaranteedRef({ $0.overwrites }) < .max else { return nil }
    return candidate
  }

  /// Gives `segment`'s update its place without a commit number, if it may have one (see
  /// `unnumberedOverwritePosition(for:)`).
  @inline(__always)
  private func takeUnnumberedPosition(for segment: _Segment) -> Bool {
    guard let position = unnumberedOverwritePosition(for: segment) else { return false }
    segment.unnumberedPosition = position
    #if DEBUG
    if let hook = _TestHooks.afterChoosingUnnumberedOverwrite.value { hook() }
    #endif
    return true
  }

  /// The newest versions of `cell` and of `companion` (when given) that the commit numbered
  /// `number` may write its values into instead of publishing new ones, nil for each that it
  /// may not; the caller holds both commit locks and has taken `number`. `isAlone` says whether
  /// `cell`'s newest version is its only one (`_Segment.lockedNewestIsAlone`).
  ///
  /// A version may be overwritten when publishing a new one would drop it at once (no
  /// announced snapshot is below `number`: `trimHistory`'s condition), when it is its cell's
  /// only version (nothing older hangs on it), and when nothing but the cell holds it (a
  /// transaction that committed it may still have it in its log). A value that is not
  /// trivially copyable is moved out of it by the caller and released once the locks are let
  /// go, as the dropped version would have been. Then no one can be reading it: every reader
  /// announces its snapshot before it looks at a cell, and one announced after the scan below
  /// reads at `number` or later (the scan follows the number's sequentially consistent
  /// fetch-and-add), so it finds the cell held by this commit and waits for the new value.
  /// This is the reasoning that lets `trimHistory` recycle a dropped version at once, applied
  /// before the write instead of after it. A drop-in update that overwrites makes no version,
  /// links and trims nothing, and never touches a second version (a cache miss per update on
  /// a large map).
  @inline(__always)
  func overwritableVersions(of cell: _Cell, isAlone: Bool, companion: _Cell?, numbered number: UInt64)
    -> (Unmanaged<_VersionBase>?, companion: Unmanaged<_VersionBase>?)
  {
    let own = isAlone ? overwriteCandidate(cell) : nil
    let other = companion.flatMap(soleOverwriteCandidate)
    guard own != nil || other != nil, noSnapshotAnnounced(below: number) else { return (nil, nil) }
    return (own, other)
  }

  /// `overwriteCandidate(cell)` for a cell whose commit lock is held but whose newest version
  /// nobody has checked to be its only one: nil unless it is.
  @inline(__always)
  func soleOverwriteCandidate(_ cell: _Cell) -> Unmanaged<_VersionBase>? {
    cell.head.load(ordering: .relaxed)._withUnsafeGuaranteedRef { $0.older == nil } ? overwriteCandidate(cell) : nil
  }

  /// The newest version of `cell` (the only one: the caller checked), if only the cell holds it.
  /// Inlined, as `_Engine.singleOperationSite(writing:context:)` is: every drop-in update asks
  /// both, and as calls of their own they cost it 16 instructions more (Callgrind).
  @inline(__always)
  func overwriteCandidate(_ cell: _Cell) -> Unmanaged<_VersionBase>? {
    let newest = cell.head.load(ordering: .relaxed)
    return isOwnedOnlyByItsCell(newest) ? newest : nil
  }

  /// Whether the only strong reference to `newest` is its cell's: checked without retaining
  /// it, by borrowing the cell's reference for the check and handing it back.
  private func isOwnedOnlyByItsCell(_ newest: Unmanaged<_VersionBase>) -> Bool {
    var borrowed: _VersionBase? = newest.takeRetainedValue()
    let unique = isKnownUniquelyReferenced(&borrowed)
    // Moved back, not copied: the retain pairs with the end of `borrowed`.
    _ = Unmanaged.passRetained(borrowed.take()!)
    return unique
  }

  /// Drops the versions below the newest one that the oldest running snapshot can see, and
  /// keeps what it dropped in the thread's `_VersionCache`. If older versions must stay for now, the cell
  /// is noted for the reclaimer, so that they go even if the cell is never written again.
  ///
  /// Every running snapshot is at or above the horizon, so every reader stops at or above the
  /// newest version stamped at or below it: nothing below that version can be in use.
  /// The caller holds the cell's commit lock. Returns whether older versions remain.
  ///
  /// What it drops and does not cache goes to the thread's leftovers, freed once the thread
  /// has let go of its locks and its segment: freeing a version runs the deinit of its value,
  /// user code that may use transactional data (see `_Leftovers`).
  ///
  /// A cell it lists for the reclaimer is trimmed a second time, against the snapshots running
  /// after the listing and a fence: a long transaction whose snapshot kept this history may
  /// have ended since the first look, after looking at the list for its turn (see
  /// `_HistoryReclaimer.turnAfterLongTransaction(by:)`). One of the two sees the other.
  @discardableResult
  func trimHistory(below newest: Unmanaged<_VersionBase>, of cell: _Cell, noting: Bool = true, by context: _ThreadContext) -> Bool {
    var dropped: _VersionBase?
    var (remains, listed) = trimHistory(below: newest, of: cell, noting: noting, handingOver: &dropped, by: context)
    if let dropped = dropped.take() { context.setAside(dropped) }
    if listed {
      atomicMemoryFence(ordering: .sequentiallyConsistent)
      remains = trimHistory(below: newest, of: cell, noting: false, handingOver: &dropped, by: context).remains
      if let dropped = dropped.take() { context.setAside(dropped) }
    }
    return remains
  }

  /// As `trimHistory(below:of:noting:)`, but the versions it drops and does not cache
  /// are handed to the caller in `dropped` instead of being freed here. Freeing them runs the
  /// deinits of the values they hold, which may free other cells and take other locks; the
  /// reclaimer frees them once it has trimmed its whole batch. Also returns whether it listed
  /// the cell for the reclaimer, which a cell listed already is not.
  func trimHistory(
    below newest: Unmanaged<_VersionBase>, of cell: _Cell, noting: Bool, handingOver dropped: inout _VersionBase?,
    by context: _ThreadContext
  ) -> (remains: Bool, listed: Bool) {
    // Acquire: the horizon was raised by a thread that saw the withdrawals of the readers it
    // passed; acquiring it orders those readers' past reads before the cut and reuse below.
    var limit = horizon.load(ordering: .acquiring)
    var recomputed = false
    // Walk without retaining: the caller holds the cell's commit lock, so the chain from
    // `newest` down to the cut cannot change under us.
    var version = newest
    var depth = 0
    while true {
      let (stamp, next) = version._withUnsafeGuaranteedRef { ($0.stamp, $0.older.map(Unmanaged.passUnretained)) }
      guard let next else {
        return (depth > 0, noting && depth >= cell.leftoverWorthReclaiming && reclaimer.note(cell))
      }
      if depth == 0 && stamp > limit {
        // The lazily raised horizon is older than the version just published, so it pins the
        // one this write replaced; ask the announced snapshots instead (without publishing the
        // horizon, a shared write). When none reads below the new version, as when no reader
        // runs, the replaced one goes now: a cell keeps one version, not two, which is a
        // version's memory per key less and one fewer miss on a write of a key not in cache
        // (the drop of the older version touched it). The scan reads one line per segment,
        // which only readers write.
        limit = max(limit, oldestAnnouncedSnapshot(bound: stamp))
      }
      if stamp <= limit {
        dropped = version._withUnsafeGuaranteedRef { $0.older.take() }
        if cell.recyclesVersions, isKnownUniquelyReferenced(&dropped), let chain = dropped.take() {
          // Moved, not copied: the retain pairs with the end of `chain` right here.
          let retained = Unmanaged.passRetained(consume chain)
          context.versionCache.offer(retained)
        }
        return (depth > 0, noting && depth >= cell.leftoverWorthReclaiming && reclaimer.note(cell))
      }
      depth += 1
      #if DEBUG
      _TestHooks.historyStepsWalked.add(1, ordering: .relaxed)
      #endif
      if depth >= 4 && !recomputed {
        // A cell keeps growing history only while the horizon lags; refresh it and start over.
        recomputed = true
        limit = recomputeHorizon()
        if cell.deepWalkStopped(at: limit) {
          // The last deep walk cut at the first version stamped at or below this same horizon,
          // and every version published since is stamped above it: the cut cannot move, and
          // walking to it again on every commit would make a pinned horizon cost quadratic time.
          return (true, noting && reclaimer.note(cell))
        }
        cell.noteDeepWalk(stoppedAt: limit)
        version = newest
        depth = 0
        continue
      }
      version = next
    }
  }
}

/// The states of a segment's `commitNumber`, and how a commit takes its number.
///
/// A commit shows `unnumbered` from before it locks its first cell, `numbering` just before it
/// takes its number from the clock, and then the number. The clock's fetch-and-add is a
/// release, and a snapshot (or another commit's fetch-and-add) that reads a clock value at or
/// above that number acquires it; so anyone whose snapshot or number is at or above this
/// commit's number sees at least `numbering`. Seeing `unnumbered` therefore proves that this
/// commit's number will be above the observer's: readers and validators carry on, instead of
/// waiting for, or aborting because of, a commit that is still locking cells or running the
/// body of an in-place mutation.
///
/// The drop-in update's quick road shows `numbering` instead, from before it locks its one
/// cell (see `_Engine.enterCommitAfterQuickLookup(_:)` and `tryEnterCommit(_:showing:)`): it
/// saves a fenced instruction, and
/// readers that meet its lock wait through its mutation (a change to a trivially copyable
/// value, such as `+= 1`), where a validating commit that read the key counts it as a
/// conflict for that long.
enum _CommitNumber {
  /// Locked cells, but no number taken: it will be above any number or snapshot already taken.
  static let unnumbered: UInt64 = .max
  /// About to take a number, which may be below a snapshot taken meanwhile: wait and see.
  static let numbering: UInt64 = .max - 1

  /// Whether a holder showing `shown` may publish a version stamped at or below `bound`: true
  /// while it is taking its number, or once it has a number at or below `bound`.
  @inline(__always)
  static func mayPrecede(_ shown: UInt64, _ bound: UInt64) -> Bool {
    shown == numbering || (shown != unnumbered && shown <= bound)
  }

  /// Takes `segment`'s commit number and shows it to readers.
  static func take(for segment: _Segment, from engine: _Engine) -> UInt64 {
    segment.commitNumber.store(numbering, ordering: .releasing)
    // Wrapping: the checked `add` compiles to a compare-and-swap loop (to trap on overflow,
    // which 2^64 commits never reach), and at two threads each failed exchange moved the
    // clock's line once more; the wrapping add is one fetch-and-add.
    // Sequentially consistent (on x86 and arm64 the same instruction as acquire-release): a
    // commit's scan of the announced snapshots after taking its number must see every reader
    // whose snapshot is below it (see `overwritableVersions(of:isAlone:companion:numbered:)`).
    let number = engine.clock.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
    #if DEBUG
    if let hook = _TestHooks.afterTakingCommitNumber.value { hook() }
    #endif
    segment.commitNumber.store(number, ordering: .releasing)
    return number
  }
}

/// The states of a segment's `occupancy`: free, held with no lookup announced, or held by a
/// thread about to look a key up without a lock, as the clock value it announced (below
/// 2^62), plus `quickUpdate` when that thread is on the drop-in update's quick road with a
/// key whose `==` is the standard library's (see `_QuickUpdate`). Both
/// sentinels are above any word that announces, so the oldest announced lookup is the minimum
/// over the segments' `announcedLookup(_:)`, as it was over slots that held `.max` for none.
enum _SegmentOccupancy {
  static let free: UInt64 = .max
  static let held: UInt64 = .max - 1
  /// Added to the announced clock by the quick road (`_QuickUpdate`) for a key whose `==` is
  /// the standard library's: from its lookup on, the update is a commit in flight, which a
  /// transaction becoming inevitable waits for as it waits for `_Segment.committing`. Below
  /// both sentinels, and above any clock value.
  static let quickUpdate: UInt64 = 1 << 62

  /// The clock value `word` announces, or a sentinel (above any clock value) if none.
  @inline(__always)
  static func announcedLookup(_ word: UInt64) -> UInt64 {
    word >= held ? word : word & ~quickUpdate
  }

  /// Whether `word` shows a quick update between a marked lookup and its commit lock.
  @inline(__always)
  static func isQuickUpdate(_ word: UInt64) -> Bool {
    word < held && word & quickUpdate != 0
  }
}

/// The states of a segment's `announcedSnapshot`: a snapshot (a clock value, below 2^63) while
/// the segment reads at one, and `withdrawn` plus the newest snapshot it announced otherwise.
enum _SnapshotSlot {
  static let withdrawn: UInt64 = 1 << 63
}
