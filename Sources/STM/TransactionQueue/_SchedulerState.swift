/// One callback of a ``TransactionQueue``, with the `add` call that added it: its transaction's
/// location for the conflict log.
struct _Work: Sendable {
  let body: @Sendable () throws -> Void
  let fileID: StaticString
  let line: UInt
}

/// The scheduler's bookkeeping, kept under a ``_Monitor``: a state machine whose methods decide
/// and return what to do, while ``TransactionQueue`` does it outside the lock.
///
/// None of this is transactional. PyPy-STM's first scheduler kept its queue in transactional
/// memory, so every worker taking the next callback conflicted with every other; here taking,
/// adding and finishing work only ever wait on this short critical section, never abort.
struct _SchedulerState {
  enum Phase {
    /// No run in progress: `add` queues work for the next run.
    case idle
    /// A run is in progress (from `beginRun` until its caller has collected the outcome).
    case running
    /// A callback threw: the queue discarded its work and accepts no more.
    case failed(any Error)
  }

  /// What a worker does next.
  enum WorkerStep {
    /// Run the callback; `stopSignal` is the run's (see `stopSignal`).
    case run(_Work, stopSignal: TVar<Bool>)
    case leave
  }

  /// Why a run stops starting new work before its queue is empty.
  enum StopReason {
    case failed(any Error)
    case cancelled
  }

  private(set) var phase = Phase.idle
  private(set) var pending = _WorkList()
  /// Callbacks taken and not yet finished. A callback counts until its transaction's
  /// after-commit hooks (which add the work it queued) have run, so the run cannot end while
  /// work it added is still on its way.
  private var running = 0
  /// Workers of the current run that have not left.
  private var workers = 0
  private var stopReason: StopReason?
  /// Numbers runs, so that a late cancellation cannot stop a later run.
  private var runNumber = 0
  /// The ended run's result, until its caller collects it.
  private var outcome: Result<Void, any Error>?
  /// The async caller of the current run, resumed when the last worker leaves.
  var continuation: CheckedContinuation<Void, any Error>?
  /// Set to true, outside the lock, once the current run stops starting work: a callback that
  /// waits in `retry()` reads it, so that the wait ends then (see `TransactionQueue.work()`).
  /// A new variable for each run, so that a late write cannot stop a later run.
  private(set) var stopSignal = TVar(false)

  // MARK: Adding

  /// Traps if the queue no longer accepts work: a run failed and discarded it.
  func checkAcceptsWork() {
    if case .failed(let error) = phase {
      fatalError("TransactionQueue.add was called after run() failed with \(error); the queue discarded its remaining work when the run ended. Create a new TransactionQueue for new work.")
    }
  }

  /// Queues `work`; returns whether a worker might be asleep waiting for it.
  mutating func add(_ work: _Work) -> Bool {
    checkAcceptsWork()
    pending.append(work)
    if case .running = phase { return true }
    return false
  }

  /// Queues every item of `work`, in order; returns whether workers might be asleep waiting.
  mutating func add(contentsOf work: [_Work]) -> Bool {
    checkAcceptsWork()
    for item in work { pending.append(item) }
    if case .running = phase { return true }
    return false
  }

  /// Queues work that a transaction added, now that it has committed. Work arriving after a
  /// failed run ended is dropped: the run's caller was told the queue's work was discarded.
  mutating func addCommitted(_ work: [_Work]) -> Bool {
    if case .failed = phase { return false }
    for item in work { pending.append(item) }
    if case .running = phase { return true }
    return false
  }

  // MARK: Running

  /// Starts a run on `workers` workers; returns its number.
  mutating func beginRun(workers: Int) throws(TransactionQueueError) -> Int {
    switch phase {
    case .running: throw .alreadyRunning
    case .failed(let error): throw .failedEarlier(error)
    case .idle: break
    }
    phase = .running
    self.workers = workers
    stopReason = nil
    outcome = nil
    runNumber += 1
    stopSignal = TVar(false)
    return runNumber
  }

  /// Whether the run in progress is stopping: a callback failed, or it was cancelled. For
  /// tests that must act only once the run has taken a failure in.
  var isStopping: Bool { stopReason != nil }

  /// The next step of a worker, or nil to sleep until something changes.
  mutating func nextStep() -> WorkerStep? {
    if stopReason != nil { return .leave }
    if let work = pending.popFirst() {
      running += 1
      return .run(work, stopSignal: stopSignal)
    }
    return running == 0 ? .leave : nil
  }

  /// Records the end of a callback; returns whether sleeping workers must wake (to leave),
  /// and the run's stop signal to set if this call stopped the run.
  mutating func finishedCallback(throwing error: (any Error)?) -> (wake: Bool, stop: TVar<Bool>?) {
    running -= 1
    // A callback's error fails the run even after a cancellation: the queue must not be
    // taken for idle and reusable, with the error dropped (found by review).
    if let error {
      switch stopReason {
      case nil:
        stopReason = .failed(error)
        return (true, stopSignal)
      case .cancelled:
        // The signal is set already.
        stopReason = .failed(error)
        return (true, nil)
      case .failed:
        break
      }
    }
    return (stopReason != nil || (running == 0 && pending.isEmpty), nil)
  }

  /// Records a callback that gave up its wait in `retry()` because the run stopped: after a
  /// cancellation it goes back to the front of the queue, to run first in the next run; after
  /// a failure it is dropped with the rest. Returns whether sleeping workers must wake.
  mutating func abandonedCallback(_ work: _Work) -> Bool {
    running -= 1
    if case .cancelled = stopReason { pending.prepend(work) }
    return true
  }

  /// Stops run `number` from starting new work, if it is still the one in progress; returns
  /// the run's stop signal to set if it did.
  mutating func cancel(run number: Int) -> TVar<Bool>? {
    guard case .running = phase, number == runNumber, outcome == nil, stopReason == nil else {
      return nil
    }
    stopReason = .cancelled
    return stopSignal
  }

  /// Records that a worker left. For the last one, ends the run: returns its result and the
  /// async caller to resume, if any (a synchronous caller collects it with ``takeOutcome()``).
  mutating func workerLeft() -> (
    ended: Bool, resume: (CheckedContinuation<Void, any Error>, (result: Result<Void, any Error>, discarded: _WorkList))?
  ) {
    workers -= 1
    guard workers == 0 else { return (false, nil) }
    switch stopReason {
    case .failed(let error):
      outcome = .failure(error)
    case .cancelled:
      outcome = .failure(CancellationError())
    case nil:
      outcome = .success(())
    }
    guard let continuation else { return (true, nil) }
    self.continuation = nil
    return (true, (continuation, takeOutcome()!))
  }

  /// The result of the run that just ended, or nil while it is still going; ends the run. A
  /// failed run discards the callbacks it did not start: they come back with the result, for
  /// the caller to let go of once it has let go of the scheduler's lock (what they capture
  /// may have a deinit that uses the queue, which would wait for that lock for good).
  mutating func takeOutcome() -> (result: Result<Void, any Error>, discarded: _WorkList)? {
    guard let result = outcome else { return nil }
    outcome = nil
    var discarded = _WorkList()
    if case .failed(let error) = stopReason {
      phase = .failed(error)
      swap(&discarded, &pending)
    } else {
      phase = .idle
    }
    stopReason = nil
    return (result, discarded)
  }
}

/// A first-in, first-out list of callbacks.
typealias _WorkList = _FIFO<_Work>
