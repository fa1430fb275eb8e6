import STMCore

extension TQueue {
  /// Adds the items of `sequence` at the end of the queue, in order, all together: they land
  /// at one commit, one after another, with no other producer's item between them, or none of
  /// them does.
  ///
  /// ```swift
  /// try jobs.enqueue(contentsOf: batch)      // one step, instead of one per item
  /// ```
  ///
  /// Outside a transaction this runs as a transaction of its own, which commits at once. Inside
  /// one, the items land when the transaction commits, after those it enqueued before (never if
  /// it rolls back). A ``TArray``, a ``TSet`` or a ``TDictionary`` given as `sequence` is read in
  /// the same atomic step; any other sequence is read first.
  ///
  /// On a bounded queue the batch waits until there is a place for every item (outside a
  /// transaction, blocking the thread; inside, the transaction retries). It takes its places
  /// all at once, so producers of single items that fill each place as it frees up can keep
  /// it waiting. One transaction's items must fit in the queue together, as for
  /// ``enqueue(_:fileID:line:)-o7nu``: a batch that would give its transaction more items than
  /// the capacity (its own, or with those enqueued before it) traps, closed queue or not, since
  /// no consumer could ever make room for them all. Enqueue such items in smaller batches, in
  /// separate transactions. From a task, use ``enqueue(contentsOf:fileID:line:)-2b73g`` with
  /// `await`, which suspends instead of blocking.
  ///
  /// Conflicts: as ``enqueue(_:fileID:line:)-o7nu`` inside a transaction: none with other
  /// producers or with consumers of an unbounded queue; on a bounded queue, with other
  /// producers (inside transactions or not) through the budget of places, and with consumers
  /// when the budget is short of the batch; with ``close(fileID:line:)``. Outside a
  /// transaction it is a transaction of its own, so on a bounded queue it may rerun when other
  /// producers take places meanwhile, where ``enqueue(_:fileID:line:)-o7nu`` waits its turn
  /// instead. An empty sequence enqueues nothing, conflicts with nothing, and does not throw,
  /// even on a closed queue. With a `TArray`, a `TSet` or a `TDictionary` as `sequence`, also
  /// as a read of the whole of it.
  ///
  /// - Parameters:
  ///   - sequence: The items to enqueue, in the order they come out.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: ``TQueueClosedError`` if the queue is closed; no item is enqueued. Inside a
  ///   transaction on a bounded queue without room for them all, also the internal signal of
  ///   ``Transaction/retry()``, which `atomically` catches.
  /// - Complexity: O(*m*) for *m* items, plus the wait for places on a bounded queue; the
  ///   items land at commit.
  @inlinable
  public func enqueue<S: Sequence>(contentsOf sequence: S, fileID: StaticString = #fileID, line: UInt = #line) throws
  where S.Element == Element {
    try enqueueBatch(sequence, at: _CallSite(fileID: fileID, line: line, owner: self))
  }

  /// Adds the items of `sequence` at the end of the queue, in order, all together, suspending
  /// the task while a bounded queue has no room for them all.
  ///
  /// The form for tasks of ``enqueue(contentsOf:fileID:line:)-5aj0b``, which blocks its thread
  /// while a bounded queue is full; this one suspends, so that producer tasks waiting for
  /// places leave the shared pool's threads to the consumers that free them. On an unbounded
  /// queue it never waits. Run by a transaction's body (in a task it started synchronously,
  /// such as `Task.immediate`), it traps: it could neither wait nor roll back with that
  /// transaction.
  ///
  /// Conflicts: as the synchronous form outside a transaction.
  ///
  /// - Parameters:
  ///   - sequence: The items to enqueue, in the order they come out.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: ``TQueueClosedError`` if the queue is closed, or closes while the task waits;
  ///   `CancellationError` if the task is cancelled while it waits for places (places free
  ///   now are taken whether or not the task is cancelled). Either way no item is enqueued.
  /// - Complexity: O(*m*) for *m* items, plus the wait.
  @inlinable
  public func enqueue<S: Sequence>(contentsOf sequence: S, fileID: StaticString = #fileID, line: UInt = #line)
    async throws where S.Element == Element
  {
    if Transaction._currentChecked != nil { _trapAsyncFormInsideTransactionBody("TQueue's async enqueue(contentsOf:)") }
    try await enqueueBatchSuspending(sequence, at: _CallSite(fileID: fileID, line: line, owner: self))
  }

  /// Adds the items of `sequence` at the end of the queue, in order, all together, waiting
  /// while a bounded queue has no room for them all, but only until `deadline`.
  ///
  /// As ``enqueue(contentsOf:fileID:line:)-5aj0b``, but a wait for places ends at the deadline
  /// with ``TQueueTimeoutError``, and no item is enqueued. Places free now are taken at once,
  /// whatever the deadline; an unbounded queue never waits. Inside a transaction, take the
  /// deadline before `atomically`, as for ``dequeue(until:fileID:line:)-8nkaj``. A batch larger
  /// than the capacity traps, deadline or not.
  ///
  /// Conflicts: as ``enqueue(contentsOf:fileID:line:)-5aj0b``.
  ///
  /// - Parameters:
  ///   - sequence: The items to enqueue, in the order they come out.
  ///   - deadline: When to stop waiting for places, on the continuous clock.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: ``TQueueClosedError`` if the queue is closed; ``TQueueTimeoutError`` if the
  ///   deadline passes before a bounded queue has room for them all. Either way no item is
  ///   enqueued. Inside a transaction, also the internal signal of ``Transaction/retry()``,
  ///   which `atomically` catches.
  /// - Complexity: O(*m*) for *m* items, plus the wait; the items land at commit.
  @inlinable
  public func enqueue<S: Sequence>(
    contentsOf sequence: S, until deadline: ContinuousClock.Instant, fileID: StaticString = #fileID, line: UInt = #line
  ) throws where S.Element == Element {
    try enqueueBatch(sequence, at: _CallSite(fileID: fileID, line: line, owner: self), until: deadline)
  }

  /// Adds the items of `sequence` at the end of the queue, in order, all together, suspending
  /// the task while a bounded queue has no room for them all, but only until `deadline`.
  ///
  /// As the synchronous ``enqueue(contentsOf:until:fileID:line:)-4gbyw``, but the task
  /// suspends instead of blocking its thread. Call it from tasks, not from a transaction's
  /// body: run there (in a task the body started synchronously), it traps.
  ///
  /// Conflicts: as the synchronous form outside a transaction.
  ///
  /// - Parameters:
  ///   - sequence: The items to enqueue, in the order they come out.
  ///   - deadline: When to stop waiting for places, on the continuous clock.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: ``TQueueClosedError`` if the queue is closed; ``TQueueTimeoutError`` if the
  ///   deadline passes before a bounded queue has room for them all; `CancellationError` if
  ///   the task is cancelled while it waits for places (places free now are taken whether or
  ///   not the task is cancelled). In each case no item is enqueued.
  /// - Complexity: O(*m*) for *m* items, plus the wait.
  @inlinable
  public func enqueue<S: Sequence>(
    contentsOf sequence: S, until deadline: ContinuousClock.Instant, fileID: StaticString = #fileID, line: UInt = #line
  ) async throws where S.Element == Element {
    if Transaction._currentChecked != nil { _trapAsyncFormInsideTransactionBody("TQueue's async enqueue(contentsOf:until:)") }
    try await enqueueBatchSuspending(sequence, at: _CallSite(fileID: fileID, line: line, owner: self), until: deadline)
  }

  /// The synchronous forms of `enqueue(contentsOf:)`, with a deadline or without: joins the
  /// running transaction, or runs one of its own.
  @inlinable
  func enqueueBatch<S: Sequence>(_ sequence: S, at site: _CallSite, until deadline: ContinuousClock.Instant? = nil) throws
  where S.Element == Element {
    let transaction = Transaction._currentChecked
    // A collection of this library is read in the enqueue's own step (see
    // `_TransactionalSequence`).
    if transaction == nil, sequence is any _TransactionalSequence {
      try _singleOperation(at: site) { try enqueue(contentsOf: Array(sequence), in: $0, at: site, until: deadline) }
      return
    }
    // Gathered first: iterating a sequence runs code of the caller's, which must not run
    // while the batch is being changed (it might read this queue).
    let items = Array(sequence)
    guard let transaction else {
      // Nothing to enqueue: no transaction either.
      guard !items.isEmpty else { return }
      try _singleOperation(at: site) { try enqueue(contentsOf: items, in: $0, at: site, until: deadline) }
      return
    }
    try enqueue(contentsOf: items, in: transaction, at: site, until: deadline)
  }

  /// The async forms of `enqueue(contentsOf:)`: a transaction of their own, whose waits
  /// suspend the task.
  @inlinable
  func enqueueBatchSuspending<S: Sequence>(_ sequence: S, at site: _CallSite, until deadline: ContinuousClock.Instant? = nil)
    async throws where S.Element == Element
  {
    // As in the synchronous forms: a collection of this library is read in the step.
    let items = sequence is any _TransactionalSequence ? nil : Array(sequence)
    guard items?.isEmpty != true else { return }
    try await _singleOperation(at: site) { transaction in
      try enqueue(contentsOf: items ?? Array(sequence), in: transaction, at: site, until: deadline, givingUpIfCancelled: true)
    }
  }

  /// Inside `transaction`: appends `items` when it commits, having taken a place for each
  /// from a bounded queue's budget, waiting for them until `deadline` if it has one (see
  /// `takePlaces`). `givingUpIfCancelled`: the caller is a task, which throws
  /// `CancellationError` instead of waiting for places once it is cancelled.
  @inlinable
  func enqueue(
    contentsOf items: [Element], in transaction: Transaction, at site: _CallSite,
    until deadline: ContinuousClock.Instant? = nil, givingUpIfCancelled: Bool = false
  ) throws {
    guard !items.isEmpty else { return }
    if let capacity, items.count > capacity {
      _trap(
        "enqueue(contentsOf:) was given \(items.count) items for a TQueue of capacity \(capacity): they land together, so they could never all fit, and it would wait forever. Enqueue them in batches of at most \(capacity) (inside a transaction, in separate transactions), or one at a time with enqueue(_:) outside transactions, or give the queue a larger capacity (or none).",
        at: site)
    }
    closed._noteAccess(.read, at: site, as: .named("closed"))
    if closed.value { throw TQueueClosedError() }
    try takePlaces(items.count, transaction, at: site, until: deadline, givingUpIfCancelled: givingUpIfCancelled)
    tail._noteAccess(.write, at: site, as: .named("tail"))
    let isFirst = tail._withDelayedAppend(in: transaction, appendingOnly: true, { _EnqueueBatch() }) { batch in
      defer { batch.items.append(contentsOf: items) }
      return batch.items.isEmpty
    }
    // One wake-up per transaction, as for single items: a woken consumer wakes the next.
    if isFirst { transaction._wakeAfterCommit(1, on: waitingConsumers) }
  }
}
