import Synchronization

/// The cells of a `TArray`, one per index, in chunks that double in size and are never moved:
/// a cell, once made, stays the cell of its index, so a transaction's reads of an index stay
/// valid however the array grows. Chunks are made on demand, published once through an atomic
/// reference, and read without locks.
@usableFromInline
final class _SlotDirectory<Element: Sendable>: Sendable {
  @usableFromInline typealias Slot = TVar<Element?>

  @usableFromInline
  final class Chunk: Sendable {
    @usableFromInline let slots: [Slot]
    @inlinable init(size: Int) { slots = (0..<size).map { _ in Slot(nil) } }
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

    /// The chunk, if made. Acquiring: its slots were initialized before it was published.
    @inlinable
    func load() -> Chunk? {
      stored.load(ordering: .acquiring)?.takeUnretainedValue()
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
  @usableFromInline let chunks: [ChunkReference] = (0..<48).map { _ in ChunkReference() }
  /// How many slots past which appends have landed; read relaxed, only to decide when to make
  /// the next chunk ahead of time (outside any commit's locks).
  @usableFromInline let landedHighWater = Atomic<Int>(0)

  @inlinable
  static func position(of index: Int) -> (chunk: Int, offset: Int) {
    let group = index / firstChunkSize + 1
    let chunk = Int.bitWidth - 1 - group.leadingZeroBitCount
    return (chunk, index - firstChunkSize * ((1 << chunk) - 1))
  }

  /// The cell of `index`, if its chunk exists.
  @inlinable
  func existingSlot(_ index: Int) -> Slot? {
    let (chunk, offset) = Self.position(of: index)
    guard chunk < chunks.count, let found = chunks[chunk].load() else { return nil }
    return found.slots[offset]
  }

  /// The cell of `index`, making its chunk if needed.
  @inlinable
  func slot(_ index: Int) -> Slot {
    let (chunk, offset) = Self.position(of: index)
    return makeChunk(chunk).slots[offset]
  }

  @inlinable
  func makeChunk(_ chunk: Int) -> Chunk {
    precondition(chunk < chunks.count, "TArray cannot grow past \(Self.firstChunkSize << chunks.count) elements.")
    if let existing = chunks[chunk].load() { return existing }
    return chunks[chunk].storeIfNil(Chunk(size: Self.firstChunkSize << chunk))
  }

  /// Notes that appends have landed up to `count`.
  @inlinable
  func noteLanded(upTo count: Int) {
    landedHighWater.store(count, ordering: .relaxed)
  }

  /// Makes the chunk that appends will need next, if they are close to it, so that a commit
  /// rarely has to allocate one while it holds its locks.
  @inlinable
  func prepareForAppends(_ extra: Int) {
    let next = landedHighWater.load(ordering: .relaxed) + extra + Self.firstChunkSize
    let (chunk, _) = Self.position(of: next)
    if chunk < chunks.count, chunks[chunk].load() == nil { _ = makeChunk(chunk) }
  }
}
