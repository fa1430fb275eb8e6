/// A snapshot of the engine's counters: commits, aborts and pauses by kind, and the time they
/// cost.
///
/// Read the process-wide totals from ``TransactionEngine/statistics`` or the calling thread's
/// own from ``TransactionEngine/currentThreadStatistics``, and subtract two snapshots to measure
/// a stretch of work:
///
/// ```swift
/// let before = TransactionEngine.statistics
/// runWorkload()
/// let spent = TransactionEngine.statistics - before
/// print(spent.commits, spent.totalAborts, spent.secondsLostInAborts)
/// ```
public struct TransactionStatistics: Sendable, Hashable, CustomStringConvertible {
  /// Transactions that committed, including read-only ones and the single-operation
  /// transactions that run when a ``TVar`` or a collection is used outside `atomically`.
  ///
  /// An operation outside `atomically` that updates its cell in place and then changes
  /// nothing (removing an absent key, inserting an element already there, popping an empty
  /// array) commits nothing and is not counted; one that reads through a read-only step (a
  /// lookup, `tryDequeue()` on an empty queue) is.
  public var commits: Int = 0
  /// Aborted attempts, by the kind of contention that caused them. Each one was rerun.
  public var aborts: [ContentionKind: Int] = [:]
  /// Pauses (waits that did not abort anything), by kind.
  public var pauses: [ContentionKind: Int] = [:]
  /// Time spent running attempts that then aborted, apart from their pauses, which
  /// `secondsPaused` counts: the two never count the same time.
  public var secondsLostInAborts: Double = 0
  /// Time spent waiting in pauses.
  public var secondsPaused: Double = 0
  /// Times a transaction called ``Transaction/retry()`` and waited for a change.
  public var retries: Int = 0

  /// Counts of nothing: no commits, aborts, pauses or retries. The starting point for a sum
  /// of several threads' statistics with `+`.
  public init() {}

  /// All aborts, of every kind.
  public var totalAborts: Int { aborts.values.reduce(0, +) }
  /// All pauses, of every kind.
  public var totalPauses: Int { pauses.values.reduce(0, +) }

  /// The counts accumulated between two snapshots.
  public static func - (later: Self, earlier: Self) -> Self {
    var result = Self()
    result.commits = later.commits - earlier.commits
    result.retries = later.retries - earlier.retries
    result.secondsLostInAborts = later.secondsLostInAborts - earlier.secondsLostInAborts
    result.secondsPaused = later.secondsPaused - earlier.secondsPaused
    for kind in ContentionKind.allCases {
      let aborts = later.aborts[kind, default: 0] - earlier.aborts[kind, default: 0]
      if aborts != 0 { result.aborts[kind] = aborts }
      let pauses = later.pauses[kind, default: 0] - earlier.pauses[kind, default: 0]
      if pauses != 0 { result.pauses[kind] = pauses }
    }
    return result
  }

  /// The sum of two sets of counts.
  public static func + (lhs: Self, rhs: Self) -> Self {
    var result = lhs
    result.commits += rhs.commits
    result.retries += rhs.retries
    result.secondsLostInAborts += rhs.secondsLostInAborts
    result.secondsPaused += rhs.secondsPaused
    result.aborts.merge(rhs.aborts, uniquingKeysWith: +)
    result.pauses.merge(rhs.pauses, uniquingKeysWith: +)
    return result
  }

  /// One line in the style of PyPy-STM's reports, for example
  /// `1000 commits, 12 aborts (12x write-read), 0 pauses, 0 retries, 0.004s lost in aborts, 0.000s paused`.
  public var description: String {
    func breakdown(_ counts: [ContentionKind: Int]) -> String {
      let parts = ContentionKind.allCases.compactMap { kind in
        counts[kind].map { "\($0)x \(kind)" }
      }
      return parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"
    }
    return "\(commits) commits, \(totalAborts) aborts\(breakdown(aborts)), "
      + "\(totalPauses) pauses\(breakdown(pauses)), \(retries) retries, "
      + "\(_formattedSeconds(secondsLostInAborts)) lost in aborts, \(_formattedSeconds(secondsPaused)) paused"
  }
}

/// `value` seconds as `1.234s`, to the millisecond. Any value prints: a negative one (a
/// difference of statistics, which the public fields and `-` allow) with its sign, one too
/// large or not finite as Swift prints it.
func _formattedSeconds(_ value: Double) -> String {
  guard value.isFinite, value.magnitude < 1e12 else { return "\(value)s" }
  let millis = Int((value.magnitude * 1000).rounded())
  let fraction = String(millis % 1000)
  let sign = value < 0 && millis > 0 ? "-" : ""
  return sign + "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction + "s"
}
