/// The ways ``TransactionQueue/run(threads:)-7mj5`` refuses to start.
public enum TransactionQueueError: Error, CustomStringConvertible {
  /// The queue is already running: `run` was called from another thread during a run, or from
  /// one of the run's own callbacks. Add the work instead; it joins the run in progress.
  case alreadyRunning

  /// An earlier run failed with this error (a callback threw), and the queue discarded its
  /// work then. Create a new ``TransactionQueue``.
  case failedEarlier(any Error)

  /// What went wrong and what to do instead, for a log or a test failure.
  public var description: String {
    switch self {
    case .alreadyRunning:
      "TransactionQueue.run was called while the queue was already running; add the work instead, and it joins the run in progress."
    case .failedEarlier(let error):
      "TransactionQueue.run was called after an earlier run failed with \(error), which discarded the queue's work; create a new TransactionQueue."
    }
  }
}
