/// A thread's versions that no reader can reach any more, kept for its next writes to reuse
/// instead of allocating: what a commit's trim drops (see `trimHistory`), by version type.
///
/// Only versions of trivially copyable values are kept, so that a kept version never holds on
/// to an object (or a removed key's cell) it refers to; and a version is reused only for a
/// value of its own type. The cache belongs to one thread: taking and offering are plain loads
/// and stores, and the version a write reuses is one its thread dropped a moment ago, still in
/// its cache lines. It is small (`typeLimit` types, `perTypeLimit` versions each), so it keeps
/// little memory, and it is freed with its thread.
final class _VersionCache {
  static let typeLimit = 4
  static let perTypeLimit = 8

  private struct Shelf {
    var type: ObjectIdentifier?
    /// Linked through `older`.
    var chain: _VersionBase?
    var count: Int
  }

  // Fixed storage, not an array: no copy-on-write checks or copies of shelves on the hot path.
  private let shelves: UnsafeMutablePointer<Shelf>

  init() {
    shelves = .allocate(capacity: Self.typeLimit)
    shelves.initialize(repeating: Shelf(type: nil, chain: nil, count: 0), count: Self.typeLimit)
  }

  deinit {
    shelves.deinitialize(count: Self.typeLimit)
    shelves.deallocate()
  }

  /// A cached version of type `type`, if there is one; its fields are reset.
  func take(_ type: ObjectIdentifier) -> _VersionBase? {
    for index in 0..<Self.typeLimit where shelves[index].type == type {
      guard let version = shelves[index].chain.take() else { return nil }
      shelves[index].chain = version.older.take()
      shelves[index].count -= 1
      return version
    }
    return nil
  }

  /// Keeps versions of `chain`, which no reader can reach and nothing else refers to, up to
  /// the limit; frees the rest.
  func offer(_ chain: consuming _VersionBase) {
    let index = shelf(for: ObjectIdentifier(Swift.type(of: chain)))
    var next: _VersionBase? = chain
    while shelves[index].count < Self.perTypeLimit, let version = next.take() {
      next = version.older.take()
      // A chain's later links may still be shared (a reader's retain): keep only unique ones.
      if next != nil && !isKnownUniquelyReferenced(&next) { next = nil }
      version.flags = 0
      version.stamp = _pendingStamp
      version.older = shelves[index].chain.take()
      shelves[index].chain = version
      shelves[index].count += 1
    }
  }

  /// The shelf for `type`, made (emptying the fullest other shelf once all are taken) if
  /// there is none.
  private func shelf(for type: ObjectIdentifier) -> Int {
    var free: Int?, fullest = 0
    for index in 0..<Self.typeLimit {
      if shelves[index].type == type { return index }
      if shelves[index].type == nil { free = free ?? index }
      if shelves[index].count > shelves[fullest].count { fullest = index }
    }
    let index = free ?? fullest
    shelves[index] = Shelf(type: type, chain: nil, count: 0)
    return index
  }

  /// The version `take(type)` would return, left in the cache; for tests.
  func peekForTests(_ type: ObjectIdentifier) -> _VersionBase? {
    (0..<Self.typeLimit).first { shelves[$0].type == type }.flatMap { shelves[$0].chain }
  }

  /// Frees every cached version.
  func removeAll() {
    for index in 0..<Self.typeLimit { shelves[index] = Shelf(type: nil, chain: nil, count: 0) }
  }
}
