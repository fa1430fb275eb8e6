@testable import STM
import STMTestSupport
import Testing

extension LibraryTests {
  /// How an index hashes its keys (`_KeyHash`): integer keys through the seeded mixer, every
  /// other key through `hashValue`, and either way every operation finding what the others
  /// placed.
  @Suite struct KeyHashTests {
    /// Each fixed-width integer type the mixer takes is hashed from its bits and the seed; a
    /// key of any other type keeps its `hashValue`.
    @Test func integerKeysAreMixedWithTheSeedAndOtherKeysKeepTheirHashValue() {
      let seed: UInt64 = 0x0123_4567_89AB_CDEF
      func mixed(_ bits: UInt64) -> Int { Int(bitPattern: UInt(truncatingIfNeeded: _KeyHash.mix(bits ^ seed))) }
      #expect(_KeyHash.hash(of: -5 as Int, seed: seed) == mixed(UInt64(bitPattern: -5)))
      #expect(_KeyHash.hash(of: 5 as UInt, seed: seed) == mixed(5))
      #expect(_KeyHash.hash(of: -5 as Int64, seed: seed) == mixed(UInt64(bitPattern: -5)))
      #expect(_KeyHash.hash(of: UInt64.max, seed: seed) == mixed(.max))
      #expect(_KeyHash.hash(of: -5 as Int32, seed: seed) == mixed(UInt64(UInt32(bitPattern: -5))))
      #expect(_KeyHash.hash(of: UInt32.max, seed: seed) == mixed(UInt64(UInt32.max)))
      #expect(_KeyHash.hash(of: "key", seed: seed) == "key".hashValue)
      #expect(_KeyHash.hash(of: 5 as Int16, seed: seed) == (5 as Int16).hashValue)
    }

    /// Consecutive keys, the commonest integer keys, spread evenly over the stripes (picked by
    /// the top bits) and over the places a probe starts (the low bits), whatever the seed: an
    /// identity or a weak mixer would put all of them in the first stripe.
    @Test(arguments: [0, 0x9E37_79B9_7F4A_7C15, UInt64.max])
    func consecutiveKeysSpreadOverStripesAndSlots(seed: UInt64) {
      let stripeBits = _KeyIndex<Int, Int>.stripeBits
      var perStripe = [Int](repeating: 0, count: 1 << stripeBits)
      var perSlot = [Int](repeating: 0, count: 1 << 10)
      for key in 0..<65_536 {
        let hash = UInt(bitPattern: _KeyHash.hash(of: key, seed: seed))
        perStripe[Int(hash >> UInt(UInt.bitWidth - stripeBits))] += 1
        perSlot[Int(hash & 1_023)] += 1
      }
      // 1,024 keys per stripe and 64 per slot on average; a fair spread stays well inside these.
      #expect(perStripe.min()! > 850 && perStripe.max()! < 1_200, "stripes from \(perStripe.min()!) to \(perStripe.max()!) keys")
      #expect(perSlot.min()! > 25 && perSlot.max()! < 110, "slots from \(perSlot.min()!) to \(perSlot.max()!) keys")
    }

    /// The types whose `==` the quick road may run while it counts as a commit in flight:
    /// `Int`, `UInt`, the 64- and 32-bit integers, and `String` where it is never bridged, and
    /// nothing a caller defines (its `==` may touch transactional data).
    @Test func onlyTheStandardLibrarysEqualityCountsAsTheLibrarys() {
      #expect(_KeyHash.hasLibraryEquality(of: 1 as Int) && _KeyHash.hasLibraryEquality(of: 1 as UInt))
      #expect(_KeyHash.hasLibraryEquality(of: 1 as Int64) && _KeyHash.hasLibraryEquality(of: 1 as UInt64))
      #expect(_KeyHash.hasLibraryEquality(of: 1 as Int32) && _KeyHash.hasLibraryEquality(of: 1 as UInt32))
      #if canImport(ObjectiveC)
      #expect(!_KeyHash.hasLibraryEquality(of: "a"), "a bridged NSString's == runs its subclass's code")
      #else
      #expect(_KeyHash.hasLibraryEquality(of: "a"))
      #endif
      struct Wrapped: Hashable { let value: Int }
      #expect(!_KeyHash.hasLibraryEquality(of: Wrapped(value: 1)))
      #expect(!_KeyHash.hasLibraryEquality(of: 1.0))
      #expect(!_KeyHash.hasLibraryEquality(of: "a"[...]))
    }

    /// Each index draws its own seed, so two dictionaries place the same keys differently.
    @Test func eachDictionaryHasASeedOfItsOwn() {
      let seeds = (0..<8).map { _ in TDictionary<Int, Int>().storage.index.hashSeed }
      #expect(Set(seeds).count == seeds.count, "seeds repeat: \(seeds)")
    }

    /// Dictionaries and sets keyed by each integer type the mixer takes (negative keys and
    /// keys with high bits set among them) give what `Dictionary` and `Set` give, through
    /// inserts, updates, removals, lookups and tables that grow.
    @Test func integerKeyedCollectionsMatchTheStandardLibrary() {
      checkDictionary(of: Int.self)
      checkDictionary(of: UInt.self)
      checkDictionary(of: Int64.self)
      checkDictionary(of: UInt64.self)
      checkDictionary(of: Int32.self)
      checkDictionary(of: UInt32.self)
      var random = SeededRandom(seed: 11)
      let subject = TSet<UInt>()
      var model = Set<UInt>()
      for _ in 0..<20_000 {
        let element = UInt.max - UInt(random.below(3_000))
        switch random.below(3) {
        case 0: #expect(subject.remove(element) == model.remove(element))
        case 1: #expect(subject.contains(element) == model.contains(element))
        default: #expect(subject.insert(element).inserted == model.insert(element).inserted)
        }
      }
      #expect(subject.elements == model && subject.count == model.count)
    }

    private func checkDictionary<Key: FixedWidthInteger & Sendable>(of type: Key.Type) {
      var random = SeededRandom(seed: 5)
      let subject = TDictionary<Key, Int>()
      var model: [Key: Int] = [:]
      // Keys near zero from both sides (for a signed type) and near the top of the range.
      let keys = (0..<2_000).map { Key(truncatingIfNeeded: $0 - 1_000) } + (0..<2_000).map { Key.max - Key($0) }
      for _ in 0..<30_000 {
        let key = keys[random.below(keys.count)], value = random.below(1_000)
        switch random.below(4) {
        case 0: #expect(subject[key] == model[key], "\(Key.self) key \(key)")
        case 1: subject[key] = value; model[key] = value
        case 2: #expect(subject.removeValue(forKey: key) == model.removeValue(forKey: key), "\(Key.self) key \(key)")
        default: subject[key, default: 0] += value; model[key, default: 0] += value
        }
      }
      #expect(subject.count == model.count, "\(Key.self)")
      #expect(subject.dictionary == model, "\(Key.self)")
    }
  }
}
