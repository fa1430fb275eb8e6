extension ConflictReport {
  /// The printed report, listing the `top` conflicts that cost the most time.
  ///
  /// Each conflict shows what it was on (the three objects it hit most, and how many more),
  /// then one line per side: its transaction's `atomically` call (or "a single operation
  /// outside atomically") and where it read or wrote the object, then the hint.
  ///
  /// A warning lists where transactions became inevitable when 100 or more did, or 1% of the
  /// commits or more: each one makes every writer wait.
  ///
  /// - Parameter top: How many conflicts to list (none for 0 or less).
  /// - Returns: The report, as lines of text.
  /// - Complexity: O(*c* + *o* log *o*) for *c* conflicts with *o* objects.
  public func formatted(top: Int = 10) -> String {
    // Saturated: `commits` is any `Int` the public initializer was given (it trapped).
    let (sum, overflowed) = commits.addingReportingOverflow(aborts)
    let attempts = overflowed ? (commits > 0 ? Int.max : Int.min) : sum
    // A log without its summary line (a program that crashed or was killed while recording)
    // says neither: shown as 0 commits in 0 seconds, every attempt read as an abort (found
    // by review).
    let summarized = seconds > 0 || commits > 0
    var lines: [String] = []
    if summarized {
      lines.append(
        "\(Self.seconds(seconds)) recorded: \(Self.counted(commits, "commit")) (\(Self.rate(transactionsPerSecond)) transactions/s), "
          + "\(Self.counted(aborts, "abort")) (\(Self.percent(aborts, of: attempts)) of attempts), \(Self.counted(pauses, "pause"))")
    } else {
      lines.append(
        "\(Self.counted(aborts, "abort")), \(Self.counted(pauses, "pause")) recorded "
          + "(the log has no summary line, so the time and the commits are unknown: the program stopped before the recording did)")
    }
    lines.append("\(Self.seconds(secondsLostInAborts)) lost in aborts, \(Self.seconds(secondsPaused)) paused (summed over threads)")
    let inevitableCount = inevitableTransactions.values.reduce(0, +)
    if inevitableCount > 0 && (inevitableCount >= 100 || inevitableCount * 100 >= max(commits, 1)) {
      lines.append("")
      lines.append(
        "warning: \(Self.counted(inevitableCount, "transaction")) became inevitable"
          + (summarized ? " (\(Self.percent(inevitableCount, of: commits)) of commits)" : "") + "; "
          + "each one makes every writer wait. Most often at:")
      // Ties in the order of their locations (a single operation's last), not in dictionary
      // order, which each process's hashing seed decides (found by review).
      let mostOften = inevitableTransactions.sorted { first, second in
        if first.value != second.value { return first.value > second.value }
        switch (first.key, second.key) {
        case (let first?, let second?): return first < second
        case (_?, nil): return true
        default: return false
        }
      }
      for (location, count) in mostOften.prefix(3) {
        lines.append("    \(Self.count(count))x  \(location?.description ?? "(outside atomically)")")
      }
    }
    lines.append("")
    if conflicts.isEmpty {
      lines.append("No conflicts.")
      return lines.joined(separator: "\n")
    }
    lines.append("Top conflicts by time lost:")
    let shown = max(top, 0)
    for (rank, conflict) in conflicts.prefix(shown).enumerated() {
      // `3x write-read aborts`, `1x write-write pause`.
      func tally(_ count: Int, _ noun: String) -> String { _counted(count, "\(conflict.kind) \(noun)", number: { "\(Self.count($0))x" }) }
      var counts: [String] = []
      if conflict.aborts > 0 { counts.append(tally(conflict.aborts, "abort")) }
      if conflict.pauses > 0 { counts.append(tally(conflict.pauses, "pause")) }
      lines.append(
        "\(String(rank + 1).leftPadded(to: 2)). \(Self.seconds(conflict.secondsLostInAborts)) lost in aborts, "
          + "\(Self.seconds(conflict.secondsPaused)) paused (\(counts.joined(separator: ", ")))")
      if let objects = Self.objects(of: conflict) { lines.append("    on \(objects)") }
      let access = conflict.kind == .writeRead ? "reading" : conflict.kind == .writeWrite ? "writing" : "accessing"
      // No location at all: a property used outside `atomically`, or a transaction that began
      // before recording (printed as a single operation alone, the second was misnamed; found
      // by review).
      lines.append("    " + Self.side("in", conflict.location, access, conflict.accessLocation, unknown: Self.ownSideUnknown))
      if conflict.kind == .freeSegment && conflict.conflictingLocation == nil && conflict.conflictingAccessLocation == nil {
        // Waiting for a segment is waiting for whichever transaction ends first, no one writer.
        lines.append("    by no single transaction: every segment was in use")
      } else {
        lines.append("    " + Self.side("by", conflict.conflictingLocation, "writing", conflict.conflictingAccessLocation, unknown: "(unknown)"))
      }
      lines.append("    hint: \(conflict.hint)")
    }
    if conflicts.count > shown { lines.append("(\(conflicts.count - shown) more)") }
    return lines.joined(separator: "\n")
  }

  /// `TDictionary<String, Int>["alice"] (3x), TDictionary<String, Int>["bob"] (1x)`, the three
  /// objects hit most and how many more; counts only when there is more than one object.
  private static func objects(of conflict: Conflict) -> String? {
    let objects = conflict.objectsByCount
    guard let first = objects.first else { return nil }
    if objects.count == 1 { return first.object }
    let shown = objects.prefix(3).map { "\($0.object) (\(count($0.count))x)" }.joined(separator: ", ")
    return objects.count > 3 ? "\(shown) and \(count(objects.count - 3)) more" : shown
  }

  /// One side's line: `in the transaction at  App/W.swift:42, reading at App/W.swift:44`, or
  /// `… a single operation outside atomically, …` when there is an access but no transaction.
  private static func side(_ preposition: String, _ location: CodeLocation?, _ verb: String, _ access: CodeLocation?, unknown: String) -> String {
    let accessPart = access.map { ", \(verb) at \($0)" } ?? ""
    if let location { return "\(preposition) the transaction at  \(location)\(accessPart)" }
    if access != nil { return "\(preposition) a single operation outside atomically\(accessPart)" }
    return "\(preposition) the transaction at  \(unknown)"
  }

  /// What the losing side's line says when it has no location at all.
  static var ownSideUnknown: String { "(a single operation outside atomically, or one begun before recording)" }

  private static func seconds(_ value: Double) -> String { _formattedSeconds(value) }

  /// A rate as a whole number, grouped; one beyond `Int` (a recording of a few nanoseconds)
  /// as Swift prints it.
  private static func rate(_ value: Double) -> String {
    guard value.isFinite, value.magnitude < 1e18 else { return "\(value)" }
    return count(Int(value.rounded()))
  }

  private static func percent(_ part: Int, of whole: Int) -> String {
    guard whole > 0 else { return "0%" }
    let tenths = Int((Double(part) * 1000 / Double(whole)).rounded())
    return "\(tenths / 10).\(tenths % 10)%"
  }

  /// `1 commit`, `4,000 commits`: a grouped count and its noun.
  private static func counted(_ value: Int, _ noun: String) -> String {
    _counted(value, noun, number: count)
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

extension String {
  fileprivate func leftPadded(to width: Int, with pad: Character = " ") -> String {
    count >= width ? self : String(repeating: pad, count: width - count) + self
  }
}
