import Foundation
import STM
import STMTestSupport
import Testing

/// What the keys below read in their `==` or `hash(into:)`: always 0, so that the keys stay
/// equal to themselves and hash the same way.
private let keyCodeVariable = TVar(0)
/// What `KeyUsingASetInEquality` asks in its `==`.
private let keyCodeSet = TSet<Int>()

/// A key whose `==` reads a `TVar`.
private struct KeyReadingAVariableInEquality: Hashable, Sendable {
  let id: Int
  static func == (lhs: Self, rhs: Self) -> Bool { keyCodeVariable.value == 0 && lhs.id == rhs.id }
  func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

/// A key whose `hash(into:)` reads a `TVar`.
private struct KeyReadingAVariableInHash: Hashable, Sendable {
  let id: Int
  static func == (lhs: Self, rhs: Self) -> Bool { lhs.id == rhs.id }
  func hash(into hasher: inout Hasher) {
    hasher.combine(id)
    hasher.combine(keyCodeVariable.value)
  }
}

/// A key whose `==` looks an element up in a `TSet`.
private struct KeyUsingASetInEquality: Hashable, Sendable {
  let id: Int
  static func == (lhs: Self, rhs: Self) -> Bool { !keyCodeSet.contains(-1) && lhs.id == rhs.id }
  func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

/// A key of its own type whose `==` and `hash(into:)` are its stored properties': what keys
/// should be.
private struct PlainKey: Hashable, Sendable {
  let id: Int
  let name: String
}

private let keyCodeMessage = "A key's == or hash(into:) used a TVar, a collection of swift-stm or atomically"

extension LibraryTests {
  /// A key's `==` and `hash(into:)` run while a lookup holds a segment or a stripe's lock: code
  /// there that used transactional data could wait for what the lookup holds (threads that each
  /// held a segment for a lookup, and waited in a key's `==` for another, deadlocked; found by
  /// review). It traps instead, in a transaction and out of one.
  @Suite struct KeyCodeMisuseTests {
    @Test func anEqualityThatReadsATVarTrapsInADropInLookup() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        let dictionary = TDictionary(uniqueKeysWithValues: [(KeyReadingAVariableInEquality(id: 1), 1)])
        _ = dictionary[KeyReadingAVariableInEquality(id: 1)]
      }
      #expect(standardError(of: result).contains(keyCodeMessage))
    }

    @Test func anEqualityThatReadsATVarTrapsInATransaction() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        let dictionary = TDictionary(uniqueKeysWithValues: [(KeyReadingAVariableInEquality(id: 1), 1)])
        atomically { _ in dictionary[KeyReadingAVariableInEquality(id: 1), default: 0] += 1 }
      }
      #expect(standardError(of: result).contains(keyCodeMessage))
    }

    @Test func aHashThatReadsATVarTrapsInADropInInsert() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        let dictionary = TDictionary<KeyReadingAVariableInHash, Int>()
        dictionary[KeyReadingAVariableInHash(id: 1)] = 1
      }
      #expect(standardError(of: result).contains(keyCodeMessage))
    }

    @Test func anElementsEqualityThatUsesASetTrapsInATSet() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        let set: TSet = [KeyUsingASetInEquality(id: 1)]
        _ = set.insert(KeyUsingASetInEquality(id: 1))
      }
      #expect(standardError(of: result).contains(keyCodeMessage))
    }

    /// The review's case: more threads than segments, each looking keys up outside
    /// transactions, and every key's `==` reading a `TVar`. Each lookup held a segment while its
    /// `==` waited for another, and all of them waited for good.
    @Test func moreThreadsThanSegmentsLookingKeysUpTrapInsteadOfWaitingForGood() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        endAsASuccessAfterFiveSeconds()
        let dictionary = TDictionary(uniqueKeysWithValues: (0..<8).map { (KeyReadingAVariableInEquality(id: $0), 0) })
        runThreads(TransactionEngine.segmentCount + 1) { _ in
          for round in 0..<20_000 { dictionary[KeyReadingAVariableInEquality(id: round % 8)] = round }
        }
      }
      #expect(standardError(of: result).contains(keyCodeMessage))
    }

    /// Keys whose `==` and `hash(into:)` use only their own properties work everywhere, and the
    /// bar on transactional data ends with the key's code: the transaction that looked the key
    /// up goes on using variables.
    @Test func plainKeysWorkAndTheBarEndsWithTheKeysCode() {
      let key = PlainKey(id: 1, name: "one")
      let dictionary = TDictionary(uniqueKeysWithValues: [(key, 1)])
      let set: TSet = [key]
      let counter = TVar(0)
      dictionary[key, default: 0] += 1
      #expect(set.contains(PlainKey(id: 1, name: "one")))
      atomically { _ in
        dictionary[PlainKey(id: 1, name: "one"), default: 0] += 1
        dictionary[PlainKey(id: 2, name: "two")] = 5
        counter.value += dictionary[key] ?? 0
        _ = set.insert(PlainKey(id: 2, name: "two"))
        counter.value += set.count
      }
      #expect(dictionary.dictionary == [key: 3, PlainKey(id: 2, name: "two"): 5])
      #expect(counter.value == 5)
      #expect(set.elements == [key, PlainKey(id: 2, name: "two")])
    }
  }
}
