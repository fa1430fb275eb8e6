/// The `--svg` chart: a title saying when, where and how the figures were measured, then a grid
/// of one ``ChartPanel`` per workload.
enum Chart {
  typealias Point = SVGDocument.Point

  /// Three panels a row keeps the chart of every workload about as wide as a screen.
  private static let columnCount = 3
  private static let margin = 20.0
  private static let gap = 16.0

  /// - Parameters:
  ///   - results: each workload measured so far with its measurements, in the order run.
  ///   - arguments: the command line's flags, for the title.
  static func svg(
    results: [(workload: Workload, measurements: [BenchmarkResult])], arguments: [String]
  ) -> String {
    let panels = results.map { ChartPanel(workload: $0.workload, measurements: $0.measurements) }
    let columns = max(1, min(columnCount, panels.count))
    let width = 2 * margin + Double(columns) * ChartPanel.width + Double(columns - 1) * gap
    let title = titleLines(
      arguments: arguments, runs: runsDescription(results.flatMap(\.measurements)),
      width: width - 2 * margin)
    let titleHeight = title.reduce(margin) { $0 + $1.size * 1.45 } + 8
    let panelHeight = ChartPanel.height(legendRows: panels.map(\.legendRows).max() ?? 0)
    let rows = (panels.count + columns - 1) / columns
    let height = titleHeight + Double(rows) * (panelHeight + gap) - gap + margin

    var svg = SVGDocument(width: width, height: max(height, titleHeight + margin))
    var baseline = margin
    for line in title {
      baseline += line.size * 1.2
      svg.text(line.text, at: Point(x: margin, y: baseline), size: line.size, fill: line.color,
               bold: line.bold)
      baseline += line.size * 0.25
    }
    if panels.isEmpty {
      svg.text("No workload measured yet.", at: Point(x: margin, y: titleHeight + 14), size: 12)
    }
    for (index, panel) in panels.enumerated() {
      let origin = Point(
        x: margin + Double(index % columns) * (ChartPanel.width + gap),
        y: titleHeight + Double(index / columns) * (panelHeight + gap))
      panel.draw(into: &svg, at: origin, height: panelHeight)
    }
    return svg.markup
  }

  private struct TitleLine {
    let text: String
    let size: Double
    var color = "#222"
    var bold = false
  }

  private static func titleLines(arguments: [String], runs: String, width: Double) -> [TitleLine] {
    let commandLine = (["stm-bench"] + arguments).joined(separator: " ")
      + (arguments.isEmpty ? " (no flags: the defaults)" : "")
    let measuredOn = "\(MachineDescription.timestamp()) · \(MachineDescription.summary)"
    let howToRead = "Throughput, higher is better. The library in strong colours; plain-Swift"
      + " baselines and serial references muted (a serial reference runs at T=1 only, and is"
      + " drawn across as a dashed level). \(runs) A red × marks a failed run."
    var lines = [TitleLine(text: "stm-bench: ops/s against threads", size: 18, bold: true)]
    // A narrow chart breaks the date and the machine only between them, and the command line
    // (on a line of its own) between flags.
    let measuredOnLines = wrapped(measuredOn, size: 12, width: width, between: " · ")
    lines += (measuredOnLines + wrapped(commandLine, size: 12, width: width)).map {
      TitleLine(text: $0, size: 12, color: "#333")
    }
    lines += wrapped(howToRead, size: 11, width: width).map {
      TitleLine(text: $0, size: 11, color: "#666")
    }
    return lines
  }

  /// "Each point is the median of 3 runs after a warm-up.", from what the runs say of themselves.
  private static func runsDescription(_ measurements: [BenchmarkResult]) -> String {
    let verified = measurements.filter(\.verified)
    guard let fewest = verified.map(\.runs).min(), let most = verified.map(\.runs).max() else {
      return ""
    }
    let count = fewest == most ? "\(most)" : "\(fewest) to \(most)"
    let warmUp = verified.allSatisfy(\.afterWarmUp) ? " after a warm-up" : ""
    return most == 1
      ? "Each point is one run\(warmUp)." : "Each point is the median of \(count) runs\(warmUp)."
  }

  /// `text` broken at `separator` (between words by default) into lines that fit in `width`.
  private static func wrapped(
    _ text: String, size: Double, width: Double, between separator: String = " "
  ) -> [String] {
    var lines: [String] = []
    var line = ""
    for word in text.split(separator: separator) {
      let candidate = line.isEmpty ? String(word) : line + separator + word
      if !line.isEmpty && SVGDocument.estimatedWidth(of: candidate, size: size) > width {
        lines.append(line)
        line = String(word)
      } else {
        line = candidate
      }
    }
    if !line.isEmpty { lines.append(line) }
    return lines
  }
}
