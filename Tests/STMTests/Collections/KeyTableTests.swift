@testable import STM
@testable import STMCore
import Testing

extension LibraryTests {
  /// One stripe's table of key cells, on its own thread: what its words keep beside each cell,
  /// and that a grown table finds every key whichever way it placed them.
  @Suite struct KeyTableTests {
    typealias Table = _KeyTable<Int, Int>

    /// A table holding a cell for each of `keys`, and the cells, which the caller keeps so
    /// that it can check the table's lookups by identity.
    static func table(holding keys: Range<Int>) -> (Table, [Table.Cell]) {
      let table = Table(minimumCount: keys.count, hashSeed: 0x5EED)
      let cells = keys.map { Table.Cell(key: $0) }
      for cell in cells { table.insert(.passRetained(cell), hash: table.hash(of: cell.key)) }
      return (table, cells)
    }

    /// The keys that `table` gets wrong: those of `cells` it does not find in their cell, and
    /// those of `absent` it finds.
    static func misplacedKeys(_ cells: [Table.Cell], absent: Range<Int>, in table: Table) -> [Int] {
      let lost = cells.filter { cell in
        table.find(cell.key, hash: table.hash(of: cell.key))?.toOpaque() != Unmanaged.passUnretained(cell).toOpaque()
      }
      return lost.map(\.key) + absent.filter { table.find($0, hash: table.hash(of: $0)) != nil }
    }

    @Test func aWordKeepsTheLowBitsOfItsKeysHash() {
      let (table, cells) = Self.table(holding: 0..<200)
      var keysWithWrongBits: [Int] = []
      for index in 0...table.mask {
        let word = table.words[index].load(ordering: .relaxed)
        guard word > Table.removed else { continue }
        let key = Table.cell(word)._withUnsafeGuaranteedRef { $0.key }
        if Table.hashBits(word) != table.hash(of: key) & (1 << Table.tagBits - 1) { keysWithWrongBits.append(key) }
      }
      #expect(keysWithWrongBits == [])
      #expect(Self.misplacedKeys(cells, absent: 200..<400, in: table) == [])
    }

    /// A table grows from its words alone up to `wordLimit` words, and by hashing its keys
    /// again past that: both must put every cell where lookups look for it, with the removed
    /// words left behind.
    @Test(arguments: [1 << Table.tagBits, 0])
    func aGrownTableFindsEveryKeyItHeld(wordLimit: Int) {
      let (table, cells) = Self.table(holding: 0..<3_000)
      for cell in cells.prefix(1_000) { _ = table.remove(cell, hash: table.hash(of: cell.key))?.release() }
      let kept = Array(cells.dropFirst(1_000))
      let grown = table.rebuilt(makingRoomFor: 5_000, wordLimit: wordLimit)
      #expect(grown.live == kept.count)
      #expect(grown.used == kept.count)
      #expect(grown.mask + 1 > table.mask + 1)
      #expect(Self.misplacedKeys(kept, absent: 0..<1_000, in: grown) == [])
      #expect(Self.misplacedKeys([], absent: 3_000..<6_000, in: grown) == [])
    }
  }
}
