/// The engine's configuration and statistics.
///
/// The engine runs transactions on a fixed pool of *segments*; each running transaction holds
/// one, and threads beyond the pool wait for a free segment (counted as a pause of kind
/// ``ContentionKind/freeSegment``). The pool is sized when the engine starts, from
/// ``configure(segmentCount:)``, else the `STM_SEGMENTS` environment variable, else twice the
/// number of active cores (at least 8, at most 64). The engine starts at its first use: the
/// first transaction, the first operation on transactional data outside one, the first read of
/// ``segmentCount`` (or of `TransactionQueue.defaultThreadCount`, which `run()` reads), or the
/// first `TDictionary` or `TSet` made (each spreads its count over the segments). Making a
/// `TVar`, `TArray`, `TQueue` or `TCounter`, reading statistics, and adding work to a
/// `TransactionQueue` do not start it.
public enum TransactionEngine {
  /// Sets the number of segments. Call it before the engine starts (see ``TransactionEngine``):
  /// early in `main`, before any transaction runs or any `TDictionary` or `TSet` is made.
  ///
  /// ```swift
  /// try TransactionEngine.configure(segmentCount: 16)
  /// ```
  ///
  /// - Parameter segmentCount: How many transactions may run at once, from 1 to 1024.
  /// - Throws: ``TransactionEngineError/alreadyStarted`` once the engine has started, and
  ///   ``TransactionEngineError/invalidSegmentCount(_:)`` for a count out of range.
  /// - Complexity: O(1).
  public static func configure(segmentCount: Int) throws(TransactionEngineError) {
    try _Configuration.configure(segmentCount: segmentCount)
  }

  /// The number of segments, fixed when the engine starts (reading it starts the engine).
  ///
  /// - Complexity: O(1).
  public static var segmentCount: Int { _Engine.shared.segments.count }

  /// Counts for the whole process since it started.
  ///
  /// Each thread counts in its own memory, so counting costs no shared writes; this property
  /// adds the counts up.
  ///
  /// - Complexity: O(*t*) for *t* threads that have run transactions.
  public static var statistics: TransactionStatistics { _StatisticsRegistry.shared.total }

  /// Counts of the transactions run by the calling thread.
  ///
  /// Useful to measure one thread's work exactly while other threads run transactions too.
  ///
  /// - Complexity: O(1).
  public static var currentThreadStatistics: TransactionStatistics {
    // All zero on a thread that has not used the engine, which this does not start.
    guard let state = _ThreadState.currentIfMade else { return TransactionStatistics() }
    return state.pointee.context._withUnsafeGuaranteedRef { $0.statistics.snapshot }
  }
}

/// Errors from configuring the engine.
public enum TransactionEngineError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The engine has already started (see ``TransactionEngine`` for what starts it); its
  /// configuration is fixed for the process.
  case alreadyStarted
  /// The segment count is not from 1 to 1024.
  case invalidSegmentCount(Int)

  /// What went wrong and what to do instead, for a log or a test failure.
  public var description: String {
    switch self {
    case .alreadyStarted:
      "The transaction engine has already started: configure it before anything starts it (the first "
        + "transaction or operation on transactional data, or the first TDictionary or TSet made), early in main."
    case .invalidSegmentCount(let count):
      "A segment count must be from 1 to 1024, not \(count)."
    }
  }
}
