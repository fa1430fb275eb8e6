import Foundation
@testable import STM
import STMTestSupport
import Testing

extension LibraryTests {
  /// The initializers of `TSet` and `TDictionary` that take contents make them as a `TVar`'s
  /// initial value is made, without a transaction: they filled the new map through a step
  /// that joined the running transaction, so a map made in a transaction that rolled back came
  /// out empty, and making one in a drop-in update's body or a commute's transform trapped
  /// (found by review). `TArray`'s contents were always made this way.
  @Suite struct ContentsInitializerTests {
    struct Boom: Error {}
    /// A map made by one of the initializers, and how to read its contents.
    typealias Made = (name: String, read: @Sendable () -> [String: Int])

    /// Every initializer that takes contents, each made inside the body given.
    static func makeEvery(_ made: LockedBox<[Made]>) {
      func add(_ name: String, _ set: TSet<String>) {
        made.value.append((name, { Dictionary(uniqueKeysWithValues: set.elements.map { ($0, 0) }) }))
      }
      func add(_ name: String, _ dictionary: TDictionary<String, Int>) {
        made.value.append((name, { dictionary.dictionary }))
      }
      add("TSet(_:)", TSet(["a", "b", "a"]))
      add("set literal", ["a", "b"] as TSet)
      add("TDictionary(_:)", TDictionary(["a": 1, "b": 2]))
      add("dictionary literal", ["a": 1, "b": 2] as TDictionary)
      add("uniqueKeysWithValues", TDictionary(uniqueKeysWithValues: [("a", 1), ("b", 2)]))
      add("uniquingKeysWith", TDictionary([("a", 1), ("b", 2), ("a", 10)], uniquingKeysWith: +))
    }

    static let expected: [String: [String: Int]] = [
      "TSet(_:)": ["a": 0, "b": 0], "set literal": ["a": 0, "b": 0],
      "TDictionary(_:)": ["a": 1, "b": 2], "dictionary literal": ["a": 1, "b": 2],
      "uniqueKeysWithValues": ["a": 1, "b": 2], "uniquingKeysWith": ["a": 11, "b": 2],
    ]

    static func check(_ made: [Made], _ comment: Comment) {
      #expect(made.count == expected.count, comment)
      for entry in made {
        #expect(entry.read() == expected[entry.name], "\(entry.name): \(comment)")
      }
    }

    @Test func aMapMadeInATransactionThatRollsBackKeepsItsContents() {
      let made = LockedBox<[Made]>([])
      _ = try? atomically { (_: Transaction) throws(Boom) in
        made.value = []
        Self.makeEvery(made)
        throw Boom()
      }
      Self.check(made.value, "made in a transaction that threw")

      // In a nested block that throws, inside a transaction that commits.
      let nested = LockedBox<[Made]>([])
      atomically { _ in
        _ = try? atomically { (_: Transaction) throws(Boom) in
          nested.value = []
          Self.makeEvery(nested)
          throw Boom()
        }
      }
      Self.check(nested.value, "made in a nested block that threw")

      // In an attempt that a conflict makes rerun: each attempt's maps keep their contents.
      let variable = TVar(0), written = TVar(0)
      let attempts = LockedBox<[[Made]]>([])
      atomically { _ in
        let made = LockedBox<[Made]>([])
        Self.makeEvery(made)
        attempts.value.append(made.value)
        written.value = variable.value
        if attempts.value.count == 1 { startThread { variable.value += 1 }.wait() }
      }
      #expect(attempts.value.count == 2)
      for attempt in attempts.value { Self.check(attempt, "made in an attempt that reran") }
    }

    /// Inside a transaction, a map made there reads its contents at once, and its count
    /// agrees; it then takes writes like any other.
    @Test func aMapMadeInATransactionIsUsableThere() {
      atomically { _ in
        let set: TSet = [1, 2, 3]
        #expect(set.count == 3 && set.contains(2) && !set.contains(4))
        set.insert(4)
        set.remove(1)
        #expect(set.elements == [2, 3, 4])
        let dictionary = TDictionary(["a": 1])
        dictionary["a", default: 0] += 1
        dictionary["b"] = 5
        #expect(dictionary.dictionary == ["a": 2, "b": 5] && dictionary.count == 2)
      }
    }

    /// `combine` runs once per repeated key, the value so far first, as for `Dictionary`; what
    /// it throws comes out of the initializer.
    @Test func uniquingKeysWithCombinesAsDictionaryDoes() {
      let pairs = [("a", 1), ("b", 2), ("a", 3), ("a", 4), ("c", 5)]
      var calls: [(Int, Int)] = []
      let made = TDictionary(pairs) { (first: Int, second: Int) -> Int in
        calls.append((first, second))
        return first * 10 + second
      }
      #expect(made.dictionary == ["a": 134, "b": 2, "c": 5])
      #expect(calls.map { [$0.0, $0.1] } == [[1, 3], [13, 4]])
      #expect(throws: Boom.self) {
        _ = try TDictionary(pairs) { (_: Int, _: Int) throws(Boom) -> Int in throw Boom() }
      }
    }

    /// A map with contents made in a drop-in update's body, outside a transaction: it trapped,
    /// as touching transactional data there does.
    @Test func aMapMadeInADropInUpdatesBody() async {
      await #expect(processExitsWith: .success) {
        let sets = TDictionary<String, TSet<Int>>()
        sets.update(forKey: "a", default: TSet()) { $0 = TSet([1, 2]) }
        let maps = TDictionary<String, TDictionary<Int, Int>>()
        maps.update(forKey: "b", default: TDictionary()) { $0 = [2: 2] }
        exit(sets["a"]?.count == 2 && maps["b"]?.dictionary == [2: 2] ? 0 : 3)
      }
    }

    /// And in a commute's transform, which may touch no transactional data.
    @Test func aMapMadeInACommuteTransform() async {
      await #expect(processExitsWith: .success) {
        let holder = TVar(TSet<Int>())
        atomically { _ in holder.commute { _ in TSet([1, 2]) } }
        let maps = TVar(TDictionary<Int, Int>())
        atomically { _ in maps.commute { _ in TDictionary(uniqueKeysWithValues: [(1, 1)]) } }
        exit(holder.value.count == 2 && maps.value[1] == 1 ? 0 : 3)
      }
    }

    /// A large map made from contents finds every key, keeps its count, and grows and
    /// shrinks as any other (its stripes get more than their share of keys, and replace their
    /// tables while being filled).
    @Test func aLargeMapMadeFromContentsIsWhole() {
      let contents = Dictionary(uniqueKeysWithValues: (0..<20_000).map { ($0, $0 * 2) })
      let dictionary = TDictionary(contents)
      #expect(dictionary.count == 20_000)
      #expect(dictionary.dictionary == contents)
      #expect((0..<20_000).allSatisfy { dictionary[$0] == $0 * 2 })
      for key in 0..<10_000 { dictionary[key] = nil }
      for key in 20_000..<30_000 { dictionary[key] = key }
      #expect(dictionary.count == 20_000)
      let set = TSet(0..<20_000)
      #expect(set.count == 20_000 && set.elements == Set(0..<20_000))
    }
  }
}
