extension ChartPanel {
  /// The plot's rectangle and its mapping from (thread count, ops/s) to pixels.
  struct Plot {
    let left: Double, right: Double, top: Double, bottom: Double
    let axis: ChartAxis
    let threadCounts: [Int]

    init(origin: Point, axis: ChartAxis, threadCounts: [Int]) {
      left = origin.x + Layout.plotLeft
      right = origin.x + ChartPanel.width - Layout.plotRightMargin
      top = origin.y + Layout.plotTop
      bottom = top + Layout.plotHeight
      self.axis = axis
      self.threadCounts = threadCounts
    }

    var center: Point { Point(x: (left + right) / 2, y: (top + bottom) / 2) }

    func y(_ rate: Double) -> Double {
      bottom - rate / axis.top * (bottom - top)
    }

    /// Thread counts sit evenly spaced, in order: the usual 1, 2, 4, 8 then read as a log scale.
    func x(threads: Int) -> Double {
      let index = threadCounts.firstIndex(of: threads) ?? 0
      return left + (Double(index) + 0.5) * (right - left) / Double(threadCounts.count)
    }

    func drawGrid(into svg: inout SVGDocument, unit: String) {
      for tick in axis.ticks {
        let y = self.y(tick)
        svg.line(from: Point(x: left, y: y), to: Point(x: right, y: y),
                 stroke: tick == 0 ? "#888" : "#e6e8eb")
        svg.text(ChartAxis.label(tick), at: Point(x: left - 6, y: y + 4), size: 10, fill: "#555",
                 anchor: .end)
      }
      svg.line(from: Point(x: left, y: top), to: Point(x: left, y: bottom), stroke: "#888")
      svg.text("\(unit)/s", at: Point(x: left, y: top - 8), size: 10, fill: "#555")
      for threads in threadCounts {
        svg.text(String(threads), at: Point(x: x(threads: threads), y: bottom + 15), size: 10,
                 fill: "#555", anchor: .middle)
      }
      svg.text("threads (T)", at: Point(x: center.x, y: bottom + 30), size: 10, fill: "#555",
               anchor: .middle)
    }
  }
}
