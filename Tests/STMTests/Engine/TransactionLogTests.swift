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
  }
}
