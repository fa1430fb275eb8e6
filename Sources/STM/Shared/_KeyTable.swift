import STMCore
import Synchronization

/// One stripe's table of key cells: open addressing with linear probing. Lookups and inserts
/// run without a lock; removals and the table's replacement by a bigger one run under the
/// stripe's lock (see `_KeyIndex`).
///
/// Each word holds a cell's address (the table owns one retain on it) with the low 19 bits of
/// its key's hash in the bits an address leaves clear (see `tagBits`); or a marker: `empty`,
/// `removed` (a key taken out, which probes step over), or one of the two `frozen` markers of
/// a table being replaced. Those bits do two things:
/// - a probe compares them before it loads the cell, so passing over another key's word
///   costs no load of that key's cell (a miss in memory, most of the time, in a big table);
/// - a table that grows places every word in its replacement from the word alone (up to
///   2¹⁹ words), without loading the cells to hash their keys again. That rehash was a miss
///   per key under the stripe's lock, which stalled every other thread that reached the
///   stripe meanwhile.
///
/// Lookups load words, and writers change them, with sequentially consistent atomics: a lookup
/// announces its snapshot before it reads them, and whoever takes a cell out reads the clock
/// after it wrote `removed`, so that either the lookup never finds the cell or the cell is
/// freed only after the lookup's snapshot is withdrawn.
///
/// **Inserts.** With a lock around each insert, two threads inserting into one map moved the
/// stripe lock's line between their cores on most inserts: `dict-grow` at two threads ran
/// about 1.6 times one thread, and 1.9 to 2.1 times with each thread's keys in stripes of
/// their own. An insert without the lock goes in two steps (see `insert`):
/// 1. It looks for the key along its probe sequence (waiting, if another insert of the key
///    has reserved a word, for that one to decide), and reserves the first free word
///    (`empty` or `removed`) with a compare-and-swap, writing its cell's word with
///    `pendingBit` set. Lookups step over a reserved word: the key is not in yet.
/// 2. It reads the key's whole run again (up to the first empty word) for another cell of the
///    key, then publishes its own by clearing the bit. Another insert of the key, published,
///    wins. Two reserved at once: the one further along the run withdraws (its word becomes
///    `removed`) and the nearer one waits for it to decide. Each writes its word before it
///    reads the other's, so at least one of them sees the other, and no two publish.
/// A word that was ever filled never becomes empty again, so no key sits past an empty word,
/// and the run a lookup or an insert reads ends at the first one.
///
/// **Replacing the table** first freezes its free words (`frozen`, `frozenRemoved`) and
/// withdraws reservations, so an insert still on its way into it either was published before
/// (and is copied) or is refused (and goes to the new table under the lock).
///
/// **How many words are used** is an estimate, `estimatedUsed`, so that inserts do not all
/// write one counter, which cost two threads about half of what inserting without the lock
/// gained: a small table counts every word it fills, a big one the words at every eighth
/// position only, eight each.
@usableFromInline
final class _KeyTable<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
  @usableFromInline typealias Cell = _KeyedCell<Key, Value>

  @usableFromInline static var empty: UInt { 0 }
  @usableFromInline static var removed: UInt { 1 }
  /// An empty word closed by `rebuilt`: no insert lands there once the table's cells are
  /// being copied to its replacement. A lookup stops there as at an empty word.
  @usableFromInline static var frozen: UInt { 2 }
  /// A removed word closed by `rebuilt`, or a reservation it withdrew: a lookup steps over
  /// it as over a removed word, and no insert lands there.
  @usableFromInline static var frozenRemoved: UInt { 3 }
  /// The greatest marker: every word above it holds a cell's address.
  @usableFromInline static var lastMarker: UInt { 3 }
  /// Set in a word that an insert has reserved and not yet published (see the type's
  /// comment): bit 3, which a cell's address leaves clear.
  @usableFromInline static var pendingBit: UInt { 8 }
  /// The bits of a word that hold a cell's address: heap objects are 16-byte aligned, and
  /// user-space addresses on the 64-bit platforms Swift runs on fit in 48 bits (checked as
  /// each cell goes in: see `word(_:hash:)`).
  @usableFromInline static var addressMask: UInt { 0x0000_FFFF_FFFF_FFF0 }
  /// The bits of a word that hold hash bits (the hash's low 16 bits in the top 16, and its
  /// next 3 bits in the bottom 3), and `pendingBit`: a reserved word never matches a key's
  /// hash bits, so lookups step over it without a test of their own.
  @usableFromInline static var tagMask: UInt { ~addressMask }
  /// How many of a hash's low bits a word keeps: a table of at most 2^tagBits words is
  /// rebuilt from its words alone.
  @usableFromInline static var tagBits: Int { 19 }
  /// How many words an insert without the lock examines before it leaves the key to the
  /// locked path, which examines the whole table (and replaces it if it is full): at three
  /// quarters used, a probe runs about eight words on average. A bound, so that an insert
  /// without the lock cannot go round a full table for good.
  @usableFromInline static var probeLimitWithoutLock: Int { 256 }
  /// The size from which `estimatedUsed` counts the words at every eighth position only (see
  /// `countFilledWord(at:)`); below it, every one. The estimate's standard error at three
  /// quarters used is then at most about 7%.
  @usableFromInline static var sampledCountFrom: Int { 2_048 }

  /// What `insert(_:key:hash:probingAtMost:shown:)` did.
  @usableFromInline
  enum InsertOutcome {
    /// The cell went in; `crowded` is true when the table now seems over three quarters
    /// used, and should be replaced by a bigger one.
    case inserted(crowded: Bool)
    /// The key has a cell already (not retained).
    case found(Unmanaged<Cell>)
    /// The table is being replaced (a word is frozen), or no free word came within the probe
    /// limit: insert under the stripe's lock.
    case refused
  }

  /// What one pass of `insert` ended with: an outcome, or a withdrawal that starts it again.
  @usableFromInline
  enum InsertPass {
    case ended(InsertOutcome)
    case again
  }

  /// The number of words minus one (a power of two minus one).
  @usableFromInline let mask: Int
  @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt>>
  /// Keeps the fields below, which inserts and removals write, off the line of the two
  /// above, which every lookup reads: sharing it, two threads inserting into one map moved
  /// that line between their cores on most inserts.
  private let paddingAfterWords = _CacheLinePadding()
  /// Whether the table owns a retain on each of its cells: false once `rebuilt` has handed
  /// them over to its replacement, which lookups announced earlier may still be searching.
  private var ownsCells = true
  /// Words that are not empty (keys present and keys removed), estimated: exact when the
  /// table is made, then counted as `countFilledWord(at:)` says.
  @usableFromInline let estimatedUsed = Atomic<Int>(0)
  /// Set by the one insert that found the table crowded first, which then replaces it: the
  /// others leave it to that one instead of each making a spare table (see
  /// `_KeyIndex.makeCell`).
  @usableFromInline let replacementClaimed = Atomic<Bool>(false)
  /// Words that hold `removed`: counted by removals and by the inserts that reserve such a
  /// word or withdraw a reservation. Read without the lock, to size a spare table.
  @usableFromInline let removedWords = Atomic<Int>(0)

  /// The seed of the index the table belongs to (see `_KeyHash`), for a rebuild that hashes
  /// its keys again.
  @usableFromInline let hashSeed: UInt64

  /// An empty table with room for at least `minimumCount` keys, hashed with `hashSeed`.
  init(minimumCount: Int, hashSeed: UInt64) {
    self.hashSeed = hashSeed
    let capacity = Self.wordCount(forMinimumCount: minimumCount)
    mask = capacity - 1
    words = .allocate(capacity: capacity)
    for index in 0..<capacity { (words + index).initialize(to: Atomic(Self.empty)) }
  }

  /// How many words a table made for `minimumCount` keys has: a power of two, at least 16,
  /// with the keys filling at most three quarters of it.
  static func wordCount(forMinimumCount minimumCount: Int) -> Int {
    var capacity = 16
    while capacity * 3 < minimumCount * 4 + 4 { capacity *= 2 }
    return capacity
  }

  deinit {
    if ownsCells {
      for index in 0...mask {
        let word = words[index].load(ordering: .relaxed)
        if Self.holdsCell(word) { Self.cell(word).release() }
      }
    }
    words.deinitialize(count: mask + 1)
    words.deallocate()
  }

  /// Whether `word` holds a published cell (every cell's address is far above the markers).
  @inlinable @inline(__always)
  static func holdsCell(_ word: UInt) -> Bool { word > lastMarker && word & pendingBit == 0 }

  /// Whether `word` is a reservation (see `pendingBit`).
  @inlinable @inline(__always)
  static func isReserved(_ word: UInt) -> Bool { word > lastMarker && word & pendingBit != 0 }

  /// Whether a probe stops at `word`: `empty` or `frozen`, both of which are 0 once the bit
  /// that tells them apart is cleared (one test on a lookup's path instead of two).
  @inlinable @inline(__always)
  static func endsProbe(_ word: UInt) -> Bool { word & ~frozen == 0 }

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
      "swift-stm: a heap address uses its top 16 bits or is not 16-byte aligned, and TDictionary and TSet need those bits; this platform is not supported")
    return address | tag(hash)
  }

  /// The cell of `key`, whose hash value is `hash`, if the table has one. Safe without the
  /// lock while a snapshot is announced; the cell is not retained.
  ///
  /// Bounded by the table's size: inserts without the lock may fill every word before the
  /// table is replaced (their count is an estimate, and others keep inserting while one
  /// replaces it), and a probe for an absent key would then go round for good.
  @inlinable
  func find(_ key: Key, hash: Int) -> Unmanaged<Cell>? {
    var index = hash & mask
    let tag = Self.tag(hash)
    // A countdown of the words left, not a range: the range's loop cost a lookup twice the
    // instructions.
    var wordsLeft = mask
    while true {
      let word = words[index].load(ordering: .sequentiallyConsistent)
      if Self.endsProbe(word) { return nil }
      if word > Self.lastMarker && word & Self.tagMask == tag {
        let cell = Self.cell(word)
        if cell._withUnsafeGuaranteedRef({ _KeyHash.equal($0.key, key) }) { return cell }
      }
      if wordsLeft == 0 { return nil }
      wordsLeft &-= 1
      index = (index &+ 1) & mask
    }
  }

  /// The first cell, in the table's order, that satisfies `predicate`; searched as `find`
  /// searches, so safe without the lock while a snapshot is announced. The cell is not retained.
  @inlinable
  func firstCell(where predicate: (Cell) -> Bool) -> Unmanaged<Cell>? {
    for index in 0...mask {
      let word = words[index].load(ordering: .sequentiallyConsistent)
      guard Self.holdsCell(word) else { continue }
      let cell = Self.cell(word)
      if cell._withUnsafeGuaranteedRef(predicate) { return cell }
    }
    return nil
  }

  /// Keys present, estimated (see `estimatedUsed`).
  @inlinable
  var estimatedLive: Int { max(0, estimatedUsed.load(ordering: .relaxed) - removedWords.load(ordering: .relaxed)) }

  /// Whether fewer than an eighth of the words hold keys, by the estimate, in a table above
  /// the smallest sizes: one sized for its keys would be half its size or less. (A
  /// wrong estimate costs one replacement sized right: the replacement's count is exact.)
  @inlinable
  var isSparse: Bool { mask >= 63 && estimatedLive * 8 < mask + 1 }

  /// Adds `cell`, the new cell of `key` (whose hash value is `hash`), unless the key has one
  /// already; examines at most `limit` words for a free one. Safe without the lock while a
  /// snapshot is announced (which keeps a cell found valid memory). On `.inserted` the table
  /// takes over one retain on `cell`; otherwise the caller keeps it. `shown` becomes true
  /// once the cell has been in a word, reserved: another insert may then be reading its key,
  /// so the caller lets go of it only after the running snapshots (see `_KeyIndex.makeCell`).
  @inlinable
  func insert(_ cell: Unmanaged<Cell>, key: Key, hash: Int, probingAtMost limit: Int, shown: inout Bool) -> InsertOutcome {
    while true {
      if case .ended(let outcome) = insertPass(cell, key: key, hash: hash, probingAtMost: limit, shown: &shown) {
        return outcome
      }
    }
  }

  /// One pass of `insert`: step 1 of the type's comment, then `publish`.
  @inlinable
  func insertPass(_ cell: Unmanaged<Cell>, key: Key, hash: Int, probingAtMost limit: Int, shown: inout Bool) -> InsertPass {
    let home = hash & mask
    let tag = Self.tag(hash)
    let reservation = Self.word(cell, hash: hash) | Self.pendingBit
    var offset = 0
    while offset < min(limit, mask &+ 1) {
      let index = (home &+ offset) & mask
      let word = words[index].load(ordering: .sequentiallyConsistent)
      if word == Self.empty || word == Self.removed {
        guard words[index].compareExchange(expected: word, desired: reservation, ordering: .sequentiallyConsistent).exchanged
        else { continue }
        shown = true
        var crowded = false
        if word == Self.empty {
          crowded = countFilledWord(at: index)
        } else {
          removedWords.wrappingSubtract(1, ordering: .relaxed)
        }
        return publish(reservation, at: offset, key: key, home: home, tag: tag, crowded: crowded)
      }
      if word == Self.frozen || word == Self.frozenRemoved { return .ended(.refused) }
      if word > Self.lastMarker && word & Self.tagMask & ~Self.pendingBit == tag,
        Self.cell(word)._withUnsafeGuaranteedRef({ _KeyHash.equal($0.key, key) })
      {
        guard Self.isReserved(word) else { return .ended(.found(Self.cell(word))) }
        // Another insert of the key is deciding: its outcome is this one's.
        waitWhile(wordAt: index, holds: word)
        continue
      }
      offset &+= 1
    }
    return .ended(.refused)
  }

  /// Step 2 of the type's comment, for the reservation at `offset` words from `home`.
  @inlinable
  func publish(_ reservation: UInt, at ownOffset: Int, key: Key, home: Int, tag: UInt, crowded: Bool) -> InsertPass {
    let ownIndex = (home &+ ownOffset) & mask
    var offset = 0
    while offset <= mask {
      let index = (home &+ offset) & mask
      if offset == ownOffset {
        offset &+= 1
        continue
      }
      let word = words[index].load(ordering: .sequentiallyConsistent)
      // The end of the run (a frozen word was empty when a replacement froze it): no key sits
      // past an empty word, since a word that was ever filled never becomes empty again.
      if Self.endsProbe(word) { break }
      if word > Self.lastMarker && word & Self.tagMask & ~Self.pendingBit == tag,
        Self.cell(word)._withUnsafeGuaranteedRef({ _KeyHash.equal($0.key, key) })
      {
        if !Self.isReserved(word) {
          withdraw(reservation, at: ownIndex)
          return .ended(.found(Self.cell(word)))
        }
        if offset < ownOffset {
          // A nearer reservation of the key wins: this one withdraws, and starts again once
          // that one is decided.
          withdraw(reservation, at: ownIndex)
          waitWhile(wordAt: index, holds: word)
          return .again
        }
        // A farther one withdraws once it sees this one, or publishes if it read this word
        // before this reservation was made: wait for it, then read its word again.
        waitWhile(wordAt: index, holds: word)
        continue
      }
      offset &+= 1
    }
    // Fails only if a replacement of the table withdrew the reservation (see `rebuilt`).
    let published = words[ownIndex].compareExchange(
      expected: reservation, desired: reservation & ~Self.pendingBit, ordering: .sequentiallyConsistent
    ).exchanged
    return .ended(published ? .inserted(crowded: crowded) : .refused)
  }

  /// Turns this insert's reservation at `index` into a removed word, unless a replacement of
  /// the table has withdrawn it already.
  @inlinable
  func withdraw(_ reservation: UInt, at index: Int) {
    if words[index].compareExchange(expected: reservation, desired: Self.removed, ordering: .sequentiallyConsistent).exchanged {
      removedWords.wrappingAdd(1, ordering: .relaxed)
    }
  }

  /// Waits while the word at `index` still holds `value` (a reservation another insert is
  /// deciding, which it does without waiting for this one).
  @inlinable
  func waitWhile(wordAt index: Int, holds value: UInt) {
    var backoff = _Backoff()
    while words[index].load(ordering: .sequentiallyConsistent) == value { backoff.pause() }
  }

  /// Counts a word that an insert filled, at `index`, in `estimatedUsed`, and says whether
  /// the table now seems crowded. A table of `sampledCountFrom` words or more counts only the
  /// words at positions that are multiples of eight, eight each: each word is filled once,
  /// so the estimate follows the words used whichever keys fill them.
  @inlinable @inline(__always)
  func countFilledWord(at index: Int) -> Bool {
    let words = mask &+ 1
    let weight: Int
    if words < Self.sampledCountFrom {
      weight = 1
    } else if index & 7 == 0 {
      weight = 8
    } else {
      return false
    }
    return estimatedUsed.wrappingAdd(weight, ordering: .relaxed).newValue * 4 > words * 3
  }

  /// Whether the table holds `cell` itself, whose key's hash value is `hash`: found by the
  /// cell's address, not by its key, which may not even equal itself (a `Double.nan`). Needs
  /// the lock, as `remove(_:hash:)` does.
  @inlinable
  func holds(_ cell: Cell, hash: Int) -> Bool {
    let target = Self.word(Unmanaged.passUnretained(cell), hash: hash)
    var index = hash & mask
    for _ in 0...mask {
      let word = words[index].load(ordering: .relaxed)
      if Self.endsProbe(word) { return false }
      if word == target { return true }
      index = (index &+ 1) & mask
    }
    return false
  }

  /// Takes `cell` out, if the table has it, and hands over the table's retain on it. Needs the
  /// lock. Its loads are relaxed: it compares words and reads no cell through them.
  @inlinable
  func remove(_ cell: Cell, hash: Int) -> Unmanaged<Cell>? {
    let target = Self.word(Unmanaged.passUnretained(cell), hash: hash)
    var index = hash & mask
    for _ in 0...mask {
      let word = words[index].load(ordering: .relaxed)
      if Self.endsProbe(word) { return nil }
      if word == target {
        // Inserts change only free words and their own reservations, so none races this store.
        words[index].store(Self.removed, ordering: .sequentiallyConsistent)
        removedWords.wrappingAdd(1, ordering: .relaxed)
        return Self.cell(word)
      }
      index = (index &+ 1) & mask
    }
    return nil
  }

  /// Calls `body` with every cell in the table. Needs the lock (inserts may still come in:
  /// the loads acquire the fields of cells they publish).
  @inlinable
  func forEachCell(_ body: (Cell) -> Void) {
    for index in 0...mask {
      let word = words[index].load(ordering: .acquiring)
      if Self.holdsCell(word) { Self.cell(word)._withUnsafeGuaranteedRef(body) }
    }
  }

  /// How many cells the table holds, counted word by word; for tests.
  var cellCount: Int {
    (0...mask).reduce(0) { count, index in count + (Self.holdsCell(words[index].load(ordering: .acquiring)) ? 1 : 0) }
  }

  /// A new table holding this one's cells, with room for `extra` more; this table's retains
  /// on them move over, so that a cell taken out of the new table is not kept alive by the old.
  /// Needs the lock. This table's free words are frozen first, and its reservations
  /// withdrawn, so that no insert lands here once the cells are counted: an insert published
  /// before is copied, and one that meets a frozen word or its withdrawn reservation goes to
  /// the new table.
  ///
  /// The new table is `spare` when that is empty and of the size needed (see
  /// `_KeyIndex.makeCell`, which makes it before taking the lock). It has room for twice its
  /// keys, and for `reserved` keys at least (what `init(minimumCapacity:)` reserved).
  ///
  /// Up to `wordLimit` words (2^tagBits; tests pass less), a cell's place in the new table
  /// comes from the hash bits in its word; past that, its key is hashed again.
  func rebuilt(makingRoomFor extra: Int, keepingRoomFor reserved: Int = 0, wordLimit: Int = 1 << tagBits, into spare: _KeyTable? = nil) -> _KeyTable {
    var cells = 0
    for index in 0...mask {
      while true {
        let word = words[index].load(ordering: .acquiring)
        let closed =
          word == Self.empty ? Self.frozen : word == Self.removed || Self.isReserved(word) ? Self.frozenRemoved : word
        if closed == word || words[index].compareExchange(expected: word, desired: closed, ordering: .sequentiallyConsistent).exchanged {
          if Self.holdsCell(closed) { cells += 1 }
          break
        }
      }
    }
    let minimumCount = max(2 * (cells + extra), reserved)
    let grown =
      if let spare, spare.mask + 1 == Self.wordCount(forMinimumCount: minimumCount), spare.estimatedUsed.load(ordering: .relaxed) == 0 {
        spare
      } else {
        _KeyTable(minimumCount: minimumCount, hashSeed: hashSeed)
      }
    let wordsSuffice = grown.mask < wordLimit
    for index in 0...mask {
      let word = words[index].load(ordering: .acquiring)
      guard Self.holdsCell(word) else { continue }
      let cell = Self.cell(word)
      let hash = wordsSuffice ? Self.hashBits(word) : cell._withUnsafeGuaranteedRef { self.hash(of: $0.key) }
      grown.place(cell, hash: hash)
    }
    // Exact: the new table has no removed words. Shown with the table (a sequentially
    // consistent store of its address), like its words.
    grown.estimatedUsed.store(cells, ordering: .relaxed)
    ownsCells = false
    return grown
  }

  /// Puts `cell` in the first empty word of its probe sequence, in a table that no other
  /// thread can see yet (see `rebuilt`).
  private func place(_ cell: Unmanaged<Cell>, hash: Int) {
    var index = hash & mask
    while words[index].load(ordering: .relaxed) != Self.empty { index = (index &+ 1) & mask }
    words[index].store(Self.word(cell, hash: hash), ordering: .relaxed)
  }
}
