@testable import STM
@testable import STMCore
import Dispatch
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// One stripe's table of key cells, on its own thread: what its words keep beside each cell,
  /// and that a grown table finds every key whichever way it placed them.
  @Suite struct KeyTableTests {
    typealias Table = _KeyTable<Int, Int>

    /// A table holding a cell for each of `keys`, and the cells, which the caller keeps so
    /// that it can check the table's lookups by identity.
    static func table(holding keys: Range<Int>) -> (Table, [Table.Cell]) {
      let table = Table(minimumCount: keys.count, hashSeed: 0x5EED)
      let cells = keys.map { Table.Cell(key: $0) }
      for cell in cells {
        var shown = false
        let outcome = table.insert(
          .passRetained(cell), key: cell.key, hash: table.hash(of: cell.key), probingAtMost: table.mask + 1, shown: &shown)
        guard case .inserted = outcome else { preconditionFailure("a new key's cell did not go in: \(outcome)") }
      }
      return (table, cells)
    }

    /// The keys that `table` gets wrong: those of `cells` it does not find in their cell, and
    /// those of `absent` it finds.
    static func misplacedKeys(_ cells: [Table.Cell], absent: Range<Int>, in table: Table) -> [Int] {
      let lost = cells.filter { cell in
        table.find(cell.key, hash: table.hash(of: cell.key))?.toOpaque() != Unmanaged.passUnretained(cell).toOpaque()
      }
      return lost.map(\.key) + absent.filter { table.find($0, hash: table.hash(of: $0)) != nil }
    }

    @Test func aWordKeepsTheLowBitsOfItsKeysHash() {
      let (table, cells) = Self.table(holding: 0..<200)
      var keysWithWrongBits: [Int] = []
      for index in 0...table.mask {
        let word = table.words[index].load(ordering: .relaxed)
        guard Table.holdsCell(word) else { continue }
        let key = Table.cell(word)._withUnsafeGuaranteedRef { $0.key }
        if Table.hashBits(word) != table.hash(of: key) & (1 << Table.tagBits - 1) { keysWithWrongBits.append(key) }
      }
      #expect(keysWithWrongBits == [])
      #expect(Self.misplacedKeys(cells, absent: 200..<400, in: table) == [])
    }

    /// A table grows from its words alone up to `wordLimit` words, and by hashing its keys
    /// again past that: both must put every cell where lookups look for it, with the removed
    /// words left behind.
    @Test(arguments: [1 << Table.tagBits, 0])
    func aGrownTableFindsEveryKeyItHeld(wordLimit: Int) {
      let (table, cells) = Self.table(holding: 0..<3_000)
      for cell in cells.prefix(1_000) { _ = table.remove(cell, hash: table.hash(of: cell.key))?.release() }
      let kept = Array(cells.dropFirst(1_000))
      let grown = table.rebuilt(makingRoomFor: 5_000, wordLimit: wordLimit)
      #expect(grown.cellCount == kept.count)
      #expect(grown.estimatedUsed.load(ordering: .relaxed) == kept.count)
      #expect(grown.removedWords.load(ordering: .relaxed) == 0)
      #expect(grown.mask + 1 > table.mask + 1)
      #expect(Self.misplacedKeys(kept, absent: 0..<1_000, in: grown) == [])
      #expect(Self.misplacedKeys([], absent: 3_000..<6_000, in: grown) == [])
    }

    /// Keys whose probes start at `home` in a table of `words` words hashed with the tests' seed.
    static func keys(startingAt home: Int, inTableOf words: Int, count: Int) -> [Int] {
      let table = Table(minimumCount: words * 3 / 4 - 1, hashSeed: 0x5EED)
      precondition(table.mask + 1 == words)
      return Array((0...).lazy.filter { table.hash(of: $0) & table.mask == home }.prefix(count))
    }

    /// Inserts a new cell for `key`, examining at most `limit` words (the whole table if nil).
    static func insert(_ key: Int, into table: Table, probingAtMost limit: Int? = nil) -> Table.InsertOutcome {
      let cell = Unmanaged.passRetained(Table.Cell(key: key))
      var shown = false
      let outcome = table.insert(cell, key: key, hash: table.hash(of: key), probingAtMost: limit ?? table.mask + 1, shown: &shown)
      if case .inserted = outcome {} else { cell.release() }
      return outcome
    }

    /// Inserts without the lock may fill every word before the table is replaced; a lookup of
    /// an absent key must still end (it went round the table for good when only an empty
    /// word stopped it). Run on a thread of its own, so that a lookup that never ends fails
    /// the test instead of hanging the run.
    @Test func aLookupInAFullTableEnds() {
      let table = Table(minimumCount: 0, hashSeed: 0x5EED)
      #expect(table.mask + 1 == 16)
      for key in 0..<16 { #expect(Self.insert(key, into: table).isInserted) }
      #expect((0...table.mask).allSatisfy { Table.holdsCell(table.words[$0].load(ordering: .relaxed)) })
      let answered = DispatchSemaphore(value: 0)
      // `_Lock`, not `Mutex`: Thread Sanitizer cannot see the ordering `Mutex` gives on Linux.
      let found = _Lock<[Int]>([])
      startThread {
        let absentFound = (16..<32).filter { table.find($0, hash: table.hash(of: $0)) != nil }
        found.withLock { $0 = absentFound }
        answered.signal()
      }
      #expect(answered.wait(timeout: .now() + 10) == .success, "a lookup of an absent key in a full table did not end")
      #expect(found.withLock { $0 } == [])
      #expect((0..<16).allSatisfy { table.find($0, hash: table.hash(of: $0)) != nil })
      #expect(Self.insert(99, into: table) == .refused)
    }

    /// Replacing a table closes its empty words: an insert still on its way into it is refused
    /// (and goes to the new table under the lock) instead of landing where no copy looks,
    /// while lookups that still search it find its keys and stop at the closed words.
    @Test func aReplacedTableRefusesInsertsAndStillAnswersLookups() {
      let (table, cells) = Self.table(holding: 0..<10)
      let grown = table.rebuilt(makingRoomFor: 1)
      #expect((0...table.mask).allSatisfy { table.words[$0].load(ordering: .relaxed) != Table.empty })
      #expect(Self.insert(10, into: table) == .refused)
      #expect(Self.insert(10, into: table, probingAtMost: 1) == .refused)
      #expect(Self.misplacedKeys(cells, absent: 10..<100, in: table) == [])
      #expect(Self.misplacedKeys(cells, absent: 10..<100, in: grown) == [])
      #expect(Self.insert(10, into: grown).isInserted)
    }

    /// Two inserts of one key meet at the same word: the second finds the first's cell.
    @Test func anInsertOfAKeyPresentFindsItsCell() {
      let (table, cells) = Self.table(holding: 0..<100)
      for cell in cells {
        #expect(Self.insert(cell.key, into: table) == .found(.passUnretained(cell)))
      }
      #expect(table.cellCount == 100)
    }

    /// An insert reuses the first free word of its probe sequence, a removed one included,
    /// so that a key removed and inserted again does not lengthen its run each time.
    @Test func anInsertReusesARemovedWord() {
      let keys = Self.keys(startingAt: 5, inTableOf: 64, count: 3)
      let table = Table(minimumCount: 40, hashSeed: 0x5EED)
      for key in keys.prefix(2) { #expect(Self.insert(key, into: table).isInserted) }
      let first = table.find(keys[0], hash: table.hash(of: keys[0]))!
      _ = table.remove(first.takeUnretainedValue(), hash: table.hash(of: keys[0]))?.release()
      #expect(table.words[5].load(ordering: .relaxed) == Table.removed)
      #expect(table.removedWords.load(ordering: .relaxed) == 1)
      #expect(Self.insert(keys[2], into: table).isInserted)
      #expect(Table.holdsCell(table.words[5].load(ordering: .relaxed)))
      #expect(table.words[7].load(ordering: .relaxed) == Table.empty)
      #expect(table.removedWords.load(ordering: .relaxed) == 0)
      #expect(table.estimatedUsed.load(ordering: .relaxed) == 2)
      #expect(Self.misplacedKeys([], absent: keys[0]..<keys[0] + 1, in: table) == [])
    }

    /// An insert without the lock examines at most its limit of words, then leaves the key to
    /// the locked path (which replaces the table: it is fuller than its count says).
    @Test func anInsertGivesUpPastItsProbeLimit() {
      let keys = Self.keys(startingAt: 7, inTableOf: 64, count: 4)
      let table = Table(minimumCount: 40, hashSeed: 0x5EED)
      for key in keys.prefix(3) { #expect(Self.insert(key, into: table).isInserted) }
      #expect(Self.insert(keys[3], into: table, probingAtMost: 3) == .refused)
      #expect(table.find(keys[3], hash: table.hash(of: keys[3])) == nil)
      #expect(Self.insert(keys[3], into: table, probingAtMost: 4).isInserted)
    }

    /// A small table counts every insert; a big one one in eight, eight each, which must
    /// still estimate its used words closely enough to grow on time.
    @Test func theUsedWordsAreCountedExactlyInSmallTablesAndEstimatedInBigOnes() {
      let small = Table(minimumCount: 700, hashSeed: 0x5EED)
      #expect(small.mask + 1 < Table.sampledCountFrom)
      for key in 0..<700 { _ = Self.insert(key, into: small) }
      #expect(small.estimatedUsed.load(ordering: .relaxed) == 700)

      let big = Table(minimumCount: 12_000, hashSeed: 0x5EED)
      #expect(big.mask + 1 >= Table.sampledCountFrom)
      var crowdedAt: Int?
      for key in 0..<big.mask + 1 {
        if case .inserted(crowded: true) = Self.insert(key, into: big), crowdedAt == nil { crowdedAt = key + 1 }
      }
      let estimate = big.estimatedUsed.load(ordering: .relaxed)
      #expect(abs(estimate - (big.mask + 1)) < (big.mask + 1) / 10, "estimate \(estimate) for \(big.mask + 1) words used")
      let threeQuarters = (big.mask + 1) * 3 / 4
      #expect(crowdedAt.map { abs($0 - threeQuarters) < threeQuarters / 10 } == true, "crowded at \(String(describing: crowdedAt))")
    }

    /// A word reserved by an insert holding `cell`, for `key`'s hash, as step 1 writes it;
    /// the word owns a retain on the cell, as a published one would.
    static func reservation(of cell: Table.Cell, in table: Table) -> UInt {
      Table.word(.passRetained(cell), hash: table.hash(of: cell.key)) | Table.pendingBit
    }

    /// Runs `body` on a thread of its own and returns a way to wait for its result.
    static func started<Result: Sendable>(_ body: @escaping @Sendable () -> Result) -> (_ seconds: Double) -> Result? {
      // `_Lock`, not `Mutex`: Thread Sanitizer cannot see the ordering `Mutex` gives on Linux.
      let result = _Lock<Result?>(nil)
      let done = DispatchSemaphore(value: 0)
      startThread {
        let value = body()
        result.withLock { $0 = value }
        done.signal()
      }
      return { seconds in
        done.wait(timeout: .now() + seconds) == .success ? result.withLock { $0 } : nil
      }
    }

    /// A reserved word is not in yet: lookups, enumeration and counts step over it.
    @Test func lookupsStepOverAReservedWord() {
      let table = Table(minimumCount: 40, hashSeed: 0x5EED)
      let cell = Table.Cell(key: 42)
      let home = table.hash(of: 42) & table.mask
      table.words[home].store(Self.reservation(of: cell, in: table), ordering: .relaxed)
      #expect(table.find(42, hash: table.hash(of: 42)) == nil)
      #expect(table.cellCount == 0)
      var seen = 0
      table.forEachCell { _ in seen += 1 }
      #expect(seen == 0)
      table.words[home].store(Table.removed, ordering: .relaxed)
      Unmanaged.passUnretained(cell).release()
    }

    /// An insert that meets another insert's reservation of its key waits for it, and takes
    /// its outcome: that cell once it is published, or the word once it is withdrawn. It
    /// reserves nothing meanwhile (passing the reservation, it would reserve the next free
    /// word only to withdraw it, leaving a removed word behind).
    @Test(arguments: [true, false])
    func anInsertWaitsForAnotherReservationOfItsKey(otherPublishes: Bool) {
      let table = Table(minimumCount: 40, hashSeed: 0x5EED)
      let other = Table.Cell(key: 42), mine = Table.Cell(key: 42)
      let home = table.hash(of: 42) & table.mask
      let reserved = Self.reservation(of: other, in: table)
      table.words[home].store(reserved, ordering: .sequentiallyConsistent)
      let outcome = Self.started { Self.insert(mine, into: table) }
      #expect(outcome(0.2) == nil, "the insert did not wait for the other reservation")
      if otherPublishes {
        table.words[home].store(reserved & ~Table.pendingBit, ordering: .sequentiallyConsistent)
        #expect(outcome(10) == .found(.passUnretained(other)))
        #expect(table.words[(home + 1) & table.mask].load(ordering: .relaxed) == Table.empty)
        #expect(table.removedWords.load(ordering: .relaxed) == 0)
      } else {
        table.words[home].store(Table.removed, ordering: .sequentiallyConsistent)
        Unmanaged.passUnretained(other).release()
        #expect(outcome(10)?.isInserted == true)
        #expect(table.find(42, hash: table.hash(of: 42))?.toOpaque() == Unmanaged.passUnretained(mine).toOpaque())
      }
    }

    /// Inserts `cell` as `insert(_:into:probingAtMost:)` does, for a cell the test keeps.
    static func insert(_ cell: Table.Cell, into table: Table) -> Table.InsertOutcome {
      let made = Unmanaged.passRetained(cell)
      var shown = false
      let outcome = table.insert(made, key: cell.key, hash: table.hash(of: cell.key), probingAtMost: table.mask + 1, shown: &shown)
      if case .inserted = outcome {} else { made.release() }
      return outcome
    }

    /// Step 2 for the reservation `mine` at `offset` words from its key's home.
    static func publish(_ mine: UInt, at offset: Int, key: Int, in table: Table) -> Table.InsertPass {
      let hash = table.hash(of: key)
      return table.publish(mine, at: offset, key: key, home: hash & table.mask, tag: Table.tag(hash), crowded: false)
    }

    /// A 64-word table in which two inserts of one key have reserved its home word (`near`)
    /// and the word after it (`far`); that is the table's last word and its first when the
    /// run `wraps`.
    static func twoReservations(wrapping wraps: Bool) -> TwoReservations {
      let table = Table(minimumCount: 40, hashSeed: 0x5EED)
      let key = wraps ? Self.keys(startingAt: 63, inTableOf: 64, count: 1)[0] : 42
      let near = Table.Cell(key: key), far = Table.Cell(key: key)
      let home = table.hash(of: key) & table.mask, next = (home + 1) & table.mask
      precondition(table.mask == 63 && (home == 63) == wraps)
      let nearWord = Self.reservation(of: near, in: table), farWord = Self.reservation(of: far, in: table)
      table.words[home].store(nearWord, ordering: .sequentiallyConsistent)
      table.words[next].store(farWord, ordering: .sequentiallyConsistent)
      return TwoReservations(table: table, key: key, near: near, far: far, home: home, next: next, nearWord: nearWord, farWord: farWord)
    }

    /// What `twoReservations(wrapping:)` set up: the cells, their words and where they are.
    struct TwoReservations {
      let table: Table
      let key: Int
      let near: Table.Cell, far: Table.Cell
      let home: Int, next: Int
      let nearWord: UInt, farWord: UInt
    }

    /// Two reservations of one key: the farther one withdraws and starts again once the
    /// nearer one is decided.
    @Test(arguments: [false, true])
    func aFartherReservationWithdrawsForANearerOne(wrapping: Bool) {
      let setUp = Self.twoReservations(wrapping: wrapping)
      let (table, key, far, home, next) = (setUp.table, setUp.key, setUp.far, setUp.home, setUp.next)
      let (nearWord, farWord) = (setUp.nearWord, setUp.farWord)
      let pass = Self.started { Self.publish(farWord, at: 1, key: key, in: table) }
      #expect(pass(0.2) == nil, "the farther reservation did not wait for the nearer one")
      #expect(table.words[next].load(ordering: .sequentiallyConsistent) == Table.removed)
      #expect(table.removedWords.load(ordering: .relaxed) == 1)
      table.words[home].store(nearWord & ~Table.pendingBit, ordering: .sequentiallyConsistent)
      #expect(pass(10).map { if case .again = $0 { true } else { false } } == true)
      Unmanaged.passUnretained(far).release()
    }

    /// The nearer reservation waits for the farther one, which may have read the nearer word
    /// before it was reserved and published: it then withdraws and finds that cell; if the
    /// farther one withdraws, it publishes.
    @Test(arguments: [true, false], [false, true])
    func aNearerReservationWaitsForAFartherOne(fartherPublishes: Bool, wrapping: Bool) {
      let setUp = Self.twoReservations(wrapping: wrapping)
      let (table, key, near, far, home, next) = (setUp.table, setUp.key, setUp.near, setUp.far, setUp.home, setUp.next)
      let (nearWord, farWord) = (setUp.nearWord, setUp.farWord)
      let pass = Self.started { Self.publish(nearWord, at: 0, key: key, in: table) }
      #expect(pass(0.2) == nil, "the nearer reservation did not wait for the farther one")
      #expect(table.words[home].load(ordering: .sequentiallyConsistent) == nearWord)
      if fartherPublishes {
        table.words[next].store(farWord & ~Table.pendingBit, ordering: .sequentiallyConsistent)
        let ended = pass(10)
        #expect(ended.map { if case .ended(.found(let cell)) = $0 { cell.toOpaque() == Unmanaged.passUnretained(far).toOpaque() } else { false } } == true)
        #expect(table.words[home].load(ordering: .sequentiallyConsistent) == Table.removed)
        Unmanaged.passUnretained(near).release()
      } else {
        table.words[next].store(Table.removed, ordering: .sequentiallyConsistent)
        Unmanaged.passUnretained(far).release()
        #expect(pass(10).map { if case .ended(.inserted) = $0 { true } else { false } } == true)
        #expect(table.words[home].load(ordering: .sequentiallyConsistent) == nearWord & ~Table.pendingBit)
      }
    }

    /// A reservation whose key has a published cell nearer its home withdraws and takes it.
    @Test func aReservationWithdrawsForAPublishedCellOfItsKey() {
      let setUp = Self.twoReservations(wrapping: true), table = setUp.table
      table.words[setUp.home].store(setUp.nearWord & ~Table.pendingBit, ordering: .sequentiallyConsistent)
      let pass = Self.publish(setUp.farWord, at: 1, key: setUp.key, in: table)
      #expect({ if case .ended(.found(let cell)) = pass { cell.toOpaque() == Unmanaged.passUnretained(setUp.near).toOpaque() } else { false } }())
      #expect(table.words[setUp.next].load(ordering: .relaxed) == Table.removed)
      #expect(table.removedWords.load(ordering: .relaxed) == 1)
      Unmanaged.passUnretained(setUp.far).release()
    }

    /// A replacement withdraws the reservations in the old table: their inserts are refused
    /// (and go to the new table under the lock) instead of publishing where no copy looks.
    @Test func aReplacementWithdrawsReservations() {
      let table = Table(minimumCount: 40, hashSeed: 0x5EED)
      let cell = Table.Cell(key: 42)
      let home = table.hash(of: 42) & table.mask
      let word = Self.reservation(of: cell, in: table)
      table.words[home].store(word, ordering: .sequentiallyConsistent)
      let grown = table.rebuilt(makingRoomFor: 1)
      #expect(table.words[home].load(ordering: .sequentiallyConsistent) == Table.frozenRemoved)
      #expect(Self.publish(word, at: 0, key: 42, in: table).isRefused)
      #expect(grown.find(42, hash: grown.hash(of: 42)) == nil)
      Unmanaged.passUnretained(cell).release()
    }

    /// A replacement made before the lock (see `_KeyIndex.spareTable`) is used when it has
    /// the size the cells need, and left alone when not.
    @Test func aRebuildUsesASpareTableOfTheRightSize() {
      let (table, cells) = Self.table(holding: 0..<100)
      let fitting = Table(minimumCount: 2 * (100 + 1), hashSeed: 0x5EED)
      let grown = table.rebuilt(makingRoomFor: 1, into: fitting)
      #expect(grown === fitting)
      #expect(Self.misplacedKeys(cells, absent: 100..<200, in: grown) == [])

      let (other, _) = Self.table(holding: 0..<100)
      let tooSmall = Table(minimumCount: 10, hashSeed: 0x5EED)
      let regrown = other.rebuilt(makingRoomFor: 1, into: tooSmall)
      #expect(regrown !== tooSmall)
      #expect(regrown.mask == grown.mask)
    }
  }
}

extension _KeyTable.InsertOutcome: Equatable {
  public static func == (lhs: Self, rhs: Self) -> Bool {
    switch (lhs, rhs) {
    case (.inserted(let a), .inserted(let b)): a == b
    case (.found(let a), .found(let b)): a.toOpaque() == b.toOpaque()
    case (.refused, .refused): true
    default: false
    }
  }

  var isInserted: Bool {
    if case .inserted = self { true } else { false }
  }
}

extension _KeyTable.InsertPass {
  var isRefused: Bool {
    if case .ended(.refused) = self { true } else { false }
  }
}

// Handed from the thread that runs an insert to the test that waits for it; the cells they
// name are the tests' own.
extension _KeyTable.InsertOutcome: @unchecked Sendable {}
extension _KeyTable.InsertPass: @unchecked Sendable {}
