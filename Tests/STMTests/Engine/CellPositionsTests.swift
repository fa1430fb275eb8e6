@testable import STMCore
import STMTestSupport
import Testing

extension LibraryTests {
  /// The address-keyed index of a transaction's redo log and read list (`_CellPositions`), and
  /// the long transactions that use it.
  @Suite struct CellPositionsTests {
    private func cells(_ count: Int) -> [_Cell] { (0..<count).map { _TypedCell($0) } }

    @Test func findsEveryRecordedPositionAcrossGrowth() {
      let cells = cells(1_000)
      var positions = _CellPositions(minimumCapacity: 4)
      for (position, cell) in cells.enumerated() {
        #expect(positions.position(of: cell) == nil)
        let inserted = positions.insertIfAbsent(cell, at: position)
        #expect(inserted)
      }
      #expect(positions.count == cells.count)
      for (position, cell) in cells.enumerated() { #expect(positions.position(of: cell) == position) }
      #expect(positions.position(of: _TypedCell(0)) == nil)
    }

    @Test func keepsTheFirstPositionOfACell() {
      let cells = cells(40)
      var positions = _CellPositions(minimumCapacity: 8)
      for (position, cell) in cells.enumerated() { positions.insertIfAbsent(cell, at: position) }
      for cell in cells {
        let inserted = positions.insertIfAbsent(cell, at: 99)
        #expect(!inserted)
      }
      #expect(positions.count == 40)
      #expect(positions.position(of: cells[7]) == 7)
    }

    @Test func aCopyIsIndependent() {
      let cells = cells(64)
      var original = _CellPositions(minimumCapacity: 8)
      for position in 0..<32 { original.insertIfAbsent(cells[position], at: position) }
      var copy = original
      for position in 32..<64 { copy.insertIfAbsent(cells[position], at: position) }
      #expect(original.count == 32 && copy.count == 64)
      #expect(original.position(of: cells[40]) == nil)
      #expect(copy.position(of: cells[40]) == 40)
      #expect(original.position(of: cells[5]) == 5 && copy.position(of: cells[5]) == 5)
    }

    /// Removals and moves, mixed with inserts, against a dictionary: every cell keeps its
    /// position through the slots that move back into a removed one's place, and a removed
    /// cell is found nowhere. Seven cells keep the table at its smallest, 16 slots, so that
    /// runs of taken slots often wrap around its end; 300 make it grow.
    @Test(arguments: [(7, 1), (7, 2), (300, 3), (300, 4)] as [(Int, UInt64)])
    func removalsAndMovesKeepEveryOtherPositionFindable(cellCount: Int, seed: UInt64) {
      let cells = cells(cellCount)
      var generator = SeededRandom(seed: seed)
      var positions = _CellPositions(minimumCapacity: 1)
      var expected: [ObjectIdentifier: Int] = [:]
      var firstWrongStep: Int? = nil
      for step in 0..<5_000 {
        let cell = cells[Int(generator.next() % UInt64(cells.count))]
        let id = ObjectIdentifier(cell)
        switch generator.next() % 3 {
        case 0:
          let inserted = positions.insertIfAbsent(cell, at: step)
          #expect(inserted == (expected[id] == nil))
          if expected[id] == nil { expected[id] = step }
        case 1:
          positions.remove(cell)
          expected[id] = nil
        default:
          guard expected[id] != nil else { continue }
          positions.move(cell, to: -step)
          expected[id] = -step
        }
        if firstWrongStep == nil && (cellCount < 16 || step % 100 == 0)
          && !cells.allSatisfy({ positions.position(of: $0) == expected[ObjectIdentifier($0)] })
        {
          firstWrongStep = step
        }
      }
      #expect(firstWrongStep == nil)
      #expect(positions.count == expected.count)
      #expect(expected.count > 0 && expected.count < cells.count, "the mix should leave some cells in and some out")
      for cell in cells { #expect(positions.position(of: cell) == expected[ObjectIdentifier(cell)]) }
      // Emptied entirely, the table finds nothing, and takes cells again.
      for cell in cells { positions.remove(cell) }
      #expect(positions.count == 0)
      #expect(cells.allSatisfy { positions.position(of: $0) == nil })
      #expect(positions.insertIfAbsent(cells[0], at: 7) && positions.position(of: cells[0]) == 7)
    }

    @Test func anUnbuiltIndexHoldsNothing() {
      #expect(!_CellPositions().isBuilt)
      #expect(_CellPositions(minimumCapacity: 0).isBuilt)
    }

    /// A transaction that writes many variables, some twice, reads its own writes through the
    /// log's index, and keeps them apart from what an `orElse` branch rolled back.
    @Test func aLongTransactionReadsItsOwnWritesThroughTheIndex() {
      let variables = (0..<100).map { TVar($0) }
      try! atomically { transaction in
        for variable in variables { variable.value += 1000 }
        for variable in variables.prefix(50) { variable.value += 1000 }
        // Past the scan limit: every read below goes through the index.
        for (offset, variable) in variables.enumerated() {
          #expect(variable.value == offset + (offset < 50 ? 2000 : 1000))
        }
        try transaction.orElse(
          { _ in
            for variable in variables.suffix(60) { variable.value = -1 }
            try transaction.retry()
          },
          { _ in
            for variable in variables.suffix(10) { variable.value += 1 }
          })
      }
      for (offset, variable) in variables.enumerated() {
        #expect(variable.value == offset + (offset < 50 ? 2000 : 1000) + (offset >= 90 ? 1 : 0))
      }
    }
  }
}
