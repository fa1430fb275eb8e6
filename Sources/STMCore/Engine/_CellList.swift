/// A growable list of retained cells with a cheap `removeAll`: the read markers of a segment.
///
/// `ContiguousArray.removeAll(keepingCapacity:)` goes through a generic range replacement that
/// cost more than the rest of a small transaction; this list releases its cells and resets a
/// count. Owned by one segment, so it needs no synchronization; segments live as long as the
/// process, so the buffer is never freed.
struct _CellList {
  private var storage: UnsafeMutablePointer<Unmanaged<_Cell>>
  private var capacity: Int
  private(set) var count = 0
  /// Built once the list is long: a transaction that reads the same few cells over and over,
  /// interleaved, would otherwise grow it (and its validation) without bound.
  private var members = _CellPositions()
  private static let dedupeThreshold = 32

  init(capacity: Int = 64) {
    self.capacity = capacity
    storage = .allocate(capacity: capacity)
  }

  var isEmpty: Bool { count == 0 }

  /// The most recently appended cell, compared by identity without retaining it.
  func lastIs(_ cell: _Cell) -> Bool {
    count > 0 && storage[count - 1].toOpaque() == Unmanaged.passUnretained(cell).toOpaque()
  }

  /// Adds `cell` unless it is known to be there already.
  mutating func append(_ cell: _Cell) {
    if members.isBuilt {
      guard members.insertIfAbsent(cell, at: count) else { return }
    } else if count == Self.dedupeThreshold {
      // Build the index, dropping the duplicates collected so far.
      var built = _CellPositions(minimumCapacity: count * 2)
      var kept = 0
      for index in 0..<count {
        let entry = storage[index]
        if entry._withUnsafeGuaranteedRef({ built.insertIfAbsent($0, at: kept) }) {
          storage[kept] = entry
          kept += 1
        } else {
          entry.release()
        }
      }
      count = kept
      members = built
      guard members.insertIfAbsent(cell, at: count) else { return }
    }
    if count == capacity { grow() }
    storage[count] = Unmanaged.passRetained(cell)
    count += 1
  }

  /// Calls `body` with each cell, without retaining them (the list keeps them alive).
  func forEach(_ body: (_Cell) throws -> Void) rethrows {
    for index in 0..<count {
      try storage[index]._withUnsafeGuaranteedRef { try body($0) }
    }
  }

  /// The first cell for which `predicate` holds.
  func first(where predicate: (_Cell) -> Bool) -> _Cell? {
    for index in 0..<count where storage[index]._withUnsafeGuaranteedRef(predicate) {
      return storage[index].takeUnretainedValue()
    }
    return nil
  }

  /// The cells, each once, retained.
  func distinctCells() -> [_Cell] {
    var seen = Set<ObjectIdentifier>()
    var result: [_Cell] = []
    forEach { cell in
      if seen.insert(ObjectIdentifier(cell)).inserted { result.append(cell) }
    }
    return result
  }

  mutating func removeAll() {
    for index in 0..<count { storage[index].release() }
    count = 0
    if members.isBuilt { members = _CellPositions() }
    // Let a list that grew for one huge transaction shrink back.
    if capacity > 4096 {
      storage.deallocate()
      capacity = 64
      storage = .allocate(capacity: capacity)
    }
  }

  private mutating func grow() {
    let larger = UnsafeMutablePointer<Unmanaged<_Cell>>.allocate(capacity: capacity * 2)
    larger.moveInitialize(from: storage, count: count)
    storage.deallocate()
    storage = larger
    capacity *= 2
  }
}
