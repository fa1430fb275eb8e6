/// A growable list of cells with a cheap `removeAll`: the read markers of a segment.
///
/// `ContiguousArray.removeAll(keepingCapacity:)` goes through a generic range replacement that
/// cost more than the rest of a small transaction; this list releases its cells and resets a
/// count. Used by one thread at a time, so it needs no synchronization: a segment's, or, once
/// its transaction has ended, its thread's leftovers (see `_Leftovers`), with which the segment
/// swaps it.
///
/// A cell is retained while listed, unless the caller says that something else keeps it alive
/// for as long as the segment's snapshot is announced (an index's cell: see
/// `_Segment.read(_:retaining:)`). Such an entry is marked in the low bit of its address (a
/// heap object is at least 8-byte aligned), and the list never touches its cell after
/// `removeAll` starts, which may come after the snapshot is withdrawn.
struct _CellList {
  /// Each entry: a cell's address, with `unretained` set when the list holds no retain on it.
  private var storage: UnsafeMutablePointer<UInt>
  private var capacity: Int
  private(set) var count = 0
  /// Built once the list is long: a transaction that reads the same few cells over and over,
  /// interleaved, would otherwise grow it (and its validation) without bound.
  private var members = _CellPositions()
  private static let dedupeThreshold = 32
  private static var unretained: UInt { 1 }

  init(capacity: Int = 64) {
    self.capacity = capacity
    storage = .allocate(capacity: capacity)
  }

  /// An empty list with no buffer yet (its first append makes one): a placeholder that a
  /// thread's leftovers swap in and out (see `_Leftovers`), which costs no allocation.
  static var unallocated: _CellList { _CellList(unallocated: ()) }

  private init(unallocated: Void) {
    capacity = 0
    // Never read or written: with no capacity, every access stops at `count`, which is 0.
    storage = UnsafeMutablePointer(bitPattern: MemoryLayout<UInt>.alignment).unsafelyUnwrapped
  }

  /// Frees the buffer of an empty list that is going away. (A segment's list is never freed:
  /// segments live as long as the process.)
  mutating func deallocate() {
    assert(count == 0, "freeing a list that still holds cells")
    if capacity > 0 { storage.deallocate() }
    self = .unallocated
  }

  var isEmpty: Bool { count == 0 }

  /// The most recently appended cell, compared by identity without retaining it.
  func lastIs(_ cell: _Cell) -> Bool {
    count > 0 && storage[count - 1] & ~Self.unretained == Self.address(of: cell)
  }

  /// Adds `cell` unless it is known to be there already, retained unless `retaining` is
  /// false (see the type's documentation).
  mutating func append(_ cell: _Cell, retaining: Bool) {
    if members.isBuilt {
      guard members.insertIfAbsent(cell, at: count) else { return }
    } else if count == Self.dedupeThreshold {
      // Build the index, dropping the duplicates collected so far.
      var built = _CellPositions(minimumCapacity: count * 2)
      var kept = 0
      for index in 0..<count {
        let entry = storage[index]
        if Self.cell(entry)._withUnsafeGuaranteedRef({ built.insertIfAbsent($0, at: kept) }) {
          storage[kept] = entry
          kept += 1
        } else {
          Self.release(entry)
        }
      }
      count = kept
      members = built
      guard members.insertIfAbsent(cell, at: count) else { return }
    }
    if count == capacity { grow() }
    if retaining {
      storage[count] = UInt(bitPattern: Unmanaged.passRetained(cell).toOpaque())
    } else {
      storage[count] = Self.address(of: cell) | Self.unretained
    }
    count += 1
  }

  /// Calls `body` with each cell, without retaining them (the list keeps them alive).
  func forEach(_ body: (_Cell) throws -> Void) rethrows {
    for index in 0..<count {
      try Self.cell(storage[index])._withUnsafeGuaranteedRef { try body($0) }
    }
  }

  /// The first cell for which `predicate` holds.
  func first(where predicate: (_Cell) -> Bool) -> _Cell? {
    for index in 0..<count where Self.cell(storage[index])._withUnsafeGuaranteedRef(predicate) {
      return Self.cell(storage[index]).takeUnretainedValue()
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
    for index in 0..<count { Self.release(storage[index]) }
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
    let larger = UnsafeMutablePointer<UInt>.allocate(capacity: max(64, capacity * 2))
    if capacity > 0 {
      larger.moveInitialize(from: storage, count: count)
      storage.deallocate()
    }
    storage = larger
    capacity = max(64, capacity * 2)
  }

  private static func address(of cell: _Cell) -> UInt {
    UInt(bitPattern: Unmanaged.passUnretained(cell).toOpaque())
  }

  private static func cell(_ entry: UInt) -> Unmanaged<_Cell> {
    Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: entry & ~unretained).unsafelyUnwrapped)
  }

  /// Lets go of the list's retain on the entry's cell, if it holds one; touches an unretained
  /// entry's cell not at all.
  private static func release(_ entry: UInt) {
    if entry & unretained == 0 { cell(entry).release() }
  }
}
