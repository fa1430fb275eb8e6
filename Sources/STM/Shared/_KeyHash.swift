import Synchronization

/// How a keyed collection's index hashes its keys: the standard library's `hashValue`, except
/// for the fixed-width integer types, whose bits go through a seeded mixer instead.
///
/// `hashValue` runs SipHash-1-3 on every key: about 97 instructions for an `Int`, a seventh of
/// a whole drop-in update and a fifth of a drop-in lookup. The mixer takes about 12. It is
/// keyed by a secret seed that each index draws from the standard library's randomly seeded
/// `Hasher`, so keys chosen without knowing the seed do not pile up in one stripe or one run
/// of a table, and two indexes place the same keys differently. It is a mixer, not a keyed
/// cryptographic function like SipHash: it does not claim to resist an attacker who can time
/// the process's lookups and adapt the keys. (An integer's `==` compares its bits, which is
/// what makes hashing the bits sound; no other type's conformance promises that.)
///
/// Every place that needs a key's hash (lookups, inserts, removals, a table that rehashes its
/// keys as it grows) goes through `hash(of:seed:)` with the index's seed: a key hashed one way
/// and looked up another would be lost.
@usableFromInline
enum _KeyHash {
  /// The hash of `key` in an index whose seed is `seed`.
  @inlinable @inline(__always)
  static func hash<Key: Hashable>(of key: Key, seed: UInt64) -> Int {
    // Any other type's own hashing, with transactional data barred (see `_BarredKey`): the
    // same value as `key.hashValue`.
    guard let bits = integerBits(of: key) else { return _BarredKey(key).hashValue }
    return Int(bitPattern: UInt(truncatingIfNeeded: mix(bits ^ seed)))
  }

  /// `lhs == rhs`, as an index compares keys. A key type's own `==` (and `hash(into:)`, through
  /// `_BarredKey`) runs with transactional data out of bounds (`_runningKeyCode`): the index calls it while
  /// the operation holds a segment, or a stripe's lock, and code that used a `TVar` there could
  /// wait for what the operation holds (found by review: threads that each held a segment for
  /// a lookup, and waited in a key's `==` for another, deadlocked). The standard library's
  /// equality runs as it is.
  @inlinable @inline(__always)
  static func equal<Key: Hashable>(_ lhs: Key, _ rhs: Key) -> Bool {
    hasLibraryEquality(of: lhs) ? lhs == rhs : _runningKeyCode { lhs == rhs }
  }

  /// The bits of `key`, widened, when `Key` is a standard fixed-width integer type; nil
  /// otherwise. In specialized code the checks fold away: only the matching branch remains.
  @inlinable @inline(__always)
  static func integerBits<Key: Hashable>(of key: Key) -> UInt64? {
    if Key.self == Int.self { return UInt64(UInt(bitPattern: unsafeBitCast(key, to: Int.self))) }
    if Key.self == UInt.self { return UInt64(unsafeBitCast(key, to: UInt.self)) }
    if Key.self == Int64.self { return UInt64(bitPattern: unsafeBitCast(key, to: Int64.self)) }
    if Key.self == UInt64.self { return unsafeBitCast(key, to: UInt64.self) }
    if Key.self == Int32.self { return UInt64(UInt32(bitPattern: unsafeBitCast(key, to: Int32.self))) }
    if Key.self == UInt32.self { return UInt64(unsafeBitCast(key, to: UInt32.self)) }
    return nil
  }

  /// Whether `Key`'s `==` (and hashing) is the standard library's own, which waits for
  /// nothing: `Int`, `UInt`, the 64- and 32-bit integers, and, where strings are never bridged
  /// from Objective-C (whose `NSString` subclasses run the subclass's code), `String`. The
  /// drop-in update's quick road counts as a commit in flight from before such a key's lookup
  /// (see `_QuickUpdate`), and it runs without the bar on transactional data (`equal`); any
  /// other type's `==` is the caller's code, which may wait for something of the caller's
  /// (transactional data, it may not use: that traps). The integers are those
  /// `integerBits(of:)` mixes (asked of `key`, whose value does not matter), so that the two
  /// lists cannot drift apart. In specialized code the checks fold away.
  @inlinable @inline(__always)
  static func hasLibraryEquality<Key: Hashable>(of key: Key) -> Bool {
    if integerBits(of: key) != nil { return true }
    #if canImport(ObjectiveC)
    return false
    #else
    return Key.self == String.self
    #endif
  }

  /// The finalizer of SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
  /// generators", 2014): a bijection of 64 bits in which every input bit changes every output
  /// bit with probability close to one half, so the table's low bits (the probe's start), its
  /// high bits (the stripe) and the tag bits all depend on the whole key and the whole seed.
  @inlinable @inline(__always)
  static func mix(_ value: UInt64) -> UInt64 {
    var bits = value
    bits = (bits ^ (bits >> 30)) &* 0xBF58_476D_1CE4_E5B9
    bits = (bits ^ (bits >> 27)) &* 0x94D0_49BB_1331_11EB
    return bits ^ (bits >> 31)
  }

  /// A fresh seed for an index: the process's random `Hasher` seed applied to a count of the
  /// seeds made so far, so that each index gets its own (an address would repeat as soon as
  /// an index was freed and another took its memory).
  static func makeSeed() -> UInt64 {
    var hasher = Hasher()
    hasher.combine(seedsMade.add(1, ordering: .relaxed).oldValue)
    return UInt64(UInt(bitPattern: hasher.finalize()))
  }

  private static let seedsMade = Atomic<UInt64>(0)
}

/// A key as the key of a standard `Dictionary` that an index keeps or builds for itself (the
/// chains of its retired cells, a whole read's retired cells by key), whose hashing and `==`
/// run through `_KeyHash`, with transactional data out of bounds: the index fills and asks
/// those dictionaries while it holds a stripe's lock or a segment, as it does when it compares
/// keys itself (found by review).
@usableFromInline
struct _BarredKey<Key: Hashable>: Hashable {
  @usableFromInline let key: Key

  @inlinable
  init(_ key: Key) {
    self.key = key
  }

  @inlinable
  static func == (lhs: Self, rhs: Self) -> Bool { _KeyHash.equal(lhs.key, rhs.key) }

  @inlinable
  func hash(into hasher: inout Hasher) {
    if _KeyHash.hasLibraryEquality(of: key) {
      hasher.combine(key)
    } else {
      _runningKeyCode { key.hash(into: &hasher) }
    }
  }
}
