/// One entry of the conflict log: an abort, a pause, or a transaction that became inevitable.
///
/// Each side of a conflict has two locations: the `atomically` call of its transaction, and
/// the call of the operation that touched the object the two collided on (a subscript, a
/// method such as `append(_:)` or `TVar.read()`). A property (`TVar.value`, `count`) cannot
/// capture its caller's location; for it, and wherever the access is not known, the access
/// location is the `atomically` call's.
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

  /// Whether the transaction aborted, paused, or became inevitable.
  public let outcome: Outcome
  /// The contention kind (``ContentionKind/inevitable`` for an ``Outcome/inevitable`` event).
  public let kind: ContentionKind
  /// The time the abort cost (from the attempt's start, apart from the attempt's pauses,
  /// which their own events count) or the pause lasted; 0 for ``Outcome/inevitable``.
  public let seconds: Double
  /// Where the transaction that lost time was started: its `atomically` call. Nil for a
  /// single operation outside `atomically`.
  public let location: CodeLocation?
  /// Where the other side was started: the `atomically` call of the transaction whose commit
  /// made this one's read stale, or that held the cell, or the inevitable one. Nil for a
  /// single operation outside `atomically`, and when unknown (a commit made before recording
  /// started).
  public let conflictingLocation: CodeLocation?
  /// Where the transaction that lost time accessed ``object``: the read that was made stale,
  /// or the write that collided. Nil when the event concerns no object (an inevitable
  /// transaction or a free segment waited for).
  public let accessLocation: CodeLocation?
  /// Where the other side accessed ``object``: the write that made the read stale, or that
  /// held the cell. Nil when there is no object, or when the other side is not known either;
  /// where the other side is known but not its access, its `atomically` call, as the type's
  /// overview says (see the *Understanding and Fixing Conflicts* article for when).
  public let conflictingAccessLocation: CodeLocation?
  /// What the two sides collided on, by its description: `TDictionary<String, Int>["alice"]`,
  /// `TArray<Int>[3]`, `TQueue<Job> head`, `TCounter`, `TVar<Int>`. Nil for a conflict over
  /// no object (waiting for the inevitable transaction or for a free segment).
  public let object: String?

  /// Creates an event; the conflict log makes them, and a test or a tool reading a log can too.
  ///
  /// Each parameter sets the property of the same name.
  ///
  /// - Parameters:
  ///   - outcome: Whether the transaction aborted, paused, or became inevitable.
  ///   - kind: The contention kind.
  ///   - seconds: The time lost, in seconds; 0 for ``Outcome/inevitable``.
  ///   - location: Where the transaction that lost time was started.
  ///   - conflictingLocation: Where the other side was started.
  ///   - accessLocation: Where the transaction that lost time accessed `object`.
  ///   - conflictingAccessLocation: Where the other side accessed `object`.
  ///   - object: What the two sides collided on, by its description.
  /// - Complexity: O(1).
  public init(
    outcome: Outcome, kind: ContentionKind, seconds: Double, location: CodeLocation?, conflictingLocation: CodeLocation?,
    accessLocation: CodeLocation? = nil, conflictingAccessLocation: CodeLocation? = nil, object: String? = nil
  ) {
    self.outcome = outcome
    self.kind = kind
    self.seconds = seconds
    self.location = location
    self.conflictingLocation = conflictingLocation
    self.accessLocation = accessLocation
    self.conflictingAccessLocation = conflictingAccessLocation
    self.object = object
  }

  /// The first line of a log file in this format.
  static let logHeader =
    "# swift-stm conflict log 2: outcome, kind, seconds, location, conflicting location, access location, conflicting access location, object"

  /// The event as one line of the log file: tab-separated outcome, kind, seconds, location,
  /// conflicting location, access location, conflicting access location, object (each empty
  /// when unknown; tabs, line breaks, NULs and backslashes in the locations and the object
  /// escaped as `\t`, `\n`, `\r`, `\0`, `\\`: a caller may pass any `fileID`, and one with a
  /// tab in it made a line that could not be read back; found by review).
  ///
  /// The first five fields are those of the earlier five-field format, whose lines still parse.
  var logLine: String {
    [
      outcome.rawValue, kind.rawValue, String(seconds), Self.field(location), Self.field(conflictingLocation),
      Self.field(accessLocation), Self.field(conflictingAccessLocation), object.map(Self.escaped) ?? "",
    ].joined(separator: "\t")
  }

  /// Parses a line that ``logLine`` wrote, or a line of the earlier five-field format.
  init?(logLine line: Substring) {
    let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
    guard fields.count == 5 || fields.count == 8, let outcome = Outcome(rawValue: String(fields[0])),
      let kind = ContentionKind(rawValue: String(fields[1])), let seconds = Double(fields[2]),
      seconds.isFinite, seconds >= 0
    else { return nil }
    var locations: [CodeLocation?] = []
    for field in fields[3..<min(fields.count, 7)] {
      if field.isEmpty {
        locations.append(nil)
      } else {
        guard let location = CodeLocation(parsing: Substring(Self.unescaped(field))) else { return nil }
        locations.append(location)
      }
    }
    let extended = fields.count == 8
    self.init(
      outcome: outcome, kind: kind, seconds: seconds, location: locations[0], conflictingLocation: locations[1],
      accessLocation: extended ? locations[2] : nil, conflictingAccessLocation: extended ? locations[3] : nil,
      object: extended && !fields[7].isEmpty ? Self.unescaped(fields[7]) : nil)
  }

  /// A location's field: empty when unknown.
  private static func field(_ location: CodeLocation?) -> String {
    location.map { escaped($0.description) } ?? ""
  }

  // By scalar, not by character: "\r\n" is one character, which no single case would match.
  private static func escaped(_ text: String) -> String {
    var result = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\\": result += "\\\\".unicodeScalars
      case "\t": result += "\\t".unicodeScalars
      case "\n": result += "\\n".unicodeScalars
      case "\r": result += "\\r".unicodeScalars
      case "\0": result += "\\0".unicodeScalars
      default: result.append(scalar)
      }
    }
    return String(result)
  }

  private static func unescaped(_ text: Substring) -> String {
    var result = String.UnicodeScalarView()
    var escaping = false
    for scalar in text.unicodeScalars {
      if escaping {
        switch scalar {
        case "t": result.append("\t")
        case "n": result.append("\n")
        case "r": result.append("\r")
        case "0": result.append("\0")
        default: result.append(scalar)
        }
        escaping = false
      } else if scalar == "\\" {
        escaping = true
      } else {
        result.append(scalar)
      }
    }
    return String(result)
  }
}
