/// Where cells sit in a list, found by their addresses: the index that a transaction's redo log
/// and its read list build once they are too long to scan.
///
/// Open addressing with linear probing over a power-of-two table, at most half full, whose
/// slots hold an address and a position. The slot comes from a multiplicative (Fibonacci) hash
/// of the address, not from `Hasher`: a `Dictionary` or `Set` keyed by `ObjectIdentifier` spent
/// about 100 instructions of SipHash on each lookup and insert, more than the rest of a write
/// inside a long transaction, and heap addresses need no protection against chosen collisions.
///
/// A value type whose table is a copy-on-write array. A rollback to a checkpoint (`orElse`, a
/// nested `atomically`) updates it as it replays the log's undo list (`remove`, `move`).
struct _CellPositions {
  private struct Slot {
    /// The cell's address; 0 while the slot is empty (no object lives at address 0).
    var address: UInt
    var position: Int
  }

  private var slots: ContiguousArray<Slot>
  /// 64 minus the base-2 logarithm of the slot count: the hash's top bits pick the slot.
  private var shift: UInt64
  /// The cells recorded.
  private(set) var count = 0

  /// No table at all (nothing allocated): `isBuilt` is false until `init(minimumCapacity:)`.
  init() {
    slots = []
    shift = 64
  }

  /// An empty table with room for `minimumCapacity` cells before it grows.
  init(minimumCapacity: Int) {
    var size = 16
    while size < 2 * minimumCapacity { size *= 2 }
    slots = ContiguousArray(repeating: Slot(address: 0, position: 0), count: size)
    shift = UInt64(64 - size.trailingZeroBitCount)
  }

  /// Whether the table exists (made by `init(minimumCapacity:)`). Read from `shift`, a field
  /// of this value, and not from the array, whose count lies behind a pointer.
  var isBuilt: Bool { shift < 64 }

  @inline(__always)
  private func home(of address: UInt) -> Int {
    // The golden ratio's 64-bit fraction spreads the address's bits into the top ones.
    Int(truncatingIfNeeded: (UInt64(address) &* 0x9E37_79B9_7F4A_7C15) >> shift)
  }

  @inline(__always)
  private static func address(of cell: _Cell) -> UInt {
    UInt(bitPattern: Unmanaged.passUnretained(cell).toOpaque())
  }

  /// The position recorded for `cell`, if any. Needs a built table.
  @inline(__always)
  func position(of cell: _Cell) -> Int? {
    let address = Self.address(of: cell)
    let mask = slots.count - 1
    var index = home(of: address)
    while true {
      let slot = slots[index]
      if slot.address == address { return slot.position }
      if slot.address == 0 { return nil }
      index = (index &+ 1) & mask
    }
  }

  /// Records `position` for `cell`, unless the cell has a position already; returns whether
  /// it recorded it. Needs a built table.
  @discardableResult
  mutating func insertIfAbsent(_ cell: _Cell, at position: Int) -> Bool {
    let address = Self.address(of: cell)
    let mask = slots.count - 1
    var index = home(of: address)
    while true {
      let found = slots[index].address
      if found == address { return false }
      if found == 0 { break }
      index = (index &+ 1) & mask
    }
    if 2 * (count + 1) > slots.count {
      grow()
      place(Slot(address: address, position: position))
    } else {
      slots[index] = Slot(address: address, position: position)
    }
    count += 1
    return true
  }

  /// Records `position` for `cell`, which the table holds, in place of its old one. Needs a
  /// built table.
  mutating func move(_ cell: _Cell, to position: Int) {
    let index = slotIndex(of: Self.address(of: cell))
    precondition(index != nil, "the cell has no position to move")
    slots[index!].position = position
  }

  /// Forgets `cell`'s position, if the table has one. Needs a built table.
  ///
  /// The slots after it in its run move back into the hole where they may (Knuth's deletion
  /// for linear probing), so that no lookup stops early at it and no marker of a removed
  /// cell is left for later lookups to pass over.
  mutating func remove(_ cell: _Cell) {
    guard var hole = slotIndex(of: Self.address(of: cell)) else { return }
    let mask = slots.count - 1
    var next = hole
    while true {
      next = (next &+ 1) & mask
      let address = slots[next].address
      if address == 0 { break }
      // A slot stays put if its home lies cyclically after the hole, up to where it is: a
      // lookup from that home never passes the hole. Otherwise it fills the hole.
      let home = home(of: address)
      let staysPut = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next)
      if !staysPut {
        slots[hole] = slots[next]
        hole = next
      }
    }
    slots[hole] = Slot(address: 0, position: 0)
    count -= 1
  }

  /// The slot that holds `address`, if any.
  private func slotIndex(of address: UInt) -> Int? {
    let mask = slots.count - 1
    var index = home(of: address)
    while true {
      if slots[index].address == address { return index }
      if slots[index].address == 0 { return nil }
      index = (index &+ 1) & mask
    }
  }

  /// Puts `slot`, whose address is not in the table, in its first free place.
  private mutating func place(_ slot: Slot) {
    let mask = slots.count - 1
    var index = home(of: slot.address)
    while slots[index].address != 0 { index = (index &+ 1) & mask }
    slots[index] = slot
  }

  private mutating func grow() {
    let old = slots
    slots = ContiguousArray(repeating: Slot(address: 0, position: 0), count: 2 * old.count)
    shift -= 1
    for slot in old where slot.address != 0 { place(slot) }
  }
}
