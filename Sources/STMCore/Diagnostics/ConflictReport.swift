/// What the conflict log recorded, summed up: totals, then the conflicts ranked by the time
/// they cost, each with both source locations and a hint on the usual fix.
///
/// Get one from ``ConflictLog/report()`` while recording, from ``ConflictLog/stop()``, or by
/// parsing a log file with ``init(log:)``. Its `description` is the printed report:
///
/// ```text
/// 2.104s recorded: 1,200,000 commits (570,342 transactions/s), 1,258 aborts (0.1% of attempts), 14 pauses
/// 0.793s lost in aborts, 0.002s paused (summed over threads)
///
/// Top conflicts by time lost:
///  1. 0.781s lost in aborts, 0.000s paused (1,250x write-read)
///     in the transaction at  App/Worker.swift:42
///     by the transaction at  App/Totals.swift:17
///     hint: …
/// ```
public struct ConflictReport: Sendable, CustomStringConvertible {
  /// One kind of conflict between two places: every abort and pause of that kind that a
  /// transaction started at ``location`` suffered because of one started at
  /// ``conflictingLocation``.
  public struct Conflict: Sendable, Hashable {
    public let kind: ContentionKind
    public let location: CodeLocation?
    public let conflictingLocation: CodeLocation?
    public internal(set) var aborts = 0
    public internal(set) var pauses = 0
    public internal(set) var secondsLostInAborts = 0.0
    public internal(set) var secondsPaused = 0.0

    /// Time lost in aborts and pauses together: what the ranking sorts by.
    public var secondsLost: Double { secondsLostInAborts + secondsPaused }

    /// The usual fix for this kind of conflict.
    public var hint: String { Self.hint(for: kind, aborted: aborts > 0) }

    /// The usual fix for conflicts of `kind` that caused aborts (`aborted`) or only pauses.
    public static func hint(for kind: ContentionKind, aborted: Bool) -> String {
      if kind == .writeWrite && !aborted {
        return "Commits of the same cell waited for each other: one hot cell publishes one commit at a time, even for commutative updates. Spread the updates over cells (per-thread or per-key counters summed when read, a TDictionary keyed by what varies)."
      }
      return switch kind {
      case .writeRead:
        "Another transaction changed something this one had read. If both update a count or a total, make it a TCounter or use TVar.commute (commutative updates never conflict); if they touch different parts of one shared value, keep them in a TDictionary or TArray, whose conflicts are per key and per index; keep long read-only scans out of transactions that write."
      case .writeWrite:
        "Both transactions wrote the same cell. For a counter use TCounter or TVar.commute; for a list or a queue use TArray.append or TQueue.enqueue, delayed appends that never conflict; otherwise give each transaction its own key."
      case .inevitable:
        "The inevitable transaction was in the way: while one is inevitable, every writer waits for it. Avoid becomeInevitable(); put I/O in Transaction.afterCommit, which keeps the transaction parallel. Frequent escalations mean a transaction keeps losing the same conflict: fix that conflict first."
      case .freeSegment:
        "More threads ran transactions at once than the engine has segments. Raise TransactionEngine.configure(segmentCount:), or run fewer threads."
      }
    }
  }

  /// Wall-clock seconds the recording covered (0 when the log does not say).
  public var seconds: Double
  /// Transactions committed while recording (from ``TransactionEngine/statistics``).
  public var commits: Int
  /// Every conflict, most time lost first.
  public private(set) var conflicts: [Conflict]
  /// How many transactions became inevitable, by where they were started.
  public private(set) var inevitableTransactions: [CodeLocation?: Int]

  public var aborts: Int { conflicts.reduce(0) { $0 + $1.aborts } }
  public var pauses: Int { conflicts.reduce(0) { $0 + $1.pauses } }
  public var secondsLostInAborts: Double { conflicts.reduce(0) { $0 + $1.secondsLostInAborts } }
  public var secondsPaused: Double { conflicts.reduce(0) { $0 + $1.secondsPaused } }
  /// Commits per wall-clock second, or 0 when the duration is unknown.
  public var transactionsPerSecond: Double { seconds > 0 ? Double(commits) / seconds : 0 }

  /// Sums up `events`, recorded over `seconds` while `commits` transactions committed.
  public init(events: some Sequence<ConflictEvent>, seconds: Double, commits: Int) {
    self.seconds = seconds
    self.commits = commits
    var byPlace: [ConflictKey: Conflict] = [:]
    var inevitable: [CodeLocation?: Int] = [:]
    for event in events {
      if event.outcome == .inevitable {
        inevitable[event.location, default: 0] += 1
        continue
      }
      let key = ConflictKey(kind: event.kind, location: event.location, conflictingLocation: event.conflictingLocation)
      var conflict = byPlace[key] ?? Conflict(kind: event.kind, location: event.location, conflictingLocation: event.conflictingLocation)
      if event.outcome == .abort {
        conflict.aborts += 1
        conflict.secondsLostInAborts += event.seconds
      } else {
        conflict.pauses += 1
        conflict.secondsPaused += event.seconds
      }
      byPlace[key] = conflict
    }
    conflicts = byPlace.values.sorted { a, b in
      if a.secondsLost != b.secondsLost { return a.secondsLost > b.secondsLost }
      if a.aborts + a.pauses != b.aborts + b.pauses { return a.aborts + a.pauses > b.aborts + b.pauses }
      return (a.location?.description ?? "", a.kind.rawValue) < (b.location?.description ?? "", b.kind.rawValue)
    }
    inevitableTransactions = inevitable
  }

  private struct ConflictKey: Hashable {
    let kind: ContentionKind
    let location: CodeLocation?
    let conflictingLocation: CodeLocation?
  }

  /// Parses a log file that the conflict log wrote (``ConflictLog/start(writingTo:)`` or the
  /// `STM_CONFLICT_LOG` environment variable).
  ///
  /// - Throws: ``ConflictLogError/malformedLine(_:_:)`` for a line it cannot read.
  public init(log text: String) throws(ConflictLogError) {
    var events: [ConflictEvent] = []
    var seconds = 0.0, commits = 0
    for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      if line.isEmpty || line.hasPrefix("#") { continue }
      if line.hasPrefix("summary\t") {
        let fields = line.split(separator: "\t")
        guard fields.count == 3, let wall = Double(fields[1]), let committed = Int(fields[2]) else {
          throw .malformedLine(index + 1, String(line))
        }
        seconds += wall
        commits += committed
        continue
      }
      guard let event = ConflictEvent(logLine: line) else { throw .malformedLine(index + 1, String(line)) }
      events.append(event)
    }
    self.init(events: events, seconds: seconds, commits: commits)
  }

  /// The printed report, listing the `top` conflicts that cost the most time.
  public func formatted(top: Int = 10) -> String {
    let attempts = commits + aborts
    var lines: [String] = []
    lines.append(
      "\(Self.seconds(seconds)) recorded: \(Self.count(commits)) commits (\(Self.count(Int(transactionsPerSecond.rounded()))) transactions/s), "
        + "\(Self.count(aborts)) aborts (\(Self.percent(aborts, of: attempts)) of attempts), \(Self.count(pauses)) pauses")
    lines.append("\(Self.seconds(secondsLostInAborts)) lost in aborts, \(Self.seconds(secondsPaused)) paused (summed over threads)")
    let inevitableCount = inevitableTransactions.values.reduce(0, +)
    if inevitableCount > 0 && (inevitableCount >= 100 || inevitableCount * 100 >= max(commits, 1)) {
      lines.append("")
      lines.append(
        "warning: \(Self.count(inevitableCount)) transactions became inevitable (\(Self.percent(inevitableCount, of: commits)) of commits); "
          + "each one makes every writer wait. Most often at:")
      for (location, count) in inevitableTransactions.sorted(by: { $0.value > $1.value }).prefix(3) {
        lines.append("    \(Self.count(count))x  \(location?.description ?? "(outside atomically)")")
      }
    }
    lines.append("")
    if conflicts.isEmpty {
      lines.append("No conflicts.")
      return lines.joined(separator: "\n")
    }
    lines.append("Top conflicts by time lost:")
    for (rank, conflict) in conflicts.prefix(top).enumerated() {
      var counts: [String] = []
      if conflict.aborts > 0 { counts.append("\(Self.count(conflict.aborts))x \(conflict.kind) aborts") }
      if conflict.pauses > 0 { counts.append("\(Self.count(conflict.pauses))x \(conflict.kind) pauses") }
      lines.append(
        "\(String(rank + 1).leftPadded(to: 2)). \(Self.seconds(conflict.secondsLostInAborts)) lost in aborts, "
          + "\(Self.seconds(conflict.secondsPaused)) paused (\(counts.joined(separator: ", ")))")
      lines.append("    in the transaction at  \(conflict.location?.description ?? "(a single operation outside atomically)")")
      lines.append("    by the transaction at  \(conflict.conflictingLocation?.description ?? "(unknown)")")
      lines.append("    hint: \(conflict.hint)")
    }
    if conflicts.count > top { lines.append("(\(conflicts.count - top) more)") }
    return lines.joined(separator: "\n")
  }

  public var description: String { formatted() }

  private static func seconds(_ value: Double) -> String {
    let millis = Int((value * 1000).rounded())
    let fraction = String(millis % 1000).leftPadded(to: 3, with: "0")
    return "\(millis / 1000).\(fraction)s"
  }

  private static func percent(_ part: Int, of whole: Int) -> String {
    guard whole > 0 else { return "0%" }
    let tenths = Int((Double(part) * 1000 / Double(whole)).rounded())
    return "\(tenths / 10).\(tenths % 10)%"
  }

  private static func count(_ value: Int) -> String {
    var digits = String(value.magnitude)
    var grouped = ""
    while digits.count > 3 {
      grouped = "," + digits.suffix(3) + grouped
      digits.removeLast(3)
    }
    return (value < 0 ? "-" : "") + digits + grouped
  }
}

/// Why a conflict log could not be started or read.
public enum ConflictLogError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The log file could not be opened for writing (the path and `errno`).
  case cannotOpen(String, Int32)
  /// A line of a log file is not one the conflict log writes (its number from 1, and the line).
  case malformedLine(Int, String)

  public var description: String {
    switch self {
    case .cannotOpen(let path, let error):
      "cannot open the conflict log '\(path)' for writing (errno \(error))"
    case .malformedLine(let number, let line):
      "line \(number) of the conflict log is not a conflict record: '\(line)'"
    }
  }
}

extension String {
  fileprivate func leftPadded(to width: Int, with pad: Character = " ") -> String {
    count >= width ? self : String(repeating: pad, count: width - count) + self
  }
}
