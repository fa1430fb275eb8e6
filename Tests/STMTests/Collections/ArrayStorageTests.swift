@testable import STM
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// How `TArray` makes the cells of its indices: as the appends reach them, not a chunk at a
  /// time (a chunk doubles the capacity, and filling it up front nearly doubled an array's
  /// memory past each power of two).
  @Suite struct ArrayStorageTests {
    /// The most cells an array of `count` elements may have made: its elements' and the few
    /// made ahead of the appends.
    private func cellBound(_ count: Int) -> Int { count + 2 * _SlotDirectory<Int>.cellsMadeAhead }

    /// 1,100 drop-in appends cross into a chunk of 1,024 indices (992 ..< 2,016) and make
    /// about 1,100 cells, not 2,016.
    @Test func dropInAppendsMakeCellsAsTheyGo() {
      let array = TArray<Int>()
      var mostOverBound = Int.min
      for item in 0..<1_100 {
        array.append(item)
        mostOverBound = max(mostOverBound, array.slots.madeCellCount - cellBound(item + 1))
      }
      #expect(mostOverBound <= 0)
      #expect(array.slots.madeCellCount >= 1_100)
      #expect(array.elements == Array(0..<1_100))
    }

    /// The same for elements appended in transactions, one at a time and all at once.
    @Test func transactionalAppendsMakeCellsAsTheyGo() {
      let oneByOne = TArray<Int>()
      for item in 0..<1_100 { atomically { _ in oneByOne.append(item) } }
      #expect(oneByOne.slots.madeCellCount <= cellBound(1_100))
      #expect(oneByOne.elements == Array(0..<1_100))

      let allAtOnce = TArray<Int>()
      atomically { _ in allAtOnce.append(contentsOf: 0..<1_100) }
      #expect(allAtOnce.slots.madeCellCount <= cellBound(1_100))
      #expect(allAtOnce.elements == Array(0..<1_100))
    }

    /// A transaction that appends many elements and throws leaves few cells made: they were
    /// all made ahead of its commit, and stayed as long as the array (found by review). A
    /// batch as large that commits still lands whole, its commit making the rest.
    @Test func appendsThatNeverLandLeaveFewCellsMade() {
      struct Undo: Error {}
      let array = TArray<Int>()
      #expect(throws: Undo.self) {
        try atomically { _ throws(Undo) in
          array.append(contentsOf: 0..<200_000)
          throw Undo()
        }
      }
      #expect(array.isEmpty)
      #expect(array.slots.madeCellCount <= cellBound(_SlotDirectory<Int>.mostMadeForOneBatch))
      atomically { _ in array.append(contentsOf: 0..<200_000) }
      #expect(array.count == 200_000)
      #expect(array.elements == Array(0..<200_000))
      #expect(array.slots.madeCellCount <= cellBound(200_000))
    }

    /// A transaction's single appends have their cells made as it runs, as `append(contentsOf:)`
    /// has: made one ahead at a time, nearly all were made by its commit, under the count's
    /// lock (found by review).
    @Test func aTransactionsSingleAppendsHaveTheirCellsMadeBeforeItsCommit() {
      let array = TArray<Int>()
      atomically { _ in
        for element in 0..<500 { array.append(element) }
        #expect(array.slots.madeCellCount >= 500)
      }
      #expect(array.elements == Array(0..<500))
      #expect(array.slots.madeCellCount <= cellBound(500))
    }

    /// The same when the transaction also mutated its appended elements in place: each one
    /// was given a cell, made for the guard against using it during its own mutation, which
    /// stayed as long as the array (found by review). Mutated in place and landed, they hold
    /// what the mutations made.
    @Test func appendsMutatedInPlaceThatNeverLandLeaveFewCellsMade() {
      struct Undo: Error {}
      let array = TArray<Int>()
      #expect(throws: Undo.self) {
        try atomically { _ throws(Undo) in
          array.append(contentsOf: 0..<100_000)
          for index in 0..<100_000 { array[index] += 1 }
          throw Undo()
        }
      }
      #expect(array.isEmpty)
      #expect(array.slots.madeCellCount <= cellBound(_SlotDirectory<Int>.mostMadeForOneBatch))
      atomically { _ in
        array.append(contentsOf: 0..<3_000)
        for index in 0..<3_000 { array[index] += 1 }
        #expect(array[2_999] == 3_000)
      }
      #expect(array.elements == Array(1...3_000))
    }

    /// Elements popped and appended again reuse their indices' cells.
    @Test func popsAndAppendsReuseCells() {
      let array = TArray(0..<100)
      let made = array.slots.madeCellCount
      for _ in 0..<1_000 {
        let last = array.removeLast()
        array.append(last)
      }
      #expect(array.slots.madeCellCount == made)
      #expect(array.elements == Array(0..<100))
    }
  }
}
