#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A scheduler that runs callbacks on a pool of threads, each in its own transaction, so that
/// the program behaves as if they ran one after another while independent ones run in parallel.
///
/// Add callbacks with ``add(_:fileID:line:)``, then ``run(threads:)-7mj5`` them. In a run that
/// succeeds, every callback commits exactly once, as the body of its own
/// ``atomically(_:fileID:line:)-88o9x`` block (which may run the body more than once, as any
/// transaction may rerun; a run that fails or is cancelled leaves some callbacks unstarted,
/// see ``run(threads:)-7mj5``): two callbacks that touch
/// different keys, indices or cells run truly in parallel, and two that conflict are serialized
/// by the engine (one of them reruns). Callbacks may add more callbacks; the added work joins
/// the run in progress.
///
/// ```swift
/// let counts = TDictionary<Int, Int>()
/// let queue = TransactionQueue()
/// for task in 0..<4_000 {
///   queue.add { counts[task] = countPrimes(upTo: 10_000) }
/// }
/// try queue.run()             // returns when every callback has committed
/// ```
///
/// Conflicts: none of its own. The queue's bookkeeping (the list of callbacks, the count of
/// running ones) is kept under a plain lock, outside transactional memory, so taking or adding
/// work never makes a transaction abort; only the callbacks' own reads and writes conflict.
/// Work added inside a transaction is held by that transaction and joins the queue when it
/// commits (never if it rolls back).
///
/// Callbacks start in the order they were added (first in, first out), but run concurrently,
/// so they may commit in any order.
///
/// `TransactionQueue` is a reference type: copies of a reference share one queue.
public final class TransactionQueue: Sendable {
  let scheduler = _Monitor(_SchedulerState())

  /// Creates an empty queue.
  ///
  /// - Complexity: O(1).
  public init() {}

  /// The number of threads ``run(threads:)-7mj5`` uses by default: the processors online, or
  /// ``TransactionEngine/segmentCount`` if that is fewer (more threads would only wait for a
  /// segment, and show as pauses in the statistics). Reading it starts the engine, as reading
  /// the segment count does.
  public static var defaultThreadCount: Int {
    defaultThreadCount(processors: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), segments: TransactionEngine.segmentCount)
  }

  /// `defaultThreadCount` on a machine with `processors` online and an engine of `segments`.
  static func defaultThreadCount(processors: Int, segments: Int) -> Int {
    max(1, min(processors, segments))
  }

  /// The number of callbacks added and not yet started.
  ///
  /// Conflicts: none (not transactional: it is a momentary reading).
  public var pendingCount: Int { scheduler.withLock { $0.pending.count } }

  // MARK: Adding work

  /// Adds a callback, to run in a transaction of its own.
  ///
  /// Outside a transaction the callback is queued at once: for the next ``run(threads:)-7mj5``, or
  /// for the run in progress, which it joins. Inside a transaction (a running callback, or any
  /// `atomically` block) it is held until that transaction commits and then queued; if the
  /// transaction rolls back, it is never queued.
  ///
  /// Calling `add` after a run failed traps: that run discarded the queue's work (see
  /// ``run(threads:)-7mj5``). So does calling it from a commute's transform
  /// (``TVar/commute(_:fileID:line:)``), which may run more than once. From inside a drop-in
  /// update's mutation (the body of `dict.update(forKey:default:_:)`, a mutating method called
  /// on `tvar.value`), or a deinit that one runs, the callback is queued at once, as outside a
  /// transaction. A callback added inside a transaction that commits only after a run has
  /// failed is discarded at that commit, as the work of the callbacks that were finishing is;
  /// nothing traps then, since the call came before the failure.
  ///
  /// Conflicts: none.
  ///
  /// - Parameters:
  ///   - callback: The work. It runs as the body of `atomically`, possibly more than once, so
  ///     it should have no side effects besides transactional ones (put I/O in
  ///     ``Transaction/afterCommit(_:)``). Throwing an error makes the run fail.
  ///   - fileID: The call's file, which the ``ConflictLog`` shows as the callback's
  ///     transaction; leave the default.
  ///   - line: The call's line, likewise; leave the default.
  /// - Complexity: O(1), amortized.
  public func add(_ callback: @escaping @Sendable () throws -> Void, fileID: StaticString = #fileID, line: UInt = #line) {
    let work = _Work(body: callback, fileID: fileID, line: line)
    if let transaction = Transaction._currentForWorkOutsideTransactionalData {
      addWhenCommitted([work], transaction)
    } else if scheduler.withLock({ $0.add(work) }) {
      // All, not one: a synchronous `run`'s caller waits on the same condition for the
      // outcome, and a single wakeup could go to it instead of a sleeping worker, leaving the
      // work unclaimed (found by review).
      scheduler.wakeAll()
    }
  }

  /// Queues `work` when `transaction` commits.
  func addWhenCommitted(_ work: [_Work], _ transaction: Transaction) {
    // The trap for adding to a failed queue belongs to the call, not to the commit.
    scheduler.withLock { $0.checkAcceptsWork() }
    transaction.afterCommit { [scheduler] in
      if scheduler.withLock({ $0.addCommitted(work) }) { scheduler.wakeAll() }
    }
  }

  // MARK: Running

  /// Runs every callback, each in its own transaction, on `threads` threads (the calling thread
  /// and `threads - 1` new ones), and returns when all have committed, including callbacks
  /// added while the run was going.
  ///
  /// Afterwards the queue can be used again. It is empty, unless another thread added work
  /// as the run was ending (after its last callback committed, before `run` returned): that
  /// work waits for the next run.
  ///
  /// If a callback throws, its transaction rolls back and the run fails: no new callback
  /// starts, the callbacks already running finish (and commit, or throw too), and then `run`
  /// throws the first error. Callbacks that had not started are discarded, with any work the
  /// finishing callbacks add; the queue is then unusable: ``add(_:fileID:line:)`` traps and `run` throws
  /// ``TransactionQueueError/failedEarlier(_:)``.
  ///
  /// A callback waiting in ``Transaction/retry()`` when the run fails gives up its wait and
  /// rolls back, and is discarded with the rest: the callback that would have ended the wait
  /// may be among those discarded, so the run does not wait for it. A callback that waits
  /// for something only another callback of the queue would do still needs that callback to
  /// start, though: with every worker busy in such a wait, the callbacks still queued never
  /// start, and `run` does not return. Give such waits more threads than waiting callbacks.
  ///
  /// Traps if `threads` is less than 1, and if it is called inside a transaction while this
  /// queue is not running: a run commits transactions of its own and cannot be part of
  /// another. (Inside a transaction while the queue runs, it throws
  /// ``TransactionQueueError/alreadyRunning``.)
  ///
  /// - Parameter threads: The number of worker threads, at least 1 (default:
  ///   ``defaultThreadCount``).
  /// - Throws: The first error a callback threw; ``TransactionQueueError/alreadyRunning`` if
  ///   this queue is already running (on another thread, or this call comes from one of its
  ///   callbacks); ``TransactionQueueError/failedEarlier(_:)`` if an earlier run failed.
  /// - Complexity: The callbacks' own work, spread over `threads` threads, plus O(1) per
  ///   callback for the scheduling.
  public func run(threads: Int = TransactionQueue.defaultThreadCount) throws {
    try checkRunnable(threads: threads, "run(threads:)")
    _ = try scheduler.withLock { state throws(TransactionQueueError) in
      try state.beginRun(workers: threads)
    }
    for _ in 1..<threads {
      _startDetachedThread { [self] in work() }
    }
    work()
    let (result, discarded) = scheduler.wait { $0.takeOutcome() }
    // Let go of with the lock released (see `takeOutcome()`).
    _ = consume discarded
    try result.get()
  }

  /// Runs every callback as ``run(threads:)-7mj5`` does, suspending the calling task instead of
  /// blocking its thread.
  ///
  /// In an `async` function or closure Swift picks this form, so `run()` there needs `await`.
  /// (Top-level code in `main.swift` gets the synchronous form, as it does of `atomically`.)
  ///
  /// All `threads` workers are new threads: callbacks block their thread while they wait (in
  /// ``Transaction/retry()``, or on a lock inside the engine), which must not happen on the
  /// threads of the cooperative pool.
  ///
  /// Cancelling the task stops the run from starting new callbacks; the running ones finish,
  /// the callbacks not yet started stay queued (the queue stays usable), and `run` throws
  /// `CancellationError`, unless one of the running callbacks then throws: the run fails
  /// with that error, as ``run(threads:)-7mj5`` does. A callback waiting in
  /// ``Transaction/retry()``, or that starts waiting after the cancellation, gives up its wait,
  /// rolls back, and goes back to the front of the queue, to run first in the next run: it
  /// may be waiting for a callback that this run will not start. (Several such callbacks go
  /// to the front each as it gives up, so their own order is not kept.)
  ///
  /// A callback that throws `CancellationError` itself fails the run like any other error:
  /// `run` rethrows it, the callbacks not started are discarded, and the queue is unusable
  /// from then on, though the error looks the same as a cancelled task's. Check
  /// `Task.isCancelled` to tell the two apart. A cancellation that comes as the last
  /// callbacks finish may still make `run` throw `CancellationError` with nothing left
  /// queued.
  ///
  /// Traps as ``run(threads:)-7mj5`` does.
  ///
  /// - Parameter threads: The number of worker threads, at least 1 (default:
  ///   ``defaultThreadCount``).
  /// - Throws: As ``run(threads:)-7mj5``, and `CancellationError` if the task was cancelled.
  /// - Complexity: As ``run(threads:)-7mj5``.
  public func run(threads: Int = TransactionQueue.defaultThreadCount) async throws {
    try checkRunnable(threads: threads, "run(threads:)")
    let number = try scheduler.withLock { state throws(TransactionQueueError) in
      try state.beginRun(workers: threads)
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        scheduler.withLock { $0.continuation = continuation }
        for _ in 0..<threads {
          _startDetachedThread { [self] in work() }
        }
      }
    } onCancel: { [scheduler] in
      if let stop = scheduler.withLock({ $0.cancel(run: number) }) {
        // Set on a thread of its own: the handler runs on the thread that cancels, which may
        // be inside a transaction (the write would join it, and be lost if it rolled back,
        // leaving a waiting callback asleep for good) or inside a commute transform (where a
        // write traps). Found by review.
        _startDetachedThread { stop.value = true }
        scheduler.wakeAll()
      }
    }
  }

  private func checkRunnable(threads: Int, _ operation: String) throws(TransactionQueueError) {
    precondition(threads >= 1, "TransactionQueue.\(operation) needs at least 1 thread, not \(threads).")
    if Transaction._currentChecked != nil {
      // From one of this queue's own callbacks, waiting for the run would wait for itself.
      if scheduler.withLock({ if case .running = $0.phase { true } else { false } }) {
        throw .alreadyRunning
      }
      fatalError("TransactionQueue.\(operation) was called inside a transaction. A run commits many transactions of its own and cannot be part of another; call it outside atomically, or add the work to a queue that is already running.")
    }
  }

  /// A worker: takes callbacks and runs each in its own transaction until the run is over.
  private func work() {
    while true {
      let step = scheduler.wait { $0.nextStep() }
      guard case .run(let callback, let stopSignal) = step else { break }
      var failure: (any Error)?
      do {
        try atomically({ try Self.runCallback(callback, in: $0, until: stopSignal) }, fileID: callback.fileID, line: callback.line)
      } catch is _StoppedWaiting {
        if scheduler.withLock({ $0.abandonedCallback(callback) }) { scheduler.wakeAll() }
        continue
      } catch {
        failure = error
      }
      let (wake, stop) = scheduler.withLock { $0.finishedCallback(throwing: failure) }
      stop?.value = true
      if wake { scheduler.wakeAll() }
    }
    var (ended, resume) = scheduler.withLock { $0.workerLeft() }
    if let (continuation, (result, _)) = resume {
      // Let go of with the lock released (see `_SchedulerState.takeOutcome()`), and before the
      // caller resumes, which may count on their deinits having run. (Consuming a bound copy
      // left `resume` holding them to the end of this scope: a test failed now and then.)
      resume = nil
      continuation.resume(with: result)
    } else if ended {
      scheduler.wakeAll()  // the synchronous caller, waiting for the outcome
    }
  }

  /// The body of a callback's transaction. A callback that waits in `retry()` may wait for
  /// something only another callback would do, which a stopped run never starts: so the wait
  /// also reads the run's stop signal (setting it then wakes the wait), and once it is set the
  /// callback gives the wait up, rolling back. Callbacks that do not wait never read the
  /// signal, so stopping a run makes none of them conflict.
  private static func runCallback(_ callback: _Work, in transaction: Transaction, until stopSignal: TVar<Bool>) throws {
    var thrown: (any Error)?
    do { try callback.body() } catch { thrown = error }
    // Also when the callback caught the retry signal itself: it waits all the same. Checked
    // before the stop signal is read, which would otherwise count as a read to wait on.
    if transaction._retryRequested { transaction._checkRetryCanWait() }
    if transaction._retryRequested && stopSignal.value {
      transaction._withdrawRetry()
      throw _StoppedWaiting()
    }
    if let thrown { throw thrown }
  }
}

/// Ends the transaction of a callback that gave up its wait because its run stopped.
private struct _StoppedWaiting: Error {}
