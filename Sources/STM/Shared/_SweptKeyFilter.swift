/// The hashes of the keys whose empty cells a stripe's last sweeps retired, kept as bits, so
/// that the stripe can tell an empty cell made again for one of those keys from one made for a
/// key it has not swept lately (see `_KeyIndex.StripeState.adjustEmptyAllowance()`).
///
/// Two generations, each a Bloom filter of 2,048 bits that sets two of them per hash and takes
/// up to 128 hashes; once the newer one is full, it becomes the older one and the older one is
/// forgotten. The filter so remembers the last 128 to 256 keys retired, in 512 bytes. It says
/// "swept" of a key it was never given about (1 − e^(−256/2048))², or 1.4%, of the time per
/// full generation (up to about 3% with both full, as measured on one stripe's keys), and
/// never says "not swept" of a key it remembers.
///
/// Why remember the keys at all: a sweep that counted, among its suspects, the cells looked up
/// again since the sweep before saw a key only if it came back before the next sweep. Lookups
/// that went through the same few thousand absent keys in the same order, again and again,
/// came back later than that at a small allowance, so the allowance stayed small and every
/// lookup made its key's cell again (found by review of that form, which was reverted).
/// Counting the cells made again measures the same thing whatever the order.
@usableFromInline
struct _SweptKeyFilter {
  /// The two generations' words, one after the other.
  @usableFromInline var words: [UInt64]
  /// Where the newer generation's words start in `words`: 0 or `wordsPerGeneration`.
  @usableFromInline var newerStart = 0
  /// How many hashes the newer generation took.
  @usableFromInline var takenByNewer = 0

  @usableFromInline static var wordsPerGeneration: Int { 32 }
  @usableFromInline static var generationCapacity: Int { 128 }

  @inlinable
  init() {
    words = Array(repeating: 0, count: 2 * Self.wordsPerGeneration)
  }

  /// The two bits of a generation (0 to 2,047) that stand for `hash`: bits 0 to 10 and 11 to
  /// 21 of it, clear of the high bits, which pick the stripe and so are the same for every key
  /// a stripe holds, with a 32-bit `Int` too (its stripe bits are 26 to 31). The index's hash
  /// mixes every bit of the key into all of them. (Taken from bits 24 to 34, the second bit
  /// had four values within a stripe on 32-bit platforms, and a full filter took one key in
  /// eight it was never given for a swept one, above the sixteenth that halves the allowance;
  /// found by review.)
  @inlinable
  static func bits(of hash: Int) -> (Int, Int) {
    let hash = UInt(bitPattern: hash)
    return (Int(truncatingIfNeeded: hash & 0x7FF), Int(truncatingIfNeeded: (hash >> 11) & 0x7FF))
  }

  /// Remembers `hash`, a key whose cell a sweep retired.
  @inlinable
  mutating func insert(_ hash: Int) {
    if takenByNewer == Self.generationCapacity {
      newerStart = Self.wordsPerGeneration - newerStart
      for index in newerStart..<(newerStart + Self.wordsPerGeneration) { words[index] = 0 }
      takenByNewer = 0
    }
    let (first, second) = Self.bits(of: hash)
    words[newerStart + (first >> 6)] |= Self.mask(first)
    words[newerStart + (second >> 6)] |= Self.mask(second)
    takenByNewer += 1
  }

  /// Whether `hash` may be one of the keys remembered (see the type's note on how often a key
  /// it was never given shows up).
  @inlinable
  func contains(_ hash: Int) -> Bool {
    let bits = Self.bits(of: hash)
    return generation(at: 0, has: bits) || generation(at: Self.wordsPerGeneration, has: bits)
  }

  /// Whether both `bits` are set in the generation whose words start at `start`.
  @inlinable
  func generation(at start: Int, has bits: (Int, Int)) -> Bool {
    words[start + (bits.0 >> 6)] & Self.mask(bits.0) != 0 && words[start + (bits.1 >> 6)] & Self.mask(bits.1) != 0
  }

  /// The bit of its word that stands for `bit` of a generation.
  @inlinable
  static func mask(_ bit: Int) -> UInt64 { 1 << UInt64(bit & 63) }
}
