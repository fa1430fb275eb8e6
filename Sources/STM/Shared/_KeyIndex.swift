import STMCore
import Synchronization

/// The non-transactional index of a keyed collection: which cell holds each key.
///
/// Each key has its own cell (a `_KeyedCell`, holding nil while the key is absent), so
/// transactions on different keys touch different cells and never conflict, whatever happens
/// to the index itself: the index is outside any transaction's conflict detection (the ttrie
/// idea), and growing it is invisible to transactions.
///
/// The index is split into stripes by the keys' hash values. A stripe's table is searched
/// without any lock and without writing anything shared, so lookups of existing keys from
/// several threads never contend. A new key's cell goes in without the lock too, with a
/// compare-and-swap on a table word (see `_KeyTable`); taking a key out, growing a table and
/// counting cells toward a sweep happen under the stripe's lock. A lookup runs with a
/// snapshot announced (inside a transaction, or in a `_SingleOperation`), and a cell or table
/// taken out of the index is kept until every snapshot announced before that is withdrawn,
/// so what a lookup finds is valid memory.
///
/// Cells leave the index in two ways, both through `TVar._retire(if:)`, which makes any
/// transaction still holding the cell rerun and look the key up again:
/// - a committed removal detaches its key's cell at once (`detach`);
/// - cells made for lookups of absent keys, and cells of inserts that rolled back, are swept
///   later: a sweep retires the empty cells that were already suspects at the previous sweep
///   of the stripe, once every transaction that was running at that sweep has ended, and, if
///   a transaction found one empty since (it marked it: `noteEmptyCellRead(_:hash:at:)`),
///   once every such transaction has ended too, so a cell that a transaction still in flight
///   looked up or is inserting into is not touched (but for a lookup that comes between a
///   sweep's look at the mark and the retirement).
///
/// Lookups, inserts, removals and the housekeeping they trigger (sweeps, pruning) are
/// inlinable, so that a client's specialized code does them without generic-metadata lookups:
/// run unspecialized, a pruning of a few dozen retired cells took about 170,000 instructions,
/// an eighth of everything `dict-mixed` did.
@usableFromInline
final class _KeyIndex<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
  @usableFromInline typealias Slot = TVar<Value?>
  @usableFromInline typealias Cell = _KeyedCell<Key, Value>
  @usableFromInline typealias Table = _KeyTable<Key, Value>

  @usableFromInline
  struct StripeState {
    /// The table lookups search; `Stripe.table` shows it to them.
    @usableFromInline var table: Table
    /// Cells made since the last sweep that may be left empty: by lookups in transactions
    /// (of absent keys, or of inserts that may roll back), and by drop-in updates that left
    /// their key absent (see `noteEmptyCell`). A drop-in insert's cell is not counted: it is
    /// filled before anyone else can lock it, and counting it made a growing table sweep
    /// every cell once per doubling, about two cache misses per insert for nothing.
    @usableFromInline var madeSinceSweep = 0
    /// Whether the last sweep found its suspects still held by running snapshots and came back
    /// without sweeping: the next one then waits until those have ended (see `claimSweep`).
    @usableFromInline var sweepWaitsForSnapshots = false
    /// While `sweepWaitsForSnapshots`: `madeSinceSweep` at which `claimSweep` looks at the
    /// running snapshots again.
    @usableFromInline var snapshotsCheckedAgainAt = 0
    /// Empty cells seen by the last sweep.
    @usableFromInline var suspects: [Cell] = []
    /// A clock value taken after the last sweep found `suspects`: every transaction that
    /// started after that reads at a snapshot at or above it (see `sweep`).
    @usableFromInline var suspectsFound: UInt64 = 0
    /// Retired cells, with their keys and the clock when they were retired, oldest first: a
    /// transaction or single read whose snapshot is older may still find its key's value in
    /// one, so lookups and enumeration look at them until none can. A flat list, searched
    /// from the newest end: a lookup reaches it only when its stripe retired a cell after its
    /// snapshot, and it holds few cells (pruning keeps it at most twice what the running
    /// snapshots pin, and at least 32), where a dictionary of arrays cost a hash, an array and
    /// a dictionary entry per removal and a rebuild of the whole dictionary per pruning.
    @usableFromInline var retired: [(key: Key, slot: Slot, clock: UInt64)] = []
    /// How many retired cells `retired` holds.
    @usableFromInline var retiredCount: Int { retired.count }
    /// For lookups that would otherwise scan many retired cells: the position in `retired` of
    /// each key's newest retired cell, and, beside each entry of `retired`, the position of the
    /// same key's cell retired before it (-1: none), a chain from newest to oldest. Made by the
    /// first lookup that finds more than `retiredScanLimit` cells retired after its snapshot (a
    /// long transaction's, while others remove keys), kept up to date by `retire` while it
    /// exists, and dropped by a pruning, which moves the positions. Scanned, each lookup of such
    /// a transaction took time that grew with the removals since it began: 100 µs a lookup
    /// after 32,000 (found by review). (A list of positions per key took an allocation per key,
    /// 82 bytes per retired cell; noted by review.)
    @usableFromInline var retiredChains: (newest: [_BarredKey<Key>: Int], previous: [Int])? = nil
    /// The most retired cells a lookup scans before it follows its key's chain.
    @usableFromInline static var retiredScanLimit: Int { 64 }

    /// `retiredChains`, made if there are none.
    @inlinable
    mutating func madeRetiredChains() -> (newest: [_BarredKey<Key>: Int], previous: [Int]) {
      if let retiredChains { return retiredChains }
      var made: (newest: [_BarredKey<Key>: Int], previous: [Int]) = ([:], [])
      made.previous.reserveCapacity(retired.count)
      for (position, entry) in retired.enumerated() {
        made.previous.append(made.newest.updateValue(position, forKey: _BarredKey(entry.key)) ?? -1)
      }
      retiredChains = made
      return made
    }
    /// `retiredCount` at which the next pruning runs: twice what the last one
    /// kept (at least 32), so that a long-running snapshot that pins many retired cells does
    /// not make every removal rescan them all.
    @usableFromInline var pruneAt = Self.leastPruneAt
    /// The least `pruneAt`: retired cells a stripe may keep until its next removals.
    @usableFromInline static var leastPruneAt: Int { 32 }
    /// Tables replaced by bigger ones, kept while a lookup may still be searching them; they
    /// go at the stripe's next growth, sweep or pruning of retired cells after that.
    var replacedTables: [(table: Table, clock: UInt64)] = []
    /// How many empty cells, beyond the keys present and half the last sweep's suspects, the
    /// stripe lets be made before it sweeps again (see `claimSweep`); set by each sweep from
    /// how many of the cells made since the one before were made again for keys it had swept
    /// (see `adjustEmptyAllowance()`).
    @usableFromInline var emptyAllowance = Self.mostEmptyAllowance
    @usableFromInline static var leastEmptyAllowance: Int { 8 }
    @usableFromInline static var mostEmptyAllowance: Int { 64 }
    /// The cells counted in `madeSinceSweep` whose keys `sweptKeys` remembers.
    @usableFromInline var remadeSinceSweep = 0
    /// The keys whose cells the stripe's last sweeps retired; nil until a sweep retires one.
    @usableFromInline var sweptKeys: _SweptKeyFilter?
    /// Set while a sweep is on its way (see `sweepSoon`).
    @usableFromInline var sweepScheduled = false
    /// Set while the engine holds the stripe for later housekeeping (see `deferHousekeeping`).
    @usableFromInline var housekeepingDeferred = false

    /// Whether the stripe keeps more than it may keep for good: replaced tables, or retired
    /// cells past the least `pruneAt`, up to which a stripe waits for its next removals to
    /// prune (in a busy map, a prune keeps a few recent ones nearly every time, and handing
    /// those over cost `dict-mixed` 2.4% of its instructions).
    @usableFromInline var keepsMoreThanItMustAlways: Bool { retiredCount >= Self.leastPruneAt || !replacedTables.isEmpty }

    @usableFromInline
    init(table: Table) {
      self.table = table
    }

    /// Counts a cell that may be left empty, made for the key hashed `hash`, toward the next
    /// sweep, and says whether that sweep is due (see `claimSweep`).
    @inlinable
    mutating func countMadeCell(hash: Int) -> Bool {
      madeSinceSweep += 1
      if sweptKeys?.contains(hash) == true { remadeSinceSweep += 1 }
      return claimSweep()
    }

    /// Sets `emptyAllowance` for the sweep under way, from how many of the cells made since
    /// the sweep before were made again for keys that the stripe swept lately.
    ///
    /// A quarter of them or more: lookups keep coming back to the same absent keys, and
    /// sweeping their cells only makes them be made again, so the allowance doubles (up to
    /// 64, where it starts). Under a sixteenth: the absent keys asked about are new ones,
    /// whose cells nothing will look at again, so it halves (down to 8). (The filter mistakes
    /// a new key for a swept one up to about 3% of the time when full, below the sixteenth.)
    /// Not before a sweep has retired anything, nor when fewer cells than the least allowance
    /// were made: there is nothing to tell from then.
    ///
    /// With a fixed allowance of 64, a one-element set asked about 40,000 to 80,000 different
    /// absent elements in transactions held 10,000 to 13,500 cells (64 stripes), and every
    /// read of the whole set visited them all; it holds about 1,800 now (after 20,000, still
    /// about 9,700: the first sweeps of a stripe have nothing to tell from). It starts at the
    /// most, not the least: started at 8, lookups that went through the same 4,000 absent keys
    /// again and again made most of their cells again on the second and third passes, where
    /// with 64 they find them all from the second on, and a pass's lookups took a third longer
    /// afterwards (a program outside the repository, release build).
    @inlinable
    mutating func adjustEmptyAllowance() {
      defer { remadeSinceSweep = 0 }
      guard sweptKeys != nil, madeSinceSweep >= Self.leastEmptyAllowance else { return }
      if 4 * remadeSinceSweep >= madeSinceSweep {
        emptyAllowance = min(Self.mostEmptyAllowance, 2 * emptyAllowance)
      } else if 16 * remadeSinceSweep < madeSinceSweep {
        emptyAllowance = max(Self.leastEmptyAllowance, emptyAllowance / 2)
      }
    }

    /// Whether enough cells were made since the last sweep to sweep again and none is on its
    /// way; if so, the caller must sweep (and it is now on its way).
    ///
    /// Enough is `emptyAllowance` (8 to 64, starting at 64), plus the cells that neither the
    /// last sweep found empty nor were made since (about the keys present), plus half the
    /// cells the last sweep found empty. The empty cells that stay between sweeps then settle
    /// at two to four times the sum of the allowance and the keys present, per stripe (twice
    /// just after a sweep, four times just before the next; more while transactions that
    /// looked suspects up keep running: see `sweep`): lookups that keep coming back to the
    /// same absent keys find their cells there (sweeping them sooner would only make them
    /// again, and the allowance grows while it does), and a stream of lookups of ever new
    /// absent keys cannot pile cells up. (The bar used to be measured against all
    /// the cells, so the empty ones made since the last sweep raised the bar they waited
    /// for, and such a stream left a number of empty cells that grew with its square root.)
    ///
    /// While a sweep waits for the snapshots that hold its suspects, the cells made meanwhile
    /// stay counted, and no sweep is claimed until those snapshots have ended; whether they have
    /// is asked of the segments once every 64 cells made (asked for every cell, the scan of the
    /// segments under the stripe's lock made lookups of absent keys a quarter slower; found by
    /// review). The count used to start again at 0 on each sweep that came back, so a long
    /// transaction's cells made by others' lookups of absent keys counted as present keys
    /// afterwards and raised the bar: 32,000 of them made while one ran were still mostly there
    /// 64,000 lookups later (found by review).
    @inlinable
    mutating func claimSweep() -> Bool {
      let bar = emptyAllowance + (table.estimatedLive - madeSinceSweep) - suspects.count / 2
      guard !sweepScheduled, madeSinceSweep > bar else { return false }
      if sweepWaitsForSnapshots {
        guard madeSinceSweep >= snapshotsCheckedAgainAt else { return false }
        if _EngineClock.oldestRunningSnapshot() < suspectsFound {
          snapshotsCheckedAgainAt = madeSinceSweep + 64
          return false
        }
      }
      sweepScheduled = true
      return true
    }
  }

  /// Cells and keys that a stripe let go of under its lock, boxed to be freed once the lock
  /// is released and the thread runs no transaction (see `pruneRetired`).
  @usableFromInline
  final class Dropped<Items> {
    @usableFromInline let items: Items
    @inlinable init(_ items: Items) { self.items = items }
  }

  @usableFromInline
  final class Stripe: @unchecked Sendable {
    /// The address of `state.table`, for lookups and inserts, which read it without the lock.
    @usableFromInline let table: Atomic<UInt>
    /// The clock of the stripe's newest retirement, or `.max` while one is under way: a
    /// lookup reading at a snapshot at or after it has no retired cell to look at, and skips
    /// the lock. Set to `.max` before the retired cell leaves the table, so that a lookup that
    /// no longer finds the cell (or finds its replacement) cannot see an older value here.
    @usableFromInline let newestRetirement = Atomic<UInt64>(0)
    @usableFromInline let state: _Lock<StripeState>
    /// The newest snapshot of a transaction that marked one of the stripe's cells, or found
    /// one marked (see `noteEmptyCellRead(_:hash:at:)`): once every running snapshot is above
    /// it, every such transaction has ended, and a sweep may take marked cells too. Only ever
    /// raised.
    @usableFromInline let newestMark = Atomic<UInt64>(0)
    /// The keys `init(minimumCapacity:)` reserved room for in this stripe (0 for any other
    /// map), and the words of the table made for them. No replacement is sized below them:
    /// neither a sparse table's (see `retire`) nor one that removed words crowded. (Shrunk,
    /// the reservation was gone at the first removal, and filling the map grew the table
    /// again step by step; found by review.)
    @usableFromInline let reservedCount: Int
    @usableFromInline let reservedWords: Int

    init(minimumCount: Int, reserving: Bool, hashSeed: UInt64) {
      let table = Table(minimumCount: minimumCount, hashSeed: hashSeed)
      reservedCount = reserving ? minimumCount : 0
      reservedWords = reserving ? table.mask + 1 : 0
      self.table = Atomic(UInt(bitPattern: Unmanaged.passUnretained(table).toOpaque()))
      state = _Lock(StripeState(table: table))
    }

    /// The table to search, unretained: `state` keeps it, and a replaced table is kept while
    /// any lookup announced before its replacement may be searching it.
    @inlinable
    var currentTable: Unmanaged<Table> {
      Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: table.load(ordering: .sequentiallyConsistent)).unsafelyUnwrapped)
    }
  }

  @usableFromInline static var stripeBits: Int { 6 }
  /// The stripes, unretained (the index owns one retain on each), so that picking one costs
  /// no reference counting.
  @usableFromInline let stripes: UnsafeMutableBufferPointer<Unmanaged<Stripe>>
  /// The secret that places this index's keys (see `_KeyHash`); its tables keep a copy.
  @usableFromInline let hashSeed: UInt64

  /// An index sized for `minimumCapacity` keys; `reserving`: kept at least that size as keys
  /// go (for `init(minimumCapacity:)`, not for a map made from contents, which may shrink).
  @usableFromInline
  init(minimumCapacity: Int = 0, reserving: Bool = false) {
    let count = 1 << Self.stripeBits
    stripes = .allocate(capacity: count)
    hashSeed = _KeyHash.makeSeed()
    for index in 0..<count {
      stripes.initializeElement(
        at: index, to: .passRetained(Stripe(minimumCount: minimumCapacity / count, reserving: reserving, hashSeed: hashSeed)))
    }
  }

  /// The hash that places `key` in this index: every lookup, insert and removal uses it.
  @inlinable @inline(__always)
  func hash(of key: Key) -> Int {
    _KeyHash.hash(of: key, seed: hashSeed)
  }

  deinit {
    // Not freed at once: a transaction still running may have read cells of this index, and
    // its read markers hold them without a retain (see `_KeyedCell._value(in:)`), to be
    // validated at its commit. Such a transaction announced its snapshot before this index
    // went, so the stripes, with their tables and cells, wait for those snapshots to end.
    let kept: [AnyObject] = stripes.map { $0.takeRetainedValue() }
    stripes.deallocate()
    _releaseAfterRunningSnapshots(kept)
  }

  @inlinable @inline(__always)
  func stripe(forHash hash: Int) -> Unmanaged<Stripe> {
    // The high bits pick the stripe; the table inside it probes from the low bits.
    stripes[Int(UInt(bitPattern: hash) >> UInt(UInt.bitWidth - Self.stripeBits))]
  }

  // MARK: Lookups (a snapshot must be announced)

  /// The key's current cell, if the index has one; searched without a lock, not retained.
  @inlinable
  func find(_ key: Key, hash: Int) -> Unmanaged<Cell>? {
    stripe(forHash: hash)._withUnsafeGuaranteedRef { stripe in
      stripe.currentTable._withUnsafeGuaranteedRef { $0.find(key, hash: hash) }
    }
  }

  /// The key's current cell, made (holding nil) if the index has none; not retained.
  @inlinable
  func cell(for key: Key, hash: Int) -> Unmanaged<Cell> {
    if let cell = find(key, hash: hash) { return cell }
    return makeCell(for: key, hash: hash, countingTowardSweep: true).cell
  }

  /// Marks `cell`, which the transaction reading at `snapshot` found empty (to read the key,
  /// insert it, or remove it while absent), so that a sweep does not retire it while that
  /// transaction may run (see `sweep`): the stripe's newest mark is raised to the snapshot
  /// first, then the cell's mark is set, a write only the first time since the last sweep.
  /// Every such transaction raises the stripe's mark, even one that finds the cell marked
  /// already: raised only by the first, a later one's cell was taken once the first had
  /// ended, and it reran (found by review).
  @inlinable
  func noteEmptyCellRead(_ cell: Cell, hash: Int, at snapshot: UInt64) {
    stripe(forHash: hash)._withUnsafeGuaranteedRef { stripe in
      if stripe.newestMark.load(ordering: .relaxed) < snapshot { stripe.newestMark.raise(to: snapshot) }
    }
    cell.noteLookedUp()
  }

  /// As `cell(for:hash:)`, for a drop-in update, which says whether it made the cell: one
  /// that the update leaves empty must then be counted with `noteEmptyCell(hash:)`.
  @inlinable
  func cellForUpdate(for key: Key, hash: Int) -> (cell: Unmanaged<Cell>, made: Bool) {
    if let cell = find(key, hash: hash) { return (cell, false) }
    return makeCell(for: key, hash: hash, countingTowardSweep: false)
  }

  /// Counts an empty cell that a drop-in update made (see `cellForUpdate(for:hash:)`) toward
  /// its stripe's next sweep, and sweeps if that is due.
  @inlinable
  func noteEmptyCell(hash: Int) {
    let stripe = stripe(forHash: hash)
    let sweepDue = stripe._withUnsafeGuaranteedRef { stripe in
      stripe.state.withLock { $0.countMadeCell(hash: hash) }
    }
    if sweepDue { sweepSoon(stripe) }
  }

  /// Puts a cell for `key` holding `value` into this index, which no other thread can reach
  /// yet: a map being made from contents (see `_MapStorage.init(filledWith:)`). `key` must not
  /// be in the index already.
  @inlinable
  func insertUnshared(_ key: Key, value: Value) {
    let hash = hash(of: key)
    let made = Unmanaged.passRetained(Cell(key: key, value: value))
    var shown = false
    stripe(forHash: hash)._withUnsafeGuaranteedRef { stripe in
      stripe.state.withLock { state in
        let cell = insertUnderLock(made, key: key, hash: hash, into: stripe, &state, shown: &shown)
        precondition(cell.toOpaque() == made.toOpaque(), "a map made from contents was given the key \(key) twice")
      }
    }
  }

  /// The slow path of `cell(for:hash:)`: the key's cell, made if the index still has none.
  /// The insert itself takes no lock (see `_KeyTable`); the stripe's lock is taken only when
  /// the table refuses it, to replace a crowded table, or to count the cell toward the next
  /// sweep. Inlinable too: every insert takes it, and generic code that runs unspecialized
  /// looks up type metadata at each step.
  @inlinable
  func makeCell(for key: Key, hash: Int, countingTowardSweep: Bool) -> (cell: Unmanaged<Cell>, made: Bool) {
    let stripe = stripe(forHash: hash)
    // Let go of again in the rare race where another thread inserts the key first. Made
    // before any lock: allocating under the lock (a page fault, now and then) made the other
    // threads that reached the stripe meanwhile sleep in the kernel.
    let made = Unmanaged.passRetained(Cell(key: key))
    var shown = false
    let table = stripe._withUnsafeGuaranteedRef { $0.currentTable }
    let outcome = table._withUnsafeGuaranteedRef {
      $0.insert(made, key: key, hash: hash, probingAtMost: Table.probeLimitWithoutLock, shown: &shown)
    }
    var replaces = false
    switch outcome {
    case .found(let existing):
      Self.letGo(made, shown: shown)
      return (existing, false)
    case .inserted(let crowded):
      // The first insert to find the table crowded replaces it; the others leave it to that one.
      replaces = crowded && table._withUnsafeGuaranteedRef { $0.replacementClaimed.compareExchange(
        expected: false, desired: true, ordering: .relaxed).exchanged }
      if !replaces && !countingTowardSweep { return (made, true) }
    case .refused:
      break
    }
    let spare = replaces ? spareTable(replacing: table, in: stripe) : nil
    let (cell, sweepDue) = stripe._withUnsafeGuaranteedRef { stripe in
      stripe.state.withLock { state -> (Unmanaged<Cell>, Bool) in
        var cell = made
        if case .refused = outcome {
          cell = insertUnderLock(made, key: key, hash: hash, into: stripe, &state, shown: &shown)
          if cell.toOpaque() != made.toOpaque() { return (cell, false) }
        } else if replaces && Unmanaged.passUnretained(state.table).toOpaque() == table.toOpaque() {
          Self.replaceTable(of: stripe, &state, into: spare)
        }
        guard countingTowardSweep else { return (cell, false) }
        return (cell, state.countMadeCell(hash: hash))
      }
    }
    if cell.toOpaque() != made.toOpaque() { Self.letGo(made, shown: shown) }
    if sweepDue { sweepSoon(stripe) }
    return (cell, cell.toOpaque() == made.toOpaque())
  }

  /// Lets go of a cell that an insert made and did not put in: at once if no other thread can
  /// have seen it, and otherwise once the snapshots running now have ended, since another
  /// insert of the key may have found it reserved and be reading its key (see `_KeyTable`).
  @inlinable
  static func letGo(_ made: Unmanaged<Cell>, shown: Bool) {
    if shown { letGoAfterRunningSnapshots(made) } else { made.release() }
  }

  /// The rare half of `letGo(_:shown:)`, not inlinable.
  @usableFromInline
  static func letGoAfterRunningSnapshots(_ made: Unmanaged<Cell>) {
    _releaseAfterRunningSnapshots([made.takeRetainedValue()])
  }

  /// An empty table to replace the crowded `table` with, made before the stripe's lock is
  /// taken. Making it (allocating, zeroing, page faults) was about half of the time a
  /// replacement held the lock, while the other threads that reached the stripe slept; a
  /// table sized from the estimate is the right size nearly always, and `_KeyTable.rebuilt`
  /// makes another when not. Not inlinable: it runs once per replacement.
  @usableFromInline
  func spareTable(replacing table: Unmanaged<Table>, in stripe: Unmanaged<Stripe>) -> Table {
    let reserved = stripe._withUnsafeGuaranteedRef { $0.reservedCount }
    return table._withUnsafeGuaranteedRef { Table(minimumCount: max(2 * ($0.estimatedLive + 1), reserved), hashSeed: hashSeed) }
  }

  /// Under the stripe's lock: inserts `made`, the new cell of `key`, unless the key has a
  /// cell already, which it returns instead. Inserts without the lock may run meanwhile, so
  /// this inserts as they do (see `_KeyTable`), but examines the whole table, which is never
  /// being replaced while the lock is held; a full one refuses, and is replaced.
  ///
  /// It may wait, holding the lock, for another insert of the key to decide on its
  /// reservation; that insert takes no lock to decide, so the wait ends, but removals and
  /// replacements in the stripe wait too meanwhile (long only if that thread is preempted).
  @inlinable
  func insertUnderLock(
    _ made: Unmanaged<Cell>, key: Key, hash: Int, into stripe: Stripe, _ state: inout StripeState, shown: inout Bool
  ) -> Unmanaged<Cell> {
    while true {
      switch state.table.insert(made, key: key, hash: hash, probingAtMost: state.table.mask + 1, shown: &shown) {
      case .inserted(let crowded):
        if crowded { Self.replaceTable(of: stripe, &state) }
        return made
      case .found(let existing):
        return existing
      case .refused:
        Self.replaceTable(of: stripe, &state)
      }
    }
  }

  /// Replaces a crowded table, or a sparse one (see `retire`), by one sized for its keys (twice
  /// their number) without the removed words; the old one is kept until no lookup can be
  /// searching it.
  @usableFromInline
  static func replaceTable(of stripe: Stripe, _ state: inout StripeState, into spare: Table? = nil) {
    let replaced = state.table
    state.table = replaced.rebuilt(makingRoomFor: 1, keepingRoomFor: stripe.reservedCount, into: spare)
    stripe.table.store(UInt(bitPattern: Unmanaged.passUnretained(state.table).toOpaque()), ordering: .sequentiallyConsistent)
    // Moved on after the new table is shown: a lookup announced at the new clock or later
    // finds it, so the old table waits only for lookups announced at or below the one before.
    // Read instead of moved, the clock could stay at that value for good (drop-in updates
    // and inserts may leave it alone: see `_Engine.unnumberedOverwritePosition(for:)`), and
    // the table would then wait for good, retried at every housekeeping turn.
    state.replacedTables.append((replaced, _EngineClock.advance() &- 1))
    Self.dropReplacedTables(&state, olderThan: _EngineClock.oldestRunningSnapshot())
    Self.deferHousekeeping(of: stripe, &state)
  }

  /// Leaves what the stripe keeps for running snapshots (retired cells beyond the few it may
  /// always keep, replaced tables) for the engine to drop once they end, unless it holds the
  /// stripe already.
  @usableFromInline
  static func deferHousekeeping(of stripe: Stripe, _ state: inout StripeState) {
    guard !state.housekeepingDeferred, state.keepsMoreThanItMustAlways else { return }
    state.housekeepingDeferred = true
    _deferHousekeeping(stripe)
  }

  /// Frees the replaced tables that no running lookup can be searching: those replaced
  /// before `oldest`, the oldest snapshot still announced. Not inlinable: tables are rarely
  /// replaced, and when none is waiting this returns at once.
  @usableFromInline
  static func dropReplacedTables(_ state: inout StripeState, olderThan oldest: UInt64) {
    if !state.replacedTables.isEmpty { state.replacedTables.removeAll { $0.clock < oldest } }
  }

  /// The cell of `key` (whose hash value is `hash`), and the cells retired after the snapshot
  /// of `transaction` that held it, newest first: the transaction finds the key's value among
  /// them (see `_MapStorage.read(_:_:in:)`). An inevitable transaction gets the current cell
  /// pinned (see `pinnedCell(for:hash:in:)`).
  @inlinable
  func slots(for key: Key, hash: Int, in transaction: Transaction) -> (current: Slot, retired: [Slot]) {
    let current =
      transaction._isInevitable
      ? pinnedCell(for: key, hash: hash, in: transaction)
      : cell(for: key, hash: hash)._withUnsafeGuaranteedRef { $0.variable }
    return (current, retiredSlots(for: key, hash: hash, seenFrom: transaction._snapshot))
  }

  /// Whether `retiredSlots(for:hash:seenFrom:)` may find a cell: false, for certain, when no
  /// cell of the key's stripe was retired after `snapshot`. The same rule for calling it after
  /// the lookup applies. Asked first by a read outside a transaction, whose common case then
  /// makes no array (and releases none).
  @inlinable
  func mayHaveRetired(hash: Int, after snapshot: UInt64) -> Bool {
    stripe(forHash: hash)._withUnsafeGuaranteedRef { Self.mayHaveRetired($0, after: snapshot) }
  }

  @inlinable @inline(__always)
  static func mayHaveRetired(_ stripe: Stripe, after snapshot: UInt64) -> Bool {
    stripe.newestRetirement.load(ordering: .sequentiallyConsistent) > snapshot
  }

  /// The cells retired after `snapshot` that held `key`, newest first. Call it after looking
  /// the key up: a lookup that missed a retired cell, or found its replacement, ran after the
  /// retirement set `newestRetirement`, which then makes this look.
  ///
  /// Every cell retired while a snapshot is announced is retired after it: a retirement takes
  /// a clock value of its own (see `retire`).
  @inlinable
  func retiredSlots(for key: Key, hash: Int, seenFrom snapshot: UInt64) -> [Slot] {
    stripe(forHash: hash)._withUnsafeGuaranteedRef { stripe in
      guard Self.mayHaveRetired(stripe, after: snapshot) else { return [] }
      return stripe.state.withLock { state -> [Slot] in
        var found: [Slot] = []
        // Newest first, and only as far back as the snapshot: the list is in clock order.
        var scanned = 0
        for entry in state.retired.reversed() {
          guard entry.clock > snapshot else { return found }
          if _KeyHash.equal(entry.key, key) { found.append(entry.slot) }
          scanned += 1
          if scanned == StripeState.retiredScanLimit { break }
        }
        guard scanned == StripeState.retiredScanLimit else { return found }
        // Many retired since the snapshot: only the key's own.
        found = []
        let chains = state.madeRetiredChains()
        var position = chains.newest[_BarredKey(key)] ?? -1
        while position >= 0 && state.retired[position].clock > snapshot {
          found.append(state.retired[position].slot)
          position = chains.previous[position]
        }
        return found
      }
    }
  }

  /// For an inevitable transaction about to read and write `key`: the key's current cell,
  /// made if the index has none, pinned so that it is not retired until the transaction ends.
  /// An inevitable transaction cannot rerun, and a write to a cell that a sweep (of empty
  /// cells, such as one a pending insert writes) or a late detach retired before its commit
  /// would make it: the commit refuses retired cells.
  @inlinable
  func pinnedCell(for key: Key, hash: Int, in transaction: Transaction) -> Slot {
    while true {
      let slot = cell(for: key, hash: hash)._withUnsafeGuaranteedRef { $0.variable }
      // Retired since the lookup: the key has a fresh cell now.
      if slot._pinForInevitable(in: transaction) { return slot }
    }
  }

  // MARK: Housekeeping

  /// Sweeps `stripe` now, or, inside a transaction, once it has finished: a sweep retires
  /// empty cells, and the running transaction may have read one of them (a lookup of an
  /// absent key), which would make it rerun for nothing.
  @inlinable
  func sweepSoon(_ stripe: Unmanaged<Stripe>) {
    let stripe = stripe.takeUnretainedValue()
    let sweep = { Self.withLockLettingGoAfter(stripe) { Self.sweep(stripe, &$0, droppingInto: &$1) } }
    if let transaction = Transaction._currentChecked {
      transaction.afterCommit(sweep)
      transaction.afterAbort(sweep)
    } else {
      sweep()
    }
  }

  @inlinable
  static func sweep(_ stripe: Stripe, _ state: inout StripeState, droppingInto dropped: inout [AnyObject]) {
    state.sweepScheduled = false
    let oldest = _EngineClock.oldestRunningSnapshot()
    dropReplacedTables(&state, olderThan: oldest)
    // The suspects go only once every transaction that was running when they were found has
    // ended. One that has run since may hold a suspect (its lookup of an absent key, or an
    // insert it has yet to commit), and retiring the cell would make it rerun, though no one
    // wrote its key: a long transaction lost every time to the sweeps that other threads'
    // lookups of other absent keys brought on (found by review). Until then they stay
    // suspects, and no new ones are gathered.
    state.sweepWaitsForSnapshots = !state.suspects.isEmpty && oldest < state.suspectsFound
    guard !state.sweepWaitsForSnapshots else {
      state.snapshotsCheckedAgainAt = state.madeSinceSweep + 64
      return
    }
    state.adjustEmptyAllowance()
    state.madeSinceSweep = 0
    let suspects = state.suspects
    state.suspects = []
    // Nor a suspect that a transaction which started since found empty (`noteEmptyCellRead`), while
    // that transaction may be running still: it reran as well (found by a second review). It
    // stays, to be found again below; a lookup between this check and the retirement can
    // still lose. Once every transaction that marked a cell has ended, marked ones go too:
    // kept for any mark, the empty cells of absent keys that lookups kept coming back to
    // stayed, up to one for every such key (found by a review of that change).
    var marksEnded: Bool?
    for cell in suspects {
      if cell.wasLookedUp {
        if marksEnded == nil { marksEnded = Self.marksHaveEnded(in: stripe) }
        if marksEnded == false { continue }
      }
      if let hash = retire(cell, in: stripe, &state, droppingInto: &dropped) {
        if state.sweptKeys == nil { state.sweptKeys = _SweptKeyFilter() }
        state.sweptKeys!.insert(hash)
      }
    }
    // A suspect that a removal retired since, and a pruning let go of, is held here last.
    if !suspects.isEmpty { dropped.append(Dropped(suspects)) }
    state.table.forEachCell { cell in
      guard cell.variable._newestCommittedValueSatisfies({ $0 == nil }) else { return }
      cell.clearLookedUp()
      state.suspects.append(cell)
    }
    // Moved, not read: with no commit in between, a transaction that starts after this sweep
    // would read at the same clock value as one that was running before it.
    if !state.suspects.isEmpty { state.suspectsFound = _EngineClock.advance() }
  }

  /// Whether every transaction that marked one of `stripe`'s cells has ended: every running
  /// snapshot is above the stripe's newest mark. The clock is moved first, so that with no
  /// commit since the newest mark, and no transaction running, the oldest snapshot is still
  /// above it (a transaction that marked read at or below it).
  @inlinable
  static func marksHaveEnded(in stripe: Stripe) -> Bool {
    _ = _EngineClock.advance()
    return _EngineClock.oldestRunningSnapshot() > stripe.newestMark.load(ordering: .relaxed)
  }

  /// After a removal of `key` committed: detaches its cell if it is still empty. Inlinable,
  /// like the insert path: every removal takes it.
  @inlinable
  func detach(_ key: Key, _ slot: Slot) {
    let cell = slot._unsafeKeyedCell(as: Cell.self)
    stripe(forHash: hash(of: key))._withUnsafeGuaranteedRef { stripe in
      Self.withLockLettingGoAfter(stripe) { Self.retire(cell, in: stripe, &$0, droppingInto: &$1) }
    }
  }

  /// Runs `body` under `stripe`'s lock, and lets go of what it dropped once the lock is
  /// released (see `pruneRetired`).
  @inlinable
  static func withLockLettingGoAfter(_ stripe: Stripe, _ body: (inout StripeState, inout [AnyObject]) -> Void) {
    var dropped: [AnyObject] = []
    stripe.state.withLock { body(&$0, &dropped) }
    if !dropped.isEmpty { _letGoOutsideTransactions(dropped) }
  }

  /// Retires `cell` and takes it out of the table, if it is still there and still empty, and
  /// no inevitable transaction is writing it (see `TVar._retire(if:)`); returns its key's hash
  /// if it did, nil if not. What pruning lets go of meanwhile goes into `dropped`, for the
  /// caller to free once it has let go of the lock (see `pruneRetired`).
  @inlinable @discardableResult
  static func retire(_ cell: Cell, in stripe: Stripe, _ state: inout StripeState, droppingInto dropped: inout [AnyObject]) -> Int? {
    let hash = state.table.hash(of: cell.key)
    // By the cell, not its key: a key that does not equal itself (`Double.nan`) is never
    // found, and its empty cells stayed for good (found by review).
    guard state.table.holds(cell, hash: hash), cell.variable._retire(if: { $0 == nil }) else { return nil }
    stripe.newestRetirement.store(.max, ordering: .sequentiallyConsistent)
    let removed = state.table.remove(cell, hash: hash).unsafelyUnwrapped
    // Taken after the cell left the table (see `_KeyTable`), and a clock value of its own,
    // above every snapshot announced so far: a transaction that wrote the cell (a pending
    // insert into an empty cell that a sweep retires) must find it among the cells retired
    // after its snapshot, or it would read the key as absent after writing it. With the
    // clock as it stood, a retirement with no commit since the snapshot came out equal to it.
    let now = _EngineClock.advance()
    stripe.newestRetirement.store(now, ordering: .sequentiallyConsistent)
    state.retired.append((cell.key, removed.takeRetainedValue().variable, now))
    if state.retiredChains != nil {
      let previous = state.retiredChains!.newest.updateValue(state.retired.count - 1, forKey: _BarredKey(cell.key)) ?? -1
      state.retiredChains!.previous.append(previous)
    }
    // Only now that a lookup can no longer find the cell (see `TVar._retire(if:)`).
    cell.variable._wakeWaitersOfRetired()
    // Removals left a table as big as its keys had ever made it, and whole reads (enumeration,
    // `removeAll`) walk every word: a map emptied of a million keys took 65 ms to enumerate
    // (found by review). Replaced once under an eighth of its words hold keys, by a table half
    // its size or less and at least three sixteenths full: the next replacement waits for
    // removals of a sixteenth of its words, so that replacing costs O(1) words per removal.
    if state.table.isSparse && state.table.mask >= stripe.reservedWords { replaceTable(of: stripe, &state) }
    if state.retiredCount >= state.pruneAt {
      pruneRetired(&state, droppingInto: &dropped)
      deferHousekeeping(of: stripe, &state)
    }
    return hash
  }

  /// Takes out the retired cells that no running transaction can still read, into
  /// `dropped`, and drops the replaced tables no lookup can still be searching (they own no
  /// cells).
  ///
  /// The cells and their keys are handed out, not freed here: the last reference to a key, or
  /// to a value in a cell's history, ran its deinit, the user's code, under the stripe's lock,
  /// and a deinit that wrote to the same map (or any write that took a reclamation turn)
  /// waited for that lock for good (found by review).
  @inlinable
  static func pruneRetired(_ state: inout StripeState, droppingInto dropped: inout [AnyObject]) {
    let oldest = _EngineClock.oldestRunningSnapshot()
    // Strictly older: a lookup announced at clock `oldest` may have found a cell retired then.
    // The list is in clock order, so the cells to drop are a prefix of it.
    let count = state.retired.firstIndex { $0.clock >= oldest } ?? state.retired.count
    if count > 0 {
      dropped.append(Dropped(state.retired.prefix(count)))
      state.retired.removeFirst(count)
      // Handed out with the cells, so that its copies of the keys are not released under the
      // lock either.
      if let chains = state.retiredChains { dropped.append(Dropped(chains.newest)) }
      state.retiredChains = nil
    }
    state.pruneAt = max(StripeState.leastPruneAt, 2 * state.retiredCount)
    dropReplacedTables(&state, olderThan: oldest)
  }

  /// Every cell that `transaction` may find a key in, stripe by stripe (not atomic: the
  /// caller reads the cells in the transaction): the cells in the tables, and the cells
  /// retired after its snapshot, oldest first. A key may have a current cell and retired
  /// ones; `_MapStorage.read(_:_:in:)` says which holds its value.
  @inlinable
  func allSlots(in transaction: Transaction) -> (current: [(key: Key, slot: Slot)], retired: [(key: Key, slot: Slot)]) {
    allSlots(seenFrom: transaction._snapshot)
  }

  /// `allSlots(in:)` for a read at `snapshot` outside a transaction, which must stay
  /// announced while the caller reads the cells.
  @inlinable
  func allSlots(seenFrom snapshot: UInt64) -> (current: [(key: Key, slot: Slot)], retired: [(key: Key, slot: Slot)]) {
    var current: [(key: Key, slot: Slot)] = []
    var retired: [(key: Key, slot: Slot)] = []
    for stripe in stripes {
      stripe._withUnsafeGuaranteedRef { stripe in
        stripe.state.withLock { state in
          current.reserveCapacity(forAppending: state.table.estimatedLive)
          state.table.forEachCell { current.append(($0.key, $0.variable)) }
          // Only the suffix retired after the snapshot (the list is in clock order), found from
          // the newest end: the whole list, which a long transaction elsewhere keeps long, was
          // walked on every enumeration (164 ms per enumeration of a 100-key map after 128,000
          // removals; found by review).
          let start = state.retired.lastIndex { $0.clock <= snapshot }.map { $0 + 1 } ?? 0
          for entry in state.retired[start...] { retired.append((entry.key, entry.slot)) }
        }
      }
    }
    return (current, retired)
  }

  /// The first cell in the tables, stripe by stripe, that satisfies `predicate`, searched
  /// without locks (see `_KeyTable.firstCell(where:)`): only while a snapshot is announced,
  /// which keeps the cell valid memory until it is withdrawn. Cells retired meanwhile may be
  /// among those `predicate` sees; cells retired before are not.
  @inlinable
  func firstCell(where predicate: (Cell) -> Bool) -> Unmanaged<Cell>? {
    for stripe in stripes {
      let found = stripe._withUnsafeGuaranteedRef { stripe in
        stripe.currentTable._withUnsafeGuaranteedRef { $0.firstCell(where: predicate) }
      }
      if let found { return found }
    }
    return nil
  }

  /// How many cells the index holds (including empty ones not yet swept); for tests.
  var cellCount: Int {
    stripes.reduce(0) { total, stripe in
      total + stripe._withUnsafeGuaranteedRef { $0.state.withLock { $0.table.cellCount } }
    }
  }
}

extension _KeyIndex.Stripe: _DeferredHousekeeping {
  /// Drops the retired cells and replaced tables that no running snapshot can need; says
  /// whether any must wait still.
  func housekeep(droppingInto dropped: inout [AnyObject]) -> Bool {
    state.withLock { state in
      _KeyIndex.pruneRetired(&state, droppingInto: &dropped)
      let waiting = state.keepsMoreThanItMustAlways
      state.housekeepingDeferred = waiting
      return waiting
    }
  }
}
