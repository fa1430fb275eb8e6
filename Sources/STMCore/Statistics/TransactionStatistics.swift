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

  /// Whether two snapshots hold the same counts and times. A kind counted 0 equals a kind not
  /// listed: `-` leaves kinds out whose difference is 0, while `+` of counts that cancel, or a
  /// count set to 0 by hand, keeps them.
  ///
  /// - Parameters:
  ///   - lhs: A snapshot.
  ///   - rhs: Another snapshot.
  /// - Returns: Whether every count and time is the same in both.
  /// - Complexity: O(1).
  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.commits == rhs.commits && lhs.retries == rhs.retries
      && lhs.secondsLostInAborts == rhs.secondsLostInAborts && lhs.secondsPaused == rhs.secondsPaused
      && ContentionKind.allCases.allSatisfy { kind in
        lhs.aborts[kind, default: 0] == rhs.aborts[kind, default: 0]
          && lhs.pauses[kind, default: 0] == rhs.pauses[kind, default: 0]
      }
  }

  /// Hashes what `==` compares: a kind counted 0 hashes as a kind not listed.
  ///
  /// - Parameter hasher: The hasher to feed the counts and times to.
  /// - Complexity: O(1).
  public func hash(into hasher: inout Hasher) {
    hasher.combine(commits)
    hasher.combine(retries)
    hasher.combine(secondsLostInAborts)
    hasher.combine(secondsPaused)
    for kind in ContentionKind.allCases {
      hasher.combine(aborts[kind, default: 0])
      hasher.combine(pauses[kind, default: 0])
    }
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
  /// A kind counted 0 is left out of the breakdown, as one not listed.
  public var description: String {
    func breakdown(_ counts: [ContentionKind: Int]) -> String {
      let parts = ContentionKind.allCases.compactMap { kind in
        counts[kind].flatMap { $0 == 0 ? nil : "\($0)x \(kind)" }
      }
      return parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"
    }
    return "\(_counted(commits, "commit")), \(_counted(totalAborts, "abort"))\(breakdown(aborts)), "
      + "\(_counted(totalPauses, "pause"))\(breakdown(pauses)), \(_counted(retries, "retry", plural: "retries")), "
      + "\(_formattedSeconds(secondsLostInAborts)) lost in aborts, \(_formattedSeconds(secondsPaused)) paused"
  }
}

/// `count` and the noun it counts, singular for 1 and -1 (`1 commit`, `2 commits`, `0 commits`);
/// `count` goes through `number`, for a report that groups digits.
func _counted(_ count: Int, _ noun: String, plural: String? = nil, number: (Int) -> String = { "\($0)" }) -> String {
  "\(number(count)) " + (count.magnitude == 1 ? noun : plural ?? noun + "s")
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
