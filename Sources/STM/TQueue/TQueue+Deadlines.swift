import STMCore

extension TQueue {
  /// Removes and returns the first item, waiting while the queue is empty, but only until
  /// `deadline`; returns nil once the queue is closed and drained.
  ///
  /// Outside a transaction an item waiting now is taken at once, as by
  /// ``tryDequeue(fileID:line:)``; on an empty queue the thread blocks, without spinning, as
  /// in ``dequeue(fileID:line:)-9itxg``: woken for an item of its own (or the close), or by the
  /// deadline. Inside a transaction, an empty queue makes the whole transaction wait, through
  /// ``Transaction/retry(until:)``, and the error rolls it back unless the body catches it.
  /// As there, take the deadline before `atomically`: written in the body
  /// (`dequeue(until: .now + .seconds(1))`), it moves on with every rerun, and the wait never
  /// times out. A wait through a system sleep may end late by that long.
  ///
  /// ```swift
  /// while true {
  ///   do {
  ///     guard let job = try jobs.dequeue(until: .now + .seconds(1)) else { break }  // closed
  ///     process(job)
  ///   } catch is TQueueTimeoutError {
  ///     reportIdle()
  ///   }
  /// }
  /// ```
  ///
  /// Conflicts: as ``tryDequeue(fileID:line:)``.
  ///
  /// - Parameters:
  ///   - deadline: When to stop waiting, on the continuous clock.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The first item, or nil when the queue is closed and empty.
  /// - Throws: ``TQueueTimeoutError`` if the deadline passes while the queue is empty and
  ///   open. Inside a transaction, also the internal signal of ``Transaction/retry()``, which
  ///   `atomically` catches; after ``Transaction/becomeInevitable()`` waiting traps, as for
  ///   ``dequeue(fileID:line:)-9itxg``.
  /// - Complexity: O(1), plus the wait.
  @inlinable
  public func dequeue(until deadline: ContinuousClock.Instant, fileID: StaticString = #fileID, line: UInt = #line) throws
    -> Element?
  {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    guard let transaction = Transaction._currentChecked else {
      return try blockingDequeue(at: site, until: _Deadline(deadline))
    }
    return try take(transaction, until: deadline, at: site)
  }

  /// Removes and returns the first item, suspending the task while the queue is empty, but
  /// only until `deadline`; returns nil once the queue is closed and drained, or when the task
  /// is cancelled while it waits.
  ///
  /// As the synchronous ``dequeue(until:fileID:line:)-8nkaj``, but the task
  /// suspends instead of blocking its thread. Call it from tasks, not from a transaction's
  /// body: run there (in a task the body started synchronously), it traps.
  ///
  /// Conflicts: as ``tryDequeue(fileID:line:)``.
  ///
  /// - Parameters:
  ///   - deadline: When to stop waiting, on the continuous clock.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The first item, or nil when the queue is closed and empty, or the task is
  ///   cancelled while waiting.
  /// - Throws: ``TQueueTimeoutError`` if the deadline passes while the queue is empty and open.
  /// - Complexity: O(1), plus the wait.
  public func dequeue(until deadline: ContinuousClock.Instant, fileID: StaticString = #fileID, line: UInt = #line)
    async throws -> Element?
  {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    if Transaction._currentChecked != nil {
      _trapAsyncFormInsideTransactionBody("TQueue's async dequeue(until:)")
    }
    return try await dequeueSuspending(at: site, until: _Deadline(deadline))
  }

  /// Inside `transaction`: takes the first item; on an empty queue, nil if it is closed, or
  /// else waits through `retry(until:)` and, once `deadline` has passed, throws the timeout.
  @inlinable
  func take(_ transaction: Transaction, until deadline: ContinuousClock.Instant, at site: _CallSite) throws -> Element? {
    if let item = take(transaction, at: site) { return item }
    if closed._notedValue(.read, at: site, as: .named("closed")) { return nil }
    try transaction.retry(until: deadline)
    throw TQueueTimeoutError()
  }

  /// Adds `item` at the end of the queue, waiting while a bounded queue is full, but only
  /// until `deadline`.
  ///
  /// As ``enqueue(_:fileID:line:)-o7nu``, but a wait for a place ends at the deadline with
  /// ``TQueueTimeoutError``, and the item is not enqueued. Outside a transaction, a place free
  /// now is taken at once; on a full queue the thread blocks, without spinning, as in
  /// ``enqueue(_:fileID:line:)-o7nu``: woken for a place of its own (or the close), or by the
  /// deadline. Inside a transaction, a full queue makes the whole transaction wait, through
  /// ``Transaction/retry(until:)``, and the error rolls it back unless the body catches it;
  /// take the deadline before `atomically`, as for ``dequeue(until:fileID:line:)-8nkaj``.
  /// An unbounded queue never waits, whatever the deadline. A wait through a system sleep may
  /// end late by that long, as for ``Transaction/retry(until:)``. One
  /// transaction's items must fit in the queue together, as for ``enqueue(_:fileID:line:)-o7nu``:
  /// an enqueue that would give it more than the capacity traps, deadline or not.
  ///
  /// Conflicts: as ``enqueue(_:fileID:line:)-o7nu``.
  ///
  /// - Parameters:
  ///   - item: The item to enqueue.
  ///   - deadline: When to stop waiting for a place, on the continuous clock.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: ``TQueueClosedError`` if the queue is closed; ``TQueueTimeoutError`` if the
  ///   deadline passes while a bounded queue is full. Either way the item is not enqueued.
  ///   Inside a transaction, also the internal signal of ``Transaction/retry()``, which
  ///   `atomically` catches.
  /// - Complexity: O(1) now, amortized, plus the wait; the item lands at commit.
  @inlinable
  public func enqueue(_ item: Element, until deadline: ContinuousClock.Instant, fileID: StaticString = #fileID, line: UInt = #line)
    throws
  {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    guard let transaction = Transaction._currentChecked else {
      return try enqueueOnItsOwn(item, at: site, until: _Deadline(deadline))
    }
    try enqueue(item, in: transaction, at: site, until: deadline)
  }

  /// Adds `item` at the end of the queue, suspending the task while a bounded queue is full,
  /// but only until `deadline`.
  ///
  /// As the synchronous ``enqueue(_:until:fileID:line:)-32bo1``, but
  /// the task suspends instead of blocking its thread. Call it from tasks, not from a
  /// transaction's body: run there (in a task the body started synchronously), it traps.
  ///
  /// Conflicts: as the synchronous form outside a transaction.
  ///
  /// - Parameters:
  ///   - item: The item to enqueue.
  ///   - deadline: When to stop waiting for a place, on the continuous clock.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: ``TQueueClosedError`` if the queue is closed; ``TQueueTimeoutError`` if the
  ///   deadline passes while a bounded queue is full; `CancellationError` if the task is
  ///   cancelled while it waits for a place (a place free now is taken whether or not the
  ///   task is cancelled). In each case the item is not enqueued.
  /// - Complexity: O(1), plus the wait.
  public func enqueue(_ item: Element, until deadline: ContinuousClock.Instant, fileID: StaticString = #fileID, line: UInt = #line)
    async throws
  {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    if Transaction._currentChecked != nil { _trapAsyncFormInsideTransactionBody("TQueue's async enqueue(_:until:)") }
    try await enqueueSuspending(item, at: site, until: _Deadline(deadline))
  }
}

/// Thrown by the operations of a ``TQueue`` that wait until a deadline, when it passes first:
/// ``TQueue/dequeue(until:fileID:line:)-8nkaj`` on a queue that stayed
/// empty, ``TQueue/enqueue(_:until:fileID:line:)-32bo1`` on a bounded
/// queue that stayed full, ``TQueue/enqueue(contentsOf:until:fileID:line:)-4gbyw`` on one that
/// never had room for the whole batch. Nothing was taken or enqueued.
public struct TQueueTimeoutError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The error that a queue operation whose deadline passed throws.
  public init() {}
  /// What went wrong, for a log or a test failure.
  public var description: String {
    "TQueueTimeoutError: the deadline passed before the TQueue had an item to take, or a place for one; nothing was taken or enqueued"
  }
}
