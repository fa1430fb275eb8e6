/// A transactional FIFO queue for passing work between threads or tasks: producers never
/// conflict, consumers wait without spinning, and the queue can be closed.
///
/// ```swift
/// let jobs = TQueue<Job>()
/// try jobs.enqueue(job)                      // producer thread
/// for job in jobs.blockingItems {            // consumer thread: waits while empty,
///   run(job)                                 // ends once closed and drained
/// }
/// // or, in a task: for await job in jobs { run(job) }
/// jobs.close()                               // producer, once no more work will come
/// ```
///
/// Inside ``atomically(_:fileID:line:)-88o9x`` the operations join the transaction: an enqueue becomes
/// visible only if the transaction commits, and a consumer whose transaction rolls back gives
/// its item back.
///
/// Conflicts: ``enqueue(_:fileID:line:)-o7nu`` is a *delayed append*, linked after the newest tail at commit:
/// producers of an unbounded queue never conflict with each other or with consumers (a bounded
/// queue's producers share a budget: see below). Two consumers that take from
/// the queue at the same time inside transactions conflict (they take the same head), and one
/// of them reruns and takes the next item. ``close(fileID:line:)`` conflicts with producers that
/// have not committed yet.
///
/// Outside transactions, an enqueue and a dequeue that finds an item waiting usually run no
/// transaction at all: each holds the commit lock of the tail (or the head) for the few
/// instructions it takes to link (or unlink) a node, and publishes that under a commit number of
/// its own, as a transaction would. A dequeue that finds the queue empty (looking in a transaction
/// that only reads) parks on the queue until an item lands for it, and then takes the item the same
/// way: each item that lands wakes one parked consumer, however many wait. Producers take turns at
/// the tail and consumers at the head. An enqueue on an unbounded queue that finds the last link's
/// lock held (by a consumer looking at an empty queue, or by the reclaimer) enqueues in a
/// transaction of its own instead, which a ``close(fileID:line:)`` committing meanwhile can make
/// rerun; otherwise none of them reruns. A batch (``enqueue(contentsOf:fileID:line:)-5aj0b``)
/// is always a transaction of its own, which can rerun.
///
/// A bounded queue (`init(capacity:)`) keeps the two ends apart: producers count down a budget of
/// their own and consumers count up a separate tally of freed places, which a producer whose budget
/// is spent empties into it. Outside transactions a producer takes its place in the same in-place
/// update that links its item (the budget is locked beside the tail), and a consumer frees one in
/// the update that takes its item, so the places are accounted for at every commit and nobody
/// reruns (but a batch, which is a transaction); a producer that finds no place parks on the
/// queue, and each place a consumer frees wakes one parked producer. Inside transactions,
/// consumers add to the tally as a commutative update, so they do not conflict with producers
/// that find places left in the budget; a producer whose budget is short of its items reads the
/// tally to refill it, and so conflicts with consumers that free a place before it commits.
/// Producers of a bounded queue conflict with each other (and with producers outside
/// transactions) through their budget.
///
/// Items are FIFO per producer: the items of one transaction, and of transactions committed one
/// after another, come out in that order; a batch (``enqueue(contentsOf:fileID:line:)-5aj0b``)
/// comes out whole, with no other producer's item between its items. The most recently
/// dequeued item stays referenced by the queue until the next dequeue. So do the items
/// dequeued while other transactions run, which their snapshots may still read: they go at
/// the first dequeue after the last of those transactions has ended, or as it ends if it ran
/// 10 ms or more. The items enqueued while another transaction runs are kept too, dequeued or
/// not, by the versions of the tail kept for its snapshot (through the nodes' links): they go
/// at the first enqueue after it ends (or as it ends, if it ran 10 ms or more), or at a
/// reclamation turn (every 64 writing commits of a segment), so a queue drained after such a
/// transaction and then left alone keeps them until one of those comes (see the Performance
/// article).
///
/// `TQueue` is a reference type: copies of a reference share one queue.
public final class TQueue<Element: Sendable>: Sendable {
  @usableFromInline let head: TVar<_QueueNode<Element?>>
  @usableFromInline let tail: TVar<_QueueNode<Element?>>
  @usableFromInline let closed = TVar(false)
  /// Bounded queues only: places producers may still fill, and places consumers have freed.
  @usableFromInline let producerBudget: TVar<Int>?
  @usableFromInline let freedPlaces: TVar<Int>?
  /// Consumers outside transactions that found the queue empty, each woken by one item.
  @usableFromInline let waitingConsumers = _Parking()
  /// Bounded queues only: producers outside transactions that found the queue full, each
  /// woken by one place freed.
  @usableFromInline let waitingProducers: _Parking?

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
    let sentinel = _QueueNode<Element?>(nil)
    head = TVar(sentinel)
    tail = TVar(sentinel)
    self.capacity = capacity
    producerBudget = capacity.map { TVar($0) }
    freedPlaces = capacity.map { _ in TVar(0) }
    waitingProducers = capacity.map { _ in _Parking() }
  }

  // MARK: Producing

  /// Adds `item` at the end of the queue.
  ///
  /// Outside a transaction this commits at once. Inside one, the item is appended when the
  /// transaction commits (never if it rolls back). On a full bounded queue it waits (outside a
  /// transaction, blocking the thread; inside, the transaction retries). One transaction's
  /// items must fit in the queue together: an enqueue that would give a transaction more items
  /// waiting to land than the capacity traps, since no consumer could ever make room. From a task, use
  /// ``enqueue(_:fileID:line:)-7jle`` with `await`, which suspends instead (Swift picks it
  /// in asynchronous code): blocked producer tasks could otherwise hold every thread of the
  /// shared pool, leaving none for the consumers that would free a place.
  ///
  /// Conflicts: none with other producers or with consumers, except on a bounded queue (with
  /// other producers, through the budget of places; with consumers, when the budget is spent:
  /// see the type's discussion); with ``close(fileID:line:)``. Outside a transaction, none
  /// with producers or consumers: it waits its turn at the tail (and at a bounded queue's
  /// budget), and a close that commits meanwhile makes it throw (by making it rerun, when it
  /// found the last link busy and went on in a transaction of its own).
  ///
  /// - Parameters:
  ///   - item: The item to enqueue.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: ``TQueueClosedError`` if the queue is closed; the item is not enqueued.
  ///   Inside a transaction on a full bounded queue, also the internal signal of
  ///   ``Transaction/retry()``, which `atomically` catches.
  /// - Complexity: O(1) now, amortized, plus the wait for a place on a full bounded queue; the
  ///   item lands at commit.
  @inlinable
  public func enqueue(_ item: Element, fileID: StaticString = #fileID, line: UInt = #line) throws {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    guard let transaction = Transaction._currentChecked else {
      try enqueueOnItsOwn(item, at: site)
      return
    }
    try enqueue(item, in: transaction, at: site)
  }

  /// Adds `item` at the end of the queue, suspending the task while a bounded queue is full.
  ///
  /// The form for tasks: where the synchronous form would block its thread until a place
  /// frees up, this one suspends, so that producer tasks waiting on a full queue leave the
  /// shared pool's threads to the consumers that free places. On an unbounded queue it never
  /// waits. Inside `atomically`, whose body is synchronous, the synchronous form joins the
  /// transaction as usual. Run by a transaction's body (in a task it started synchronously,
  /// such as `Task.immediate`), this one traps: it could neither wait nor roll back with that
  /// transaction.
  ///
  /// Conflicts: as the synchronous ``enqueue(_:fileID:line:)-o7nu`` outside a transaction: none
  /// with other producers or with consumers; it waits its turn at the tail (and at a bounded
  /// queue's budget), and a ``close(fileID:line:)`` that commits meanwhile makes it throw
  /// (through a rerun, as there).
  ///
  /// - Parameters:
  ///   - item: The item to enqueue.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: ``TQueueClosedError`` if the queue is closed, or closes while the task waits;
  ///   `CancellationError` if the task is cancelled while it waits for a place (a place free
  ///   now is taken whether or not the task is cancelled). Either way the item is not
  ///   enqueued.
  /// - Complexity: O(1), plus the wait.
  public func enqueue(_ item: Element, fileID: StaticString = #fileID, line: UInt = #line) async throws {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    // A task's code runs inside no transaction (their bodies are synchronous), unless a
    // transaction's body started it synchronously (`Task.immediate`). It joined that one, but
    // could not wait there for a place, and the task went on as if the item were sent even when
    // the attempt rolled back (found by review).
    if Transaction._currentChecked != nil { _trapAsyncFormInsideTransactionBody("TQueue's async enqueue(_:)") }
    try await enqueueSuspending(item, at: site)
  }

  /// `enqueueOnItsOwn(_:at:until:)` for a task: waits for a place by suspending, and lets
  /// other tasks (perhaps the holder of a lock it keeps finding busy) run first after a few
  /// tries in a row.
  func enqueueSuspending(_ item: Element, at site: _CallSite, until deadline: _Deadline? = nil) async throws {
    let node = _QueueNode<Element?>(item)
    var misses = 0
    while true {
      switch try enqueueInPlace(node, at: site) {
      case .linked:
        waitingConsumers.itemLanded()
        return
      case .budgetSpent:
        if try await refillBudgetSuspending(at: site, until: deadline) { continue }
      case .busy:
        guard producerBudget != nil else {
          try await _singleOperation(at: site) { try enqueue(item, in: $0, at: site) }
          return
        }
      }
      misses += 1
      if misses > 16 { await Task.yield() }
    }
  }

  /// Inside `transaction`: appends `item` when it commits, having taken a place from a bounded
  /// queue's budget.
  /// With a `deadline`, a full bounded queue ends the wait then with `TQueueTimeoutError`
  /// (see `takePlaces`).
  @inlinable
  func enqueue(
    _ item: Element, in transaction: Transaction, at site: _CallSite, until deadline: ContinuousClock.Instant? = nil
  ) throws {
    closed._noteAccess(.read, at: site, as: .named("closed"))
    if closed.value { throw TQueueClosedError() }
    try takePlaces(1, transaction, at: site, until: deadline)
    tail._noteAccess(.write, at: site, as: .named("tail"))
    let isFirst = tail._withDelayedAppend(in: transaction, appendingOnly: true, { _EnqueueBatch() }) { batch in
      defer { batch.items.append(item) }
      return batch.items.isEmpty
    }
    // The transaction's first item here: once its items land, wake a parked consumer (who
    // wakes the next if there are more). One wake-up per transaction, not per item.
    if isFirst { transaction._wakeAfterCommit(1, on: waitingConsumers) }
  }

  /// Outside a transaction: links the item in place (see `enqueueInPlace`). When that cannot be
  /// done now, an unbounded queue's producer enqueues in a transaction instead, and a bounded
  /// queue's tries again after a pause (a transaction would conflict with the other producers
  /// through the budget); a bounded queue's producer that finds the budget spent refills it,
  /// or waits for a place (see `refillBudget`), until `deadline` if it has one.
  @inlinable
  func enqueueOnItsOwn(_ item: Element, at site: _CallSite, until deadline: _Deadline? = nil) throws {
    // Made before any lock is taken, so that allocating does not hold other producers up.
    let node = _QueueNode<Element?>(item)
    var backoff = _Backoff()
    while true {
      switch try enqueueInPlace(node, at: site) {
      case .linked:
        waitingConsumers.itemLanded()
        return
      case .budgetSpent:
        // A refill that found places it could not move (a lock was busy) tries again after a
        // pause that grows, as for a busy tail: the holder may be off its core.
        if try !refillBudget(at: site, until: deadline) { backoff.pause() }
      case .busy:
        guard producerBudget != nil else {
          try _singleOperation(at: site) { try enqueue(item, in: $0, at: site) }
          return
        }
        backoff.pause()
      }
    }
  }

  /// What became of an attempt to enqueue in place.
  @usableFromInline
  enum InPlaceEnqueue {
    case linked
    /// A bounded queue's budget is spent (its places may be in the consumers' tally).
    case budgetSpent
    /// A lock it needed was held.
    case busy
  }

  /// Outside a transaction: links `node` after the tail with an in-place update of `tail`,
  /// which holds its commit lock (and the last node's link's, and a bounded queue's budget)
  /// instead of running a transaction, and takes a place from the budget under the same
  /// commit number. Changes nothing when that cannot be done: a ``close(fileID:line:)`` is
  /// committing right now, or someone holds the last link's lock (the reclaimer, or a consumer
  /// looking at an empty queue) or the budget's; or the budget is spent.
  ///
  /// Producers that get here at the same time take turns at the tail's lock; a commit that
  /// lands a transaction's enqueues waits for it too, as for another such commit.
  ///
  /// - Throws: ``TQueueClosedError`` if the queue is closed.
  @inlinable
  func enqueueInPlace(_ node: _QueueNode<Element?>, at site: _CallSite) throws -> InPlaceEnqueue {
    // Noted apart, and the properties used in place: a `TVar` handed back by `_noted`, or
    // captured by the closure below, was a retained copy.
    tail._noteAccess(.write, at: site, as: .named("tail"))
    closed._noteAccess(.read, at: site, as: .named("closed"))
    // The last node lent, not copied, and used as its own link's cell: each reference taken
    // was a retain and a release on a line every producer writes. The node
    // stays alive while its link is locked, even if the tail's old version goes when the new
    // one is published: the head, or the link of the node before it, holds it too, and no
    // consumer moves past it before its link is free. After that only its address is used
    // (to wake waiters).
    guard let update = tail._beginLentInPlaceUpdate() else { return .busy }
    let last = update.object
    // The update holds the tail: `last` is the newest node, which no one can link after now.
    node.position = last._withUnsafeGuaranteedRef { $0.position } + 1
    // The closures below capture the queue and the node unretained: captured as references,
    // both were retained for the call, the queue on a line that every thread writes.
    let queue = Unmanaged.passUnretained(self)
    let linked = Unmanaged.passUnretained(node)
    var isClosed: Bool? = false
    // The check comes after the commit number: a close that has not taken its own number by
    // then (it holds `closed`'s lock first) is numbered after this enqueue, and one that has
    // is seen, as closed or as busy.
    let published: Bool
    var budgetSpent = false
    if let producerBudget {
      producerBudget._noteAccess(.readWrite, at: site, as: .named("capacity"))
      published = last._withUnsafeGuaranteedRef { last in
        tail._endInPlaceUpdate(update, alongWithCell: last, and: producerBudget) { _, budget in
          isClosed = queue._withUnsafeGuaranteedRef { $0.closed._peekNewest(during: update) }
          budgetSpent = budget == 0
          return isClosed == false && !budgetSpent ? (linked.takeUnretainedValue(), linked.takeUnretainedValue(), budget - 1) : nil
        }
      }
    } else {
      published = last._withUnsafeGuaranteedRef { last in
        tail._endInPlaceUpdate(update, alongWithCell: last) { _ in
          isClosed = queue._withUnsafeGuaranteedRef { $0.closed._peekNewest(during: update) }
          return isClosed == false ? (linked.takeUnretainedValue(), linked.takeUnretainedValue()) : nil
        } != nil
      }
    }
    if published { return .linked }
    if isClosed == true { throw TQueueClosedError() }
    return budgetSpent && isClosed == false ? .budgetSpent : .busy
  }

  /// Outside a transaction, on a bounded queue whose budget a producer found spent: moves the
  /// places consumers have freed (their tally) into the budget with an in-place update of both.
  /// When there are none, parks the producer until a consumer frees one (or `deadline`
  /// passes), and throws ``TQueueClosedError`` if the queue is closed meanwhile. The caller
  /// then tries to enqueue again. Returns false when it neither refilled nor waited, and found
  /// no refill by another producer: places were there, but a lock it needed was busy.
  ///
  /// - Throws: ``TQueueTimeoutError`` when it finds no place once `deadline` has passed.
  @inlinable
  func refillBudget(at site: _CallSite, until deadline: _Deadline? = nil) throws -> Bool {
    if refillBudgetInPlace(at: site) { return true }
    switch lookForPlaces(at: site) {
    case .inBudget: return true
    case .freed: return false
    case .closed: throw TQueueClosedError()
    case .none:
      // It gives up right after a look that found no place, so it owes no place a wake-up.
      if let deadline, deadline.hasPassed { throw TQueueTimeoutError() }
    }
    // Park, then look once more before sleeping: a place freed after this look wakes a
    // parked producer (see `_Parking`). At its deadline it tries once more, and ends above.
    let parked = waitingProducers!.parkAndBlock(until: deadline, looking: { lookForPlaces(at: site) }, sleepsIf: { $0 == .none })
    if parked.found == .closed { throw TQueueClosedError() }
    return true
  }

  /// `refillBudget(at:until:)` for a task: the wait suspends it instead of blocking its
  /// thread, and ends with `CancellationError` if the task is cancelled (with
  /// `TQueueTimeoutError` once `deadline` has passed, as there).
  func refillBudgetSuspending(at site: _CallSite, until deadline: _Deadline? = nil) async throws -> Bool {
    if refillBudgetInPlace(at: site) { return true }
    switch lookForPlaces(at: site) {
    case .inBudget: return true
    case .freed: return false
    case .closed: throw TQueueClosedError()
    case .none:
      // A cancelled task still takes a place that is free, but does not wait for one. It
      // gives up right after a look that found none, so it owes no place a wake-up.
      if Task.isCancelled { throw CancellationError() }
      if let deadline, deadline.hasPassed { throw TQueueTimeoutError() }
    }
    let parked = await waitingProducers!.parkAndSuspend(
      until: deadline, looking: { lookForPlaces(at: site) }, sleepsIf: { $0 == .none })
    if parked.found == .closed { throw TQueueClosedError() }
    // Woken, cancelled, at the deadline, or places seen: the caller tries again, and comes
    // back here to look once more before it gives up.
    return true
  }

  /// The first half of `refillBudget(at:)`: true when the budget has places now (refilled by
  /// this call or by another producer), false when a lock was busy or no place was freed.
  @inlinable
  func refillBudgetInPlace(at site: _CallSite) -> Bool {
    guard let producerBudget, let freedPlaces else { return true }
    producerBudget._noteAccess(.readWrite, at: site, as: .named("capacity"))
    freedPlaces._noteAccess(.readWrite, at: site, as: .named("capacity"))
    guard let update = producerBudget._beginInPlaceUpdate() else { return false }
    // Refilled meanwhile by another producer.
    if update.value > 0 {
      producerBudget._endInPlaceUpdate(update, publishing: nil)
      return true
    }
    let budget = update.value
    let moved = producerBudget._endInPlaceUpdate(update, alongWith: freedPlaces) { freed in
      freed > 0 ? (budget + freed, 0) : nil
    }
    return moved != nil
  }

  /// Outside a transaction, in a transaction that only reads (it never conflicts or reruns):
  /// where a bounded queue's places are, for a producer that found its budget spent and could
  /// not refill it in place.
  @inlinable
  func lookForPlaces(at site: _CallSite) -> _PlacesLook {
    guard let producerBudget, let freedPlaces else { return .inBudget }
    return _singleOperation(at: site) { _ in
      if closed._notedValue(.read, at: site, as: .named("closed")) { return .closed }
      if producerBudget._notedValue(.read, at: site, as: .named("capacity")) > 0 { return .inBudget }
      return freedPlaces._notedValue(.read, at: site, as: .named("capacity")) > 0 ? .freed : .none
    }
  }

  /// Inside `transaction`: takes `places` places from a bounded queue's budget, refilling it
  /// from the consumers' tally when it is short, or retries (until `deadline`, if any) when
  /// both together are short. `givingUpIfCancelled`: a task's enqueue, which throws
  /// `CancellationError` then instead, once the task is cancelled.
  @inlinable
  func takePlaces(
    _ places: Int, _ transaction: Transaction, at site: _CallSite, until deadline: ContinuousClock.Instant? = nil,
    givingUpIfCancelled: Bool = false
  ) throws {
    guard let producerBudget = producerBudget?._noted(.readWrite, at: site, as: .named("capacity")),
      let freedPlaces = freedPlaces?._noted(.readWrite, at: site, as: .named("capacity"))
    else { return }
    var budget = producerBudget.value
    if budget < places {
      budget += freedPlaces.value
      guard budget >= places else {
        trapIfNeverRoom(for: places, in: transaction, at: site)
        if givingUpIfCancelled && Task.isCancelled { throw CancellationError() }
        guard let deadline else { try transaction.retry() }
        try transaction.retry(until: deadline)
        throw TQueueTimeoutError()
      }
      freedPlaces.value = 0
    }
    producerBudget.value = budget - places
  }

  /// Traps, reporting `site` (the enqueue's caller), when `transaction` already holds so many
  /// of its own items, waiting to land, that `places` more would exceed the queue's capacity:
  /// no number of consumers could ever make room for them all, so the retry would wait forever.
  @usableFromInline
  func trapIfNeverRoom(for places: Int, in transaction: Transaction, at site: _CallSite) {
    guard let capacity else { return }
    let pending = tail._existingDelayedAppend(in: transaction, as: _EnqueueBatch<Element>.self) { $0.items.count } ?? 0
    guard pending + places > capacity else { return }
    _trap(
      "A transaction enqueued \(pending + places) items into a TQueue of capacity \(capacity): they land together, so they can never all fit, and it would wait forever. Enqueue at most \(capacity) items per transaction, spreading the rest over separate transactions, or give the queue a larger capacity (or none).",
      at: site)
  }

  /// Closes the queue: consumers drain what is left and then receive nil, and later enqueues
  /// throw ``TQueueClosedError``. Closing twice does nothing.
  ///
  /// Conflicts: with producers that have not committed yet (they rerun and find the queue
  /// closed) and with consumers waiting on an empty queue (they wake up and end).
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1).
  public func close(fileID: StaticString = #fileID, line: UInt = #line) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    _singleOperation(at: site) { transaction in
      let closed = closed._noted(.readWrite, at: site, as: .named("closed"))
      guard !closed.value else { return }
      closed.value = true
      // Consumers and producers parked outside transactions wake once the close has committed
      // (this call's own transaction, or the one it joins), and find the queue closed.
      transaction._wakeAfterCommit(.max, on: waitingConsumers)
      if let waitingProducers { transaction._wakeAfterCommit(.max, on: waitingProducers) }
    }
  }

  /// Whether ``close(fileID:line:)`` has been called.
  ///
  /// Conflicts: with ``close(fileID:line:)``.
  public var isClosed: Bool { closed._notedValue(.read, at: .unknown(in: self), as: .named("closed")) }

  // MARK: Consuming

  /// Removes and returns the first item, or nil if the queue is empty right now (or closed
  /// and drained). Never waits.
  ///
  /// Conflicts: with other consumers taking the same item; on an empty queue, with the next
  /// enqueue to commit (a transaction that saw the queue empty must not commit after an
  /// item arrived ahead of what it did). Outside a transaction, taking a waiting item never
  /// reruns: it waits its turn at the head (and at a bounded queue's tally of freed places)
  /// instead; a consumer inside a transaction that read the head meanwhile reruns.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The first item, or nil if there is none now.
  /// - Complexity: O(1).
  @inlinable
  public func tryDequeue(fileID: StaticString = #fileID, line: UInt = #line) -> Element? {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    guard let transaction = Transaction._currentChecked else {
      var backoff = _Backoff()
      while true {
        if let item = takeInPlace(at: site) { return item }
        // Empty, or the first link busy: look again in a transaction that only reads.
        guard look(at: site) == .itemWaiting else { return nil }
        // An item waits, but a lock the take needs was busy: pause (more and more) before
        // trying again, as for a busy tail.
        backoff.pause()
      }
    }
    return take(transaction, at: site)
  }

  /// Removes and returns the first item, waiting while the queue is empty; returns nil once the
  /// queue is closed and drained.
  ///
  /// Outside a transaction this blocks the thread (without spinning) until an item arrives or
  /// the queue is closed. Inside one, an empty queue makes the transaction retry: it rolls back
  /// and reruns when something it read changes.
  ///
  /// Consumers waiting outside transactions are woken one per item that lands (threads before
  /// tasks, each in the order they began to wait), so an idle pool of consumers costs nothing per
  /// item however large it is; a woken consumer that finds more items behind its own wakes the
  /// next. Consumers waiting inside transactions (through `retry()`) all wake whenever the queue
  /// changes, and all but one wait again.
  ///
  /// Conflicts: as ``tryDequeue(fileID:line:)``.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The first item, or nil when the queue is closed and empty.
  /// - Throws: Only inside a transaction: the internal signal of ``Transaction/retry()``, which
  ///   `atomically` catches. A transaction that has called ``Transaction/becomeInevitable()``
  ///   cannot wait: dequeuing from an empty queue there traps, unless an enclosing
  ///   ``Transaction/orElse(_:_:)`` takes its other branch instead; use
  ///   ``tryDequeue(fileID:line:)``.
  /// - Complexity: O(1), plus the wait.
  @inlinable
  public func dequeue(fileID: StaticString = #fileID, line: UInt = #line) throws -> Element? {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    guard let transaction = Transaction._currentChecked else {
      return try blockingDequeue(at: site)
    }
    if let item = take(transaction, at: site) { return item }
    if closed._notedValue(.read, at: site, as: .named("closed")) { return nil }
    // After becomeInevitable() the engine traps when the whole transaction retries, saying
    // why; a retry that an enclosing orElse catches does not wait, and must not trap.
    try transaction.retry()
  }

  /// Removes and returns the first item, suspending the task while the queue is empty; returns
  /// nil once the queue is closed and drained. Cancelling the task ends the wait with nil.
  ///
  /// Call it from tasks, not from a transaction's body: run there (in a task the body started
  /// synchronously, such as `Task.immediate`), it traps. In the body itself, use the
  /// synchronous ``dequeue(fileID:line:)-9itxg`` or ``tryDequeue(fileID:line:)``, and start
  /// tasks that need the item once the transaction has committed (from `afterCommit`).
  ///
  /// Conflicts: as ``tryDequeue(fileID:line:)``.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The first item, or nil when the queue is closed and empty, or the task is
  ///   cancelled while waiting.
  /// - Complexity: O(1), plus the wait.
  public func dequeue(fileID: StaticString = #fileID, line: UInt = #line) async -> Element? {
    await dequeue(at: _CallSite(fileID: fileID, line: line, owner: self))
  }

  func dequeue(at site: _CallSite) async -> Element? {
    // A task that a transaction's body started synchronously (`Task.immediate`) runs in that
    // transaction until it suspends. Taking an item in place there took it for good, even if
    // the transaction rolled back, and waiting there trapped as an internal error (found by
    // review). A take that joins the transaction would not do either: the task would keep
    // the item of an attempt that reruns.
    if Transaction._currentChecked != nil {
      _trapAsyncFormInsideTransactionBody("TQueue's async dequeue() (or a for-await loop over the queue)")
    }
    do {
      return try await dequeueSuspending(at: site, until: nil)
    } catch {
      preconditionFailure("a wait without a deadline cannot time out")
    }
  }

  /// Outside a transaction: takes the first item, suspending while the queue is empty (until
  /// `deadline`, if it has one); nil when the queue is closed and drained, or the task is
  /// cancelled while it waits.
  func dequeueSuspending(at site: _CallSite, until deadline: _Deadline?) async throws(TQueueTimeoutError) -> Element? {
    var misses = 0
    // Set once a producer has woken this consumer: it then owes that wake-up to an item
    // (see `_Parking`).
    var woken = false
    while true {
      if let item = takeInPlace(at: site) {
        if woken { waitingConsumers.passOn(ifAnItemWaits: { look(at: site) == .itemWaiting }) }
        return item
      }
      switch look(at: site) {
      case .itemWaiting:
        // As in `blockingDequeue`, without blocking a thread of the cooperative pool: after a
        // few tries in a row, let other tasks (perhaps the lock's holder) run first.
        misses += 1
        if misses > 16 { await Task.yield() }
        continue
      case .closed:
        return nil
      case .empty:
        // A cancelled task still takes an item that is there, but does not wait for one. It
        // leaves right after a look that found no item, so it owes no item a wake-up; so does
        // a task whose deadline has passed.
        if Task.isCancelled { return nil }
        if let deadline, deadline.hasPassed { throw TQueueTimeoutError() }
      }
      // Woken, or an item seen: try to take one. Cancelled, or at the deadline: look once
      // more, then end.
      let parked = await waitingConsumers.parkAndSuspend(
        until: deadline, looking: { look(at: site) }, sleepsIf: { $0 == .empty })
      if parked.woken { woken = true }
      if parked.found == .closed { return nil }
    }
  }

  // Inlinable, like the rest of the path: compiled generically, every dequeue outside a
  // transaction looked up the metadata of its queue's node and optional types at run time.
  //
  // With a `deadline`, it throws once that has passed and a look finds the queue empty.
  @inlinable
  func blockingDequeue(at site: _CallSite, until deadline: _Deadline? = nil) throws(TQueueTimeoutError) -> Element? {
    var backoff = _Backoff()
    // Set once a producer has woken this consumer: it then owes that wake-up to an item
    // (see `_Parking`).
    var woken = false
    while true {
      if let item = takeInPlace(at: site) {
        if woken { waitingConsumers.passOn(ifAnItemWaits: { look(at: site) == .itemWaiting }) }
        return item
      }
      switch look(at: site) {
      case .itemWaiting:
        // Perhaps it just arrived, or another consumer took it first, or a lock the take
        // needs was busy: try again, pausing more and more while that goes on.
        backoff.pause()
      case .closed:
        return nil
      case .empty:
        // It leaves right after a look that found no item, so it owes no item the wake-up it
        // may have had.
        if let deadline, deadline.hasPassed { throw TQueueTimeoutError() }
        // Park, then look once more before sleeping: an item that lands after this look
        // wakes a parked consumer (see `_Parking`). At the deadline it looks again, and ends
        // above.
        let parked = waitingConsumers.parkAndBlock(until: deadline, looking: { look(at: site) }, sleepsIf: { $0 == .empty })
        if parked.woken { woken = true }
        if parked.found == .closed { return nil }
      }
    }
  }

  /// Outside a transaction, in a transaction that only reads (it never conflicts or reruns):
  /// whether an item waits, or the queue is closed and drained, or it is empty and open. A
  /// consumer that could not take an item in place asks, to decide whether to try again, end,
  /// or wait.
  @inlinable
  func look(at site: _CallSite) -> _QueueLook {
    _singleOperation(at: site) { _ in
      if hasCommittedItem(at: site) { return .itemWaiting }
      return closed._notedValue(.read, at: site, as: .named("closed")) ? .closed : .empty
    }
  }

  /// Inside a transaction: whether an item someone committed waits after the head (the first
  /// node's link, read as part of the head).
  @inlinable
  func hasCommittedItem(at site: _CallSite) -> Bool {
    head._noteAccess(.read, at: site, as: .named("head"))
    let first = head.value
    first._noteAccess(.read, at: site, as: .named("head"))
    return first.currentValue != nil
  }

  /// Outside a transaction: takes the first item with an in-place update of `head`, which
  /// holds its commit lock instead of running a transaction, and returns it (the item of the
  /// node that becomes the head; the outer optional says whether it took one). On a bounded
  /// queue the same update adds the place it frees to the consumers' tally, under the same
  /// commit number. Nil, having changed nothing, when that cannot be done: the queue has no
  /// item, or a commit is linking the first one (or holds the tally) right now. The caller
  /// then looks for an item in a transaction that only reads (`look(at:)`), and parks on the
  /// queue if there is none and the caller waits.
  ///
  /// Two consumers that get here at the same time take turns at the head's lock instead of
  /// one of them rerunning.
  @inlinable
  func takeInPlace(at site: _CallSite) -> Element?? {
    head._noteAccess(.readWrite, at: site, as: .named("head"))
    // The first node lent, not copied, and read as its own link's cell, and the next node left
    // unretained: the first node's link (the node's own cell) holds it, and the head's newest
    // version, which the update holds locked, holds the first node. Each
    // reference taken was a retain and a release on a line every consumer writes.
    guard let update = head._beginLentInPlaceUpdate() else { return nil }
    let peeked = update.object._withUnsafeGuaranteedRef { first in
      first._noteAccess(.read, at: site, as: .named("head"))
      return first._withNewest(peekedDuring: update) { $0.map(Unmanaged.passUnretained) }
    }
    guard let next = peeked ?? nil else {
      head._endInPlaceUpdate(update, publishing: nil)
      return nil
    }
    // Read while the update holds the head: once the head has moved on to this node, another
    // consumer may take the item after it, and the node goes.
    let item = next._withUnsafeGuaranteedRef { $0.item }
    guard let freedPlaces else {
      head._endInPlaceUpdate(update, publishing: next.takeUnretainedValue())
      return .some(item)
    }
    freedPlaces._noteAccess(.readWrite, at: site, as: .named("capacity"))
    let published = head._endInPlaceUpdate(update, alongWith: freedPlaces) { (next.takeUnretainedValue(), $0 + 1) }
    guard published != nil else { return nil }
    waitingProducers?.itemLanded()
    return .some(item)
  }

  /// Takes the first item visible to `transaction`: a committed one, or else the first of the
  /// transaction's own pending enqueues. The operation at `site` asks.
  @inlinable
  func take(_ transaction: Transaction, at site: _CallSite) -> Element? {
    // Noted apart, and the first node read as the cell it is: the variables that `_noted` and
    // `next` hand back are copies, each a retain and a release.
    head._noteAccess(.readWrite, at: site, as: .named("head"))
    let first = head.value
    // The first node's link is where the next item appears: for the log, part of the head.
    first._noteAccess(.read, at: site, as: .named("head"))
    if let next = first.currentValue {
      head.value = next
      freePlace(transaction, at: site)
      return next.item
    }
    let hasOwnItems = tail._existingDelayedAppend(in: transaction, as: _EnqueueBatch<Element>.self) { !$0.items.isEmpty }
    guard hasOwnItems == true else { return nil }
    freePlace(transaction, at: site)
    let (item, emptied) = tail._withDelayedAppend(in: transaction, { _EnqueueBatch() }) {
      ($0.items.removeFirst(), $0.items.isEmpty)
    }
    // All taken back: nothing lands on the tail (see the primitive).
    if emptied { tail._dropEmptyDelayedAppend(in: transaction) }
    return item
  }

  /// Inside `transaction`, on a bounded queue: frees the place of an item it takes, for
  /// producers, as a commutative update of the consumers' tally.
  @inlinable
  func freePlace(_ transaction: Transaction, at site: _CallSite) {
    guard let freedPlaces, let waitingProducers else { return }
    freedPlaces._commuteAdding(1, at: site, as: .named("capacity"))
    // Once the place is committed, a producer parked outside transactions wakes for it (see
    // `_Parking`); the places a transaction frees add up to as many wake-ups.
    transaction._wakeAfterCommit(1, on: waitingProducers)
  }

  /// Whether no item is waiting (one consistent read).
  ///
  /// Conflicts: with consumers, and, when empty, with the next enqueue to commit. Inside a
  /// transaction that has enqueued items it has not taken back, with nothing: the answer is
  /// `false` whatever others commit.
  public var isEmpty: Bool {
    let site = _CallSite.unknown(in: self)
    return _singleOperation(at: site) { transaction in
      // The transaction's own pending items answer without reading the queue, so that asking
      // does not make it conflict with other producers or with consumers.
      let hasOwnItems = tail._existingDelayedAppend(in: transaction, as: _EnqueueBatch<Element>.self) { !$0.items.isEmpty }
      return hasOwnItems != true && !hasCommittedItem(at: site)
    }
  }

  /// How many items are waiting (one consistent read), counting, inside a transaction, the
  /// items it has enqueued and not taken back, and not those it has taken.
  ///
  /// Each node knows its position in the queue's history, so this reads the head and the tail
  /// and subtracts: it walks nothing.
  ///
  /// Conflicts: with every enqueue and every dequeue that commits before the transaction
  /// that asks does (outside a transaction, with nothing: it only reads). Ask ``isEmpty``
  /// when that is the question: it conflicts with less.
  ///
  /// - Complexity: O(1).
  public var count: Int {
    let site = _CallSite.unknown(in: self)
    return _singleOperation(at: site) { transaction in
      let pending = tail._existingDelayedAppend(in: transaction, as: _EnqueueBatch<Element>.self) { $0.items.count } ?? 0
      head._noteAccess(.read, at: site, as: .named("head"))
      tail._noteAccess(.read, at: site, as: .named("tail"))
      return tail.value.position - head.value.position + pending
    }
  }

  /// The items waiting, first to last, as an `Array`, without taking any: one consistent
  /// snapshot (outside a transaction, one read at a snapshot, which never aborts). Inside a
  /// transaction, its own items that have not landed yet come last, and those it has taken
  /// are gone.
  ///
  /// Conflicts: with every enqueue and every dequeue that commits before the transaction that
  /// asks does (it reads every link, from the head to the tail).
  ///
  /// - Complexity: O(*n*).
  @inlinable
  public var elements: [Element] {
    let site = _CallSite.unknown(in: self)
    let thread = _CallingThread.current
    guard thread.isInTransaction else { return elementsOutsideTransactions(on: thread, at: site) }
    return _singleOperation(at: site) { transaction in
      head._noteAccess(.read, at: site, as: .named("head"))
      var node = head.value
      var result: [Element] = []
      // The first node's link is where the next item appears: for the log, part of the head
      // (as consumers read it); the links after it, the items.
      var part: StaticString = "head"
      while true {
        node._noteAccess(.read, at: site, as: .named(part))
        part = "items"
        guard let next = node.currentValue else { break }
        // Only the sentinel holds no item, and it is never after another node.
        result.append(next.item!)
        node = next
      }
      tail._existingDelayedAppend(in: transaction, as: _EnqueueBatch<Element>.self) { result.append(contentsOf: $0.items) }
      return result
    }
  }

  /// `elements` outside a transaction: every link read at one snapshot by a single operation,
  /// which marks no read (see `_MapStorage.snapshotOutsideTransactions` for why).
  @inlinable
  func elementsOutsideTransactions(on thread: _CallingThread, at site: _CallSite) -> [Element] {
    let operation = _SingleOperation.beginReading(on: thread)
    var node = operation.read(head._noted(.read, at: site, as: .named("head")))
    var result: [Element] = []
    var part: StaticString = "head"
    while true {
      node._noteAccess(.read, at: site, as: .named(part))
      part = "items"
      guard let next = operation.read(node) else { break }
      // Only the sentinel holds no item, and it is never after another node.
      result.append(next.item!)
      node = next
    }
    operation.finish()
    return result
  }
}

/// Thrown by ``TQueue/enqueue(_:fileID:line:)-o7nu`` and the other enqueues on a queue that
/// has been closed; nothing was enqueued.
public struct TQueueClosedError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The error that an enqueue on a closed queue throws.
  public init() {}
  /// What went wrong, for a log or a test failure.
  public var description: String { "TQueueClosedError: enqueue on a closed TQueue; nothing was enqueued" }
}

extension TQueue: CustomStringConvertible {
  /// The items waiting, first to last, written like an `Array`; and whether it is closed.
  ///
  /// Conflicts: as ``elements``, and with ``close(fileID:line:)``.
  public var description: String {
    _singleOperation(at: .unknown(in: self)) { _ in "TQueue(\(elements)\(isClosed ? ", closed" : ""))" }
  }
}

extension TQueue: AsyncSequence {
  /// Iterates by dequeuing, suspending while the queue is empty; ends once the queue is closed
  /// and drained, or once the task is cancelled (items still queued then stay in the queue).
  public struct AsyncIterator: AsyncIteratorProtocol {
    let queue: TQueue
    /// Set once `next()` has returned nil: every later call returns nil too, as
    /// `AsyncIteratorProtocol` asks, even if items come meanwhile.
    var finished = false

    /// Dequeues the next item, suspending while the queue is empty; nil once the queue is
    /// closed and drained, or the task is cancelled, and from then on.
    ///
    /// Conflicts: as ``TQueue/tryDequeue(fileID:line:)``.
    ///
    /// - Complexity: O(1), plus the wait.
    public mutating func next() async -> Element? {
      // Cancellation is checked before an item is taken, so that none is taken and dropped.
      guard !finished, !Task.isCancelled, let item = await queue.dequeue(at: .unknown(in: queue)) else {
        finished = true
        return nil
      }
      return item
    }
  }

  /// An iterator that dequeues; several iterators share the items (each item goes to one).
  ///
  /// Conflicts with nothing: making the iterator reads nothing. Each ``AsyncIterator/next()``
  /// conflicts as ``tryDequeue(fileID:line:)`` does.
  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(queue: self) }
}

/// What a producer outside a transaction, on a bounded queue whose budget it found spent,
/// found when it looked for places (`TQueue.lookForPlaces`).
@usableFromInline
enum _PlacesLook {
  /// The budget has places again (another producer refilled it).
  case inBudget
  /// Consumers have freed places, for the producer to move into the budget.
  case freed
  /// The queue is closed.
  case closed
  /// No place anywhere: the queue is full.
  case none
}

/// What a consumer outside a transaction found when it looked at the queue (`TQueue.look`).
@usableFromInline
enum _QueueLook {
  /// An item is waiting, for the consumer to take in place.
  case itemWaiting
  /// The queue is closed and drained.
  case closed
  /// The queue is empty and open.
  case empty
}
