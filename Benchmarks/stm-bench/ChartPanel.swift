/// One workload's panel of the chart: ops/s against thread count, one line per implementation,
/// with the library's speed-up over T=1 and its ratio to the first reference written on it.
///
/// With a single thread count there is nothing to draw a line along, so the panel shows bars.
struct ChartPanel {
  typealias Point = SVGDocument.Point

  static let width = 440.0

  let workload: Workload
  private let series: [Series]
  private let threadCounts: [Int]

  init(workload: Workload, measurements: [BenchmarkResult]) {
    self.workload = workload
    threadCounts = Set(measurements.map(\.threads)).sorted()
    var libraries = 0, references = 0
    series = Report.uniqueImplementations(measurements).map { implementation in
      let color: String
      switch implementation.kind {
      case .library:
        color = Palette.library[libraries % Palette.library.count]
        libraries += 1
      case .baseline, .serial:
        color = Palette.muted[references % Palette.muted.count]
        references += 1
      }
      let points = measurements.filter { $0.implementation == implementation.name }
        .sorted { $0.threads < $1.threads }
      return Series(
        name: implementation.name, kind: implementation.kind, color: color, points: points)
    }
  }

  /// How tall a panel is whose legend has `legendRows` entries; every panel of a chart gets the
  /// height of the tallest, so that the grid stays aligned.
  static func height(legendRows: Int) -> Double {
    Layout.legendTop + Double(legendRows) * Layout.legendRowHeight + 6
  }

  var legendRows: Int { series.count }

  func draw(into svg: inout SVGDocument, at origin: Point, height: Double) {
    svg.rectangle(x: origin.x, y: origin.y, width: Self.width, height: height, fill: "white",
                  stroke: "#d0d4da", cornerRadius: 6)
    let plot = Plot(
      origin: origin, axis: ChartAxis(largest: largestRate), threadCounts: threadCounts)
    drawHeader(into: &svg, at: origin)
    plot.drawGrid(into: &svg, unit: workload.unit)
    if series.allSatisfy({ $0.points.allSatisfy { !$0.verified } }) {
      svg.text("no verified run", at: Point(x: plot.center.x, y: plot.center.y), size: 12,
               fill: Palette.failure, anchor: .middle)
    } else if threadCounts.count == 1 {
      drawBars(into: &svg, plot)
    } else {
      drawLines(into: &svg, plot)
    }
    drawLegend(into: &svg, at: origin)
  }

  // MARK: - Data

  private struct Series {
    let name: String
    let kind: ImplementationKind
    let color: String
    /// One per thread count, in increasing order; failed runs included.
    let points: [BenchmarkResult]

    func point(threads: Int) -> BenchmarkResult? {
      points.first { $0.threads == threads && $0.verified }
    }

    var failedThreadCounts: [Int] { points.filter { !$0.verified }.map(\.threads) }
  }

  private var largestRate: Double {
    series.flatMap(\.points).filter(\.verified).map(\.opsPerSecond).max() ?? 0
  }

  /// The library implementation whose speed-up and ratios are written on the panel: the first.
  private var primary: Series? { series.first { $0.kind == .library } }

  /// What the primary's ratios are taken against: the first baseline or serial reference, as in
  /// the table's first "vs" column.
  private var reference: Series? { series.first { $0.kind != .library } }

  /// The reference's run that a library run at `threads` is compared with: a serial reference
  /// runs only at T=1, so every library run is compared with that one.
  private func referencePoint(threads: Int) -> BenchmarkResult? {
    guard let reference else { return nil }
    return reference.point(threads: reference.kind == .serial ? 1 : threads)
  }

  /// "2.11× at T=4 vs T=1", or `nil` without a verified T=1 and a verified run above it.
  private func speedUp(_ series: Series) -> String? {
    guard let highest = threadCounts.last, highest > 1,
      let single = series.point(threads: 1), let top = series.point(threads: highest)
    else { return nil }
    let ratio = Report.formatRatio(top.opsPerSecond / single.opsPerSecond, sign: "×")
    return "\(ratio) at T=\(highest) vs T=1"
  }

  // MARK: - Drawing

  /// Offsets from the panel's top left corner, in pixels.
  enum Layout {
    static let padding = 12.0
    static let plotTop = 62.0
    static let plotHeight = 170.0
    static let plotLeft = 58.0
    static let plotRightMargin = 16.0
    static let legendTop = plotTop + plotHeight + 50
    static let legendRowHeight = 16.0
  }

  private func drawHeader(into svg: inout SVGDocument, at origin: Point) {
    svg.text(workload.name, at: Point(x: origin.x + Layout.padding, y: origin.y + 21), size: 14,
             bold: true)
    if let primary, let speedUp = speedUp(primary) {
      svg.text(speedUp, at: Point(x: origin.x + Self.width - Layout.padding, y: origin.y + 21),
               size: 12, fill: primary.color, anchor: .end, bold: true)
    }
    if let primary, let reference {
      let against = reference.kind == .serial ? "(T=1)" : "(same T)"
      let note = "labels: \(primary.name) ÷ \(reference.name) \(against), in ops/s"
      svg.text(fitted(note, size: 11), at: Point(x: origin.x + Layout.padding, y: origin.y + 39),
               size: 11, fill: "#555")
    }
  }

  private func drawLines(into svg: inout SVGDocument, _ plot: Plot) {
    // Muted references first and the library last, so that the library's line lies on top.
    for series in series.sorted(by: { drawingOrder($0) < drawingOrder($1) }) {
      let isLibrary = series.kind == .library
      let lineWidth = isLibrary ? 2.6 : 1.8
      if series.kind == .serial, let single = series.point(threads: 1) {
        // Its one run is the reference for every T, so it spans the plot as a level.
        let y = plot.y(single.opsPerSecond)
        svg.line(from: Point(x: plot.left, y: y), to: Point(x: plot.right, y: y),
                 stroke: series.color, width: lineWidth, dashed: true)
      }
      var segment: [Point] = []
      for run in series.points {
        if run.verified {
          segment.append(Point(x: plot.x(threads: run.threads), y: plot.y(run.opsPerSecond)))
        } else {
          if segment.count > 1 { svg.polyline(segment, stroke: series.color, width: lineWidth) }
          segment = []
        }
      }
      if segment.count > 1 { svg.polyline(segment, stroke: series.color, width: lineWidth) }
      for run in series.points where run.verified {
        svg.circle(center: Point(x: plot.x(threads: run.threads), y: plot.y(run.opsPerSecond)),
                   radius: series.kind == .library ? 4.5 : 3.5, fill: series.color)
      }
    }
    for series in series {
      for run in series.points where !run.verified {
        drawFailure(into: &svg, plot, x: plot.x(threads: run.threads))
      }
    }
    drawRatioLabels(into: &svg, plot) { plot.x(threads: $0) }
  }

  private func drawBars(into svg: inout SVGDocument, _ plot: Plot) {
    let gap = 8.0
    let barWidth = min(44, (plot.right - plot.left) * 0.8 / Double(series.count) - gap)
    let groupWidth = Double(series.count) * (barWidth + gap) - gap
    var barCenters: [String: Double] = [:]
    for (index, series) in series.enumerated() {
      let x = plot.center.x - groupWidth / 2 + Double(index) * (barWidth + gap) + barWidth / 2
      barCenters[series.name] = x
      guard let run = series.points.first else { continue }
      if run.verified {
        let y = plot.y(run.opsPerSecond)
        svg.rectangle(x: x - barWidth / 2, y: y, width: barWidth, height: plot.bottom - y,
                      fill: series.color)
      } else {
        drawFailure(into: &svg, plot, x: x)
      }
    }
    drawRatioLabels(into: &svg, plot) { _ in barCenters[primary?.name ?? ""] ?? plot.center.x }
  }

  private func drawingOrder(_ series: Series) -> Int {
    switch series.kind {
    case .baseline: 0
    case .serial: 1
    case .library: series.name == primary?.name ? 3 : 2
    }
  }

  /// A red × on the axis: a failed run has no rate, and is drawn last so that nothing hides it.
  private func drawFailure(into svg: inout SVGDocument, _ plot: Plot, x: Double) {
    svg.cross(center: Point(x: x, y: plot.bottom - 7), size: 9, stroke: Palette.failure)
  }

  /// The primary library's ops/s ÷ the reference's, above each of its points (below one that is
  /// too near the top), on a pale backing so that a line crossing it does not hide it.
  private func drawRatioLabels(
    into svg: inout SVGDocument, _ plot: Plot, x: (Int) -> Double
  ) {
    guard let primary else { return }
    let labelSize = 11.0
    let spacing = (plot.right - plot.left) / Double(max(threadCounts.count, 1))
    for (index, run) in primary.points.enumerated() where run.verified {
      guard let reference = referencePoint(threads: run.threads) else { continue }
      let label = Report.formatRatio(run.opsPerSecond / reference.opsPerSecond, sign: "×")
      let width = SVGDocument.estimatedWidth(of: label, size: labelSize)
      let pointY = plot.y(run.opsPerSecond)
      // Labels of neighbouring thread counts that would touch go alternately below.
      let crowded = width + 6 > spacing && index % 2 == 1
      let above = pointY - 9 - labelSize >= plot.top && !crowded
      let baseline = above ? pointY - 9 : min(pointY + 19, plot.bottom - 3)
      let center = x(run.threads)
      svg.rectangle(x: center - width / 2 - 2, y: baseline - labelSize + 1, width: width + 4,
                    height: labelSize + 2, fill: "white", opacity: 0.8, cornerRadius: 2)
      svg.text(label, at: Point(x: center, y: baseline), size: labelSize, fill: primary.color,
               anchor: .middle, bold: true)
    }
  }

  private func drawLegend(into svg: inout SVGDocument, at origin: Point) {
    for (row, series) in series.enumerated() {
      let y = origin.y + Layout.legendTop + Double(row) * Layout.legendRowHeight
      let swatchLeft = origin.x + Layout.padding
      if threadCounts.count == 1 {
        svg.rectangle(x: swatchLeft + 5, y: y - 10, width: 12, height: 12, fill: series.color)
      } else {
        svg.line(from: Point(x: swatchLeft, y: y - 4), to: Point(x: swatchLeft + 22, y: y - 4),
                 stroke: series.color, width: series.kind == .library ? 2.6 : 1.8,
                 dashed: series.kind == .serial)
        svg.circle(center: Point(x: swatchLeft + 11, y: y - 4),
                   radius: series.kind == .library ? 4 : 3, fill: series.color)
      }
      var text = "\(series.name) (\(series.kind.rawValue))"
      if series.kind == .library, series.name != primary?.name, let speedUp = speedUp(series) {
        text += ": \(speedUp)"
      }
      let textLeft = swatchLeft + 30
      svg.text(text, at: Point(x: textLeft, y: y), size: 11,
               fill: series.kind == .library ? series.color : "#333",
               bold: series.kind == .library)
      let failed = series.failedThreadCounts
      if !failed.isEmpty {
        let threads = failed.map(String.init).joined(separator: ", ")
        svg.text("× failed at T=\(threads)",
                 at: Point(x: textLeft + SVGDocument.estimatedWidth(of: text, size: 11) + 8, y: y),
                 size: 11, fill: Palette.failure, bold: true)
      }
    }
  }

  /// `text`, cut with an ellipsis where it would run past the panel's edge.
  private func fitted(_ text: String, size: Double) -> String {
    let room = Self.width - 2 * Layout.padding
    guard SVGDocument.estimatedWidth(of: text, size: size) > room else { return text }
    let keep = Int(room / SVGDocument.estimatedWidth(of: "m", size: size)) - 1
    return String(text.prefix(keep)) + "…"
  }

  private enum Palette {
    /// Strong, saturated colours: the library is what the chart is about.
    static let library = ["#1d4ed8", "#7c3aed"]
    /// Muted colours, told apart by hue, for what the library is compared with.
    static let muted = ["#8aa39b", "#c2a878", "#a596b4", "#9ca3af"]
    static let failure = "#dc2626"
  }
}
