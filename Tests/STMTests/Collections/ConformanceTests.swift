@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

/// The same operation sequence on a transactional collection and on its standard-library
/// counterpart gives the same results and the same final state (single-threaded).
extension LibraryTests {
  @Suite struct ConformanceTests {
    @Test(arguments: [false, true])
    func dictionaryMatchesDictionary(insideTransactions: Bool) {
      var random = SeededRandom(seed: 7)
      let subject = TDictionary<Int, Int>()
      var model: [Int: Int] = [:]
      for step in 0..<20_000 {
        let key = random.below(300), value = random.below(1_000)
        let operation = random.below(10)
        let run = { (body: () -> Void) in insideTransactions ? atomically { _ in body() } : body() }
        run {
          switch operation {
          case 0: #expect(subject[key] == model[key])
          case 1: subject[key] = value; model[key] = value
          case 2: #expect(subject.updateValue(value, forKey: key) == model.updateValue(value, forKey: key))
          case 3: #expect(subject.removeValue(forKey: key) == model.removeValue(forKey: key))
          case 4: subject[key, default: 0] += value; model[key, default: 0] += value
          case 5:
            let inserted = subject.insertIfAbsent(value, forKey: key)
            let expected = model[key] == nil
            if expected { model[key] = value }
            #expect(inserted.inserted == expected && inserted.value == model[key])
          case 6:
            let old = subject.update(forKey: key, default: 1) { stored -> Int in stored *= 2; return stored }
            model[key] = (model[key] ?? 1) * 2
            #expect(old == model[key])
          case 7: subject[key] = nil; model[key] = nil
          case 8: subject[key, default: -1] = value; model[key, default: -1] = value
          case 9 where random.below(50) == 0:
            let remainder = random.below(3)
            subject.removeAll { $0.value % 3 == remainder }
            model = model.filter { $0.value % 3 != remainder }
          default: #expect(subject[key, default: -1] == model[key, default: -1])
          }
        }
        if step % 1_000 == 0 {
          #expect(subject.count == model.count)
          #expect(subject.dictionary == model)
        }
      }
      #expect(subject.count == model.count)
      #expect(subject.isEmpty == model.isEmpty)
      #expect(subject.dictionary == model)
      #expect(Set(subject.keys) == Set(model.keys))
      #expect(subject.values.sorted() == model.values.sorted())
      #expect(Dictionary(uniqueKeysWithValues: subject.map { ($0.key, $0.value) }) == model)
    }

    /// Several in-place modifications of keys inside one transaction (the default subscript,
    /// the optional subscript as an `inout` value inserting, updating and removing, and
    /// `update(forKey:default:_:)`), mixed with stores, removals and reads, give what
    /// `Dictionary` gives, count included: each writes its value back into the key's cell
    /// without looking the key up again, or through a second lookup where it must.
    @Test func inPlaceModificationsInsideTransactionsMatchDictionary() {
      func put(_ value: inout Int?, _ new: Int?) { value = new }
      var random = SeededRandom(seed: 11)
      let subject = TDictionary<Int, Int>()
      var model: [Int: Int] = [:]
      for _ in 0..<3_000 {
        let operations = (0..<6).map { _ in (operation: random.below(8), key: random.below(200), value: random.below(1_000)) }
        let results = atomically { _ in
          operations.map { step -> Int? in
            switch step.operation {
            case 0: subject[step.key, default: 0] += step.value
            case 1: put(&subject[step.key], step.value)
            case 2: put(&subject[step.key], nil)
            case 3: subject[step.key]? += step.value
            case 4: return subject.update(forKey: step.key, default: 1) { stored -> Int in stored += step.value; return stored }
            case 5: subject[step.key] = step.value
            case 6: return subject.removeValue(forKey: step.key)
            default: return subject[step.key]
            }
            return nil
          } + [subject.count]
        }
        var expected: [Int?] = []
        for step in operations {
          switch step.operation {
          case 0: model[step.key, default: 0] += step.value; expected.append(nil)
          case 1: put(&model[step.key], step.value); expected.append(nil)
          case 2: put(&model[step.key], nil); expected.append(nil)
          case 3: model[step.key]? += step.value; expected.append(nil)
          case 4: model[step.key] = (model[step.key] ?? 1) + step.value; expected.append(model[step.key])
          case 5: model[step.key] = step.value; expected.append(nil)
          case 6: expected.append(model.removeValue(forKey: step.key))
          default: expected.append(model[step.key])
          }
        }
        #expect(results == expected + [model.count])
        #expect(subject.count == model.count)
      }
      #expect(subject.dictionary == model)
    }

    /// The optional subscript as an `inout` value inserts, updates and removes, keeping the
    /// count, inside and outside transactions, as `Dictionary`'s does.
    @Test(arguments: [false, true])
    func optionalSubscriptInPlaceMatchesDictionary(insideTransactions: Bool) {
      func put(_ value: inout Int?, _ new: Int?) { value = new }
      let subject: TDictionary = ["a": 1, "b": 2]
      var model = ["a": 1, "b": 2]
      let run = { (body: () -> Void) in insideTransactions ? atomically { _ in body() } : body() }
      run {
        subject["a"]? += 10
        subject["z"]? += 10
        put(&subject["c"], 3)
        put(&subject["b"], nil)
      }
      model["a"]? += 10
      model["z"]? += 10
      put(&model["c"], 3)
      put(&model["b"], nil)
      #expect(subject.dictionary == model && subject.count == model.count)
    }

    @Test func dictionaryInitializersFromPairsMatchDictionary() throws {
      let pairs = [("a", 1), ("b", 2), ("c", 3)]
      #expect(TDictionary(uniqueKeysWithValues: pairs).dictionary == Dictionary(uniqueKeysWithValues: pairs))
      let repeated = [("a", 1), ("b", 2), ("a", 10)]
      #expect(TDictionary(repeated, uniquingKeysWith: +).dictionary == Dictionary(repeated, uniquingKeysWith: +))
      #expect(TDictionary(repeated, uniquingKeysWith: { first, _ in first }).count == 2)
      struct Refused: Error {}
      #expect(throws: Refused.self) {
        _ = try TDictionary(repeated) { (_: Int, _: Int) throws(Refused) -> Int in throw Refused() }
      }
    }

    @Test func dictionaryInitializersMergeAndDescription() {
      let literal: TDictionary = ["a": 1, "b": 2]
      #expect(literal.dictionary == ["a": 1, "b": 2])
      literal.merge(["b": 10, "c": 3]) { $0 + $1 }
      #expect(literal.dictionary == ["a": 1, "b": 12, "c": 3])
      #expect(TDictionary(["x": 1]).description == "TDictionary([\"x\": 1])")
      literal.removeAll()
      #expect(literal.isEmpty && literal.dictionary.isEmpty)
    }

    /// `filter` and `mapValues` return standard dictionaries, as `Dictionary`'s do, inside and
    /// outside transactions (inside, with the transaction's own writes).
    @Test func filterAndMapValuesMatchDictionary() {
      let model = Dictionary(uniqueKeysWithValues: (0..<100).map { ($0, $0 * 3) })
      let dict = TDictionary(model)
      #expect(dict.filter { $0.value % 2 == 0 } == model.filter { $0.value % 2 == 0 })
      #expect(dict.mapValues { "\($0)" } == model.mapValues { "\($0)" })
      let inside = atomically { _ in
        dict[1_000] = 4
        dict[0] = nil
        return (dict.filter { $0.key < 10 || $0.key > 99 }, dict.mapValues { $0 + 1 }.count)
      }
      #expect(inside.0 == [1_000: 4, 1: 3, 2: 6, 3: 9, 4: 12, 5: 15, 6: 18, 7: 21, 8: 24, 9: 27])
      #expect(inside.1 == 100)
      struct Refused: Error {}
      #expect(throws: Refused.self) { try dict.filter { (_: (key: Int, value: Int)) throws(Refused) in throw Refused() } }
      #expect(throws: Refused.self) { try dict.mapValues { (_: Int) throws(Refused) -> Int in throw Refused() } }
    }

    /// `merge` and `init(_:uniquingKeysWith:)` pass `combine` the current value first and the
    /// new one second, as `Dictionary` does (a key repeated in the pairs combines with its
    /// earlier value); a `combine` that throws leaves the dictionary as it was. Merging another
    /// `TDictionary`, itself included, or a `TArray` of pairs reads it in the same step.
    @Test func mergeCombinesTheCurrentValueWithTheNewOneAndAThrowChangesNothing() {
      let pairs = [("a", 1), ("b", 2), ("a", 10), ("a", 100)]
      #expect(TDictionary(pairs, uniquingKeysWith: { first, _ in first }).dictionary == ["a": 1, "b": 2])
      #expect(TDictionary(pairs, uniquingKeysWith: { _, last in last }).dictionary == ["a": 100, "b": 2])
      let dict: TDictionary = ["a": 1, "b": 2]
      dict.merge([("a", 10), ("c", 3), ("c", 30)]) { current, new in current * 1_000 + new }
      #expect(dict.dictionary == ["a": 1_010, "b": 2, "c": 3_030])
      dict.merge(["b": 20]) { current, _ in current }
      #expect(dict["b"] == 2)
      let other: TDictionary = ["b": 7, "e": 5]
      dict.merge(other) { current, new in current + new }
      #expect(dict.dictionary == ["a": 1_010, "b": 9, "c": 3_030, "e": 5])
      #expect(other.dictionary == ["b": 7, "e": 5])
      dict.merge(dict) { current, new in current + new }
      #expect(dict.dictionary == ["a": 2_020, "b": 18, "c": 6_060, "e": 10])
      struct Refused: Error {}
      #expect(throws: Refused.self) {
        try dict.merge([("d", 4), ("a", 0)]) { (_: Int, _: Int) throws(Refused) -> Int in throw Refused() }
      }
      #expect(throws: Refused.self) {
        try dict.merge(["d": 4, "a": 0] as TDictionary) { (_: Int, _: Int) throws(Refused) -> Int in throw Refused() }
      }
      #expect(throws: Refused.self) {
        try dict.merge(TArray([("d", 4), ("a", 0)])) { (_: Int, _: Int) throws(Refused) -> Int in throw Refused() }
      }
      #expect(dict.dictionary == ["a": 2_020, "b": 18, "c": 6_060, "e": 10])
      // A `TArray` of pairs, read in the merge's own step.
      dict.merge(TArray([("a", 1), ("f", 6), ("f", 60)])) { current, new in current + new }
      #expect(dict.dictionary == ["a": 2_021, "b": 18, "c": 6_060, "e": 10, "f": 66])
    }

    /// "If `body` throws, nothing changes": inside a transaction, not even what the body wrote
    /// to other keys and variables before it threw, as `merge` leaves nothing of a `combine`
    /// that throws (those writes stayed; found by review). The transaction goes on and commits
    /// what it wrote around the update.
    @Test func aThrowingUpdateInsideATransactionLeavesNothingOfWhatItsBodyWrote() {
      struct Refused: Error {}
      let dict: TDictionary = ["a": 1]
      let other = TVar(0)
      atomically { _ in
        dict["x"] = 1
        #expect(throws: Refused.self) {
          try dict.update(forKey: "a", default: 0) { (value: inout Int) throws(Refused) in
            dict["b"] = 99
            other.value = 5
            value += 1
            throw Refused()
          }
        }
        #expect(dict["a"] == 1 && dict["b"] == nil && other.value == 0 && dict["x"] == 1)
        // Absent key: not inserted either.
        #expect(throws: Refused.self) {
          try dict.update(forKey: "new", default: 7) { (_: inout Int) throws(Refused) in
            dict["c"] = 3
            throw Refused()
          }
        }
        #expect(dict["new"] == nil && dict["c"] == nil)
        // One that returns keeps what its body wrote.
        var result = 0
        do {
          result = try dict.update(forKey: "a", default: 0) { (value: inout Int) throws(Refused) -> Int in
            dict["d"] = 4
            value += 1
            return value
          }
        } catch { Issue.record("the update threw \(error)") }
        #expect(result == 2)
      }
      #expect(dict.dictionary == ["a": 2, "x": 1, "d": 4])
      #expect(other.value == 0)
    }

    /// Of elements that are equal but distinguishable, `TSet` keeps and hands back the member
    /// that was inserted, as `Set` does: `insert` keeps the one there and returns it,
    /// `update(with:)` replaces it and returns the old one, `remove` returns it, and a lookup
    /// (which makes the element's cell) leaves no trace. (It returned the argument each time,
    /// and kept the instance that first touched the element, found by review.)
    @Test(arguments: [false, true])
    func setKeepsTheInsertedMemberAsSetDoes(insideTransactions: Bool) {
      let run = { (body: () -> Void) in insideTransactions ? atomically { _ in body() } : body() }
      let subject = TSet<Tagged>()
      var model = Set<Tagged>()
      let looked = Tagged(1, "looked up"), first = Tagged(1, "first"), second = Tagged(1, "second")
      run {
        #expect(subject.contains(looked) == model.contains(looked))
        #expect(subject.insert(first) == model.insert(first))
        #expect(subject.insert(second) == model.insert(second))
        #expect(subject.elements.first?.tag == "first")
        #expect(subject.update(with: second)?.tag == model.update(with: second)?.tag)
        #expect(subject.elements.first?.tag == model.first?.tag)
        #expect(subject.remove(first)?.tag == model.remove(first)?.tag)
        #expect(subject.update(with: first)?.tag == model.update(with: first)?.tag)
      }
      #expect(subject.elements.map(\.tag) == model.map(\.tag))
      let other = [Tagged(1, "argument")]
      #expect(subject.intersection(other).map(\.tag) == model.intersection(other).map(\.tag))
      let fromSequence = TSet([Tagged(2, "a"), Tagged(2, "b")])
      #expect(fromSequence.elements.map(\.tag) == Set([Tagged(2, "a"), Tagged(2, "b")]).map(\.tag))
    }

    /// Keys that do not equal themselves (`Double.nan`): each insert adds one that no lookup
    /// finds, as in `Dictionary` and `Set`, and `removeAll` takes them all (it looked each key
    /// up, and left them; found by review).
    @Test func keysThatDoNotEqualThemselvesMatchDictionaryAndSet() {
      var plain: [Double: Int] = [:]
      let dictionary = TDictionary<Double, Int>()
      for (key, value) in [(Double.nan, 1), (.nan, 2), (1.5, 3)] {
        plain[key] = value
        dictionary[key] = value
      }
      #expect(dictionary.count == plain.count)
      #expect(dictionary[.nan] == plain[.nan])
      #expect(dictionary.values.sorted() == plain.values.sorted())
      plain.removeAll()
      dictionary.removeAll()
      #expect(dictionary.count == 0 && dictionary.isEmpty && dictionary.values.isEmpty)

      var plainSet: Set<Double> = []
      let set = TSet<Double>()
      for element in [Double.nan, .nan, 2.5] {
        plainSet.insert(element)
        set.insert(element)
      }
      #expect(set.count == plainSet.count)
      // An intersection keeps none of them (no other set holds an element equal to it).
      set.formIntersection([2.5, .nan])
      plainSet.formIntersection([2.5, .nan])
      #expect(set.count == plainSet.count && set.contains(2.5))
      set.insert(.nan)
      atomically { _ in set.removeAll() }
      #expect(set.count == 0 && set.isEmpty)
    }

    /// Lookups of such a key in transactions give it an empty cell each time (no lookup finds
    /// the last one); sweeps take them all the same, as they take other keys' (they looked
    /// each cell's key up to find it, and kept them for good; found by review).
    @Test func emptyCellsOfKeysThatDoNotEqualThemselvesAreSwept() {
      let dictionary = TDictionary<Double, Int>()
      for _ in 0..<5_000 { atomically { _ in _ = dictionary[.nan] } }
      #expect(dictionary.storage.index.cellCount < 1_000)
    }

    /// A set made from a sequence of many equal elements is sized for the distinct ones: it was
    /// sized for every element read (100,000 here), and kept that table until it shrank.
    @Test func aSetMadeFromManyEqualElementsIsSizedForTheDistinctOnes() {
      let set = TSet(Array(repeating: 7, count: 100_000) + [1, 2])
      #expect(set.count == 3 && set.contains(7) && set.contains(1) && set.contains(2))
      let words = set.storage.index.stripes.reduce(0) { total, stripe in
        total + stripe._withUnsafeGuaranteedRef { $0.state.withLock { $0.table.mask + 1 } }
      }
      // 16 words in each of the 64 stripes; sized for 100,000 elements, more than 133,000.
      #expect(words <= 64 * 16, "\(words) words of tables for 3 elements")
    }

    @Test func setMatchesSet() {
      var random = SeededRandom(seed: 11)
      let subject = TSet<Int>()
      var model = Set<Int>()
      for _ in 0..<10_000 {
        let element = random.below(200)
        switch random.below(4) {
        case 0: #expect(subject.contains(element) == model.contains(element))
        case 1: #expect(subject.insert(element).inserted == model.insert(element).inserted)
        case 2: #expect(subject.remove(element) == model.remove(element))
        default: #expect(subject.update(with: element) == model.update(with: element))
        }
      }
      #expect(subject.elements == model && subject.count == model.count)
      subject.formUnion([1000, 1001]); model.formUnion([1000, 1001])
      subject.subtract([1000]); model.subtract([1000])
      subject.formIntersection(0..<100); model.formIntersection(0..<100)
      #expect(subject.elements == model)
      subject.removeAll { $0 % 3 == 0 }; model = model.filter { $0 % 3 != 0 }
      #expect(subject.elements == model && subject.count == model.count)
      #expect(subject.isSubset(of: 0..<100) && subject.isDisjoint(with: [500]))
    }

    /// Every set-algebra operation against `Set`, on random sets and random sequences (some
    /// with repeated elements), inside and outside transactions.
    @Test(arguments: [false, true])
    func setAlgebraMatchesSet(insideTransactions: Bool) {
      var random = SeededRandom(seed: 5)
      let subject = TSet<Int>()
      var model = Set<Int>()
      for _ in 0..<2_000 {
        let other = (0..<random.below(6)).map { _ in random.below(12) }
        let run = { (body: () -> Void) in insideTransactions ? atomically { _ in body() } : body() }
        let operation = random.below(13)
        run {
          switch operation {
          case 0: #expect(subject.isSubset(of: other) == model.isSubset(of: other))
          case 1: #expect(subject.isStrictSubset(of: other) == model.isStrictSubset(of: other))
          case 2: #expect(subject.isSuperset(of: other) == model.isSuperset(of: other))
          case 3: #expect(subject.isStrictSuperset(of: other) == model.isStrictSuperset(of: other))
          case 4: #expect(subject.isDisjoint(with: other) == model.isDisjoint(with: other))
          case 5: #expect(subject.union(other) == model.union(other))
          case 6: #expect(subject.intersection(other) == model.intersection(other))
          case 7: #expect(subject.subtracting(other) == model.subtracting(other))
          case 8: #expect(subject.symmetricDifference(other) == model.symmetricDifference(other))
          case 9: subject.formUnion(other); model.formUnion(other)
          case 10: subject.subtract(other); model.subtract(other)
          case 11: subject.formIntersection(other + other); model.formIntersection(other + other)
          default: subject.formSymmetricDifference(other + [other.first ?? 0]); model.formSymmetricDifference(other + [other.first ?? 0])
          }
        }
        #expect(subject.elements == model && subject.count == model.count)
        #expect(subject.filter { $0 % 3 == 0 } == model.filter { $0 % 3 == 0 })
      }
    }

    @Test(arguments: [false, true])
    func arrayMatchesArray(insideTransactions: Bool) {
      var random = SeededRandom(seed: 3)
      let subject = TArray<Int>()
      var model: [Int] = []
      for _ in 0..<10_000 {
        let value = random.below(1_000)
        let run = { (body: () -> Void) in insideTransactions ? atomically { _ in body() } : body() }
        let operation = random.below(15)
        run {
          switch operation {
          case 13 where random.below(10) == 0:
            if random.chance(50) {
              subject.sort(); model.sort()
            } else {
              subject.sort(by: >); model.sort(by: >)
            }
          case 14 where random.below(5) == 0: subject.reverse(); model.reverse()
          case 12 where random.below(10) == 0:
            let remainder = random.below(4)
            subject.removeAll { $0 % 4 == remainder }
            model.removeAll { $0 % 4 == remainder }
          case 8:
            let index = random.below(model.count + 1)
            subject.insert(value, at: index); model.insert(value, at: index)
          case 9 where !model.isEmpty:
            let index = random.below(model.count)
            #expect(subject.remove(at: index) == model.remove(at: index))
          case 10 where !model.isEmpty:
            let (i, j) = (random.below(model.count), random.below(model.count))
            subject.swapAt(i, j); model.swapAt(i, j)
          case 11 where !model.isEmpty: #expect(subject.removeFirst() == model.removeFirst())
          case 6:
            #expect(subject.first == model.first)
            #expect(subject.last == model.last)
          case 7 where random.below(40) == 0: subject.removeAll(); model.removeAll()
          case 0, 1, 7: subject.append(value); model.append(value)
          case 2: #expect(subject.popLast() == model.popLast())
          case 3:
            if !model.isEmpty {
              let index = random.below(model.count)
              subject[index] = value; model[index] = value
            }
          case 4:
            subject.append(contentsOf: [value, value + 1]); model.append(contentsOf: [value, value + 1])
          default:
            #expect(subject.count == model.count)
            if !model.isEmpty {
              let index = random.below(model.count)
              #expect(subject[index] == model[index])
            }
          }
        }
      }
      #expect(subject.elements == model)
      #expect(Array(subject) == model)
    }

    /// `insert(_:at:)`, `remove(at:)`, `removeFirst()` and `swapAt(_:_:)` inside a
    /// transaction move its own appends that have not landed as they move the others, and a
    /// nested block that throws takes back what they moved.
    @Test func insertRemoveAndSwapMoveTheTransactionsOwnAppends() throws {
      let array: TArray<Int> = [1, 2]
      struct Undone: Error {}
      atomically { _ in
        array.append(3)
        array.insert(0, at: 0)
        #expect(array.elements == [0, 1, 2, 3])
        array.insert(4, at: 4)
        array.swapAt(1, 3)
        #expect(array.elements == [0, 3, 2, 1, 4])
        #expect(array.remove(at: 2) == 2)
        #expect(array.removeFirst() == 0)
        #expect(array.elements == [3, 1, 4] && array.count == 3)
        #expect(throws: Undone.self) {
          try atomically { _ in
            array.insert(9, at: 1)
            array.swapAt(0, 3)
            #expect(array.elements == [4, 9, 1, 3])
            throw Undone()
          }
        }
        #expect(array.elements == [3, 1, 4])
      }
      #expect(array.elements == [3, 1, 4])
      // Swapping an index with itself changes nothing, and is not checked, as for `Array`;
      // inserting at the end appends.
      array.swapAt(2, 2)
      array.swapAt(7, 7)
      array.insert(5, at: 3)
      #expect(array.elements == [3, 1, 4, 5])
    }

    /// `removeAll(where:)` of each collection: a predicate that throws removes nothing, outside
    /// a transaction and inside one that catches the error and commits.
    @Test func removeAllWhereThatThrowsRemovesNothing() throws {
      struct Refused: Error {}
      let dictionary: TDictionary = [1: "a", 2: "b", 3: "c"]
      let set: TSet = [1, 2, 3]
      let array: TArray = [1, 2, 3]
      // Each predicate accepts the first element it meets, then throws at the second.
      func refusingTheSecond<T>() -> (T) throws(Refused) -> Bool {
        var seen = 0
        return { _ throws(Refused) in
          seen += 1
          if seen == 2 { throw Refused() }
          return true
        }
      }
      #expect(throws: Refused.self) { try dictionary.removeAll(where: refusingTheSecond()) }
      #expect(throws: Refused.self) { try set.removeAll(where: refusingTheSecond()) }
      #expect(throws: Refused.self) { try array.removeAll(where: refusingTheSecond()) }
      atomically { _ in
        array.append(4)
        #expect(throws: Refused.self) { try array.removeAll(where: refusingTheSecond()) }
        #expect(throws: Refused.self) { try dictionary.removeAll(where: refusingTheSecond()) }
        #expect(throws: Refused.self) { try set.removeAll(where: refusingTheSecond()) }
        #expect(array.elements == [1, 2, 3, 4])
      }
      #expect(dictionary.dictionary == [1: "a", 2: "b", 3: "c"])
      #expect(set.elements == [1, 2, 3])
      #expect(array.elements == [1, 2, 3, 4])
      // The same predicates that do not throw remove, the transaction's own appends too.
      atomically { _ in
        array.append(5)
        array.removeAll { $0 % 2 == 1 }
        #expect(array.elements == [2, 4])
      }
      #expect(array.elements == [2, 4])
      dictionary.removeAll { $0.key == 2 || $0.value == "c" }
      set.removeAll { $0 > 1 }
      #expect(dictionary.dictionary == [1: "a"] && set.elements == [1])
    }

    /// Keys that do not equal themselves, which no lookup finds, are tested and removed one by
    /// one, as the others are.
    /// Every key is tested before any is removed: a test that reads the collection sees it
    /// whole, keys that do not equal themselves included.
    @Test func removeAllWhereTestsEveryKeyBeforeRemovingAny() {
      let dictionary = TDictionary<Double, Int>()
      dictionary[1.0] = 1
      dictionary[.nan] = 2
      var counts: [Int] = []
      dictionary.removeAll { pair in
        counts.append(dictionary.count)
        return pair.key.isNaN ? dictionary[1.0] == nil : true
      }
      #expect(counts == [2, 2])
      #expect(dictionary.count == 1 && dictionary.values == [2])
      let set: TSet<Double> = [.nan, 1]
      var setCounts: [Int] = []
      set.removeAll { _ in
        setCounts.append(set.count)
        return true
      }
      #expect(setCounts == [2, 2] && set.isEmpty)
      let array: TArray = [1, 2, 3]
      var arrayCounts: [Int] = []
      array.removeAll { _ in
        arrayCounts.append(array.count)
        return true
      }
      #expect(arrayCounts == [3, 3, 3] && array.isEmpty)
    }

    @Test func removeAllWhereTestsEachKeyThatDoesNotEqualItself() {
      let dictionary = TDictionary<Double, Int>()
      dictionary[.nan] = 1
      dictionary[.nan] = 2
      dictionary[1.0] = 1
      dictionary.removeAll { $0.value == 1 }
      #expect(dictionary.count == 1 && dictionary.values == [2] && dictionary.keys.allSatisfy(\.isNaN))
      let set: TSet<Double> = [.nan, .nan, 1, 2]
      set.removeAll { $0 == 2 }
      #expect(set.count == 3)
      set.removeAll { $0.isNaN }
      #expect(set.elements == [1])
    }

    /// `sort(by:)` and `reverse()` inside a transaction reorder its own appends too; a
    /// comparison that throws changes nothing, outside a transaction and inside one.
    @Test func sortAndReverseReorderTheTransactionsOwnAppendsAndAThrowChangesNothing() {
      struct Refused: Error {}
      let array: TArray = [3, 1, 2]
      atomically { _ in
        array.append(0)
        array.sort()
        #expect(array.elements == [0, 1, 2, 3])
        array.append(9)
        array.reverse()
        #expect(array.elements == [9, 3, 2, 1, 0])
        #expect(throws: Refused.self) {
          try array.sort { (first: Int, second: Int) throws(Refused) -> Bool in
            if first == 1 || second == 1 { throw Refused() }
            return first < second
          }
        }
        #expect(array.elements == [9, 3, 2, 1, 0])
      }
      #expect(throws: Refused.self) { try array.sort { (_: Int, _: Int) throws(Refused) -> Bool in throw Refused() } }
      #expect(array.elements == [9, 3, 2, 1, 0])
      array.sort(by: <)
      #expect(array.elements == [0, 1, 2, 3, 9])
      let empty = TArray<String>()
      empty.sort()
      empty.reverse()
      #expect(empty.isEmpty)
    }

    /// Elements that `remove(at:)`, `removeFirst()` and `removeAll(where:)` take out are
    /// freed, as a popped one is, once no transaction can read them; moving the others (by
    /// those, `insert`, `sort` and `reverse`) frees none of them.
    @Test func elementsTakenOutOfAnArrayAreFreed() {
      final class Live: Sendable {
        let count = Atomic<Int>(0)
      }
      final class Counted: Sendable {
        let live: Live
        let id: Int
        init(_ id: Int, _ live: Live) {
          self.id = id
          self.live = live
          live.count.add(1, ordering: .relaxed)
        }
        deinit { live.count.subtract(1, ordering: .relaxed) }
      }
      let live = Live()
      let array = TArray((0..<6).map { Counted($0, live) })
      #expect(array.remove(at: 1).id == 1)
      #expect(live.count.load(ordering: .relaxed) == 5)
      array.removeAll { $0.id % 2 == 0 }
      #expect(live.count.load(ordering: .relaxed) == 2)
      array.insert(Counted(9, live), at: 0)
      array.sort { $0.id < $1.id }
      array.reverse()
      #expect(array.elements.map(\.id) == [9, 5, 3])
      #expect(live.count.load(ordering: .relaxed) == 3)
      atomically { _ in
        #expect(array.removeFirst().id == 9)
        array.swapAt(0, 1)
      }
      #expect(array.elements.map(\.id) == [3, 5])
      #expect(live.count.load(ordering: .relaxed) == 2)
    }

    @Test func arrayMadeByRepeatingAnElement() {
      let array = TArray(repeating: "x", count: 3)
      #expect(array.elements == Array(repeating: "x", count: 3) && array.count == 3)
      array[1] = "y"
      #expect(array.elements == ["x", "y", "x"])
      #expect(TArray(repeating: 0, count: 0).isEmpty)
    }

    @Test func arraySeesItsOwnAppendsInsideATransaction() {
      let array: TArray<String> = ["a"]
      atomically { _ in
        array.append("b")
        array.append(contentsOf: ["c", "d"])
        #expect(array.count == 4)
        #expect(array[1] == "b" && array[3] == "d")
        array[2] = "C"
        #expect(array.popLast() == "d")
        #expect(array.elements == ["a", "b", "C"])
      }
      #expect(array.elements == ["a", "b", "C"])
      #expect(array.description == "TArray([\"a\", \"b\", \"C\"])")
    }

    /// `first`, `last` and `removeAll()` see, and take back, the transaction's own appends
    /// that have not landed, as `count` and `popLast()` do.
    @Test func firstLastAndRemoveAllSeeTheTransactionsOwnAppends() {
      let array: TArray<Int> = [1]
      let seen = atomically { _ in
        array.append(2)
        array.append(3)
        let ends = (array.first, array.last)
        array.removeAll()
        return (ends, array.isEmpty, array.first, array.last)
      }
      #expect(seen.0 == (1, 3))
      #expect(seen.1 && seen.2 == nil && seen.3 == nil)
      #expect(array.isEmpty && array.first == nil)
      array.append(4)
      #expect(array.first == 4 && array.last == 4)
    }

    /// A transaction that pops the last element and then appends sees its append at that index,
    /// not the element it popped: the pop empties the index's cell in the transaction.
    @Test func aPopThenAnAppendInOneTransactionSeesTheAppend() {
      let array: TArray = [1, 2, 3]
      atomically { _ in
        #expect(array.popLast() == 3)
        #expect(array.count == 2)
        array.append(9)
        #expect(array[2] == 9)
        #expect(array.elements == [1, 2, 9])
      }
      #expect(array.elements == [1, 2, 9])
      #expect(array.popLast() == 9 && array.popLast() == 2)
    }

    /// Appends after a checkpoint go on into the batch the checkpoint holds (copying it made a
    /// loop of nested blocks that each append quadratic; found by review), and rolling back
    /// takes out exactly those, however the rolled-back parts and the ones that stay interleave.
    @Test func appendsAfterACheckpointShareTheBatchAndRollBackExactly() throws {
      struct Refused: Error {}
      let array = TArray<Int>()
      let queue = TQueue<Int>()
      let gate = TVar(false)
      func batchIdentity() -> ObjectIdentifier? {
        Transaction._currentChecked!._withSegment { segment in
          segment.log.entries.compactMap { $0.batch.map(ObjectIdentifier.init) }.first
        }
      }
      try atomically { tx in
        array.append(0)
        let batch = batchIdentity()
        for item in 1...200 {
          // A nested block that appends and completes, then one that appends and throws.
          atomically { _ in array.append(item) }
          try? atomically { _ in
            array.append(-item)
            array.append(contentsOf: [-item, -item])
            throw Refused()
          }
          // A branch that appends and retries, then the other branch.
          try tx.orElse({ _ in
            try queue.enqueue(-item)
            if !gate.value { try tx.retry() }
          }, { _ in try queue.enqueue(item) })
        }
        #expect(batchIdentity() == batch)
        #expect(array.count == 201)
      }
      #expect(array.elements == Array(0...200))
      var items: [Int] = []
      while let item = queue.tryDequeue() { items.append(item) }
      #expect(items == Array(1...200))
    }

    @Test func aNestedBlockThatThrowsRestoresTheAppendsPendingBeforeIt() throws {
      struct Refused: Error {}
      let array: TArray<Int> = [0]
      let queue = TQueue<Int>()
      try atomically { _ in
        array.append(1)
        array.append(2)
        try queue.enqueue(1)
        do {
          try atomically { _ in
            // Changes the batches the outer block made: they must come back as they were.
            #expect(array.popLast() == 2)
            array[1] = 10
            array.append(3)
            try queue.enqueue(2)
            #expect(queue.tryDequeue() == 1)
            throw Refused()
          }
        } catch {}
        #expect(array.count == 3 && array[1] == 1 && array[2] == 2)
        try queue.enqueue(3)
      }
      #expect(array.elements == [0, 1, 2])
      #expect(queue.tryDequeue() == 1 && queue.tryDequeue() == 3 && queue.tryDequeue() == nil)
    }

    @Test func queueIsFirstInFirstOut() throws {
      let queue = TQueue<Int>()
      for item in 0..<100 { try queue.enqueue(item) }
      try atomically { _ in
        try queue.enqueue(100)
        try queue.enqueue(101)
      }
      var out: [Int] = []
      while let item = queue.tryDequeue() { out.append(item) }
      #expect(out == Array(0...101))
      #expect(queue.isEmpty)
      // A transaction that enqueued into an empty queue can take its own items, in order.
      let own = try atomically { _ in
        try queue.enqueue(7)
        try queue.enqueue(8)
        return queue.tryDequeue()
      }
      #expect(own == 7 && queue.tryDequeue() == 8 && queue.tryDequeue() == nil)
    }

    /// A transaction that takes back every item it enqueued lands nothing: no new version of
    /// the tail (an empty batch would still land one, as for an array's count).
    @Test func enqueuesTakenBackInTheSameTransactionLandNothing() throws {
      let queue = TQueue<Int>()
      try queue.enqueue(0)
      #expect(queue.tryDequeue() == 0)
      func newestTail() -> UInt64 { queue.tail.cell.head.load(ordering: .acquiring).takeUnretainedValue().stamp }
      let before = newestTail()
      let taken = try atomically { _ in
        try queue.enqueue(1)
        try queue.enqueue(2)
        return [queue.tryDequeue(), queue.tryDequeue(), queue.tryDequeue()]
      }
      #expect(taken == [1, 2, nil])
      #expect(newestTail() == before)
      #expect(queue.isEmpty)
      // Taken back in part, the rest lands.
      try atomically { _ in
        try queue.enqueue(3)
        try queue.enqueue(4)
        #expect(queue.tryDequeue() == 3)
      }
      #expect(newestTail() != before)
      #expect(queue.tryDequeue() == 4 && queue.tryDequeue() == nil)
    }

    /// A transaction that takes back an item it enqueued on a bounded queue gives its place
    /// back, as taking a committed item does: the budget is whole again afterwards. (Each
    /// enqueue runs in an `orElse` whose other branch says it would have waited.)
    @Test func boundedQueueTakingOwnItemsGivesTheirPlacesBack() throws {
      let queue = TQueue<Int>(capacity: 2)
      func enqueueWithoutWaiting(_ item: Int, thenTake: Bool = false) throws -> Int? {
        try atomically { transaction in
          try transaction.orElse({ _ in
            try queue.enqueue(item)
            return thenTake ? queue.tryDequeue() : item
          }, { _ in nil })
        }
      }
      for round in 0..<4 { #expect(try enqueueWithoutWaiting(round, thenTake: true) == round) }
      #expect(try enqueueWithoutWaiting(10) == 10)
      #expect(try enqueueWithoutWaiting(11) == 11)
      #expect(try enqueueWithoutWaiting(12) == nil)
      #expect(queue.tryDequeue() == 10 && queue.tryDequeue() == 11 && queue.tryDequeue() == nil)
    }

    /// Inside a transaction, `isEmpty` counts the transaction's own pending enqueues, which
    /// `tryDequeue` would hand out, and no longer once they are taken back.
    @Test func queueIsEmptyCountsTheTransactionsOwnItems() throws {
      let queue = TQueue<Int>()
      try atomically { _ in
        #expect(queue.isEmpty)
        try queue.enqueue(1)
        #expect(!queue.isEmpty)
        #expect(queue.tryDequeue() == 1)
        #expect(queue.isEmpty)
        try queue.enqueue(2)
      }
      #expect(!queue.isEmpty)
      #expect(queue.tryDequeue() == 2 && queue.isEmpty)
    }

    /// A closed queue still hands out the items it holds, inside a transaction as outside:
    /// `dequeue` returns nil only once the queue is closed *and* drained.
    @Test func aClosedQueueDrainsInsideTransactions() throws {
      let queue = TQueue<Int>()
      for item in 1...3 { try queue.enqueue(item) }
      queue.close()
      #expect(try atomically { _ in try queue.dequeue() } == 1)
      #expect(try atomically { _ in [try queue.dequeue(), try queue.dequeue()] } == [2, 3])
      #expect(try atomically { _ in try queue.dequeue() } == nil)
      #expect(try queue.dequeue() == nil)
    }

    @Test func counterCounts() {
      let counter = TCounter(5)
      counter.increment(); counter.add(10); counter.decrement()
      atomically { _ in
        counter.add(2)
        #expect(counter.value == 17)
      }
      #expect(counter.value == 17 && counter.description == "TCounter(17)")
      counter += 5
      counter -= 2
      atomically { _ in
        counter += 10
        #expect(counter.value == 30)
      }
      #expect(counter.value == 30)
    }

    /// `-=` subtracts `Int.min` where `Int`'s would, from a negative count, in one step.
    @Test func counterSubtractsIntMin() {
      let counter = TCounter(-5)
      counter -= .min
      #expect(counter.value == -5 - Int.min)
      atomically { _ in
        counter += .min
        #expect(counter.value == -5)
        counter -= .min
        counter -= 3
        #expect(counter.value == Int.max - 7)
      }
      #expect(counter.value == Int.max - 7)
    }
  }
}

/// An element equal to another with the same `id`, whatever its `tag`: equal but
/// distinguishable.
struct Tagged: Hashable, Sendable {
  let id: Int
  let tag: String

  init(_ id: Int, _ tag: String) {
    self.id = id
    self.tag = tag
  }

  static func == (lhs: Tagged, rhs: Tagged) -> Bool { lhs.id == rhs.id }
  func hash(into hasher: inout Hasher) { hasher.combine(id) }
}
