/// A buffered write of one cell in a transaction's redo log.
@usableFromInline
struct _WriteEntry {
  @usableFromInline let cell: _Cell
  /// `cell` again, unretained, for the commit's loops: the strong reference above keeps it
  /// alive, and reading it through this handle costs no retain and release per pass.
  @usableFromInline let target: Unmanaged<_Cell>
  /// The new value as a pending version, or nil when the transaction only commuted the cell.
  @usableFromInline var version: _VersionBase?
  /// Delayed updates, applied in order to the newest committed value at commit time.
  var commutes: [(_VersionBase) -> _VersionBase]
  /// Delayed additions to a `TVar<Int>` recorded after `commutes`, kept as their sum instead
  /// of a closure each (a closure's context and the array cost more than the rest of a
  /// transaction that only adds to a counter); applied after `commutes`. Nil: none.
  var sum: Int? = nil
  /// The log generation that created `version`; a checkpoint starts a new generation so that a
  /// later write makes a fresh version instead of changing one the checkpoint still holds.
  @usableFromInline var generation: UInt32
  /// Items appended with a delayed append (see `_DelayedAppend`); they land at commit.
  var batch: _AnyDelayedAppend?
  /// The log generation that created `batch`, with the same copy-on-write role as `generation`.
  var batchGeneration: UInt32
  /// The log generation in which the entry's state was last saved for the open checkpoints, or
  /// in which the entry was made inside one (see `_TransactionLog.prepareToChange(at:)`).
  /// In the padding after `batchGeneration`: the entry stays 64 bytes.
  var savedGeneration: UInt32 = 0
}

extension _WriteEntry {
  /// Declared in an extension, so that the struct keeps its memberwise initializer, which this
  /// one calls: assigning the fields one by one built the entry on the stack and then copied
  /// it out, retaining and releasing every reference in it.
  init(
    cell: _Cell, version: consuming _VersionBase?, commutes: consuming [(_VersionBase) -> _VersionBase], sum: Int? = nil,
    generation: UInt32
  ) {
    self.init(
      cell: cell, target: Unmanaged.passUnretained(cell), version: version, commutes: commutes, sum: sum,
      generation: generation, batch: nil, batchGeneration: 0)
  }

  /// `base` with delayed updates applied, in the order they were recorded: an entry's
  /// `commutes`, then its `sum`. Static, and given the two fields, so that callers that reach
  /// an entry through a pointer do not copy it (and retain everything in it) to call a method.
  ///
  /// The intermediate results go to `context`'s leftovers, freed once the thread holds no
  /// segment and no lock: a value's deinit is the user's code, and freed here (during a
  /// commit, or a read that applies the transaction's commutes) one that used a `TVar` trapped
  /// as if a commute's transform had used it (found by review).
  static func applying(
    _ commutes: [(_VersionBase) -> _VersionBase], _ sum: Int?, to base: _VersionBase, settingAsideIn context: _ThreadContext
  ) -> _VersionBase {
    var version = base
    for transform in commutes {
      let next = transform(version)
      if version !== base { context.setAside(version) }
      version = next
    }
    if let sum { version = _Version<Int>.adding(sum, to: version) }
    return version
  }

  /// Whether the entry changes the cell without having read it (validation skips it).
  var isDelayedOnly: Bool { version == nil }
}

/// The redo log of a running transaction: buffered writes and the hooks to run at its end.
///
/// While a checkpoint is open (`orElse`, a nested `atomically` that can throw), the log keeps
/// an undo list of its changes to the entries, which a rollback replays backwards (see
/// `_TransactionLog+Checkpoints.swift`).
@usableFromInline
struct _TransactionLog {
  @usableFromInline var entries: ContiguousArray<_WriteEntry> = []
  /// Built once the log is too long for a linear scan to be the cheaper lookup.
  var index = _CellPositions()
  var afterCommit: [() -> Void] = []
  /// The wake-ups owed to threads waiting outside transactions for what the commit publishes
  /// (a `TQueue`'s parked consumers and producers), by lot and count: done as soon as the
  /// commit is visible, before any user code the commit's end runs (deinits of the values it
  /// frees, `afterCommit` hooks), which might wait for one of those threads.
  var wakeAfterCommit: [_WakeUps] = []
  /// Abort hooks, each with its number in the attempt's order of registration (see
  /// `_Segment.abortHooksRegistered`).
  var afterAbort: [(number: Int, hook: () -> Void)] = []
  @usableFromInline var generation: UInt32 = 0
  /// How many checkpoints are open; the log records its changes in `undo` only while one is.
  var openCheckpoints = 0
  /// The changes to `entries` since the outermost open checkpoint, oldest first.
  var undo: [_LogChange] = []

  @usableFromInline init() {}

  private static let linearScanLimit = 8

  /// The position of `cell`'s entry, if the log has one. Always inlined: out of line, the
  /// calls (with the log, whose index is three words) cost a transaction that moves 16 queue
  /// items about 60 instructions per item more (Callgrind).
  @usableFromInline @inline(__always)
  func find(_ cell: _Cell) -> Int? {
    if index.isBuilt { return indexedPosition(of: cell) }
    let wanted = Unmanaged.passUnretained(cell).toOpaque()
    for position in entries.indices where entries[position].target.toOpaque() == wanted {
      return position
    }
    return nil
  }

  /// `find` in a long log. Out of line, so that the short logs' scan is all that `find`
  /// carries into its callers.
  @inline(never)
  private func indexedPosition(of cell: _Cell) -> Int? { index.position(of: cell) }

  /// Adds `entry`, moved in: a copy would retain each of its references and release them again.
  @inline(__always)
  mutating func append(_ entry: consuming _WriteEntry) {
    // Through the unretained handle: taking the cell out of it retained and released it.
    let target = entry.target
    entries.append(consume entry)
    if openCheckpoints > 0 { noteAppended() }
    if index.isBuilt {
      _ = target._withUnsafeGuaranteedRef { index.insertIfAbsent($0, at: entries.count - 1) }
    } else if entries.count > Self.linearScanLimit {
      rebuildIndex()
    }
  }

  /// Indexes every entry (a log holds each cell once).
  private mutating func rebuildIndex() {
    var built = _CellPositions(minimumCapacity: entries.count * 2)
    for position in entries.indices {
      _ = entries[position].target._withUnsafeGuaranteedRef { built.insertIfAbsent($0, at: position) }
    }
    index = built
  }

  /// Takes out the entry at `position`, moving the last entry into its place (a rollback puts
  /// them back: see `undoRemoval`). The entries' order does not matter (a commit sorts them by
  /// address), and shifting the ones after it down, with the index rebuilt for their new
  /// positions, cost O(*n*) per removal: a transaction that wrote 10,000 variables and then
  /// appended to a `TArray` and popped its own element back, 10,000 times, took 2.6 s instead
  /// of milliseconds (each pop emptied its batch, which took the entry out).
  mutating func remove(at position: Int) {
    if openCheckpoints > 0 { undo.append(.removed(position: position, entry: entries[position])) }
    let last = entries.count - 1
    if index.isBuilt {
      entries[position].target._withUnsafeGuaranteedRef { index.remove($0) }
      if position != last { entries[last].target._withUnsafeGuaranteedRef { index.move($0, to: position) } }
    }
    if position != last { entries.swapAt(position, last) }
    entries.removeLast()
  }

  /// Orders the entries by cell address, the global order in which commits lock cells.
  mutating func sortForLocking() {
    guard entries.count > 1 else { return }
    if entries.count <= Self.insertionSortLimit {
      entries.withUnsafeMutableBufferPointer { Self.insertionSort($0) }
    } else {
      entries.sort { $0.target.toOpaque() < $1.target.toOpaque() }
    }
    if index.isBuilt { index = _CellPositions() }
  }

  /// Up to this many entries, `sortForLocking` sorts by insertion.
  private static let insertionSortLimit = 32

  /// Sorts `entries` by cell address, moving each entry once into its place and the greater
  /// ones up by one with a single move of memory: the standard library's sort of a log of 16
  /// writes took about 135 instructions per entry, this one about 95 (Callgrind).
  private static func insertionSort(_ entries: UnsafeMutableBufferPointer<_WriteEntry>) {
    let base = entries.baseAddress!
    for next in 1..<entries.count {
      let address = base[next].target.toOpaque()
      var place = next
      while place > 0 && base[place - 1].target.toOpaque() > address { place -= 1 }
      guard place != next else { continue }
      let moving = (base + next).move()
      // The ranges overlap; the move copies as `memmove` does.
      (base + place + 1).moveInitialize(from: base + place, count: next - place)
      (base + place).initialize(to: moving)
    }
  }

  var isEmpty: Bool { entries.isEmpty }

  /// Starts a new generation, for a checkpoint or after a rollback: the entries written so far
  /// (and their batches) are then copied on their next write instead of changed in place.
  ///
  /// After 2³² generations in one transaction (a helper that calls `atomically` or `orElse`
  /// in a long loop) the counter would come back to an entry's generation, and a nested part
  /// would change in place a version that its checkpoint holds, so that a rollback kept the
  /// part's write (found by review). Instead the entries all drop to generation 0 (copying
  /// them, once per 2³² checkpoints) and the count starts again from 1, which no entry has,
  /// and neither has any entry that the undo list would restore.
  mutating func startNewGeneration() {
    if generation == .max {
      for position in entries.indices { entries[position].forgetGenerations() }
      undo = undo.map { $0.forgettingGenerations() }
      generation = 0
    }
    generation += 1
  }

  mutating func removeAll() {
    if entries.count <= 64 {
      // Entry by entry: `removeAll(keepingCapacity:)` goes through a generic range replacement
      // that cost a one-write transaction about 220 instructions, nearly a tenth of the whole.
      while entries.popLast() != nil {}
    } else {
      entries.removeAll()
    }
    // Only what is there: emptying an empty array releases its storage and retains the empty
    // one, two calls into the runtime per array on every transaction.
    if index.isBuilt { index = _CellPositions() }
    if !undo.isEmpty { undo.removeAll() }
    openCheckpoints = 0
    if !afterCommit.isEmpty { afterCommit.removeAll() }
    if !afterAbort.isEmpty { afterAbort.removeAll() }
    // Entry by entry, keeping the storage: the next transaction that enqueues would otherwise
    // allocate it anew.
    while wakeAfterCommit.popLast() != nil {}
  }

  /// Adds `count` wake-ups for `lot` (saturating, so that `Int.max` stays "all"): to the last
  /// entry if it is `lot`'s, else in an entry of its own. Only the last is looked at, so that
  /// asking costs O(1) however many queues a transaction touches; a lot asked for between two
  /// others' gets two entries, each waking its count.
  mutating func addWakeUps(_ count: Int, on lot: any _ParkingLot) {
    if let last = wakeAfterCommit.indices.last, wakeAfterCommit[last].lot === lot {
      let (sum, overflow) = wakeAfterCommit[last].count.addingReportingOverflow(count)
      wakeAfterCommit[last].count = overflow ? .max : sum
    } else {
      wakeAfterCommit.append(_WakeUps(lot: lot, count: count))
    }
  }

  /// Whether any hook, of any kind, is registered.
  var hasHooks: Bool { !afterCommit.isEmpty || !afterAbort.isEmpty || !wakeAfterCommit.isEmpty }
}
