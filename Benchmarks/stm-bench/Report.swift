import Foundation

/// The three outputs of a run: progress lines (stderr), the table (stdout) and JSON Lines.
enum Report {
  static func progressLine(_ m: BenchmarkResult) -> String {
    var line = "[\(m.workload)] \(m.implementation) (\(m.kind.rawValue)) T=\(m.threads): "
    if let failure = m.failure {
      // No time either: a failed run is never reported as a number (BENCHMARKS.md).
      line += "FAILED: \(failure)"
    } else {
      line += formatSeconds(m.seconds) + ", \(formatRate(m.opsPerSecond)) ops/s, verified (\(runsDescription(m)))"
    }
    if let statistics = m.statistics {
      line += "; \(statistics)"
    }
    if let detail = m.detail {
      line += "; \(detail)"
    }
    if let allRuns = m.allRuns {
      line += "; in all \(allRuns.count) runs\(m.afterWarmUp ? " (the warm-up included)" : ""): \(allRuns.aborts) aborts"
      if let producers = allRuns.producerAborts { line += ", the producers' \(producers)" }
    }
    return line
  }

  /// "median of 5 runs after a warm-up", "1 run": what the reported figure stands for.
  private static func runsDescription(_ m: BenchmarkResult) -> String {
    let runs = m.runs == 1 ? "1 run" : "median of \(m.runs) runs"
    return m.afterWarmUp ? runs + " after a warm-up" : runs
  }

  // MARK: - Table

  /// Per workload: ops/s of each implementation at each thread count, speed-up over the same
  /// implementation at T=1, and for the library's rows the ratio library ÷ reference
  /// (in ops/s, so above 1 means the library is faster) against each baseline at the same T and
  /// against the serial reference (which only runs at T=1).
  static func table(for workload: Workload, _ measurements: [BenchmarkResult]) -> String {
    let references = uniqueImplementations(measurements).filter { $0.kind != .library }
    var header = ["implementation", "kind", "T", "ops/s", "speed-up", "aborts"]
    header += references.map { "vs \($0.name)" }
    var rows: [[String]] = []
    for m in measurements {
      var row = [m.implementation, m.kind.rawValue, String(m.threads)]
      guard m.verified else {
        rows.append(row + ["FAILED"] + Array(repeating: "-", count: 2 + references.count))
        continue
      }
      row.append(formatRate(m.opsPerSecond))
      let single = measurements.first {
        $0.implementation == m.implementation && $0.threads == 1 && $0.verified
      }
      row.append(single.map { formatRatio(m.opsPerSecond / $0.opsPerSecond) } ?? "-")
      row.append(m.statistics.map { abortsCell($0.totalAborts, m.allRuns) } ?? "-")
      for reference in references {
        let threads = reference.kind == .serial ? 1 : m.threads
        let match = measurements.first {
          $0.implementation == reference.name && $0.threads == threads && $0.verified
        }
        if m.kind == .library, let match {
          row.append(formatRatio(m.opsPerSecond / match.opsPerSecond))
        } else {
          row.append("-")
        }
      }
      rows.append(row)
    }
    // queue-batch rounds its total down to a multiple of 32·T, so its rows may differ.
    let counts = measurements.map(\.ops)
    var ops = "?"
    if let least = counts.min(), let most = counts.max() {
      ops = least == most ? groupingThousands(least) : "\(groupingThousands(least)) to \(groupingThousands(most))"
    }
    var lines = ["\(workload.name): \(ops) \(workload.unit) — \(workload.summary)"]
    lines += layout([header] + rows, leftAligned: 2).map { "  " + $0 }
    for m in measurements {
      if let failure = m.failure {
        lines.append("  FAILED \(m.implementation) T=\(m.threads): \(failure)")
      }
    }
    return lines.joined(separator: "\n") + "\n"
  }

  /// The reported run's aborts, and those of all the figure's runs where they differ: "0 (3
  /// in 6 runs)".
  private static func abortsCell(_ aborts: Int, _ allRuns: BenchmarkResult.AllRuns?) -> String {
    guard let allRuns, allRuns.aborts != aborts else { return String(aborts) }
    return "\(aborts) (\(allRuns.aborts) in \(allRuns.count) runs)"
  }

  static func uniqueImplementations(
    _ measurements: [BenchmarkResult]
  ) -> [(name: String, kind: ImplementationKind)] {
    var result: [(name: String, kind: ImplementationKind)] = []
    for m in measurements where !result.contains(where: { $0.name == m.implementation }) {
      result.append((m.implementation, m.kind))
    }
    return result
  }

  /// Pads the cells into columns: the first `leftAligned` columns flush left, the rest right.
  static func layout(_ rows: [[String]], leftAligned: Int) -> [String] {
    let columns = rows.map(\.count).max() ?? 0
    let widths = (0..<columns).map { column in
      rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0
    }
    return rows.map { row in
      row.enumerated().map { column, cell in
        let padding = String(repeating: " ", count: widths[column] - cell.count)
        return column < leftAligned ? cell + padding : padding + cell
      }.joined(separator: "  ")
    }
  }

  static func formatRate(_ rate: Double) -> String {
    switch rate {
    case 1e9...: String(format: "%.2fG", rate / 1e9)
    case 1e6...: String(format: "%.2fM", rate / 1e6)
    case 1e3...: String(format: "%.2fk", rate / 1e3)
    default: String(format: "%.2f", rate)
    }
  }

  private static func groupingThousands(_ value: Int) -> String {
    var digits = String(value.magnitude)
    var index = digits.endIndex
    while digits.distance(from: digits.startIndex, to: index) > 3 {
      index = digits.index(index, offsetBy: -3)
      digits.insert(",", at: index)
    }
    return (value < 0 ? "-" : "") + digits
  }

  private static func formatSeconds(_ seconds: Double) -> String {
    switch seconds {
    case 1...: String(format: "%.2f s", seconds)
    case 1e-3...: String(format: "%.1f ms", seconds * 1e3)
    default: String(format: "%.0f µs", seconds * 1e6)
    }
  }

  /// Two decimals, or two significant digits below 0.1 so that a small ratio is not shown as 0.
  static func formatRatio(_ ratio: Double, sign: String = "x") -> String {
    (ratio >= 0.1 ? String(format: "%.2f", ratio) : String(format: "%.2g", ratio)) + sign
  }

  // MARK: - JSON Lines

  /// One object in the shape of BENCHMARKS.md ("Output"). The engine's counters appear only
  /// for the library; a failed run has no time and no rate (it is never reported as a number)
  /// and says why. A rate is a whole number, unless it is below 1,000 (a `mandelbrot` image a
  /// second), where rounding would hide most of it.
  static func jsonLine(_ m: BenchmarkResult) -> String {
    var fields: [(String, String)] = [
      ("workload", jsonString(m.workload)),
      ("impl", jsonString(m.implementation)),
      ("kind", jsonString(m.kind.rawValue)),
      ("threads", String(m.threads)),
      ("ops", String(m.ops)),
    ]
    if m.verified {
      fields.append(("seconds", jsonNumber(m.seconds)))
      let rate = m.opsPerSecond
      fields.append(("ops_per_s", rate >= 1_000 ? String(Int(rate.rounded())) : jsonNumber(rate)))
      // How many measured runs `seconds` is the median of; a warm-up, if any, is not counted.
      fields.append(("runs", String(m.runs)))
    }
    if let statistics = m.statistics {
      fields += [
        ("commits", String(statistics.commits)),
        ("aborts", String(statistics.totalAborts)),
        ("seconds_lost_in_aborts", jsonNumber(statistics.secondsLostInAborts)),
        ("seconds_paused", jsonNumber(statistics.secondsPaused)),
      ]
      if let producers = m.producerAborts { fields.append(("producer_aborts", String(producers))) }
      // Every run made for the figure, the warm-up included, when there was more than one.
      if let allRuns = m.allRuns {
        fields.append(("all_runs", String(allRuns.count)))
        fields.append(("aborts_in_all_runs", String(allRuns.aborts)))
        if let producers = allRuns.producerAborts { fields.append(("producer_aborts_in_all_runs", String(producers))) }
      }
    }
    fields.append(("verified", m.verified ? "true" : "false"))
    if let failure = m.failure {
      fields.append(("failure", jsonString(failure)))
    }
    return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
  }

  private static func jsonNumber(_ value: Double) -> String {
    value.isFinite ? String(format: "%.6g", value) : "null"
  }

  private static func jsonString(_ value: String) -> String {
    var result = "\""
    for scalar in value.unicodeScalars {
      switch scalar {
      case "\"": result += "\\\""
      case "\\": result += "\\\\"
      case "\n": result += "\\n"
      case "\r": result += "\\r"
      case "\t": result += "\\t"
      case _ where scalar.value < 0x20:
        result += String(format: "\\u%04x", scalar.value)
      default: result.unicodeScalars.append(scalar)
      }
    }
    return result + "\""
  }
}

/// Writes JSON Lines to a file, one flushed line per measurement, so that a run cut short
/// keeps what it measured.
struct JSONLinesWriter {
  private let file: UnsafeMutablePointer<FILE>

  init?(path: String) {
    guard let file = fopen(path, "w") else { return nil }
    self.file = file
  }

  func write(_ line: String) {
    fputs(line + "\n", file)
    fflush(file)
  }
}
