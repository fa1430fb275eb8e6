/// One entry of the conflict log: an abort, a pause, or a transaction that became inevitable.
public struct ConflictEvent: Sendable, Hashable {
  /// What happened to the transaction.
  public enum Outcome: String, Sendable, Hashable, CaseIterable {
    /// It rolled back and reran.
    case abort
    /// It waited, then went on.
    case pause
    /// It became the inevitable transaction (asked for with `becomeInevitable()`, or escalated
    /// after losing several times in a row), which serializes every writer behind it.
    case inevitable
  }

  public let outcome: Outcome
  /// The contention kind (``ContentionKind/inevitable`` for an ``Outcome/inevitable`` event).
  public let kind: ContentionKind
  /// The time the abort cost (from the attempt's start) or the pause lasted; 0 for
  /// ``Outcome/inevitable``.
  public let seconds: Double
  /// Where the transaction that lost time was started: its `atomically` call. Nil for a
  /// single operation outside `atomically`.
  public let location: CodeLocation?
  /// Where the other side was started: the `atomically` call of the transaction whose commit
  /// made this one's read stale, or that held the cell, or the inevitable one. Nil when
  /// unknown (a single operation outside `atomically`, or a commit made before recording
  /// started).
  public let conflictingLocation: CodeLocation?

  public init(outcome: Outcome, kind: ContentionKind, seconds: Double, location: CodeLocation?, conflictingLocation: CodeLocation?) {
    self.outcome = outcome
    self.kind = kind
    self.seconds = seconds
    self.location = location
    self.conflictingLocation = conflictingLocation
  }

  /// The event as one line of the log file: tab-separated outcome, kind, seconds, location,
  /// conflicting location (empty when unknown).
  var logLine: String {
    [outcome.rawValue, kind.rawValue, String(seconds), location?.description ?? "", conflictingLocation?.description ?? ""]
      .joined(separator: "\t")
  }

  /// Parses a line that ``logLine`` wrote.
  init?(logLine line: Substring) {
    let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
    guard fields.count == 5, let outcome = Outcome(rawValue: String(fields[0])),
      let kind = ContentionKind(rawValue: String(fields[1])), let seconds = Double(fields[2])
    else { return nil }
    let location = fields[3].isEmpty ? nil : CodeLocation(parsing: fields[3])
    let conflicting = fields[4].isEmpty ? nil : CodeLocation(parsing: fields[4])
    if (!fields[3].isEmpty && location == nil) || (!fields[4].isEmpty && conflicting == nil) { return nil }
    self.init(outcome: outcome, kind: kind, seconds: seconds, location: location, conflictingLocation: conflicting)
  }
}
