@testable import STM
import STMTestSupport
import Testing

extension LibraryTests {
  /// The filter by which a stripe of a keyed collection's index remembers the keys its last
  /// sweeps took (`_SweptKeyFilter`): it must remember the newest 128 to 256 of them, forget
  /// older ones, and seldom claim a key it was never given.
  @Suite struct SweptKeyFilterTests {
    /// Hashes as the index makes them: integers through the seeded mixer.
    private func hashes(_ keys: Range<Int>) -> [Int] { keys.map { _KeyHash.hash(of: $0, seed: 0x5EED) } }

    /// A full generation stays remembered through the whole next one, and is forgotten once a
    /// third begins.
    @Test func remembersTheLastTwoGenerationsAndForgetsOlderOnes() {
      let capacity = _SweptKeyFilter.generationCapacity
      var filter = _SweptKeyFilter()
      let first = hashes(0..<capacity), second = hashes(capacity..<2 * capacity)
      for hash in first { filter.insert(hash) }
      #expect(first.allSatisfy(filter.contains))
      for hash in second { filter.insert(hash) }
      #expect(first.allSatisfy(filter.contains), "the older generation was lost before a third began")
      #expect(second.allSatisfy(filter.contains))
      let third = hashes(2 * capacity..<2 * capacity + 1)
      filter.insert(third[0])
      // The first generation went when the third began; what it still claims is by chance.
      let stillClaimed = first.filter(filter.contains).count
      #expect(stillClaimed < capacity / 10, "\(stillClaimed) of \(capacity) forgotten keys still claimed")
      #expect(second.allSatisfy(filter.contains) && filter.contains(third[0]))
    }

    /// With both generations full, keys it was never given come out "swept" about 2.8% of the
    /// time at most: well under the sixteenth below which a stripe halves its allowance.
    @Test func seldomClaimsKeysItWasNeverGiven() {
      var filter = _SweptKeyFilter()
      for hash in hashes(0..<2 * _SweptKeyFilter.generationCapacity) { filter.insert(hash) }
      let strangers = hashes(1_000_000..<1_010_000)
      let claimed = strangers.filter(filter.contains).count
      #expect(claimed < strangers.count * 4 / 100, "\(claimed) of \(strangers.count) keys never given claimed")
    }
  }
}
