import Dispatch
import Synchronization

/// Internal signals thrown through the user's body; `atomically` catches them, never the user.
@usableFromInline
struct _RetrySignal: Error {
  @usableFromInline init() {}
}

/// Thrown by `becomeInevitable()` when the reads made so far are already stale: the attempt
/// reruns, holding the inevitable token from its start, and then cannot fail.
@usableFromInline
struct _RerunSignal: Error {
  @usableFromInline init() {}
}

/// What to do after an attempt ended.
@usableFromInline
enum _AttemptOutcome {
  case committed([() -> Void])
  case rerun
  case wait(_RetryWait)
  case propagate
}

/// A retrying transaction's wait, registered on the cells it read, and ended by the earliest
/// deadline of the attempt's `retry(until:)` calls, if it made any.
@usableFromInline
struct _RetryWait {
  let cells: [_Cell]
  let waiter: _Waiter
  /// The deadline, in Dispatch's uptime nanoseconds; `noDeadline` if there is none. Not a
  /// `ContinuousClock.Instant`: that type's layout is resilient (the concurrency library's),
  /// and an optional one here made every attempt's outcome go through the runtime's generic
  /// enum witnesses, about 100 instructions per transaction (Callgrind). See `_Deadline` for
  /// the two clocks: a wait that ends a little early only makes the body's `retry(until:)`,
  /// which reads the continuous clock, wait again for what is left.
  let deadline: UInt64

  static let noDeadline = UInt64.max

  @usableFromInline
  func block() {
    if deadline != Self.noDeadline {
      _ = waiter.block(until: DispatchTime(uptimeNanoseconds: deadline))
    } else {
      waiter.block()
    }
    _Engine.shared.retryWaiters.finish(waiter, for: cells)
  }

  /// Suspends until a change, or, when `endedByCancellation`, until the task is cancelled:
  /// then the transaction reruns at once, and a body that checks `Task.isCancelled` can give
  /// up. Returns whether cancellation ended the wait.
  @usableFromInline
  func suspend(endedByCancellation: Bool) async -> Bool {
    let waiter = self.waiter
    // The deadline wakes the waiter as a change would; the timer goes as soon as the wait ends.
    let deadline = self.deadline
    let timer = deadline == Self.noDeadline ? nil : waiter.wake(atUptimeNanoseconds: deadline)
    defer { timer?.cancel() }
    if endedByCancellation {
      await withTaskCancellationHandler {
        await waiter.suspend()
      } onCancel: {
        waiter.wake()
      }
    } else {
      await waiter.suspend()
    }
    _Engine.shared.retryWaiters.finish(waiter, for: cells)
    return endedByCancellation && Task.isCancelled
  }
}

/// The state of one `atomically` call across its attempts.
@usableFromInline
struct _TransactionRun {
  /// After this many aborts in a row an attempt runs inevitable, so it cannot lose again.
  static let abortsBeforeEscalation = 6

  private var aborts = 0
  private var escalate = false
  /// A public operation outside `atomically` that runs as a transaction of its own: the
  /// conflict log shows it as a single operation at its call, not as an `atomically` call.
  private let isSingleOperation: Bool

  @usableFromInline init(isSingleOperation: Bool = false) {
    self.isSingleOperation = isSingleOperation
  }

  /// Starts an attempt on the calling thread (whose context is `context`): takes a segment,
  /// notes the call site, becomes inevitable if the attempts so far call for it, and announces
  /// a snapshot. Returns the segment.
  ///
  /// The segment and the context go in and out as unretained handles: segments live as long as
  /// the engine and a context as long as its thread, and as references they were retained and
  /// released five times per attempt, each an atomic read-modify-write (half of those a
  /// one-lookup transaction made).
  @usableFromInline
  mutating func begin(_ context: Unmanaged<_ThreadContext>, fileID: StaticString, line: UInt) -> Unmanaged<_Segment> {
    // The context's handle on the engine, not `_Engine.shared`: reading a lazily made global
    // checks that it is made (a call to `swift_once`), four times per attempt.
    context._withUnsafeGuaranteedRef { context in
      context.engine._withUnsafeGuaranteedRef { engine in
        var segmentWaitStarted = 0
        if let misuse = context.forbiddenAccess { _misuse(misuse) }
        let handle = engine.acquireSegment(for: context, waitStarted: &segmentWaitStarted)
        handle._withUnsafeGuaranteedRef { begin($0, context, engine, segmentWaitStarted: segmentWaitStarted, fileID: fileID, line: line) }
        return handle
      }
    }
  }

  private mutating func begin(
    _ segment: _Segment, _ context: _ThreadContext, _ engine: _Engine, segmentWaitStarted: Int, fileID: StaticString, line: UInt
  ) {
    segment.context = context
    segment.attempt &+= 1
    segment.isRunning = true
    // A mutation that a thrown error or `retry()` cut short has ended its listing already;
    // this only guards against one that did not.
    if !segment.cellsBeingMutated.isEmpty { segment.cellsBeingMutated.removeAll(keepingCapacity: true) }
    context.segment = segment
    engine.noteSite(of: segment, fileID: fileID, line: line, isSingleOperation: isSingleOperation, context: context)
    if segmentWaitStarted != 0 {
      engine.notePause(.freeSegment, since: segmentWaitStarted, context: context, segment: segment, conflictingSite: 0)
    }
    if escalate {
      engine.acquireInevitability(for: segment, context: context)
      segment.isInevitable = true
      engine.noteBecameInevitable(segment)
    }
    segment.snapshot = engine.announceSnapshot(for: segment)
    // Pauses before this point are not part of the attempt (see `noteAbort`).
    segment.pausedInAttempt = 0
    segment.attemptStarted = _monotonicNanoseconds()
  }

  /// Ends the attempt after its body returned: commits it, or decides to rerun or wait.
  @usableFromInline
  mutating func finish(_ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>) -> _AttemptOutcome {
    segment._withUnsafeGuaranteedRef { segment in context._withUnsafeGuaranteedRef { finish(segment, $0) } }
  }

  private mutating func finish(_ segment: _Segment, _ context: _ThreadContext) -> _AttemptOutcome {
    if segment.retryRequested { return retry(segment, context) }
    if segment.isDoomed { return abort(segment, context, kind: segment.doomedBy) }
    switch segment.commit(context: context) {
    case .committed(let position):
      context.lastCommit = position
      context.statistics.recordCommit()
      // Before anything that can run user code: the reclaimer's turn and `end` free values
      // (their deinits run), then come the abort hooks of parts that rolled back and the
      // `afterCommit` hooks. Any of those may wait for a thread that only these wake (found by
      // review, twice). They run no transaction and do not block.
      for wakeUps in segment.log.wakeAfterCommit { wakeUps.lot.wake(upTo: wakeUps.count) }
      if position.isReadOnly == false {
        _ = context.engine._withUnsafeGuaranteedRef { $0.reclaimer.reclaimNow(ifDueFor: context, using: segment) }
      }
      let commitHooks = segment.log.afterCommit.isEmpty ? [] : segment.log.afterCommit
      let rolledBackHooks = end(segment, context, aborting: false)
      return .committed(rolledBackHooks.isEmpty ? commitHooks : rolledBackHooks + commitHooks)
    case .conflict(let kind):
      return abort(segment, context, kind: kind)
    }
  }

  /// Ends the attempt after its body threw `error`.
  @usableFromInline
  mutating func bodyThrew(_ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, isRetry: Bool, isRerun: Bool)
    -> _AttemptOutcome
  {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { bodyThrew(segment, $0, isRetry: isRetry, isRerun: isRerun) }
    }
  }

  private mutating func bodyThrew(_ segment: _Segment, _ context: _ThreadContext, isRetry: Bool, isRerun: Bool) -> _AttemptOutcome {
    if isRetry || segment.retryRequested { return retry(segment, context) }
    if isRerun || segment.isDoomed { return abort(segment, context, kind: segment.isDoomed ? segment.doomedBy : .writeRead) }
    run(end(segment, context, aborting: true))
    return .propagate
  }

  private mutating func abort(_ segment: _Segment, _ context: _ThreadContext, kind: ContentionKind) -> _AttemptOutcome {
    _Engine.shared.noteAbort(kind, of: segment, context: context)
    let failedToBecomeInevitable = segment.isDoomed && segment.isInevitable
    run(end(segment, context, aborting: true))
    aborts += 1
    _Backoff.afterAbort(aborts, context)
    // A transaction whose `becomeInevitable()` found stale reads reruns inevitable from its
    // start (taking the token again), and so does a transaction that keeps losing: it then
    // cannot lose again (progress).
    if failedToBecomeInevitable || aborts >= Self.abortsBeforeEscalation { escalate = true }
    return .rerun
  }

  /// Traps if a `retry()` of `segment`'s attempt could never end: after `becomeInevitable()`,
  /// or with nothing read that another commit could change and no `retry(until:)` deadline.
  static func checkRetryCanWait(_ segment: _Segment) {
    if segment.isInevitableByRequest { _misuse(.retryAfterBecomeInevitable) }
    // With a deadline the wait ends in any case.
    if segment.reads.isEmpty && segment.retryDeadline == _RetryWait.noDeadline { _misuse(.retryWithoutReads) }
  }

  private mutating func retry(_ segment: _Segment, _ context: _ThreadContext) -> _AttemptOutcome {
    Self.checkRetryCanWait(segment)
    // Registered before the snapshot is withdrawn, so the check for changes that already
    // happened reads versions that cannot be recycled under it.
    let cells = segment.reads.distinctCells()
    let wait = _RetryWait(
      cells: cells, waiter: _Engine.shared.retryWaiters.register(for: cells, after: segment.snapshot),
      deadline: segment.retryDeadline)
    context.statistics.recordRetry()
    run(end(segment, context, aborting: true))
    // Having waited, the transaction reruns as an ordinary one.
    aborts = 0
    escalate = false
    return .wait(wait)
  }

  private func run(_ hooks: [() -> Void]) {
    for hook in hooks { hook() }
  }

  /// Ends the attempt, releases its segment, and frees what it let go of (see `_Leftovers`).
  /// Returns the abort hooks to run now that no transaction is running on this thread, newest
  /// first: those of parts rolled back earlier (`orElse`, nested blocks), and, if the attempt
  /// is aborting, its own.
  private func end(_ segment: _Segment, _ context: _ThreadContext, aborting: Bool) -> [() -> Void] {
    context.engine._withUnsafeGuaranteedRef { end(segment, context, $0, aborting: aborting) }
  }

  private func end(_ segment: _Segment, _ context: _ThreadContext, _ engine: _Engine, aborting: Bool) -> [() -> Void] {
    var abortHooks = segment.rolledBackHooks
    if !abortHooks.isEmpty { segment.rolledBackHooks = [] }
    if aborting && !segment.log.afterAbort.isEmpty { abortHooks += segment.log.afterAbort }
    segment.abortHooksRegistered = 0
    // Newest first, whether registered by the body or by a part that rolled back.
    let hooks = abortHooks.isEmpty ? [] : abortHooks.sorted { $0.number > $1.number }.map(\.hook)
    // Committed, or rolled back: the cells it pinned may be retired again.
    if !segment.pinnedCells.isEmpty { segment.unpinAll() }
    engine.withdrawSnapshot(for: segment)
    if segment.isInevitable {
      engine.releaseInevitability(for: segment)
      segment.isInevitable = false
    }
    segment.isInevitableByRequest = false
    segment.isDoomed = false
    segment.doomedBy = .writeRead
    segment.retryRequested = false
    segment.retryDeadline = _RetryWait.noDeadline
    segment.isRunning = false
    if segment.siteNumber.load(ordering: .relaxed) != 0 { segment.siteNumber.store(0, ordering: .relaxed) }
    let endedNotes = context.diagnostics.takeAccesses()
    // Freed once the thread holds no segment: what they hold may be the last reference to a
    // value whose deinit uses transactional data (see `_Leftovers`).
    context.setAside(logAndReadsOf: segment)
    let (snapshot, started) = (segment.snapshot, segment.attemptStarted)
    segment.context = nil
    context.segment = nil
    engine.releaseSegment(segment)
    // A long transaction that may have kept history from being trimmed, or objects from being
    // let go of, has them go now that it has ended, rather than at some later commit's turn.
    if _coarseMonotonicNanoseconds() - started >= context.keeperTurnAfter {
      engine.reclaimer.turnAfterLongTransaction(by: context)
    } else {
      engine.reclaimer.releaseWhatTheEndedSnapshotKept(snapshot)
    }
    context.releaseLeftovers()
    if let endedNotes { context.letGo(ofNotes: endedNotes) }
    return hooks
  }
}

// MARK: Single-operation transactions (a TVar used outside `atomically`)

extension _EngineEntry {
  /// Starts a read-only single-operation transaction; returns its segment.
  @usableFromInline
  static func beginSingleRead(_ context: _ThreadContext, readsAtSnapshot: Bool = true) -> Unmanaged<_Segment> {
    if let misuse = context.forbiddenAccess { _misuse(misuse) }
    return context.engine._withUnsafeGuaranteedRef { engine in
      let handle = engine.acquireSegment(for: context)
      handle._withUnsafeGuaranteedRef { segment in
        segment.context = context
        segment.snapshot =
          readsAtSnapshot
          ? engine.announceSnapshot(for: segment)
          : engine.announceForLookup(for: segment, after: context.lastCommit.number)
      }
      return handle
    }
  }

  @usableFromInline
  static func endSingleRead(_ segment: _Segment, _ context: _ThreadContext) {
    context.engine._withUnsafeGuaranteedRef { engine in
      engine.withdrawSnapshot(for: segment)
      engine.withdrawLookup(for: segment)
      let snapshot = segment.snapshot
      context.lastCommit = _SerialPosition(number: snapshot, isReadOnly: true)
      let endedNotes = context.diagnostics.takeAccesses()
      segment.context = nil
      engine.releaseSegment(segment)
      // A map dropped while this read ran goes now, if nothing else keeps it: a program that
      // only reads has nothing else that would let it go.
      engine.reclaimer.releaseWhatTheEndedSnapshotKept(snapshot)
      if let endedNotes { context.letGo(ofNotes: endedNotes) }
    }
    context.statistics.recordCommit()
  }

  /// Starts an in-place mutation of `cell` outside a transaction: takes a segment and the cell's
  /// commit lock, and returns the segment and the newest committed version. Nothing is
  /// announced: under the lock the newest version cannot be replaced or dropped.
  @usableFromInline
  static func beginInPlaceMutation(of cell: _Cell, _ context: Unmanaged<_ThreadContext>)
    -> (Unmanaged<_Segment>, Unmanaged<_VersionBase>)
  {
    // Borrowed, not taken: a reference made from the handle was retained and released, two
    // atomic read-modify-writes on every drop-in update.
    context._withUnsafeGuaranteedRef { beginInPlaceMutation(of: cell, $0) }
  }

  @usableFromInline
  static func beginInPlaceMutation(of cell: _Cell, _ context: _ThreadContext) -> (Unmanaged<_Segment>, Unmanaged<_VersionBase>) {
    if let misuse = context.forbiddenAccess { _misuse(misuse) }
    let handle = context.engine._withUnsafeGuaranteedRef { engine in
      let handle = engine.acquireSegment(for: context)
      handle._withUnsafeGuaranteedRef { segment in
        segment.context = context
        engine.enterCommit(segment, context: context)
        segment.lock(cell, context: context)
      }
      return handle
    }
    context.forbiddenAccess = .transactionDuringInPlaceMutation
    return (handle, handle._withUnsafeGuaranteedRef { $0.newestVersion(ofLocked: cell) })
  }

  /// Ends an in-place mutation that publishes nothing (it was abandoned by a thrown error, or
  /// changed nothing): releases what `beginInPlaceMutation` took.
  @usableFromInline
  static func abandonInPlaceMutation(of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>) {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { context in
        context.engine._withUnsafeGuaranteedRef { engine in
          context.forbiddenAccess = nil
          finishInPlaceMutation(of: cell, segment, context, engine, published: false, companion: nil)
        }
      }
    }
  }

  /// Ends an in-place mutation with a companion (and perhaps a second one, `extra`) that took
  /// its commit number and then publishes nothing (see
  /// `_TypedCell.endInPlaceUpdate(_:alongWith:deciding:)`): releases the locks and what
  /// `beginInPlaceMutation` took. Readers that met the locks under that number waited for
  /// them and then find the versions they would have found.
  @usableFromInline
  static func abandonNumberedInPlaceMutation(
    of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, companion: _Cell,
    extra: _Cell? = nil
  ) {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { context in
        context.engine._withUnsafeGuaranteedRef { engine in
          finishInPlaceMutation(
            of: cell, segment, context, engine, published: false, companion: Unmanaged.passUnretained(companion),
            extra: extra.map(Unmanaged.passUnretained))
        }
      }
    }
  }

  /// The first half of the end of an in-place mutation that publishes a value: takes the
  /// commit number, and returns the cell's newest version if the value may be written into it
  /// instead of into a new version (see
  /// `_Engine.overwritableVersions(of:isAlone:companion:numbered:)`). When no snapshot can
  /// see the cell, it takes no number and returns the newest version's own stamp (see
  /// `_Engine.unnumberedOverwritePosition(for:)`; the segment then holds the update's place
  /// in the order). Finish with `endInPlaceMutation(of:_:_:numbered:publishing:)`.
  @usableFromInline
  static func numberInPlaceMutation(of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>)
    -> (number: UInt64, overwritable: Unmanaged<_VersionBase>?)
  {
    let (number, overwritable, _) = numberInPlaceMutation(of: cell, segment, context, companion: nil)
    return (number, overwritable)
  }

  /// `numberInPlaceMutation(of:_:_:)` taken before the mutation itself runs, so that the
  /// caller can mutate the value where it is, in the newest version, when the engine allows
  /// that version to be overwritten (no copy of a large value; see
  /// `_Engine.overwritableVersions(of:isAlone:companion:numbered:)`). Readers at or above
  /// the number wait for the lock meanwhile, and no reader below it exists. The thread stays
  /// barred from transactional data until `endNumberedMutation` (the mutation is user code).
  @usableFromInline
  static func numberMutation(of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>)
    -> (number: UInt64, overwritable: Unmanaged<_VersionBase>?)
  {
    let numbered = numberInPlaceMutation(of: cell, segment, context)
    context._withUnsafeGuaranteedRef { $0.forbiddenAccess = .transactionDuringInPlaceMutation }
    return numbered
  }

  /// Ends a mutation numbered by `numberMutation(of:_:_:)`: publishes `version` (the
  /// overwritable version it returned, mutated in place, or a pending version whose retain
  /// this takes over) and releases what the mutation took.
  @usableFromInline
  static func endNumberedMutation(
    of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, numbered number: UInt64,
    publishing version: Unmanaged<_VersionBase>
  ) {
    context._withUnsafeGuaranteedRef { $0.forbiddenAccess = nil }
    endInPlaceMutation(of: cell, segment, context, numbered: number, publishing: version)
  }

  /// `numberInPlaceMutation(of:_:_:)` for a mutation that also publishes a value of
  /// `companion` (locked after `cell`); finish with
  /// `endInPlaceMutation(of:_:_:numbered:publishing:companion:_:)`.
  @usableFromInline
  static func numberInPlaceMutation(
    of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, companion: _Cell
  ) -> (number: UInt64, overwritable: Unmanaged<_VersionBase>?, companion: Unmanaged<_VersionBase>?) {
    numberInPlaceMutation(of: cell, segment, context, companion: Optional(companion))
  }

  /// `numberInPlaceMutation(of:_:_:companion:)` for a mutation that adds to `companion`, a
  /// count, without deciding anything from its value: when no snapshot can see either cell,
  /// it takes no number, and returns the key's version's own stamp with both newest versions
  /// to write into (see `_Engine.unnumberedOverwrite(of:commutingWith:by:)`).
  @usableFromInline
  static func numberInPlaceMutation(
    of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, commutingWith companion: _Cell
  ) -> (number: UInt64, overwritable: Unmanaged<_VersionBase>?, companion: Unmanaged<_VersionBase>?) {
    let unnumbered = segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { context in
        context.forbiddenAccess = nil
        return context.engine._withUnsafeGuaranteedRef { $0.unnumberedOverwrite(of: cell, commutingWith: companion, by: segment) }
      }
    }
    guard let (own, other) = unnumbered else { return numberInPlaceMutation(of: cell, segment, context, companion: Optional(companion)) }
    return (own._withUnsafeGuaranteedRef { $0.stamp }, own, other)
  }

  // Always inlined into the two entry points above (and below), so that the one without a
  // companion carries no trace of it: an update of one variable is the common case.
  @inline(__always)
  private static func numberInPlaceMutation(
    of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, companion: _Cell?
  ) -> (number: UInt64, overwritable: Unmanaged<_VersionBase>?, companion: Unmanaged<_VersionBase>?) {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { context in
        context.engine._withUnsafeGuaranteedRef { engine in
          context.forbiddenAccess = nil
          if companion == nil, let own = engine.unnumberedOverwrite(of: cell, by: segment) {
            return (own._withUnsafeGuaranteedRef { $0.stamp }, own, nil)
          }
          let number = _CommitNumber.take(for: segment, from: engine)
          let (own, other) = engine.overwritableVersions(
            of: cell, isAlone: segment.lockedNewestIsAlone, companion: companion, numbered: number)
          return (number, own, other)
        }
      }
    }
  }

  /// Publishes `version` under `number` (from `numberInPlaceMutation`) and releases what the
  /// in-place mutation took. `version` is either the overwritable version that call returned,
  /// now holding the new value, or a pending version whose retain this takes over.
  @usableFromInline
  static func endInPlaceMutation(
    of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, numbered number: UInt64,
    publishing version: Unmanaged<_VersionBase>
  ) {
    endInPlaceMutation(of: cell, segment, context, numbered: number, publishing: version, companion: nil, nil)
  }

  /// As `endInPlaceMutation(of:_:_:numbered:publishing:)`, publishing `companionVersion` in
  /// `companion` too, under the same number, and `extraVersion` in `extra` (a second
  /// companion, locked after the first), when given: a pending version whose retain this
  /// takes over.
  @usableFromInline
  static func endInPlaceMutation(
    of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, numbered number: UInt64,
    publishing version: Unmanaged<_VersionBase>, companion: _Cell, _ companionVersion: Unmanaged<_VersionBase>,
    extra: _Cell? = nil, _ extraVersion: Unmanaged<_VersionBase>? = nil
  ) {
    // Unretained: wrapped in optionals as they were, the companions were retained and released
    // on every update that had one (a queue's every enqueue).
    endInPlaceMutation(
      of: cell, segment, context, numbered: number, publishing: version,
      companion: Unmanaged.passUnretained(companion), companionVersion, extra: extra.map(Unmanaged.passUnretained),
      extraVersion)
  }

  /// Ends a quick road's update that overwrote its cell's newest version without a commit
  /// number (`_QuickUpdate.publish(_:in:)`, which wrote the value): what the branch without a
  /// number of `endInPlaceMutation(of:_:_:numbered:publishing:)` does, less what the quick
  /// road rules out. Its version's site is 0: the conflict log was off when `lock` decided
  /// (nothing is decided without a number while it records), and a quick road notes no
  /// accesses to find a site in. (A log switched on between the decision and this end still
  /// finds the update without a number and its version without a site: a report names such a
  /// writer "(unknown)", as it names one whose site it never recorded.) Its value was
  /// trivially copyable, so nothing was dropped: the leftovers are looked at only after a
  /// reclamation turn, which may set objects aside.
  /// With the decision made in `lock`, this end took a drop-in `dict[key, default: 0] += 1`
  /// from two calls into the engine to one, and from 435 instructions to 429 (Callgrind);
  /// `dict-disjoint` at one thread went from 11.70, 12.30 and 12.33 million updates a second
  /// to 13.27, 12.89 and 13.31 (medians of five runs, builds alternated).
  @usableFromInline
  static func endQuickOverwrite(of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>) {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { context in
        context.engine._withUnsafeGuaranteedRef { engine in
          context.forbiddenAccess = nil
          let position = segment.unnumberedPosition.unsafelyUnwrapped
          segment.unnumberedPosition = nil
          let overwrite = engine.restampUnnumbered(cell.head.load(ordering: .relaxed), site: 0)
          context.lastCommit = _SerialPosition(number: position, isReadOnly: false, overwrite: overwrite)
          finishInPlaceMutation(of: cell, segment, context, engine, published: true, companion: nil, fencesWake: false, droppedNothing: true)
        }
      }
    }
  }

  /// The caller keeps `companion` and `extra` alive until their commit locks are let go
  /// (holding a reference to each, or, like a queue's enqueue, knowing that nothing can free
  /// them while they are locked); nothing here touches them after that.
  @inline(__always)
  private static func endInPlaceMutation(
    of cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, numbered number: UInt64,
    publishing version: Unmanaged<_VersionBase>, companion: Unmanaged<_Cell>?, _ companionVersion: Unmanaged<_VersionBase>?,
    extra: Unmanaged<_Cell>? = nil, _ extraVersion: Unmanaged<_VersionBase>? = nil
  ) {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { context in
        context.engine._withUnsafeGuaranteedRef { engine in
          let site = engine.singleOperationSite(writing: cell, context: context)
          if let position = segment.unnumberedPosition {
            segment.unnumberedPosition = nil
            let overwrite = engine.restampUnnumbered(version, site: site)
            // A companion here is a count, overwritten too (see `unnumberedOverwrite(of:commutingWith:by:)`).
            if let companionVersion { _ = engine.restampUnnumbered(companionVersion, site: site) }
            assert(extra == nil, "an update with a second companion always takes a number")
            context.lastCommit = _SerialPosition(number: position, isReadOnly: false, overwrite: overwrite)
            finishInPlaceMutation(of: cell, segment, context, engine, published: true, companion: companion, fencesWake: false)
            return
          }
          engine.publishOrRestamp(version, in: cell, number: number, site: site, by: context)
          if let companion, let companionVersion {
            companion._withUnsafeGuaranteedRef {
              engine.publishOrRestamp(companionVersion, in: $0, number: number, site: site, by: context)
            }
          }
          if let extra, let extraVersion {
            extra._withUnsafeGuaranteedRef { engine.publishOrRestamp(extraVersion, in: $0, number: number, site: site, by: context) }
          }
          context.lastCommit = _SerialPosition(number: number, isReadOnly: false)
          finishInPlaceMutation(of: cell, segment, context, engine, published: true, companion: companion, extra: extra)
        }
      }
    }
  }

  /// What every in-place mutation does last: lets go of the locks, the commit and the segment,
  /// and, when it published, wakes the transactions waiting for the cells to change.
  ///
  /// `fencesWake: false` leaves out the fence before the wake-up, for an update that took no
  /// commit number (`_Engine.unnumberedOverwritePosition(for:)`). The fence makes a commit
  /// see every waiter that registered before it could see the new value; such an update
  /// already does. A transaction registers as a waiter while its snapshot is still announced,
  /// and withdraws it (a releasing store) only afterwards. The update's scan found no
  /// snapshot announced, and its sequentially consistent load of each slot acquires the
  /// withdrawal it saw (or a later store of that segment, which comes after it), so every
  /// registration of a transaction that could have read the overwritten value happened
  /// before the scan, and so before the wake-up's loads. A transaction that announces after
  /// the scan reads the new value (or waits for the lock and then reads it), so it waits for
  /// a later change, not this one. On a processor where a fenced instruction costs tens of
  /// cycles this was a tenth of the update's time.
  private static func finishInPlaceMutation(
    of cell: _Cell, _ segment: _Segment, _ context: _ThreadContext, _ engine: _Engine, published: Bool,
    companion: Unmanaged<_Cell>?, extra: Unmanaged<_Cell>? = nil, fencesWake: Bool = true, droppedNothing: Bool = false
  ) {
    let endedNotes = context.diagnostics.takeAccesses()
    segment.peekedUnnumberedWrite = false
    // The companions by address from here on: once unlocked, one may be freed before the
    // wake-up below (a queue's last node, which a consumer can take once its link is free).
    let companionAddress = companion?._withUnsafeGuaranteedRef { $0.address }
    let extraAddress = extra?._withUnsafeGuaranteedRef { $0.address }
    cell.unlock()
    companion?._withUnsafeGuaranteedRef { $0.unlock() }
    extra?._withUnsafeGuaranteedRef { $0.unlock() }
    engine.leaveCommit(segment)
    let tookReclamationTurn = published && engine.reclaimer.reclaimNow(ifDueFor: context, using: segment)
    segment.context = nil
    engine.releaseSegment(segment)
    if published {
      // Pairs with the fence in `_RetryRegistry.register` (when left out, the scan's loads do
      // its work: see above).
      if fencesWake { atomicMemoryFence(ordering: .sequentiallyConsistent) }
      engine.retryWaiters.wakeWaiters(of: cell)
      if let companionAddress { engine.retryWaiters.wakeWaiters(ofCellAt: companionAddress) }
      if let extraAddress { engine.retryWaiters.wakeWaiters(ofCellAt: extraAddress) }
      context.statistics.recordCommit()
    }
    // Once the locks are let go: a version that the publish dropped may hold the last
    // reference to a value whose deinit reads this very cell. `droppedNothing`: the update
    // dropped no value, so only a reclamation turn can have set objects aside.
    // (Inside a deinit that `releaseLeftovers` runs, what this update dropped went beside the
    // leftovers being released: freed now, not when that deinit returns.)
    if (!droppedNothing || tookReclamationTurn) && (context.leftovers.holdsDroppedObjects || context.isReleasingLeftovers) {
      context.releaseLeftovers()
    }
    if let endedNotes { context.letGo(ofNotes: endedNotes) }
  }
}
