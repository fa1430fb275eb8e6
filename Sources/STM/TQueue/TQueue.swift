/// A transactional FIFO queue for passing work between threads or tasks: producers never
/// conflict, consumers wait without spinning, and the queue can be closed.
///
/// ```swift
/// let jobs = TQueue<Job>()
/// try jobs.enqueue(job)                      // producer thread
/// while let job = try jobs.dequeue() {       // consumer thread: waits while empty,
///   run(job)                                 // ends once closed and drained
/// }
/// for await job in jobs { run(job) }         // or as an async sequence
/// jobs.close()
/// ```
///
/// Inside ``atomically(_:fileID:line:)-88o9x`` the operations join the transaction: an enqueue becomes
/// visible only if the transaction commits, and a consumer whose transaction rolls back gives
/// its item back.
///
/// Conflicts: ``enqueue(_:)`` is a *delayed append*, linked after the newest tail at commit:
/// producers never conflict with each other or with consumers. Two consumers that take from
/// the queue at the same time conflict (they take the same head), and one of them reruns and
/// takes the next item. ``close()`` conflicts with producers that have not committed yet.
/// A bounded queue (`init(capacity:)`) keeps the two ends apart: producers count down a budget
/// of their own and consumers count up a separate, commutative tally of freed places, so
/// consumers never conflict with producers through it (producers of a bounded queue do
/// conflict with each other through their budget).
///
/// Items are FIFO per producer: the items of one transaction, and of transactions committed one
/// after another, come out in that order. The most recently dequeued item stays referenced by
/// the queue until the next dequeue.
///
/// `TQueue` is a reference type: copies of a reference share one queue.
public final class TQueue<Element: Sendable>: Sendable {
  @usableFromInline let head: TVar<_QueueNode<Element>>
  @usableFromInline let tail: TVar<_QueueNode<Element>>
  @usableFromInline let closed = TVar(false)
  /// Bounded queues only: places producers may still fill, and places consumers have freed.
  @usableFromInline let producerBudget: TVar<Int>?
  @usableFromInline let freedPlaces: TVar<Int>?

  /// The capacity, or nil for an unbounded queue.
  public let capacity: Int?

  /// Creates an empty queue; with a capacity, producers wait while it is full.
  ///
  /// - Parameter capacity: The most items the queue holds, or nil (the default) for no limit.
  ///   A capacity below 1 traps.
  /// - Complexity: O(1).
  public init(capacity: Int? = nil) {
    if let capacity {
      precondition(capacity >= 1, "TQueue(capacity:) needs a capacity of at least 1, not \(capacity); use nil for an unbounded queue.")
    }
    let sentinel = _QueueNode<Element>(nil)
    head = TVar(sentinel)
    tail = TVar(sentinel)
    self.capacity = capacity
    producerBudget = capacity.map { TVar($0) }
    freedPlaces = capacity.map { _ in TVar(0) }
  }

  // MARK: Producing

  /// Adds `item` at the end of the queue.
  ///
  /// Outside a transaction this commits at once. Inside one, the item is appended when the
  /// transaction commits (never if it rolls back). On a full bounded queue it waits (outside a
  /// transaction, blocking the thread; inside, the transaction retries).
  ///
  /// Conflicts: none with other producers or with consumers (see the type's discussion for
  /// bounded queues); with ``close()``.
  ///
  /// - Parameter item: The item to enqueue.
  /// - Throws: ``TQueueClosedError`` if the queue is closed; the item is not enqueued.
  ///   Inside a transaction on a full bounded queue, also the internal signal of
  ///   ``Transaction/retry()``, which `atomically` catches.
  /// - Complexity: O(1) now, amortized; the item lands at commit.
  @inlinable
  public func enqueue(_ item: Element) throws {
    guard let transaction = Transaction._currentChecked else {
      try atomically { _ in try enqueue(item) }
      return
    }
    if closed.value { throw TQueueClosedError() }
    try takePlaces(1, transaction)
    tail._delayedAppend(in: transaction) { _EnqueueBatch() }.items.append(item)
  }

  @inlinable
  func takePlaces(_ places: Int, _ transaction: Transaction) throws {
    guard let producerBudget, let freedPlaces else { return }
    var budget = producerBudget.value
    if budget < places {
      budget += freedPlaces.value
      guard budget >= places else { try transaction.retry() }
      freedPlaces.value = 0
    }
    producerBudget.value = budget - places
  }

  /// Closes the queue: consumers drain what is left and then receive nil, and later enqueues
  /// throw ``TQueueClosedError``. Closing twice does nothing.
  ///
  /// Conflicts: with producers that have not committed yet (they rerun and find the queue
  /// closed) and with consumers waiting on an empty queue (they wake up and end).
  ///
  /// - Complexity: O(1).
  public func close() {
    atomically { _ in
      if !closed.value { closed.value = true }
    }
  }

  /// Whether ``close()`` has been called.
  ///
  /// Conflicts: with ``close()``.
  public var isClosed: Bool { closed.value }

  // MARK: Consuming

  /// Removes and returns the first item, or nil if the queue is empty right now (or closed
  /// and drained). Never waits.
  ///
  /// Conflicts: with other consumers taking the same item; on an empty queue, with the next
  /// enqueue to commit (a transaction that saw the queue empty must not commit after an
  /// item arrived ahead of what it did).
  ///
  /// - Complexity: O(1).
  @inlinable
  public func tryDequeue() -> Element? {
    guard let transaction = Transaction._currentChecked else {
      return atomically { _ in tryDequeue() }
    }
    return take(transaction)
  }

  /// Removes and returns the first item, waiting while the queue is empty; returns nil once the
  /// queue is closed and drained.
  ///
  /// Outside a transaction this blocks the thread (without spinning) until an item arrives or
  /// the queue is closed. Inside one, an empty queue makes the transaction retry: it rolls back
  /// and reruns when something it read changes.
  ///
  /// Conflicts: as ``tryDequeue()``.
  ///
  /// - Returns: The first item, or nil when the queue is closed and empty.
  /// - Throws: Only inside a transaction: the internal signal of ``Transaction/retry()``, which
  ///   `atomically` catches. A transaction that has called ``Transaction/becomeInevitable()``
  ///   cannot wait: dequeuing from an empty queue there traps; use ``tryDequeue()``.
  /// - Complexity: O(1), plus the wait.
  @inlinable
  public func dequeue() throws -> Element? {
    guard let transaction = Transaction._currentChecked else {
      return blockingDequeue()
    }
    if let item = take(transaction) { return item }
    if closed.value { return nil }
    if transaction._isInevitableByRequest {
      fatalError("TQueue.dequeue() found the queue empty in a transaction that called becomeInevitable(); it would wait forever, since an inevitable transaction cannot roll back to wait. Use tryDequeue(), or dequeue before becoming inevitable.")
    }
    try transaction.retry()
  }

  /// Removes and returns the first item, suspending the task while the queue is empty; returns
  /// nil once the queue is closed and drained. Cancelling the task ends the wait with nil.
  ///
  /// Conflicts: as ``tryDequeue()``.
  ///
  /// - Complexity: O(1), plus the wait.
  public func dequeue() async -> Element? {
    do {
      return try await atomically { transaction in
        if let item = take(transaction) { return item }
        if closed.value || Task.isCancelled { return nil }
        try transaction.retry()
      }
    } catch {
      fatalError("TQueue.dequeue(): unexpected error \(error)")
    }
  }

  @usableFromInline
  func blockingDequeue() -> Element? {
    do {
      return try atomically { transaction in try dequeue() }
    } catch {
      fatalError("TQueue.dequeue(): unexpected error \(error)")
    }
  }

  /// Takes the first item visible to `transaction`: a committed one, or else the first of the
  /// transaction's own pending enqueues.
  @inlinable
  func take(_ transaction: Transaction) -> Element? {
    let first = head.value
    if let next = first.next.value {
      head.value = next
      freedPlaces?.commute(Self.plusOne)
      return next.item
    }
    guard tail._existingDelayedAppend(in: transaction, as: _EnqueueBatch<Element>.self)?.items.isEmpty == false else {
      return nil
    }
    let batch = tail._delayedAppend(in: transaction) { _EnqueueBatch() }
    freedPlaces?.commute(Self.plusOne)
    return batch.items.removeFirst()
  }

  @usableFromInline
  static var plusOne: @Sendable (Int) -> Int { { $0 + 1 } }

  /// Whether no item is waiting (one consistent read).
  ///
  /// Conflicts: with consumers, and, when empty, with the next enqueue to commit.
  public var isEmpty: Bool {
    atomically { transaction in
      head.value.next.value == nil
        && tail._existingDelayedAppend(in: transaction, as: _EnqueueBatch<Element>.self)?.items.isEmpty != false
    }
  }
}

/// Thrown by ``TQueue/enqueue(_:)`` on a queue that has been closed; the item was not enqueued.
public struct TQueueClosedError: Error, Sendable, Hashable, CustomStringConvertible {
  public init() {}
  public var description: String { "TQueueClosedError: enqueue on a closed TQueue; the item was not enqueued" }
}

extension TQueue: AsyncSequence {
  /// Iterates by dequeuing, suspending while the queue is empty; ends once the queue is closed
  /// and drained (or the task is cancelled).
  public struct AsyncIterator: AsyncIteratorProtocol {
    let queue: TQueue
    public mutating func next() async -> Element? { await queue.dequeue() }
  }

  /// An iterator that dequeues; several iterators share the items (each item goes to one).
  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(queue: self) }
}
