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

    /// Hashes of `keys` as one stripe of an index holds them on a platform whose `Int` has
    /// `width` bits: the stripe's bits (the top six) the same for all, and on 32 bits, nothing
    /// above them.
    private func hashes(_ keys: Range<Int>, inOneStripeWithWidth width: Int) -> [Int] {
      let stripeShift = UInt(width - _KeyIndex<Int, Int>.stripeBits)
      let belowStripe = (UInt(1) << stripeShift) - 1
      return hashes(keys).map { Int(bitPattern: UInt(bitPattern: $0) & belowStripe | UInt(5) << stripeShift) }
    }

    /// With both generations full of one stripe's keys, keys of that stripe it was never given
    /// come out "swept" up to about 3% of the time, under the sixteenth below which a
    /// stripe halves its allowance, with 64-bit and with 32-bit hashes. (With the second bit
    /// taken from bits 24 to 34, 32-bit hashes came out at about 12%.)
    @Test(arguments: [64, 32])
    func seldomClaimsKeysItWasNeverGiven(width: Int) {
      var filter = _SweptKeyFilter()
      let given = hashes(0..<2 * _SweptKeyFilter.generationCapacity, inOneStripeWithWidth: width)
      for hash in given { filter.insert(hash) }
      let strangers = hashes(1_000_000..<1_010_000, inOneStripeWithWidth: width)
      let claimed = strangers.filter(filter.contains).count
      #expect(claimed < strangers.count * 4 / 100, "\(claimed) of \(strangers.count) keys never given claimed")
    }
  }
}
