/// xorshift64*, seeded as the benchmarks specify, so that a failing run can be replayed.
public struct SeededRandom: RandomNumberGenerator, Sendable {
  private var state: UInt64

  /// The generator of thread `thread` (0-based): seed `0x9E3779B97F4A7C15 &* (thread + 1)`.
  public init(thread: Int) {
    state = 0x9E37_79B9_7F4A_7C15 &* UInt64(thread + 1)
  }

  public init(seed: UInt64) {
    state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
  }

  public mutating func next() -> UInt64 {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    return state &* 0x2545_F491_4F6C_DD1D
  }

  /// A number in `0..<bound`.
  public mutating func below(_ bound: Int) -> Int {
    Int(next() % UInt64(bound))
  }

  /// True with probability `percent` / 100.
  public mutating func chance(_ percent: Int) -> Bool {
    below(100) < percent
  }
}
