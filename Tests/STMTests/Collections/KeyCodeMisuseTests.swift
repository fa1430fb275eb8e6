import Foundation
import Synchronization
@testable import STM
@testable import STMCore
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

/// A key whose `==`, once armed, does to `keyCodeVariable` what `action` says: 1 writes it,
/// 2 adds to it in place, 3 commutes it, 4 adds to `keyCodeCounter`.
private struct KeyActingInEquality: Hashable, Sendable {
  static let action = Atomic<Int>(0)
  let id: Int

  static func == (lhs: Self, rhs: Self) -> Bool {
    switch action.load(ordering: .relaxed) {
    case 1: keyCodeVariable.value = 0
    case 2: keyCodeVariable.value += 0
    case 3: keyCodeVariable.commute { $0 }
    case 4: keyCodeCounter.add(0)
    default: break
    }
    return lhs.id == rhs.id
  }

  func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

private let keyCodeCounter = TCounter()

/// A key that notes, each time its `==` or `hash(into:)` runs, whether transactional data was
/// barred then.
private struct KeyNotingTheBar: Hashable, Sendable {
  static let barred = LockedBox<[Bool]>([])
  let id: Int

  static func == (lhs: Self, rhs: Self) -> Bool {
    noteTheBar()
    return lhs.id == rhs.id
  }

  func hash(into hasher: inout Hasher) {
    Self.noteTheBar()
    hasher.combine(id)
  }

  static func noteTheBar() {
    let isBarred = _ThreadState.currentIfMade?.pointee.forbiddenAccess != nil
    barred.value.append(isBarred)
  }
}

/// A key of its own type whose `==` and `hash(into:)` are its stored properties': what keys
/// should be.
private struct PlainKey: Hashable, Sendable {
  let id: Int
  let name: String
}

/// In an exit test: looks a `KeyActingInEquality` up in a transaction, its `==` doing `action`.
private func lookUpAKeyActingInItsEquality(action: Int) {
  endAsASuccessAfterFiveSeconds()
  let dictionary = TDictionary(uniqueKeysWithValues: [(KeyActingInEquality(id: 1), 1)])
  KeyActingInEquality.action.store(action, ordering: .relaxed)
  atomically { _ in dictionary[KeyActingInEquality(id: 1), default: 0] += 1 }
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

    /// Inside a transaction, writes, in-place additions and commutes of a variable, and a
    /// counter's additions, trap in a key's `==` as reads do.
    @Test func anEqualityThatWritesAVariableTrapsInATransaction() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        lookUpAKeyActingInItsEquality(action: 1)
      }
      #expect(standardError(of: result).contains(keyCodeMessage))
    }

    @Test func anEqualityThatAddsToAVariableInPlaceTrapsInATransaction() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        lookUpAKeyActingInItsEquality(action: 2)
      }
      #expect(standardError(of: result).contains(keyCodeMessage))
    }

    @Test func anEqualityThatCommutesAVariableTrapsInATransaction() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        lookUpAKeyActingInItsEquality(action: 3)
      }
      #expect(standardError(of: result).contains(keyCodeMessage))
    }

    @Test func anEqualityThatAddsToACounterTrapsInATransaction() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        lookUpAKeyActingInItsEquality(action: 4)
      }
      #expect(standardError(of: result).contains(keyCodeMessage))
    }

    /// The standard dictionaries that an index keeps for itself (the chains of its retired
    /// cells, a whole read's retired cells by key) hash and compare keys through `_BarredKey`,
    /// with transactional data barred.
    @Test func anIndexsOwnDictionariesRunKeyCodeBarred() {
      _ = _ThreadContext.current
      KeyNotingTheBar.barred.value = []
      var chains: [_BarredKey<KeyNotingTheBar>: Int] = [:]
      for id in 0..<100 { chains[_BarredKey(KeyNotingTheBar(id: id))] = id }
      #expect(chains[_BarredKey(KeyNotingTheBar(id: 7))] == 7)
      let noted = KeyNotingTheBar.barred.value
      #expect(noted.count >= 101)
      #expect(noted.allSatisfy { $0 }, "key code ran unbarred \(noted.filter { !$0 }.count) times")
      #expect(_ThreadState.currentIfMade?.pointee.forbiddenAccess == nil, "the bar outlived the key's code")
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
