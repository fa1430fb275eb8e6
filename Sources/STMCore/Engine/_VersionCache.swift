/// A thread's versions that no reader can reach any more, kept for its next writes to reuse
/// instead of allocating: what a commit's trim drops (see `trimHistory`), by version type.
///
/// Only versions of trivially copyable values are kept, so that a kept version never holds on
/// to an object (or a removed key's cell) it refers to; and a version is reused only for a
/// value of its own type. The cache belongs to one thread: taking and offering are plain loads
/// and stores, and the version a write reuses is one its thread dropped a moment ago, still in
/// its cache lines. It is small (`typeLimit` types, `perTypeLimit` versions each, and a
/// spare), so it keeps little memory, and it is freed with its thread.
///
/// In front of the shelves sits one spare: the last version offered alone. A one-write
/// transaction on a trivially copyable value takes one version and its commit drops one of the
/// same type, so in the steady state the spare alone serves it, with a compare and two stores
/// instead of a search of the shelves (which cost such an update a tenth of its instructions).
/// (A drop-in update usually needs neither: it overwrites the newest version in place; see
/// `_Engine.overwritableVersions`.)
///
/// Versions go in and out as `Unmanaged` references that carry one retain: a reused version
/// then costs no reference-count operation (each is an atomic instruction, and they were most
/// of what a drop-in dictionary update spent on its versions).
final class _VersionCache {
  static let typeLimit = 4
  /// Enough for a transaction that writes a few dozen variables of one type to take all its
  /// versions from the cache and hand all of them back at commit: with 8, one that wrote 16
  /// dictionary keys allocated and freed 7 versions each time, 7% of its instructions.
  static let perTypeLimit = 32

  private struct Shelf {
    var type: ObjectIdentifier?
    var count: Int
  }

  /// The last version offered alone, retained once, unlinked and pending; nil when empty.
  private var spare: Unmanaged<_VersionBase>?
  /// The type of `spare` (meaningless while it is nil).
  private var spareType = ObjectIdentifier(_VersionBase.self)

  // Fixed storage, not arrays: no copy-on-write checks or copies on the hot path.
  private let shelves: UnsafeMutablePointer<Shelf>
  /// Shelf `i` keeps its versions, each retained once, in `slots[i * perTypeLimit ..<
  /// i * perTypeLimit + shelves[i].count]`, unlinked: kept versions need no `older` link, so
  /// stacking them writes no reference-counted field.
  private let slots: UnsafeMutablePointer<Unmanaged<_VersionBase>>

  init() {
    shelves = .allocate(capacity: Self.typeLimit)
    shelves.initialize(repeating: Shelf(type: nil, count: 0), count: Self.typeLimit)
    slots = .allocate(capacity: Self.typeLimit * Self.perTypeLimit)
  }

  deinit {
    removeAll()
    shelves.deinitialize(count: Self.typeLimit)
    shelves.deallocate()
    slots.deallocate()
  }

  /// A cached version of type `type`, retained once for the caller, if there is one; it is
  /// pending, unlinked and without flags.
  func take(_ type: ObjectIdentifier) -> Unmanaged<_VersionBase>? {
    if let spare, spareType == type {
      self.spare = nil
      return spare
    }
    return takeFromShelves(type)
  }

  private func takeFromShelves(_ type: ObjectIdentifier) -> Unmanaged<_VersionBase>? {
    for index in 0..<Self.typeLimit where shelves[index].type == type {
      guard shelves[index].count > 0 else { return nil }
      shelves[index].count -= 1
      return slot(index, shelves[index].count).pointee
    }
    return nil
  }

  /// Keeps versions of `chain` (its newest, retained once, which the cache takes over; the rest
  /// linked through `older`), which no reader can reach and nothing else refers to, up to the
  /// limit; frees the rest.
  func offer(_ chain: Unmanaged<_VersionBase>) {
    let isAlone = chain._withUnsafeGuaranteedRef { version in
      guard version.older == nil else { return false }
      version.flags = 0
      version.stamp = _pendingStamp
      return true
    }
    guard isAlone else { return shelve(chain) }
    // The spare it replaces, if any, moves to a shelf: a type no longer written must not keep
    // the spare from the type that is.
    if let spare { shelve(spare) }
    spare = chain
    spareType = chain._withUnsafeGuaranteedRef { ObjectIdentifier(type(of: $0)) }
  }

  /// `offer(chain)` on the shelves.
  private func shelve(_ chain: Unmanaged<_VersionBase>) {
    let index = chain._withUnsafeGuaranteedRef { shelf(for: ObjectIdentifier(type(of: $0))) }
    var next: Unmanaged<_VersionBase>? = chain
    while let version = next {
      guard shelves[index].count < Self.perTypeLimit else {
        version.release()   // frees it and what is linked below it
        return
      }
      next = version._withUnsafeGuaranteedRef { version in
        version.flags = 0
        version.stamp = _pendingStamp
        // A chain's later links may still be shared (a reader's retain): keep only unique ones.
        guard var older = version.older.take(), isKnownUniquelyReferenced(&older) else { return nil }
        return Unmanaged.passRetained(older)
      }
      slot(index, shelves[index].count).pointee = version
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
    empty(index)
    shelves[index].type = type
    return index
  }

  /// Where shelf `shelf` keeps its version number `position`.
  private func slot(_ shelf: Int, _ position: Int) -> UnsafeMutablePointer<Unmanaged<_VersionBase>> {
    slots + shelf * Self.perTypeLimit + position
  }

  /// Frees the versions of shelf `index`.
  private func empty(_ index: Int) {
    for position in 0..<shelves[index].count { slot(index, position).pointee.release() }
    shelves[index] = Shelf(type: nil, count: 0)
  }

  /// The version `take(type)` would return, left in the cache; for tests.
  func peekForTests(_ type: ObjectIdentifier) -> _VersionBase? {
    if let spare, spareType == type { return spare.takeUnretainedValue() }
    guard let index = (0..<Self.typeLimit).first(where: { shelves[$0].type == type }), shelves[index].count > 0 else {
      return nil
    }
    return slot(index, shelves[index].count - 1).pointee.takeUnretainedValue()
  }

  /// Frees every cached version.
  func removeAll() {
    spare?.release()
    spare = nil
    for index in 0..<Self.typeLimit { empty(index) }
  }
}
