import STMCore
import Synchronization

/// The cells of a `TArray`, one per index, in chunks that double in size and are never moved:
/// a cell, once made, stays the cell of its index, so a transaction's reads of an index stay
/// valid however the array grows. Chunks are made on demand, published once through an atomic
/// reference, and read without locks; within a chunk, each index's cell is made when the
/// index is first reached (a little ahead of the appends: see `prepareForAppends(_:)`) and
/// published once through an atomic word.
///
/// Cells made one by one, not a whole chunk's at once: a chunk doubles the array's capacity,
/// and filling it up front gave an array of 1,100,000 `Int`s about 2,100,000 cells (232
/// bytes per element, against 129 at 1,000,000).
@usableFromInline
final class _SlotDirectory<Element: Sendable>: Sendable {
  @usableFromInline typealias Slot = TVar<Element?>
  @usableFromInline typealias Cell = _TypedCell<Element?>

  /// The cells of a run of indices, each made at most once and then never replaced.
  ///
  /// `@unchecked Sendable`: the words are atomics, written once each (nil to a cell) with a
  /// releasing exchange and read with acquiring loads, so a cell's initial value is visible
  /// to whoever finds it.
  @usableFromInline
  final class Chunk: @unchecked Sendable {
    /// Each index's cell, retained once by the chunk, or nil while it is not made.
    @usableFromInline let cells: UnsafeMutablePointer<Atomic<Unmanaged<Cell>?>>
    @usableFromInline let size: Int

    @inlinable
    init(size: Int) {
      self.size = size
      cells = .allocate(capacity: size)
      for offset in 0..<size { (cells + offset).initialize(to: Atomic(nil)) }
    }

    @inlinable
    deinit {
      for offset in 0..<size { cells[offset].load(ordering: .relaxed)?.release() }
      cells.deinitialize(count: size)
      cells.deallocate()
    }

    /// The cell of the index at `offset`, if made.
    @inlinable
    func existingSlot(_ offset: Int) -> Slot? {
      existingCell(offset).map { TVar(_cell: $0.takeUnretainedValue()) }
    }

    /// `existingSlot(_:)`, unretained: the chunk keeps the cell as long as the array lives.
    @inlinable
    func existingCell(_ offset: Int) -> Unmanaged<Cell>? {
      cells[offset].load(ordering: .acquiring)
    }

    /// The cell of the index at `offset`, made (holding nil) if it is not yet.
    @inlinable
    func slot(_ offset: Int) -> Slot {
      if let existing = existingSlot(offset) { return existing }
      let candidate = Slot(nil)._retainedCell
      let (exchanged, original) = cells[offset].compareExchange(
        expected: nil, desired: candidate, ordering: .acquiringAndReleasing)
      if exchanged { return TVar(_cell: candidate.takeUnretainedValue()) }
      // Another thread made it first: theirs is the index's cell.
      candidate.release()
      return TVar(_cell: original.unsafelyUnwrapped.takeUnretainedValue())
    }
  }

  /// A chunk made at most once and then never replaced: `AtomicLazyReference`'s job, done
  /// here because that type's generic code is not specialized into this module, and each of
  /// its loads looked up metadata at run time (about 430 instructions; a transaction that
  /// appended one element made three of them).
  @usableFromInline
  final class ChunkReference: Sendable {
    /// The chunk, retained once by this reference; nil until made.
    @usableFromInline let stored = Atomic<Unmanaged<Chunk>?>(nil)

    @inlinable init() {}

    deinit { stored.load(ordering: .relaxed)?.release() }

    /// The chunk, if made. Acquiring: its words were initialized before it was published.
    @inlinable
    func load() -> Chunk? {
      loadUnretained()?.takeUnretainedValue()
    }

    /// `load()`, unretained: the reference keeps its chunk for good.
    @inlinable
    func loadUnretained() -> Unmanaged<Chunk>? {
      stored.load(ordering: .acquiring)
    }

    /// Publishes `chunk` unless another chunk got there first; returns the one that stays.
    @inlinable
    func storeIfNil(_ chunk: Chunk) -> Chunk {
      let candidate = Unmanaged.passRetained(chunk)
      let (exchanged, original) = stored.compareExchange(
        expected: nil, desired: candidate, ordering: .acquiringAndReleasing)
      if exchanged { return chunk }
      candidate.release()
      return original!.takeUnretainedValue()
    }
  }

  @inlinable static var firstChunkSize: Int { 32 }
  /// How many cells past the landed appends (and those about to land) `prepareForAppends`
  /// keeps made, and how many more it makes each time it tops them up.
  @inlinable static var cellsMadeAhead: Int { 16 }
  /// How many cells `prepareForAppends` makes ahead for one transaction's appends at most.
  @inlinable static var mostMadeForOneBatch: Int { 1_024 }
  @usableFromInline let chunks: [ChunkReference] = (0..<48).map { _ in ChunkReference() }
  /// How many slots past which appends have landed; read relaxed, only to decide when to make
  /// the next cells ahead of time (outside any commit's locks).
  @usableFromInline let landedHighWater = Atomic<Int>(0)
  /// Every index below this has its cell made (it only grows; read relaxed, as a hint).
  @usableFromInline let madeUpTo = Atomic<Int>(0)

  @inlinable
  static func position(of index: Int) -> (chunk: Int, offset: Int) {
    let group = index / firstChunkSize + 1
    let chunk = Int.bitWidth - 1 - group.leadingZeroBitCount
    return (chunk, index - firstChunkSize * ((1 << chunk) - 1))
  }

  /// The cell of `index`, if it is made, unretained: chunks and their cells live as long as
  /// the directory, so a caller that keeps the array alive may use it without a retain (a
  /// retain of a chunk that every thread reading the array retains moved its line between
  /// the cores on every read).
  @inlinable
  func existingCell(_ index: Int) -> Unmanaged<Cell>? {
    let (chunk, offset) = Self.position(of: index)
    guard chunk < chunks.count, let found = chunks[chunk].loadUnretained() else { return nil }
    return found._withUnsafeGuaranteedRef { $0.existingCell(offset) }
  }

  /// The cell of `index`, if it is made.
  @inlinable
  func existingSlot(_ index: Int) -> Slot? {
    existingCell(index).map { TVar(_cell: $0.takeUnretainedValue()) }
  }

  /// The cell of `index`, making it (and its chunk) if needed.
  @inlinable
  func slot(_ index: Int) -> Slot {
    // Found unretained when made (nearly always: cells are made ahead of the appends), the
    // variable's own reference is the only one taken: through `makeChunk` the chunk's
    // reference, the chunk and the cell were each retained and released, on lines that every
    // thread appending to or popping from the array shares (pop-loop took two per iteration).
    if let cell = existingCell(index) { return Slot(_cell: cell.takeUnretainedValue()) }
    let (chunk, offset) = Self.position(of: index)
    return makeChunk(chunk).slot(offset)
  }

  @inlinable
  func makeChunk(_ chunk: Int) -> Chunk {
    // The chunks double from the first: together they hold its size times 2^chunks - 1.
    precondition(chunk < chunks.count, "TArray cannot grow past \((Self.firstChunkSize << chunks.count) - Self.firstChunkSize) elements.")
    if let existing = chunks[chunk].load() { return existing }
    return chunks[chunk].storeIfNil(Chunk(size: Self.firstChunkSize << chunk))
  }

  /// Notes that appends have landed up to `count`. Only raises the mark: a pop lowers the
  /// count, but its cell stays made (noted by review). A hint, so a plain load and store, not
  /// a compare-and-swap on every append: two appends landing at once may still lower it a
  /// little, which costs at most an early top-up.
  @inlinable
  func noteLanded(upTo count: Int) {
    if landedHighWater.load(ordering: .relaxed) < count { landedHighWater.store(count, ordering: .relaxed) }
  }

  /// Makes the cells that `extra` appends will land in next, and a few more, if they are not
  /// made yet, so that a commit rarely has to allocate one while it holds its locks. At most
  /// `mostMadeForOneBatch` for the appends: a transaction that appended a million elements and
  /// then threw or reran left a million cells made for good in an array that never held them
  /// (found by review). The commit of a larger batch makes the rest as it lands it, before it
  /// validates the transaction's reads: a commit that then fails validation leaves them made
  /// (for the appends that come to those indices later), if its rerun appends less.
  @inlinable
  func prepareForAppends(_ extra: Int) {
    let needed = landedHighWater.load(ordering: .relaxed) + min(extra, Self.mostMadeForOneBatch) + Self.cellsMadeAhead
    let made = madeUpTo.load(ordering: .relaxed)
    if made < needed { makeCells(from: made, to: needed + Self.cellsMadeAhead) }
  }

  /// Makes the cells of indices `0 ..< elements.count`, holding `elements`, in a directory no
  /// other thread can see yet (an array's initializer), and a few more ahead of the appends.
  @inlinable
  func fill(with elements: [Element]) {
    for (index, element) in elements.enumerated() {
      let (chunk, offset) = Self.position(of: index)
      makeChunk(chunk).cells[offset].store(Slot(element)._retainedCell, ordering: .releasing)
    }
    madeUpTo.store(elements.count, ordering: .relaxed)
    noteLanded(upTo: elements.count)
    prepareForAppends(0)
  }

  /// Makes the cells of `start ..< end` that are not made yet, then raises `madeUpTo` to `end`.
  @inlinable
  func makeCells(from start: Int, to end: Int) {
    for index in start..<end { _ = slot(index) }
    var current = madeUpTo.load(ordering: .relaxed)
    while current < end {
      let (exchanged, original) = madeUpTo.compareExchange(expected: current, desired: end, ordering: .relaxed)
      if exchanged { break }
      current = original
    }
  }

  /// How many cells are made (for tests).
  var madeCellCount: Int {
    chunks.reduce(0) { total, reference in
      guard let chunk = reference.load() else { return total }
      return total + (0..<chunk.size).count { chunk.cells[$0].load(ordering: .relaxed) != nil }
    }
  }
}
