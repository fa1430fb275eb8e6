import Foundation

/// An SVG picture built as text. The chart needs only a handful of shapes, and the harness has
/// no dependencies, so the markup is written by hand.
struct SVGDocument {
  let width: Double
  let height: Double
  private var elements: [String] = []

  init(width: Double, height: Double) {
    self.width = width
    self.height = height
  }

  /// A point in the picture, in pixels from its top left corner.
  struct Point {
    var x: Double
    var y: Double
  }

  enum TextAnchor: String {
    case start, middle, end
  }

  mutating func rectangle(
    x: Double, y: Double, width: Double, height: Double, fill: String, stroke: String? = nil,
    opacity: Double = 1, cornerRadius: Double = 0
  ) {
    var element = "<rect x=\"\(number(x))\" y=\"\(number(y))\" width=\"\(number(width))\""
      + " height=\"\(number(height))\" fill=\"\(fill)\""
    if let stroke { element += " stroke=\"\(stroke)\"" }
    if opacity < 1 { element += " fill-opacity=\"\(number(opacity))\"" }
    if cornerRadius > 0 { element += " rx=\"\(number(cornerRadius))\"" }
    elements.append(element + "/>")
  }

  mutating func line(
    from start: Point, to end: Point, stroke: String, width: Double = 1, dashed: Bool = false
  ) {
    polyline([start, end], stroke: stroke, width: width, dashed: dashed)
  }

  mutating func polyline(_ points: [Point], stroke: String, width: Double, dashed: Bool = false) {
    let coordinates = points.map { "\(number($0.x)),\(number($0.y))" }.joined(separator: " ")
    var element = "<polyline points=\"\(coordinates)\" fill=\"none\" stroke=\"\(stroke)\""
      + " stroke-width=\"\(number(width))\" stroke-linejoin=\"round\""
    if dashed { element += " stroke-dasharray=\"6,4\"" }
    elements.append(element + "/>")
  }

  mutating func circle(center: Point, radius: Double, fill: String, stroke: String = "white") {
    elements.append(
      "<circle cx=\"\(number(center.x))\" cy=\"\(number(center.y))\" r=\"\(number(radius))\""
        + " fill=\"\(fill)\" stroke=\"\(stroke)\" stroke-width=\"1.5\"/>")
  }

  /// An ×, the mark of a failed run.
  mutating func cross(center: Point, size: Double, stroke: String) {
    let half = size / 2
    line(from: Point(x: center.x - half, y: center.y - half),
         to: Point(x: center.x + half, y: center.y + half), stroke: stroke, width: 2.5)
    line(from: Point(x: center.x - half, y: center.y + half),
         to: Point(x: center.x + half, y: center.y - half), stroke: stroke, width: 2.5)
  }

  /// `content` with its baseline at `point`.
  mutating func text(
    _ content: String, at point: Point, size: Double, fill: String = "#222",
    anchor: TextAnchor = .start, bold: Bool = false
  ) {
    var element = "<text x=\"\(number(point.x))\" y=\"\(number(point.y))\""
      + " font-family=\"sans-serif\" font-size=\"\(number(size))\" fill=\"\(fill)\""
    if anchor != .start { element += " text-anchor=\"\(anchor.rawValue)\"" }
    if bold { element += " font-weight=\"bold\"" }
    elements.append(element + ">\(escaped(content))</text>")
  }

  /// About how wide `content` is at `size`: sans-serif glyphs average a little over half the
  /// font size, and the layout only needs to keep labels apart, not to typeset them.
  static func estimatedWidth(of content: String, size: Double) -> Double {
    Double(content.count) * size * 0.6
  }

  var markup: String {
    """
    <svg xmlns="http://www.w3.org/2000/svg" width="\(number(width))" height="\(number(height))" \
    viewBox="0 0 \(number(width)) \(number(height))">
    <rect width="100%" height="100%" fill="white"/>
    \(elements.joined(separator: "\n"))
    </svg>

    """
  }

  private func number(_ value: Double) -> String {
    String(format: "%.1f", value)
  }

  private func escaped(_ content: String) -> String {
    content
      .replacingOccurrences(of: "&", with: "&amp;")
      .replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;")
  }
}
