/// The handle of a running transaction, passed to the body of ``atomically(_:fileID:line:)-88o9x``.
///
/// Reading and writing ``TVar``s needs no handle: the transaction running on the current thread
/// is found implicitly, so the same code works inside and outside `atomically`. The handle
/// carries the *control* operations: waiting with ``retry()``, choosing with
/// ``orElse(_:_:)``, hooks that run when the transaction ends, and ``becomeInevitable()``.
///
/// ```swift
/// let item = try atomically { tx in
///   guard let first = pending.value.first else { try tx.retry() }
///   pending.value.removeFirst()
///   tx.afterCommit { print("took \(first)") }
///   return first
/// }
/// ```
///
/// A handle is valid only inside the transaction that gave it, on the thread running that
/// transaction: using it after the transaction's attempt has ended, or from another thread,
/// traps with a message saying so. (The handle of a nested `atomically` block stands for the
/// enclosing transaction, which it joined, and stays usable in that transaction's block.)
///
/// Unlike the library's other public types, `Transaction` is not `Sendable`, on purpose: the
/// compiler then refuses to hand it to another thread, where using it could only trap.
public struct Transaction {
  /// The segment running the attempt, unretained: segments live as long as the engine.
  @usableFromInline let segmentHandle: Unmanaged<_Segment>
  @usableFromInline let attempt: UInt64
  /// The context of the thread running the attempt, as an address: only compared, to tell a
  /// handle kept from an ended attempt on its own thread from one used on another thread
  /// (segments are pooled, so the segment does not tell them apart).
  @usableFromInline let threadContext: UnsafeMutableRawPointer?

  @inlinable
  init(_ segment: _Segment) {
    self.segmentHandle = Unmanaged.passUnretained(segment)
    self.attempt = segment.attempt
    self.threadContext = segment.context.map { Unmanaged.passUnretained($0).toOpaque() }
  }

  /// The handle of the attempt running on `segment` on the thread whose context is `context`,
  /// made without touching a reference count: for the collections' operations, which make one
  /// per call inside a transaction.
  @inlinable
  init(_ segment: Unmanaged<_Segment>, runningOn context: Unmanaged<_ThreadContext>) {
    self.segmentHandle = segment
    self.attempt = segment._withUnsafeGuaranteedRef { $0.attempt }
    self.threadContext = context.toOpaque()
  }

  /// The handle of the attempt running on `segment`, made without retaining it.
  @inlinable
  init(_ segment: Unmanaged<_Segment>) {
    self.segmentHandle = segment
    (self.attempt, self.threadContext) = segment._withUnsafeGuaranteedRef { segment in
      (segment.attempt, segment.context.map { Unmanaged.passUnretained($0).toOpaque() })
    }
  }

  /// The segment as a reference, for the control operations (`retry`, `orElse`, hooks'
  /// bookkeeping, inevitability); the collection primitives, called on every operation, use
  /// `_withSegment`, which retains nothing.
  @inlinable
  var segment: _Segment { segmentHandle.takeUnretainedValue() }

  /// Calls `body` with the transaction's segment, borrowed: for the collection primitives,
  /// which call into the segment on every operation inside a transaction (segments live as
  /// long as the engine).
  @inlinable @inline(__always)
  func _withSegment<Result>(_ body: (_Segment) throws -> Result) rethrows -> Result {
    try segmentHandle._withUnsafeGuaranteedRef(body)
  }

  @inlinable
  func checkValid(_ operation: StaticString) {
    let isCurrent = _withSegment { $0.isRunning && $0.attempt == attempt }
    guard isCurrent, _ThreadState.current.pointee.segment?.toOpaque() == segmentHandle.toOpaque() else { misuse(operation) }
  }

  /// Traps for a handle used where it may not be: inside a commute's transform, which may touch
  /// no transactional data, with that message; in a transaction of the thread that ran the
  /// handle's attempt, which has ended (the body reran, or the handle was kept from an
  /// earlier block), with that message; else outside its block. (Inside an in-place
  /// mutation outside a transaction, the handle can only have escaped its block: that message
  /// named the mutation instead, and its advice did not apply; found by review. A handle kept
  /// from an attempt that reran, used in the rerun, was said to be used after its block or
  /// from another thread, and told to stay in its block, where it was; found by review.)
  @usableFromInline
  func misuse(_ operation: StaticString) -> Never {
    let state = _ThreadState.current.pointee
    if let barred = state.forbiddenAccess, case .transactionalAccessInCommute = barred { _misuse(barred) }
    if state.segment != nil, threadContext == state.context.toOpaque() { _misuse(.handleOfEndedAttempt(operation)) }
    _misuse(.handleOutsideBlock(operation))
  }

  /// Abandons this attempt and blocks until something it read has changed, then runs the
  /// transaction again.
  ///
  /// This is how a transaction waits for a condition, with no busy spinning: it rolls back,
  /// the thread sleeps (or, in the `async` form of `atomically`, the task suspends) until
  /// another transaction commits a new value to one of the ``TVar``s this attempt read, and
  /// then the body reruns from the start.
  ///
  /// ```swift
  /// let job = try atomically { tx in
  ///   guard let next = jobs.value.popLast() else { try tx.retry() }
  ///   return next
  /// }
  /// ```
  ///
  /// Conflicts with nothing: waiting is not a conflict. Each wait is counted in
  /// ``TransactionStatistics/retries``.
  ///
  /// A retry that ends the whole transaction traps if the transaction has read nothing (it
  /// would wait forever), or if it called ``becomeInevitable()``. Inside the first branch of
  /// ``orElse(_:_:)`` a retry only hands over to the second branch, so neither case traps
  /// there.
  ///
  /// - Throws: An internal signal that `atomically` catches; it never reaches your code unless
  ///   you catch it yourself, in which case the transaction still retries when the body returns.
  /// - Complexity: O(*r*) to register the wait, where *r* is the number of cells read.
  public func retry() throws -> Never {
    checkValid("retry()")
    segment.retryRequested = true
    throw _RetrySignal()
  }

  /// Waits as ``retry()`` does, but only until `deadline`: once it has passed, returns instead,
  /// and the body goes on (to give up, or to return a value that says nothing came).
  ///
  /// Before the deadline it abandons the attempt and blocks until something the attempt read
  /// has changed, or the deadline comes, whichever is first; then the body reruns from the
  /// start and reaches this call again. So the body decides what a timeout means:
  ///
  /// ```swift
  /// let deadline = ContinuousClock.now + .seconds(2)
  /// let job: Job? = try atomically { tx in
  ///   guard let next = jobs.value.popLast() else {
  ///     try tx.retry(until: deadline)
  ///     return nil  // nothing came in two seconds
  ///   }
  ///   return next
  /// }
  /// ```
  ///
  /// Take the deadline before `atomically`, as above: taken in the body, it would move on with
  /// every rerun. In the first branch of ``orElse(_:_:)`` it hands over to the second branch as
  /// ``retry()`` does; if the second branch retries too, the wait ends by this deadline at the
  /// latest, and the rerun's first branch then goes past it.
  ///
  /// Conflicts with nothing: waiting is not a conflict. Each wait is counted in
  /// ``TransactionStatistics/retries``.
  ///
  /// Before its deadline it traps after ``becomeInevitable()``, as ``retry()`` does (in the
  /// first branch of ``orElse(_:_:)`` it hands over instead). A transaction that has read
  /// nothing may call it: it then waits until the deadline.
  ///
  /// The wait is timed on the system's monotonic clock, which some systems stop while the
  /// machine sleeps: a wait through a system sleep may end that much after the deadline.
  ///
  /// - Parameter deadline: When to stop waiting, on the continuous clock.
  /// - Throws: Before the deadline, the internal signal of ``retry()``, which `atomically`
  ///   catches. Once it has passed, nothing: the call returns.
  /// - Complexity: O(*r*) to register the wait, where *r* is the number of cells read.
  public func retry(until deadline: ContinuousClock.Instant) throws {
    checkValid("retry(until:)")
    guard ContinuousClock.now < deadline else { return }
    segment.retryDeadline = min(segment.retryDeadline, _Deadline(deadline).uptimeNanoseconds)
    segment.retryRequested = true
    throw _RetrySignal()
  }

  /// Runs `first`; if it calls ``retry()``, rolls back only what `first` wrote and runs `second`.
  ///
  /// The alternative is composable: each branch may itself contain `orElse`. If `second` also
  /// retries, the whole transaction retries, waiting for a change to anything *either* branch
  /// read. An error that `first` throws after calling ``retry()`` counts as the retry (a branch
  /// with typed throws can pass the retry on only as an error of its own type). A branch that
  /// throws any other error has its writes rolled back before the error propagates. A retry
  /// the body asked for before `orElse` (and caught) still stands when it returns.
  ///
  /// ```swift
  /// let job = try atomically { tx in
  ///   try tx.orElse({ _ in try take(from: urgent, tx) },
  ///                 { _ in try take(from: normal, tx) })
  /// }
  /// ```
  ///
  /// Conflicts with whatever the branch that ran conflicts with, plus the reads of a branch that
  /// retried (they stay in the read set).
  ///
  /// - Parameters:
  ///   - first: The preferred branch.
  ///   - second: The branch to run when `first` retries.
  /// - Returns: The value returned by the branch that completed.
  /// - Throws: An error thrown by the branch that ran, or the retry of `second`.
  /// - Complexity: O(1) for the checkpoint. A rollback costs O(*c*) for the *c* changes the
  ///   branch made to what the transaction had written.
  public func orElse<Result, Failure: Error>(
    _ first: (Transaction) throws(Failure) -> Result,
    _ second: (Transaction) throws(Failure) -> Result
  ) throws(Failure) -> Result {
    checkValid("orElse(_:_:)")
    let checkpoint = segment.checkpoint()
    defer { segment.endCheckpoint() }
    // A retry the body asked for before (and caught) is not `first`'s: it still stands when
    // this returns, and only a retry that `first` asks for picks `second` (found by review).
    let retryBefore = segment.retryRequested
    segment.retryRequested = false
    defer { if retryBefore { segment.retryRequested = true } }
    do {
      let result = try first(self)
      guard segment.retryRequested else { return result }
    } catch {
      // Whatever `first` threw after asking for a retry stands for the retry, as it does at
      // the top of a transaction: a branch with typed throws can only pass the signal on as
      // an error of its own type.
      guard error is _RetrySignal || segment.retryRequested, !(error is _RerunSignal) else {
        if !(error is _RerunSignal) { segment.rollback(to: checkpoint) }
        throw error
      }
    }
    segment.rollback(to: checkpoint)
    segment.retryRequested = false
    do {
      return try second(self)
    } catch {
      // As for `first`: an error other than a retry or a rerun leaves no write of the branch
      // behind, even if the body catches it (found by review); a retry ends the attempt.
      if !(error is _RetrySignal) && !(error is _RerunSignal) && !segment.retryRequested {
        segment.rollback(to: checkpoint)
      }
      throw error
    }
  }

  /// Registers `hook` to run once, on this thread, after the transaction commits.
  ///
  /// Use it for side effects that must not be repeated or undone (I/O, logging, notifying a
  /// waiter), so that they need not make the transaction inevitable. Hooks run in the order they
  /// were registered, after the transaction's changes are visible to every thread and outside
  /// any transaction, so a hook may itself call `atomically`. Hooks registered by an attempt
  /// that aborts, or by an `orElse` branch or nested `atomically` that rolls back, never run.
  ///
  /// Conflicts with nothing.
  ///
  /// - Parameter hook: The closure to run after commit.
  /// - Complexity: O(1).
  public func afterCommit(_ hook: @escaping () -> Void) {
    checkValid("afterCommit(_:)")
    _withSegment { $0.log.afterCommit.append(hook) }
  }

  /// For collections: once this transaction has committed, wakes up to `count` of the threads
  /// and tasks parked on `lot` outside transactions (`Int.max`: all of them), for what the
  /// commit publishes; calls for one lot add up. The wake-ups happen before the values the
  /// transaction drops are freed and before every ``afterCommit(_:)`` hook; like those, never
  /// if the attempt, or the part that asked, rolls back.
  @usableFromInline
  package func _wakeAfterCommit(_ count: Int, on lot: any _ParkingLot) {
    checkValid("_wakeAfterCommit(_:on:)")
    _withSegment { $0.log.addWakeUps(count, on: lot) }
  }

  /// Registers `hook` to run once, on this thread, if this attempt rolls back.
  ///
  /// An attempt rolls back when it loses a conflict (the transaction then reruns), when it
  /// calls ``retry()``, or when its body throws. Hooks run after the rollback, in reverse order
  /// of registration, on this thread and outside any transaction: they see committed state, and
  /// a hook may itself call `atomically`. A hook registered inside an `orElse` branch or a nested
  /// `atomically` block that rolls back runs too, once the whole transaction has ended (however
  /// it ended); if it committed, such hooks run before its ``afterCommit(_:)`` hooks.
  ///
  /// Conflicts with nothing.
  ///
  /// - Parameter hook: The closure to run on rollback.
  /// - Complexity: O(1).
  public func afterAbort(_ hook: @escaping () -> Void) {
    checkValid("afterAbort(_:)")
    _withSegment { segment in
      segment.abortHooksRegistered += 1
      segment.log.afterAbort.append((segment.abortHooksRegistered, hook))
    }
  }

  /// Makes this transaction inevitable: from now on it cannot abort, so it may perform
  /// irrevocable side effects in its body.
  ///
  /// At most one transaction is inevitable at a time; this call waits (a pause of kind
  /// ``ContentionKind/inevitable``) while another is. While a transaction is inevitable, other
  /// transactions keep running and reading, but any transaction that writes waits at its commit
  /// until the inevitable one has committed. Prefer ``afterCommit(_:)`` for I/O: it keeps the
  /// transaction parallel.
  ///
  /// If something this transaction has already read was changed by another commit, it cannot
  /// become inevitable as it is: the call throws an internal signal, the attempt rolls back, and
  /// the transaction reruns inevitable from its start, where it cannot fail.
  ///
  /// Calling ``retry()`` after this traps, unless an ``orElse(_:_:)`` takes the retry.
  ///
  /// Conflicts: none of its own, since the transaction cannot abort from now on; instead every
  /// other transaction that writes waits at its commit until this one has committed (a pause
  /// of kind ``ContentionKind/inevitable``).
  ///
  /// - Throws: An internal signal that `atomically` catches and turns into a rerun.
  /// - Complexity: O(*s* + *r*): a scan of the segments, then of the cells read so far.
  public func becomeInevitable() throws {
    checkValid("becomeInevitable()")
    // An attempt whose earlier call found a stale read (and whose code swallowed the signal)
    // reruns: it must not be told that it became inevitable (found by review).
    if segment.isDoomed { throw _RerunSignal() }
    if segment.isInevitable {
      segment.isInevitableByRequest = true
      return
    }
    guard let context = segment.context else { _misuse(.handleOutsideBlock("becomeInevitable()")) }
    _Engine.shared.acquireInevitability(for: segment, context: context)
    segment.isInevitable = true
    // Its writes so far are pinned too: a collection that retired one of their cells before
    // the commit (an empty cell swept under a pending insert) would make it rerun.
    guard segment.readsAreCurrent(), segment.pinWrittenCells() else {
      segment.isDoomed = true
      throw _RerunSignal()
    }
    // No other commit can take a number while this transaction holds the token, and every
    // read so far is of the newest version; move the snapshot up to now, so that later reads
    // see what committed before the token was taken (the commit will not validate them).
    // From here on, the read set may name cells that no snapshot keeps alive any more: a
    // collection's cell read at the old snapshot is kept only by that snapshot, and one retired
    // since can be freed once the new one is announced. Nothing reads the set's entries after
    // this (no validation, no retry), only their retained ones are released; keep it so
    // (noted by review).
    segment.snapshot = _Engine.shared.announceSnapshot(for: segment)
    segment.isInevitableByRequest = true
    _Engine.shared.noteBecameInevitable(segment)
  }

  /// Whether this transaction is inevitable (it asked, or the engine escalated it after it lost
  /// too many conflicts).
  ///
  /// Conflicts with nothing.
  ///
  /// - Complexity: O(1).
  public var isInevitable: Bool {
    checkValid("isInevitable")
    return segment.isInevitable && !segment.isDoomed
  }
}

extension Transaction {
  /// Whether the body called ``retry()`` (even if it caught the signal): the transaction will
  /// wait when the body ends. For a caller that runs bodies it did not write and must decide
  /// what such a wait means (`TransactionQueue`, whose stopped run gives up waits).
  package var _retryRequested: Bool {
    checkValid("retry()")
    return segment.retryRequested
  }

  /// Traps, as the wait itself would, if the body's ``retry()`` could never be woken by what
  /// the body read: for a caller that reads something of its own before the wait begins
  /// (`TransactionQueue`'s stop signal), which would otherwise hide the mistake and wait on
  /// that alone (found by review).
  package func _checkRetryCanWait() {
    checkValid("retry()")
    _TransactionRun.checkRetryCanWait(segment)
  }

  /// Takes back the body's ``retry()``, for a caller that ends the attempt with an error of
  /// its own instead: the attempt then rolls back and the error propagates, as any error does.
  package func _withdrawRetry() {
    checkValid("retry()")
    segment.retryRequested = false
  }
}
