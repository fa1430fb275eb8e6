/// What the conflict log recorded, summed up: totals, then the conflicts ranked by the time
/// they cost, each with the object the two sides collided on, both sides' locations, and a hint
/// on the usual fix.
///
/// Get one from ``ConflictLog/report()`` while recording, from ``ConflictLog/stop()``, or by
/// parsing a log file with ``init(log:)``. Its `description` is the printed report:
///
/// ```text
/// 2.104s recorded: 1,200,000 commits (570,342 transactions/s), 1,258 aborts (0.1% of attempts), 14 pauses
/// 0.793s lost in aborts, 0.002s paused (summed over threads)
///
/// Top conflicts by time lost:
///  1. 0.781s lost in aborts, 0.000s paused (1,250x write-read aborts)
///     on TDictionary<String, Int>["alice"] (1,100x), TDictionary<String, Int>["bob"] (150x)
///     in the transaction at  App/Worker.swift:42, reading at App/Worker.swift:44
///     by the transaction at  App/Totals.swift:17, writing at App/Totals.swift:19
///     hint: …
/// ```
public struct ConflictReport: Sendable, CustomStringConvertible {
  /// Wall-clock seconds the recording covered; 0 when the log does not say (it has no
  /// summary line: the program stopped before the recording did), and then ``commits`` is
  /// unknown too, and the printed report says so.
  public var seconds: Double
  /// Transactions committed while recording (from ``TransactionEngine/statistics``); 0 when
  /// the log does not say.
  public var commits: Int
  /// Every conflict, most time lost first.
  public private(set) var conflicts: [Conflict]
  /// How many transactions became inevitable, by where they were started.
  public private(set) var inevitableTransactions: [CodeLocation?: Int]

  /// Aborts in all conflicts.
  public var aborts: Int { conflicts.reduce(0) { $0 + $1.aborts } }
  /// Pauses in all conflicts.
  public var pauses: Int { conflicts.reduce(0) { $0 + $1.pauses } }
  /// Seconds lost in aborts, summed over threads.
  public var secondsLostInAborts: Double { conflicts.reduce(0) { $0 + $1.secondsLostInAborts } }
  /// Seconds spent paused, summed over threads.
  public var secondsPaused: Double { conflicts.reduce(0) { $0 + $1.secondsPaused } }
  /// Commits per wall-clock second, or 0 when the duration is unknown.
  public var transactionsPerSecond: Double { seconds > 0 ? Double(commits) / seconds : 0 }

  /// Sums up `events`, recorded over `seconds` while `commits` transactions committed.
  ///
  /// Events with the same kind and the same four locations (both transactions, both accesses)
  /// make one ``Conflict``, which counts the objects they were on: the same code colliding on
  /// many keys is one conflict to fix, not one per key.
  ///
  /// - Parameters:
  ///   - events: The events recorded.
  ///   - seconds: How long the recording ran, in seconds; 0 if unknown.
  ///   - commits: How many transactions committed while it ran; 0 if unknown.
  /// - Complexity: O(*e* + *c* log *c*) for *e* events in *c* conflicts.
  public init(events: some Sequence<ConflictEvent>, seconds: Double, commits: Int) {
    var tally = Tally()
    for event in events { tally.add(event) }
    self.init(tally, seconds: seconds, commits: commits)
  }

  /// The report of the events `tally` summed up.
  init(_ tally: Tally, seconds: Double, commits: Int) {
    self.seconds = seconds
    self.commits = commits
    // Ties broken by every location, so that the same events always print in the same order
    // (the tally's dictionary order changes from process to process).
    func order(_ conflict: Conflict) -> [String] {
      [conflict.location, conflict.accessLocation, conflict.conflictingLocation, conflict.conflictingAccessLocation]
        .map { $0?.description ?? "" } + [conflict.kind.rawValue]
    }
    conflicts = tally.byPlace.values.sorted { a, b in
      if a.secondsLost != b.secondsLost { return a.secondsLost > b.secondsLost }
      if a.aborts + a.pauses != b.aborts + b.pauses { return a.aborts + a.pauses > b.aborts + b.pauses }
      return order(a).lexicographicallyPrecedes(order(b))
    }
    inevitableTransactions = tally.inevitable
  }

  /// Events summed up as they come: what a recording keeps, so that its memory grows with the
  /// conflicts and the objects they were on, not with every abort and pause.
  struct Tally {
    var byPlace: [ConflictKey: Conflict] = [:]
    var inevitable: [CodeLocation?: Int] = [:]

    mutating func add(_ event: ConflictEvent) {
      if event.outcome == .inevitable {
        inevitable[event.location, default: 0] += 1
        return
      }
      let key = ConflictKey(event)
      byPlace[key, default: Conflict(key)].add(event)
    }
  }

  /// What makes two events part of the same ``Conflict``.
  struct ConflictKey: Hashable {
    let kind: ContentionKind
    let location: CodeLocation?
    let conflictingLocation: CodeLocation?
    let accessLocation: CodeLocation?
    let conflictingAccessLocation: CodeLocation?

    init(_ event: ConflictEvent) {
      kind = event.kind
      location = event.location
      conflictingLocation = event.conflictingLocation
      accessLocation = event.accessLocation
      conflictingAccessLocation = event.conflictingAccessLocation
    }
  }

  /// Parses a log file that the conflict log wrote (``ConflictLog/start(writingTo:)`` or the
  /// `STM_CONFLICT_LOG` environment variable), in the current format or the earlier one with
  /// five fields per line.
  ///
  /// The log writes every line whole, line break included, so a last line without its line
  /// break was cut short: the program stopped in the middle of writing it (a crash, a kill),
  /// or the file was copied while it was being written. That line is left out, even where
  /// what is left of it would parse (a cut summary line could read 4,000 commits for
  /// 40,000). A log's first line is its `#` header, so text with no line break that does not
  /// start with `#` is malformed, not a cut log. Lines may end in a carriage return and a line
  /// break, as a log that went through a Windows tool does.
  ///
  /// - Parameter text: The whole log file, as text.
  /// - Throws: ``ConflictLogError/malformedLine(_:_:)`` for a line it cannot read, including
  ///   times that are negative or not finite, which the log never writes, and a summary line
  ///   whose commits take the total past `Int.max`.
  /// - Complexity: O(*n*) for a log of *n* characters, plus the grouping of its events.
  public init(log text: String) throws(ConflictLogError) {
    var events: [ConflictEvent] = []
    var seconds = 0.0, commits = 0
    // By scalar: "\r\n" is one character, so a split by character found no line in a log with
    // Windows line ends, and reported "No conflicts." (found by review).
    var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map(Substring.init)
    // Empty after a final line break; otherwise the last line was cut.
    let cut = lines.removeLast()
    // The log opens with its header line, written whole: text with no line break at all is
    // a log only if it is empty or the start of a comment. Anything else ("hello world") is
    // not a cut log, and must not read as a log without conflicts.
    if lines.isEmpty && !cut.isEmpty && !cut.hasPrefix("#") { throw .malformedLine(1, String(cut)) }
    for (index, fullLine) in lines.enumerated() {
      let line = fullLine.unicodeScalars.last == "\r" ? fullLine.dropLast() : fullLine
      if line.isEmpty || line.hasPrefix("#") { continue }
      if line.hasPrefix("summary\t") {
        let fields = line.split(separator: "\t")
        guard fields.count == 3, let wall = Double(fields[1]), wall.isFinite, wall >= 0,
          let committed = Int(fields[2]), committed >= 0
        else { throw .malformedLine(index + 1, String(line)) }
        // Several processes' summaries add up; a sum past `Int.max` is no log's (it trapped).
        let (sum, overflowed) = commits.addingReportingOverflow(committed)
        guard !overflowed else { throw .malformedLine(index + 1, String(line)) }
        seconds += wall
        commits = sum
        continue
      }
      guard let event = ConflictEvent(logLine: line) else { throw .malformedLine(index + 1, String(line)) }
      events.append(event)
    }
    self.init(events: events, seconds: seconds, commits: commits)
  }

  /// The printed report, listing the ten conflicts that cost the most time.
  public var description: String { formatted() }
}
