import Foundation

/// A throughput axis from 0 to a round number above the largest value, with round ticks.
struct ChartAxis {
  let ticks: [Double]
  var top: Double { ticks.last ?? 1 }

  /// Ticks 0, step, 2·step, … with a step of 1, 2, 2.5 or 5 times a power of ten, about four of
  /// them, reaching at least `largest` plus room for the labels written above the points.
  init(largest: Double) {
    guard largest > 0, largest.isFinite else {
      ticks = [0, 1]
      return
    }
    let headroom = largest * 1.12
    let rough = headroom / 4
    let magnitude = pow(10, floor(log10(rough)))
    let step = [1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
    let count = Int((headroom / step).rounded(.up))
    ticks = (0...count).map { Double($0) * step }
  }

  /// "0", "500k", "1.2M", "2.5G": short enough to sit beside the axis.
  static func label(_ value: Double) -> String {
    let (scaled, suffix): (Double, String) =
      switch value {
      case 1e9...: (value / 1e9, "G")
      case 1e6...: (value / 1e6, "M")
      case 1e3...: (value / 1e3, "k")
      default: (value, "")
      }
    var digits = String(format: "%.2f", scaled)
    while digits.hasSuffix("0") { digits.removeLast() }
    if digits.hasSuffix(".") { digits.removeLast() }
    return digits + suffix
  }
}
