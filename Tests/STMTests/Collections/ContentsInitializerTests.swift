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
        // Large enough that stripes replace their tables as they fill.
        sets.update(forKey: "c", default: TSet()) { $0 = TSet(0..<5_000) }
        maps["d"] = TDictionary()
        maps["d"]? = TDictionary(uniqueKeysWithValues: (0..<5_000).map { ($0, $0) })
        let whole = sets["a"]?.count == 2 && maps["b"]?.dictionary == [2: 2]
        exit(whole && sets["c"]?.count == 5_000 && maps["d"]?.count == 5_000 ? 0 : 3)
      }
    }

    /// And in a commute's transform, which may touch no transactional data.
    @Test func aMapMadeInACommuteTransform() async {
      await #expect(processExitsWith: .success) {
        let holder = TVar(TSet<Int>())
        atomically { _ in holder.commute { _ in TSet([1, 2]) } }
        let maps = TVar(TDictionary<Int, Int>())
        atomically { _ in maps.commute { _ in TDictionary(uniqueKeysWithValues: (0..<5_000).map { ($0, $0) }) } }
        exit(holder.value.count == 2 && maps.value[1] == 1 && maps.value.count == 5_000 ? 0 : 3)
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

  /// Maps made from contents, used by several threads at once right after they are made.
  @Suite struct ConcurrencyMapsMadeFromContentsTests {
    /// Each round makes a dictionary (through each initializer in turn) and a set from
    /// contents, and four threads at once move amounts between shared keys in transactions
    /// (the sum stays), update, remove and re-insert keys of their own with drop-in
    /// operations (a model per thread), and read the whole map inside and outside
    /// transactions; the results match the models.
    @Test(arguments: 0..<3)
    func usedAtOnceByManyThreads(initializer: Int) {
      let sharedKeys = 256, ownKeys = 64, threads = 4
      let failures = LockedBox<[String]>([])
      for round in 0..<TestScale.scaled(5) {
        var contents: [Int: Int] = [:]
        for key in 0..<sharedKeys { contents[key] = 100 }
        for key in sharedKeys..<(sharedKeys + threads * ownKeys) { contents[key] = 0 }
        let total = 100 * sharedKeys
        let dictionary: TDictionary<Int, Int> =
          switch initializer {
          case 0: TDictionary(contents)
          case 1: TDictionary(uniqueKeysWithValues: contents.map { ($0.key, $0.value) })
          default: TDictionary(contents.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
          }
        let set = TSet(0..<(threads * ownKeys))
        let models = LockedBox<[[Int: Int]]>(Array(repeating: [:], count: threads))
        let setModels = LockedBox<[Set<Int>]>(Array(repeating: [], count: threads))
        runThreads(threads) { thread in
          var random = SeededRandom(seed: UInt64(round * 97 + thread * 13 + initializer * 1_001 + 1))
          let own = (sharedKeys + thread * ownKeys)..<(sharedKeys + (thread + 1) * ownKeys)
          var model = Dictionary(uniqueKeysWithValues: own.map { ($0, 0) })
          let ownElements = (thread * ownKeys)..<((thread + 1) * ownKeys)
          var setModel = Set(ownElements)
          for _ in 0..<400 {
            switch random.below(10) {
            case 0, 1:
              let from = random.below(sharedKeys), to = random.below(sharedKeys)
              atomically { _ in
                guard from != to, let a = dictionary[from], let b = dictionary[to] else { return }
                dictionary[from] = a - 1
                dictionary[to] = b + 1
              }
            case 2:
              // A shared key's amount moved into another, the key removed, then back empty.
              let from = random.below(sharedKeys), to = random.below(sharedKeys)
              guard from != to else { break }
              atomically { _ in
                guard dictionary[to] != nil, let amount = dictionary.removeValue(forKey: from) else { return }
                dictionary[to]! += amount
              }
              atomically { _ in if dictionary[from] == nil { dictionary[from] = 0 } }
            case 3, 4:
              let key = own.randomElement(using: &random)!
              dictionary[key, default: 0] += 1
              model[key, default: 0] += 1
            case 5:
              let key = own.randomElement(using: &random)!
              let value = random.chance(50) ? nil : random.below(1_000)
              dictionary[key] = value
              model[key] = value
            case 6:
              let key = own.randomElement(using: &random)!
              dictionary.update(forKey: key, default: 7) { $0 &+= 3 }
              model[key, default: 7] &+= 3
            case 7:
              let (all, count) = atomically { _ in (dictionary.dictionary, dictionary.count) }
              let sum = (0..<sharedKeys).reduce(0) { $0 + (all[$1] ?? 0) }
              if sum != total || all.count != count {
                failures.value.append("round \(round), thread \(thread): sum \(sum), count \(count) for \(all.count) keys")
              }
              let outside = dictionary.dictionary
              let outsideSum = (0..<sharedKeys).reduce(0) { $0 + (outside[$1] ?? 0) }
              if outsideSum != total { failures.value.append("round \(round), thread \(thread): sum \(outsideSum) outside") }
            case 8:
              let element = ownElements.randomElement(using: &random)!
              if setModel.remove(element) != nil { set.remove(element) } else { set.insert(element); setModel.insert(element) }
            default:
              let (count, elements) = atomically { _ in (set.count, set.elements) }
              if count != elements.count { failures.value.append("round \(round), thread \(thread): set count \(count) for \(elements.count)") }
            }
          }
          models.value[thread] = model
          setModels.value[thread] = setModel
        }
        let final = dictionary.dictionary
        #expect((0..<sharedKeys).reduce(0) { $0 + (final[$1] ?? 0) } == total, "round \(round)")
        #expect(final.count == dictionary.count, "round \(round)")
        for thread in 0..<threads {
          let own = (sharedKeys + thread * ownKeys)..<(sharedKeys + (thread + 1) * ownKeys)
          #expect(own.compactMap { key in final[key].map { (key, $0) } }.count == models.value[thread].count, "round \(round)")
          for (key, value) in models.value[thread] { #expect(final[key] == value, "round \(round), key \(key)") }
        }
        let expectedSet = setModels.value.reduce(into: Set<Int>()) { $0.formUnion($1) }
        #expect(set.elements == expectedSet && set.count == expectedSet.count, "round \(round)")
      }
      #expect(failures.value.isEmpty, "\(failures.value.prefix(5))")
    }

    /// A transaction whose snapshot was taken before a map was made reads the map's contents
    /// as made, as it would a `TVar`'s initial value (made through a transaction, the map
    /// looked empty to it), and not the changes made after.
    @Test func anOlderSnapshotReadsTheContentsAsMade() {
      let shared = LockedBox<TDictionary<Int, Int>?>(nil)
      let variable = TVar(0)
      let started = Gate(), changed = Gate()
      let seen = LockedBox<[[Int: Int]]>([])
      let reader = startThread {
        var attempts = 0
        atomically { _ in
          attempts += 1
          _ = variable.value
          if attempts == 1 {
            started.open()
            changed.wait()
          }
          if let map = shared.value { seen.value.append(map.dictionary) }
        }
      }
      started.wait()
      let map = TDictionary([1: 10, 2: 20])
      shared.value = map
      map[1] = nil
      map[3] = 30
      map[2, default: 0] += 1
      variable.value += 1
      changed.open()
      reader.wait()
      #expect(seen.value.first == [1: 10, 2: 20], "\(seen.value)")
    }
  }
}
