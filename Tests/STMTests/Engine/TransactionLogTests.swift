@testable import STMCore
import STMTestSupport
import Testing

extension LibraryTests {
  /// A transaction's redo log (`_TransactionLog`): finding entries, and the order in which
  /// its commit locks their cells.
  @Suite struct TransactionLogTests {
    /// A log of `count` writes of fresh cells, appended in a shuffled order; each entry's
    /// version holds the cell's own value, so that a sort that separated them shows.
    private func shuffledLog(_ count: Int, seed: UInt64) -> (_TransactionLog, [_TypedCell<Int>]) {
      let cells = (0..<count).map { _TypedCell($0) }
      var generator = SeededRandom(seed: seed)
      var log = _TransactionLog()
      for cell in cells.shuffled(using: &generator) {
        log.append(_WriteEntry(cell: cell, version: _Version(cell.currentValue), commutes: [], generation: 0))
      }
      return (log, cells)
    }

    @Test(arguments: [2, 5, 16, 32, 33, 100])
    func sortingForLockingOrdersByAddressAndKeepsEachEntryWhole(count: Int) {
      var (log, cells) = shuffledLog(count, seed: UInt64(count))
      log.sortForLocking()
      let addresses = log.entries.map { UInt(bitPattern: $0.target.toOpaque()) }
      #expect(addresses == addresses.sorted())
      #expect(Set(addresses).count == count)
      for entry in log.entries {
        let value = unsafeDowncast(entry.version!, to: _Version<Int>.self).value
        #expect(entry.cell === entry.target.takeUnretainedValue())
        #expect(value == (entry.cell as! _TypedCell<Int>).currentValue)
      }
      // Found where they now are, by a scan or through a rebuilt index.
      for cell in cells { #expect(log.find(cell).map { log.entries[$0].cell === cell } == true) }
    }

    /// The checkpoints' field (`savedGeneration`) sits in the padding after `batchGeneration`:
    /// an entry is still one cache line, which every write of every transaction moves.
    @Test func anEntryIsOneCacheLine() {
      #expect(MemoryLayout<_WriteEntry>.stride == 64)
    }

    /// Taking entries out, as a transaction that empties its own batch of appends does, in a
    /// short log (a scan) and a long one (its index): every other entry is still found where
    /// it now is, with its own version, a removed cell is found nowhere, and it can come back.
    @Test(arguments: [3, 8, 9, 40, 200])
    func removingEntriesKeepsTheOthersFindable(count: Int) {
      var (log, cells) = shuffledLog(count, seed: UInt64(count) + 100)
      var generator = SeededRandom(seed: UInt64(count))
      var removed: [_TypedCell<Int>] = []
      while log.entries.count > count / 3 {
        let position = Int(generator.next() % UInt64(log.entries.count))
        removed.append(log.entries[position].cell as! _TypedCell<Int>)
        log.remove(at: position)
        for cell in cells {
          let isRemoved = removed.contains { $0 === cell }
          guard let position = log.find(cell) else {
            #expect(isRemoved)
            continue
          }
          #expect(!isRemoved && log.entries[position].cell === cell)
          #expect(unsafeDowncast(log.entries[position].version!, to: _Version<Int>.self).value == cell.currentValue)
        }
      }
      let back = removed[0]
      log.append(_WriteEntry(cell: back, version: _Version(back.currentValue), commutes: [], generation: 0))
      #expect(log.find(back).map { log.entries[$0].cell === back } == true)
      #expect(log.entries.count == count - removed.count + 1)
    }
  }
}
