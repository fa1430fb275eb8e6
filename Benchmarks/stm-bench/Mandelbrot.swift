import STM

extension Workload {
  /// BENCHMARKS.md `mandelbrot`: a 1024×768 image, 255 iterations at most, in 32 bands of rows
  /// handed round-robin to the threads; each band is computed privately and written into one
  /// shared array of rows by index, in one transaction.
  static let mandelbrot = Workload(
    name: "mandelbrot",
    summary: "1024×768, 32 bands round-robin, each written into shared rows in one transaction; check checksum",
    unit: "image"
  ) { _ in
    // One image whatever the size: it cannot be cut to a tenth, and it takes well under a second.
    [
      Implementation(name: "TArray of rows", kind: .library) { threads in
        let image = TArray(Array(repeating: [UInt8](), count: Mandelbrot.height))
        return Trial(ops: 1) { thread in
          for band in stride(from: thread, to: Mandelbrot.bandCount, by: threads) {
            let rows = Mandelbrot.computeBand(band)
            let first = band * Mandelbrot.rowsPerBand
            // Writing distinct indices: bands never conflict.
            atomically { _ in
              for (offset, row) in rows.enumerated() { image[first + offset] = row }
            }
          }
        } verify: {
          Mandelbrot.check(image.elements)
        }
      },
      Implementation(name: "serial", kind: .serial) { _ in
        let image = Mandelbrot.SerialImage()
        return Trial(ops: 1) { _ in
          var rows: [[UInt8]] = []
          rows.reserveCapacity(Mandelbrot.height)
          for band in 0..<Mandelbrot.bandCount { rows += Mandelbrot.computeBand(band) }
          image.rows = rows
        } verify: {
          Mandelbrot.check(image.rows)
        }
      },
    ]
  }
}

/// The image of BENCHMARKS.md (mandelbrot), shared by every implementation: pixel (x, y) is
/// c = (-2 + 3x/1024) + (-1.125 + 2.25y/768)i, a 3 × 2.25 window with square pixels, and
/// holds the number of iterations z ← z² + c from 0 before |z| > 2, at most 255.
enum Mandelbrot {
  static let width = 1024
  static let height = 768
  static let maxIterations = 255
  static let bandCount = 32
  static let rowsPerBand = height / bandCount

  private static let realMin = -2.0
  private static let realStep = 3.0 / Double(width)
  private static let imaginaryMin = -1.125
  private static let imaginaryStep = 2.25 / Double(height)

  /// The rows of band `band`, computed privately.
  static func computeBand(_ band: Int) -> [[UInt8]] {
    let first = band * rowsPerBand
    return (first..<(first + rowsPerBand)).map(computeRow)
  }

  private static func computeRow(_ y: Int) -> [UInt8] {
    let ci = imaginaryMin + imaginaryStep * Double(y)
    return [UInt8](unsafeUninitializedCapacity: width) { pixels, count in
      for x in 0..<width {
        let cr = realMin + realStep * Double(x)
        var zr = 0.0, zi = 0.0
        var iterations = 0
        while iterations < maxIterations {
          let zr2 = zr * zr, zi2 = zi * zi
          if zr2 + zi2 > 4 { break }
          zi = 2 * zr * zi + ci
          zr = zr2 - zi2 + cr
          iterations += 1
        }
        pixels[x] = UInt8(iterations)
      }
      count = width
    }
  }

  /// FNV-1a over the pixels in row order, so that a misplaced row changes it too.
  static func checksum(_ rows: [[UInt8]]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for row in rows {
      for pixel in row {
        hash = (hash ^ UInt64(pixel)) &* 0x0000_0100_0000_01B3
      }
    }
    return hash
  }

  /// The serial computation's checksum, computed once, the first time a check needs it.
  static let expectedChecksum = checksum((0..<bandCount).flatMap(computeBand))

  /// The image has 768 rows of 1,024 pixels, and its checksum equals the serial computation's.
  static func check(_ rows: [[UInt8]]) -> String? {
    if rows.count != height { return "the image has \(rows.count) rows, expected \(height)" }
    if let short = rows.firstIndex(where: { $0.count != width }) {
      return "row \(short) has \(rows[short].count) pixels, expected \(width)"
    }
    let sum = checksum(rows)
    return sum == expectedChecksum
      ? nil : "checksum \(sum) differs from the serial computation's \(expectedChecksum)"
  }

  /// The serial run's image, handed from its thread to the check.
  final class SerialImage: @unchecked Sendable {
    // @unchecked: written by the one worker before it is joined, read after the join.
    var rows: [[UInt8]] = []
  }
}
