/// Runs `body` as a transaction: atomically, in isolation, as if no other transaction ran at
/// the same time, and returns its result.
///
/// The body reads and writes ``TVar``s (and the collections built on them) as ordinary values.
/// Every read sees one consistent snapshot, even in an attempt that will later abort, so the
/// body never observes a state that no serial order could produce. Writes are buffered and
/// become visible to other threads all at once, at commit. If another transaction committed a
/// change to something this one read, this one is rolled back and rerun; after a few losses in
/// a row it reruns inevitable and cannot lose again.
///
/// ```swift
/// let checking = TVar(100), savings = TVar(0)
/// atomically { _ in
///   checking.value -= 40
///   savings.value += 40
/// }
/// ```
///
/// The body may run more than once, so it should have no side effects besides transactional
/// ones; put I/O in ``Transaction/afterCommit(_:)``. It must not suspend or block on another
/// thread's progress.
///
/// A nested `atomically` joins the transaction already running on the thread. If a nested
/// block throws, its own writes are rolled back and the error propagates to the outer body.
/// For that, a nested block that can throw takes a checkpoint of the transaction, O(1), and
/// each of its changes to what the transaction wrote before is recorded, to be undone if it
/// throws. A nested block that cannot throw costs nothing of the kind. Either way, a helper
/// that wraps its work in `atomically` can be called in a loop of one large transaction.
///
/// - Parameters:
///   - body: The transaction's work. It receives the ``Transaction`` handle for control
///     operations (``Transaction/retry()``, ``Transaction/orElse(_:_:)``, hooks).
///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
///   - line: The call's line, for the ``ConflictLog``; leave the default.
/// - Returns: What `body` returns from the attempt that committed.
/// - Throws: What `body` throws. The transaction then leaves no trace: nothing it wrote becomes
///   visible and no ``Transaction/afterCommit(_:)`` hook runs.
/// - Complexity: O(*r* + *w* log *w*) to commit, for *r* cells read and *w* written.
@inlinable
public func atomically<Result, Failure: Error>(
  _ body: (Transaction) throws(Failure) -> Result, fileID: StaticString = #fileID, line: UInt = #line
) throws(Failure) -> Result {
  try _runTransaction(body, fileID: fileID, line: line, isSingleOperation: false)
}

/// `atomically`, for a public operation that, outside a transaction, runs as one of its own:
/// the conflict log shows it as a single operation at `site` (the operation's caller), not as
/// an `atomically` call inside the library. Inside a transaction it joins it.
@inlinable
package func _singleOperation<Result, Failure: Error>(
  at site: _CallSite, _ body: (Transaction) throws(Failure) -> Result
) throws(Failure) -> Result {
  try _runTransaction(body, fileID: site.fileID, line: site.line, isSingleOperation: true)
}

@inlinable
func _runTransaction<Result, Failure: Error>(
  _ body: (Transaction) throws(Failure) -> Result, fileID: StaticString, line: UInt, isSingleOperation: Bool
) throws(Failure) -> Result {
  let state = _ThreadState.current
  if let segment = state.pointee.segment {
    return try _joinRunningTransaction(segment.takeUnretainedValue(), body)
  }
  // Unretained handles (see `_TransactionRun.begin`).
  let context = state.pointee.context
  var run = _TransactionRun(isSingleOperation: isSingleOperation)
  while true {
    let segment = run.begin(context, fileID: fileID, line: line)
    let outcome: _AttemptOutcome
    let result: Result
    do {
      result = try body(Transaction(segment))
    } catch {
      switch run.bodyThrew(segment, context, isRetry: error is _RetrySignal, isRerun: error is _RerunSignal) {
      case .wait(let wait): wait.block()
      case .propagate: throw error
      case .rerun, .committed: break
      }
      continue
    }
    outcome = run.finish(segment, context)
    switch outcome {
    case .committed(let hooks):
      for hook in hooks { hook() }
      return result
    case .wait(let wait): wait.block()
    case .rerun, .propagate: break
    }
  }
}

/// Runs `body` as a transaction, suspending the task instead of blocking its thread while the
/// transaction waits in ``Transaction/retry()``.
///
/// The body itself is synchronous: a transaction never suspends part-way. Only the wait
/// between attempts is asynchronous, which keeps threads of the cooperative pool free while a
/// consumer waits for work. Cancelling the task ends such a wait early and reruns the body; a
/// body that should give up when cancelled checks `Task.isCancelled` and throws. It does so
/// once: the call's later waits end only with a change, as in the synchronous form, so that a
/// body that does not check does not rerun in a busy loop.
///
/// In an `async` function or closure Swift picks this form, so `atomically` there needs
/// `await`, even for a short transaction that never waits. To run one without a suspension
/// point, call a synchronous function that calls `atomically`. Top-level code in `main.swift`
/// is different: there Swift picks the synchronous form, even after `await` (it warns that no
/// `async` operation occurs), and a wait blocks the main thread. Call this form from an `async`
/// function instead.
///
/// ```swift
/// let job = try await atomically { tx in
///   guard let next = jobs.value.popLast() else { try tx.retry() }
///   return next
/// }
/// ```
///
/// Call it from tasks, not from a transaction's body: run there, in a task that the body
/// started synchronously (such as `Task.immediate`), it traps, since it could neither wait nor
/// rerun with that transaction.
///
/// - Parameters:
///   - body: The transaction's work, as in the synchronous form.
///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
///   - line: The call's line, for the ``ConflictLog``; leave the default.
/// - Returns: What `body` returns from the attempt that committed.
/// - Throws: What `body` throws, with nothing it wrote left behind.
/// - Complexity: As the synchronous form.
@inlinable
public func atomically<Result, Failure: Error>(
  _ body: (Transaction) throws(Failure) -> Result, fileID: StaticString = #fileID, line: UInt = #line
) async throws(Failure) -> Result {
  try await _runTransaction(body, fileID: fileID, line: line, isSingleOperation: false)
}

/// The asynchronous form of ``_singleOperation(at:_:)``.
@inlinable
package func _singleOperation<Result, Failure: Error>(
  at site: _CallSite, _ body: (Transaction) throws(Failure) -> Result
) async throws(Failure) -> Result {
  try await _runTransaction(body, fileID: site.fileID, line: site.line, isSingleOperation: true)
}

@inlinable
func _runTransaction<Result, Failure: Error>(
  _ body: (Transaction) throws(Failure) -> Result, fileID: StaticString, line: UInt, isSingleOperation: Bool
) async throws(Failure) -> Result {
  // Only a task that a transaction's body started synchronously (`Task.immediate`) runs async
  // code inside a transaction. Joining it handed the task the engine's retry and rerun signals
  // as errors, and what attempts that then rolled back returned (found by review).
  if _ThreadState.current.pointee.segment != nil { _trapAsyncFormInsideTransactionBody("The async atomically") }
  var run = _TransactionRun(isSingleOperation: isSingleOperation)
  // Cancellation ends one wait, so that the body can see it and give up; a body that does not
  // look then waits as the synchronous form does, instead of rerunning in a busy loop.
  var cancellationSeen = false
  while true {
    // Everything between `begin` and `finish` runs without suspending, so it stays on one thread.
    let current = _ThreadState.current.pointee.context
    let segment = run.begin(current, fileID: fileID, line: line)
    let result: Result
    do {
      result = try body(Transaction(segment))
    } catch {
      switch run.bodyThrew(segment, current, isRetry: error is _RetrySignal, isRerun: error is _RerunSignal) {
      case .wait(let wait): if await wait.suspend(endedByCancellation: !cancellationSeen) { cancellationSeen = true }
      case .propagate: throw error
      case .rerun, .committed: break
      }
      continue
    }
    switch run.finish(segment, current) {
    case .committed(let hooks):
      for hook in hooks { hook() }
      return result
    case .wait(let wait): if await wait.suspend(endedByCancellation: !cancellationSeen) { cancellationSeen = true }
    case .rerun, .propagate: break
    }
  }
}

/// A nested `atomically`: runs in the enclosing transaction, rolling back only its own writes
/// if it throws a user error.
@inlinable
func _joinRunningTransaction<Result, Failure: Error>(
  _ segment: _Segment, _ body: (Transaction) throws(Failure) -> Result
) throws(Failure) -> Result {
  // A body that cannot throw cannot end early, so nothing rolls its part back on its own (a
  // retry it calls, and must catch, stands for the whole attempt, or for the `orElse` branch
  // around it, whose checkpoint covers the part): it takes none, and the log records nothing
  // for it.
  if Failure.self == Never.self { return try body(Transaction(segment)) }
  let checkpoint = segment.checkpoint()
  defer { segment.endCheckpoint() }
  do {
    return try body(Transaction(segment))
  } catch {
    if !(error is _RetrySignal) && !(error is _RerunSignal) {
      segment.rollback(to: checkpoint)
    }
    throw error
  }
}
