@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// New keys go into the index without the stripe's lock, with a compare-and-swap on a table
  /// word, while other threads replace the table under the lock (see `_KeyTable`). No key may
  /// be lost to a table being replaced, and no key may get two cells.
  @Suite struct ConcurrencyLockFreeInsertTests {
    typealias Index = _KeyIndex<Int, Int>

    /// Every key the index's tables hold, stripe by stripe, with repeats.
    static func keysInTables<Value>(of index: _KeyIndex<Int, Value>) -> [Int] {
      var keys: [Int] = []
      for stripe in index.stripes {
        stripe._withUnsafeGuaranteedRef { stripe in
          stripe.state.withLock { $0.table.forEachCell { keys.append($0.key) } }
        }
      }
      return keys
    }

    /// 8 threads (more than cores) insert disjoint keys, interleaved as `dict-grow` does, into
    /// a dictionary that starts with the smallest tables: every stripe's table is replaced
    /// several times while the other threads insert into it.
    @Test func insertsWhileTablesAreReplacedLoseNoKey() {
      let threads = 8, total = TestScale.scaled(60_000)
      let dict = TDictionary<Int, Int>()
      runThreads(threads) { thread in
        for key in stride(from: thread, to: total, by: threads) { dict.updateValue(key, forKey: key) }
      }
      #expect(dict.count == total)
      #expect((0..<total).filter { dict[$0] != $0 }.prefix(5) == [])
      let keys = Self.keysInTables(of: dict.storage.index)
      #expect(keys.count == total)
      #expect(Set(keys).count == keys.count)
      #expect(dict.storage.index.stripes.allSatisfy { $0._withUnsafeGuaranteedRef { $0.currentTable._withUnsafeGuaranteedRef { $0.mask } } > 15 })
    }

    /// The same for a set, whose index is the same kind.
    @Test func setInsertsWhileTablesAreReplacedLoseNoElement() {
      let threads = 8, total = TestScale.scaled(40_000)
      let set = TSet<Int>()
      runThreads(threads) { thread in
        for element in stride(from: thread, to: total, by: threads) { set.insert(element) }
      }
      #expect(set.count == total)
      #expect((0..<total).filter { !set.contains($0) }.prefix(5) == [])
      let keys = Self.keysInTables(of: set.storage.index)
      #expect(keys.count == total)
      #expect(Set(keys).count == keys.count)
    }

    /// 8 threads insert the same new keys in the same order, released together, while the
    /// tables grow: inserts of one key race for the same word, and the losers must use the
    /// winner's cell (or their increments are lost) and leave no second cell in the table.
    /// Through each drop-in road that inserts with a default: the subscript's, and the update's
    /// with a closure that cannot throw and with one that can (its own two passes, which no
    /// race test ran: a default that overwrote a key inserted between them went unnoticed;
    /// found by review).
    @Test(arguments: IncrementRoad.allCases)
    func threadsInsertingTheSameKeysWhileTablesGrowShareOneCellPerKey(road: IncrementRoad) {
      let threads = 8, keys = TestScale.scaled(20_000)
      let dict = TDictionary<Int, Int>()
      runThreads(threads) { _ in
        for key in 0..<keys { road.increment(key, in: dict) }
      }
      #expect(dict.count == keys)
      #expect((0..<keys).filter { dict[$0] != threads }.prefix(5) == [])
      let inTables = Self.keysInTables(of: dict.storage.index)
      #expect(inTables.count == keys)
      #expect(Set(inTables).count == keys)
    }

    /// Inserts and lookups of absent keys inside transactions (whose cells count toward the
    /// stripe's next sweep, under the lock) run beside drop-in inserts and removals of other
    /// keys: the inserted keys all stay, the removed ones all go.
    @Test func transactionalLookupsAndRemovalsBesideInsertsKeepTheIndexRight() {
      let threads = 6, perThread = TestScale.scaled(4_000)
      let dict = TDictionary<Int, Int>()
      runThreads(threads) { thread in
        let base = thread * perThread
        for offset in 0..<perThread {
          let key = base + offset
          switch thread % 3 {
          case 0:
            dict[key] = key
          case 1:
            // Looks up an absent key, then inserts the key.
            atomically { _ in
              if dict[-key - 1] == nil { dict[key] = key }
            }
          default:
            dict[key] = key
            if offset % 2 == 1 { dict[key - 1] = nil }
          }
        }
      }
      let expected = (0..<threads * perThread).filter { key in !((key / perThread) % 3 == 2 && (key % perThread) % 2 == 0) }
      #expect(dict.count == expected.count)
      #expect(expected.filter { dict[$0] != $0 }.prefix(5) == [])
      let cells = Self.keysInTables(of: dict.storage.index)
      #expect(Set(cells).count == cells.count)
    }
  }
}

extension LibraryTests.ConcurrencyLockFreeInsertTests {
  /// The words of every stripe's current table.
  static func words<Value>(of index: _KeyIndex<Int, Value>) -> Int {
    index.stripes.reduce(0) { total, stripe in
      total + stripe._withUnsafeGuaranteedRef { $0.state.withLock { $0.table.mask + 1 } }
    }
  }

  /// A map or set emptied by removals gives its index's words back: a table under an eighth
  /// full is replaced by a smaller one. (Tables only grew: a map emptied of a million keys kept
  /// 22 MB of words, and enumerating it took 65 ms; found by review.)
  /// Maps and sets made from contents (which size their index for them) shrink too: only
  /// `init(minimumCapacity:)` reserves room (found by a review of the first version).
  @Test(arguments: ["removeAll", "one by one", "set", "map from contents", "set from contents"])
  func anIndexEmptiedByRemovalsShrinks(removal: String) {
    let keys = 100_000
    let fresh = Self.words(of: TDictionary<Int, Int>().storage.index)
    let dict =
      removal == "map from contents" ? TDictionary(uniqueKeysWithValues: (0..<keys).map { ($0, $0) }) : TDictionary<Int, Int>()
    let set = removal == "set from contents" ? TSet(0..<keys) : TSet<Int>()
    let index = removal.hasPrefix("set") ? nil : dict.storage.index
    func wordsNow() -> Int { index.map { Self.words(of: $0) } ?? Self.words(of: set.storage.index) }
    if removal == "set" { set.formUnion(0..<keys) }
    if removal == "removeAll" || removal == "one by one" { for key in 0..<keys { dict[key] = key } }
    let full = wordsNow()
    #expect(full >= keys)
    switch removal {
    case "one by one": for key in 0..<keys { dict.removeValue(forKey: key) }
    case "set", "set from contents": set.removeAll()
    default: dict.removeAll()
    }
    // Each stripe ends at most one step above the smallest table: under eight keys in 64 words.
    let emptied = wordsNow()
    #expect(emptied <= fresh * 4, "\(emptied) words kept for no key, from \(full)")
    // The index works on: keys go in again, and the tables grow for them.
    if index == nil { set.formUnion(0..<1_000) } else { for key in 0..<1_000 { dict[key] = -key } }
    #expect(index == nil ? set.count == 1_000 && set.elements.sorted() == Array(0..<1_000) : dict.count == 1_000 && dict.dictionary == Dictionary(uniqueKeysWithValues: (0..<1_000).map { ($0, -$0) }))
  }

  /// An index made with room for keys keeps that room when keys go: shrunk at the first
  /// removals, it grew again, step by step, as the map filled (found by review).
  @Test func removalsDoNotShrinkAnIndexBelowItsReservedRoom() {
    let dict = TDictionary<Int, Int>(minimumCapacity: 100_000)
    let reserved = Self.words(of: dict.storage.index)
    for key in 0..<1_000 { dict[key] = key }
    // Lookups of absent keys in transactions make empty cells, which sweeps retire.
    for key in 0..<500 { atomically { _ in _ = dict[-key - 1] } }
    for key in 0..<1_000 { dict.removeValue(forKey: key) }
    #expect(Self.words(of: dict.storage.index) == reserved)
    for key in 0..<100_000 { dict[key] = key }
    #expect(Self.words(of: dict.storage.index) == reserved, "the index grew though it had room reserved")
    #expect(dict.count == 100_000)
  }

  /// Churn fills a table's words with removed markers until it is crowded; its replacement
  /// keeps the reserved room too (it was sized for the few keys present; found by review).
  @Test func churnDoesNotShrinkAnIndexBelowItsReservedRoom() {
    let dict = TDictionary<Int, Int>(minimumCapacity: 20_000)
    let reserved = Self.words(of: dict.storage.index)
    for key in 0..<100_000 {
      dict[key] = key
      dict.removeValue(forKey: key)
    }
    #expect(Self.words(of: dict.storage.index) == reserved)
    #expect(dict.isEmpty)
  }

  /// Threads insert and then remove waves of keys, so that every stripe's table grows and
  /// shrinks again and again, while other threads look keys up, insert keys that stay, and
  /// read in transactions: no key is lost or found twice, and a transaction's count agrees
  /// with its enumeration.
  @Test func insertsAndRemovalsWhileTablesGrowAndShrinkKeepTheIndexRight() {
    let threads = 6, waves = TestScale.scaled(4), wave = 16_000
    let dict = TDictionary<Int, Int>()
    let disagreements = Atomic<Int>(0)
    runThreads(threads) { thread in
      switch thread % 3 {
      case 0:
        // Waves of keys of its own, inserted, then removed.
        for round in 0..<waves {
          let base = (thread * waves + round) * wave
          for key in base..<base + wave { dict[key] = key }
          for key in base..<base + wave { dict.removeValue(forKey: key) }
        }
      case 1:
        // Keys that stay, each inserted in a transaction after a lookup of an absent key.
        for offset in 0..<waves * 200 {
          let key = -(thread * 1_000_000 + offset) - 1
          atomically { _ in if dict[key - 500_000] == nil { dict[key] = key } }
        }
      default:
        for _ in 0..<waves * 4 {
          atomically { _ in
            let snapshot = dict.dictionary
            if snapshot.count != dict.count || snapshot.contains(where: { $0.key != $0.value }) {
              disagreements.add(1, ordering: .relaxed)
            }
          }
        }
      }
    }
    #expect(disagreements.load(ordering: .relaxed) == 0)
    let stayers = (0..<threads).filter { $0 % 3 == 1 }.flatMap { thread in
      (0..<waves * 200).map { -(thread * 1_000_000 + $0) - 1 }
    }
    #expect(dict.count == stayers.count)
    #expect(stayers.filter { dict[$0] != $0 }.prefix(5) == [])
    let inTables = Self.keysInTables(of: dict.storage.index)
    #expect(Set(inTables).count == inTables.count)
    #expect(Set(inTables).isSuperset(of: stayers))
  }

  /// The key whose hash, in an index seeded with `seed`, is `hash`: the index's mixing of an
  /// integer key is a bijection, undone here step by step.
  static func key(withHash hash: UInt64, seed: UInt64) -> Int {
    /// The inverse of an odd number modulo 2^64 (Newton's iteration doubles the correct bits).
    func inverse(_ odd: UInt64) -> UInt64 {
      var inverse = odd
      for _ in 0..<5 { inverse = inverse &* (2 &- odd &* inverse) }
      return inverse
    }
    /// Undoes `bits ^= bits >> shift`.
    func unshift(_ value: UInt64, _ shift: UInt64) -> UInt64 {
      var bits = value
      var step = shift
      while step < 64 {
        bits ^= value >> step
        step += shift
      }
      return bits
    }
    var bits = unshift(hash, 31)
    bits = unshift(bits &* inverse(0x94D0_49BB_1331_11EB), 27)
    bits = unshift(bits &* inverse(0xBF58_476D_1CE4_E5B9), 30)
    let key = Int(bitPattern: UInt(bits ^ seed))
    precondition(_KeyHash.hash(of: key, seed: seed) == Int(bitPattern: UInt(hash)), "the inverse of the key mixing is wrong")
    return key
  }

  /// `count` keys of stripe 0 whose probes start at word `home` of a table of `words` words.
  static func keys(startingAt home: Int, inTableOf words: Int, count: Int, seed: UInt64) -> [Int] {
    (0..<count).map { index in
      key(withHash: UInt64(index + 1) << 20 | UInt64(home), seed: seed)
    }
  }

  /// Puts `table` in stripe 0 of `index` in place of its own, as a replacement would.
  static func install(_ table: Index.Table, inStripe0Of index: Index) {
    index.stripes[0]._withUnsafeGuaranteedRef { stripe in
      stripe.state.withLock { $0.table = table }
      stripe.table.store(UInt(bitPattern: Unmanaged.passUnretained(table).toOpaque()), ordering: .sequentiallyConsistent)
    }
  }

  static func stripe0Words(of index: Index) -> Int {
    index.stripes[0]._withUnsafeGuaranteedRef { $0.state.withLock { $0.table.mask + 1 } }
  }

  /// A table whose words all fill up before its estimate says it is crowded (the estimate
  /// lags, or other threads insert while one replaces it) refuses an insert; the insert then
  /// replaces the table under the lock, however low the estimate, and goes into the new one.
  /// A long run in a roomy table (keys whose hashes collide) is not a reason to replace it:
  /// the insert examines the whole run under the lock instead, as a lookup would, where
  /// replacing the table at each such insert made n colliding keys cost n³.
  @Test(arguments: [(words: 16, filled: 16, replaced: true), (words: 512, filled: 300, replaced: false)])
  func aFullTableIsReplacedAndALongRunIsNot(words: Int, filled: Int, replaced: Bool) {
    let dict = TDictionary<Int, Int>()
    let index = dict.storage.index
    let fillers = Self.keys(startingAt: 3, inTableOf: words, count: filled + 1, seed: index.hashSeed)
    let table = Index.Table(minimumCount: words * 3 / 4 - 1, hashSeed: index.hashSeed)
    #expect(table.mask + 1 == words)
    for key in fillers.prefix(filled) {
      let cell = Unmanaged.passRetained(Index.Cell(key: key))
      var shown = false
      let outcome = table.insert(cell, key: key, hash: table.hash(of: key), probingAtMost: words, shown: &shown)
      guard case .inserted = outcome else { preconditionFailure("a filler key did not go in") }
    }
    // The estimate lags behind the words used.
    table.estimatedUsed.store(0, ordering: .relaxed)
    Self.install(table, inStripe0Of: index)
    #expect(filled >= min(words, Index.Table.probeLimitWithoutLock))

    let newKey = fillers[filled]
    dict[newKey] = 7
    #expect((Self.stripe0Words(of: index) > words) == replaced)
    #expect(dict[newKey] == 7)
    #expect(dict.count == 1)
    #expect(fillers.prefix(filled).filter { dict[$0] != nil } == [])
    let inTables = Self.keysInTables(of: index)
    #expect(inTables.count == filled + 1)
    #expect(Set(inTables) == Set(fillers))
  }

  /// A key removed and inserted again, over and over, reuses its removed word: its run does
  /// not grow, and the table is not replaced.
  @Test func aKeyRemovedAndInsertedAgainKeepsItsRunShort() {
    let dict = TDictionary<Int, Int>()
    let index = dict.storage.index
    for key in 0..<1_000 { dict[key] = key }
    let stripe = index.stripe(forHash: index.hash(of: 7))
    let wordsBefore = stripe._withUnsafeGuaranteedRef { $0.state.withLock { $0.table.mask + 1 } }
    for round in 0..<TestScale.scaled(5_000) {
      dict[7] = nil
      dict[7] = round
    }
    let (words, removed) = stripe._withUnsafeGuaranteedRef { $0.state.withLock { ($0.table.mask + 1, $0.table.removedWords.load(ordering: .relaxed)) } }
    #expect(words == wordsBefore)
    #expect(removed <= 1)
    #expect(dict[7] == TestScale.scaled(5_000) - 1)
    #expect(dict.count == 1_000)
  }

  /// 8 threads insert, update and remove the same few hundred keys, all in one stripe, whose
  /// table starts at 16 words: inserts of one key race for reserved and removed words while
  /// removals free others and the table is replaced several times. Each key keeps at most one
  /// cell, and the count agrees with the keys present.
  @Test func racingInsertsAndRemovalsInOneGrowingStripeKeepOneCellPerKey() {
    let threads = 8, rounds = TestScale.scaled(3_000)
    let dict = TDictionary<Int, Int>()
    let keys = (1...300).map { Self.key(withHash: UInt64($0) &* 0x9E37, seed: dict.storage.index.hashSeed) }
    #expect(keys.allSatisfy { dict.storage.index.stripe(forHash: dict.storage.index.hash(of: $0)).toOpaque() == dict.storage.index.stripes[0].toOpaque() })
    runThreads(threads) { thread in
      var random = SeededRandom(seed: UInt64(thread + 100))
      for _ in 0..<rounds {
        let key = keys[random.below(keys.count)]
        if random.below(4) == 0 { dict[key] = nil } else { dict[key, default: 0] += 1 }
      }
    }
    let inTables = Self.keysInTables(of: dict.storage.index)
    #expect(Set(inTables).count == inTables.count)
    #expect(dict.count == keys.filter { dict[$0] != nil }.count)
    #expect(Self.stripe0Words(of: dict.storage.index) > 16)
  }

  /// An insert lets go of a cell it reserved and did not publish only once the snapshots
  /// running then have ended: another insert of the key may have loaded the reserved word and
  /// be reading the cell's key.
  @Test func aCellThatWasReservedIsFreedOnlyAfterTheRunningSnapshots() {
    let pinned = TVar(0)
    weak var reserved: Index.Cell?
    let release = pinSnapshot(reading: pinned)
    do {
      let cell = Index.Cell(key: 1)
      reserved = cell
      Index.letGo(.passRetained(cell), shown: true)
    }
    #expect(reserved != nil, "a reserved cell was freed while a snapshot from before was running")
    release()
    _Engine.shared.reclaimer.releaseWhatNoSnapshotNeeds()
    #expect(reserved == nil, "a reserved cell was kept after the snapshots had ended")
    weak var unseen: Index.Cell?
    do {
      let cell = Index.Cell(key: 2)
      unseen = cell
      Index.letGo(.passRetained(cell), shown: false)
    }
    #expect(unseen == nil)
  }

  /// 8 threads insert, update and remove the same few keys at once: inserts of one key race
  /// for reserved and removed words while removals free others. Each key keeps at most one
  /// cell, and the count agrees with the keys present.
  @Test func racingInsertsAndRemovalsOfTheSameKeysKeepOneCellPerKey() {
    let threads = 8, keys = 16, rounds = TestScale.scaled(4_000)
    let dict = TDictionary<Int, Int>()
    runThreads(threads) { thread in
      var random = SeededRandom(seed: UInt64(thread + 1))
      for _ in 0..<rounds {
        let key = random.below(keys)
        if random.below(4) == 0 { dict[key] = nil } else { dict[key, default: 0] += 1 }
      }
    }
    let inTables = Self.keysInTables(of: dict.storage.index)
    #expect(Set(inTables).count == inTables.count)
    #expect(dict.count == (0..<keys).filter { dict[$0] != nil }.count)
    // With the removals stopped, increments of a present key are all kept.
    runThreads(threads) { _ in
      for key in 0..<keys { dict[key, default: 0] += 1 }
    }
    let before = (0..<keys).map { dict[$0] ?? 0 }
    runThreads(threads) { _ in
      for key in 0..<keys { dict[key, default: 0] += 1 }
    }
    #expect((0..<keys).map { dict[$0] ?? 0 } == before.map { $0 + threads })
  }
}

/// The drop-in roads that add 1 to a key, inserting it with 0 first if absent.
enum IncrementRoad: CaseIterable, Sendable {
  case defaultSubscript, update, throwingUpdate

  private struct NeverThrown: Error {}

  func increment(_ key: Int, in dict: TDictionary<Int, Int>) {
    switch self {
    case .defaultSubscript: dict[key, default: 0] += 1
    case .update: dict.update(forKey: key, default: 0) { $0 += 1 }
    case .throwingUpdate: try! dict.update(forKey: key, default: 0) { (value: inout Int) throws(NeverThrown) in value += 1 }
    }
  }
}
