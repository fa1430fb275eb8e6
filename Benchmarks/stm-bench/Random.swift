/// The xorshift64* generator of BENCHMARKS.md ("Pseudo-random numbers"), so that every
/// implementation of a workload, here and elsewhere, draws the same numbers.
struct Xorshift64Star {
  private var state: UInt64

  /// The generator of thread `thread` (0-based).
  init(thread: Int) {
    state = 0x9E37_79B9_7F4A_7C15 &* UInt64(thread + 1)
  }

  @inline(__always)
  mutating func next() -> UInt64 {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    return state &* 0x2545_F491_4F6C_DD1D
  }

  /// Checks the test vectors of BENCHMARKS.md ("Exact formulas"); `nil` when they match.
  static func selfCheckFailure() -> String? {
    let expected: [[UInt64]] = [
      [973_819_730_272_012_410, 6_108_091_081_255_984_487],
      [1_305_300_993_653_566_993, 5_686_217_393_106_745_323],
    ]
    for (thread, vector) in expected.enumerated() {
      var generator = Xorshift64Star(thread: thread)
      let drawn = vector.map { _ in generator.next() }
      if drawn != vector {
        return "xorshift64* thread \(thread) drew \(drawn), expected \(vector)"
      }
    }
    return nil
  }
}
