import STMCore
import Synchronization

/// One stripe's table of key cells: open addressing with linear probing, searched without a
/// lock and changed only under the stripe's lock (see `_KeyIndex`).
///
/// Each word holds a cell's address (the table owns one retain on it) with the low 19 bits of
/// its key's hash in the bits an address leaves clear (see `tagBits`); or `empty`, or
/// `removed` (a key taken out, which probes step over). Those bits do two things:
/// - a probe compares them before it loads the cell, so passing over another key's word
///   costs no load of that key's cell (a miss in memory, most of the time, in a big table);
/// - a table that grows places every word in its replacement from the word alone (up to
///   2¹⁹ words), without loading the cells to hash their keys again. That rehash was a miss
///   per key under the stripe's lock, which stalled every other thread that reached the
///   stripe meanwhile.
///
/// Lookups load words, and writers store them, with sequentially consistent atomics (writers'
/// own loads are relaxed: the lock orders them): a lookup announces its snapshot before it
/// reads them, and whoever takes a cell out reads the clock after it wrote `removed`, so that
/// either the lookup never finds the cell or the cell is freed only after the lookup's
/// snapshot is withdrawn.
@usableFromInline
final class _KeyTable<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
  @usableFromInline typealias Cell = _KeyedCell<Key, Value>

  @usableFromInline static var empty: UInt { 0 }
  @usableFromInline static var removed: UInt { 1 }
  /// The bits of a word that hold a cell's address: heap objects are at least 8-byte aligned,
  /// and user-space addresses on the 64-bit platforms Swift runs on fit in 48 bits (checked
  /// as each cell goes in: see `word(_:hash:)`).
  @usableFromInline static var addressMask: UInt { 0x0000_FFFF_FFFF_FFF8 }
  /// The bits of a word that hold hash bits: the hash's low 16 bits in the top 16, and its
  /// next 3 bits in the bottom 3.
  @usableFromInline static var tagMask: UInt { ~addressMask }
  /// How many of a hash's low bits a word keeps: a table of at most 2^tagBits words is
  /// rebuilt from its words alone.
  @usableFromInline static var tagBits: Int { 19 }

  /// The number of words minus one (a power of two minus one).
  @usableFromInline let mask: Int
  @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt>>
  /// Keeps the fields below, which every insert and removal writes, off the line of the two
  /// above, which every lookup reads: sharing it, two threads inserting into one map moved
  /// that line between their cores on most inserts, on top of the stripe lock's.
  private let paddingAfterWords = _CacheLinePadding()
  /// Whether the table owns a retain on each of its cells: false once `rebuilt` has handed
  /// them over to its replacement, which lookups announced earlier may still be searching.
  private var ownsCells = true
  /// Keys present (changed under the stripe's lock only).
  @exclusivity(unchecked) @usableFromInline var live = 0
  /// Words that are not empty: keys present and keys removed (under the stripe's lock only).
  @exclusivity(unchecked) @usableFromInline var used = 0

  /// The seed of the index the table belongs to (see `_KeyHash`), for a rebuild that hashes
  /// its keys again.
  @usableFromInline let hashSeed: UInt64

  /// An empty table with room for at least `minimumCount` keys, hashed with `hashSeed`.
  init(minimumCount: Int, hashSeed: UInt64) {
    self.hashSeed = hashSeed
    var capacity = 16
    while capacity * 3 < minimumCount * 4 + 4 { capacity *= 2 }
    mask = capacity - 1
    words = .allocate(capacity: capacity)
    for index in 0..<capacity { (words + index).initialize(to: Atomic(Self.empty)) }
  }

  deinit {
    if ownsCells {
      for index in 0...mask {
        let word = words[index].load(ordering: .relaxed)
        if word > Self.removed { Self.cell(word).release() }
      }
    }
    words.deinitialize(count: mask + 1)
    words.deallocate()
  }

  /// The hash that places `key` (see `_KeyHash`).
  @inlinable @inline(__always)
  func hash(of key: Key) -> Int {
    _KeyHash.hash(of: key, seed: hashSeed)
  }

  @inlinable @inline(__always)
  static func cell(_ word: UInt) -> Unmanaged<Cell> {
    Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: word & addressMask).unsafelyUnwrapped)
  }

  /// The hash bits a word keeps beside its cell (see `tagMask`).
  @inlinable @inline(__always)
  static func tag(_ hash: Int) -> UInt {
    let bits = UInt(bitPattern: hash)
    return bits << 48 | (bits >> 16) & 7
  }

  /// The low `tagBits` bits of the hash of the key whose cell `word` holds.
  @inlinable @inline(__always)
  static func hashBits(_ word: UInt) -> Int {
    Int(bitPattern: word >> 48 | (word & 7) << 16)
  }

  /// The word for `cell`, whose key's hash value is `hash`.
  @inlinable @inline(__always)
  static func word(_ cell: Unmanaged<Cell>, hash: Int) -> UInt {
    let address = UInt(bitPattern: cell.toOpaque())
    precondition(
      address & tagMask == 0,
      "swift-stm: a heap address uses its top 16 bits, which TDictionary and TSet need for hash bits; this platform is not supported")
    return address | tag(hash)
  }

  /// The cell of `key`, whose hash value is `hash`, if the table has one. Safe without the
  /// lock while a snapshot is announced; the cell is not retained.
  @inlinable
  func find(_ key: Key, hash: Int) -> Unmanaged<Cell>? {
    var index = hash & mask
    let tag = Self.tag(hash)
    while true {
      let word = words[index].load(ordering: .sequentiallyConsistent)
      if word == Self.empty { return nil }
      if word != Self.removed && word & Self.tagMask == tag {
        let cell = Self.cell(word)
        if cell._withUnsafeGuaranteedRef({ $0.key == key }) { return cell }
      }
      index = (index &+ 1) & mask
    }
  }

  /// The first cell, in the table's order, that satisfies `predicate`; searched as `find`
  /// searches, so safe without the lock while a snapshot is announced. The cell is not retained.
  @inlinable
  func firstCell(where predicate: (Cell) -> Bool) -> Unmanaged<Cell>? {
    for index in 0...mask {
      let word = words[index].load(ordering: .sequentiallyConsistent)
      guard word > Self.removed else { continue }
      let cell = Self.cell(word)
      if cell._withUnsafeGuaranteedRef(predicate) { return cell }
    }
    return nil
  }

  /// Whether one more key fits without making probes long (at most three quarters used).
  @inlinable
  var hasRoomForOneMore: Bool { (used + 1) * 4 <= (mask + 1) * 3 }

  /// Adds `cell`, whose key is absent, taking over one retain on it. Needs the lock and room.
  @inlinable
  func insert(_ cell: Unmanaged<Cell>, hash: Int) {
    var index = hash & mask
    while true {
      let word = words[index].load(ordering: .relaxed)
      if word == Self.empty || word == Self.removed {
        if word == Self.empty { used += 1 }
        live += 1
        // Publishes the cell's fields, written before, to lookups that load this word.
        words[index].store(Self.word(cell, hash: hash), ordering: .sequentiallyConsistent)
        return
      }
      index = (index &+ 1) & mask
    }
  }

  /// Takes `cell` out, if the table has it, and hands over the table's retain on it. Needs the lock.
  @inlinable
  func remove(_ cell: Cell, hash: Int) -> Unmanaged<Cell>? {
    let target = Self.word(Unmanaged.passUnretained(cell), hash: hash)
    var index = hash & mask
    while true {
      let word = words[index].load(ordering: .relaxed)
      if word == Self.empty { return nil }
      if word == target {
        words[index].store(Self.removed, ordering: .sequentiallyConsistent)
        live -= 1
        return Self.cell(word)
      }
      index = (index &+ 1) & mask
    }
  }

  /// Calls `body` with every cell in the table. Needs the lock.
  @inlinable
  func forEachCell(_ body: (Cell) -> Void) {
    for index in 0...mask {
      let word = words[index].load(ordering: .relaxed)
      if word > Self.removed { Self.cell(word)._withUnsafeGuaranteedRef(body) }
    }
  }

  /// A new table holding this one's cells, with room for `extra` more; this table's retains
  /// on them move over, so that a cell taken out of the new table is not kept alive by the old.
  ///
  /// Up to `wordLimit` words (2^tagBits; tests pass less), a cell's place in the new table
  /// comes from the hash bits in its word; past that, its key is hashed again.
  func rebuilt(makingRoomFor extra: Int, wordLimit: Int = 1 << tagBits) -> _KeyTable {
    let grown = _KeyTable(minimumCount: 2 * (live + extra), hashSeed: hashSeed)
    let wordsSuffice = grown.mask < wordLimit
    for index in 0...mask {
      let word = words[index].load(ordering: .relaxed)
      guard word > Self.removed else { continue }
      let cell = Self.cell(word)
      let hash = wordsSuffice ? Self.hashBits(word) : cell._withUnsafeGuaranteedRef { self.hash(of: $0.key) }
      grown.insert(cell, hash: hash)
    }
    ownsCells = false
    return grown
  }
}
