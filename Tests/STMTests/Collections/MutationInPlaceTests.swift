import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

/// The address of an array's elements: the same before and after a mutation when the mutation
/// did not copy the array.
private func storage(of array: [Int]) -> UInt {
  array.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
}

private struct Interrupted: Error {}

extension Array where Element == Int {
  /// Appends `element`, then throws: a mutation that fails midway.
  fileprivate mutating func append(_ element: Int, thenThrow: Bool) throws {
    append(element)
    if thenThrow { throw Interrupted() }
  }

  /// Appends `element`, then adds 1 to `counter` in a nested `atomically` block: a mutation
  /// during which the transaction starts a block of its own.
  fileprivate mutating func append(_ element: Int, counting counter: TVar<Int>) {
    append(element)
    atomically { _ in counter.value += 1 }
  }
}

extension Int {
  /// Adds `amount` once `callback` has run.
  fileprivate mutating func add(_ amount: Int, after callback: () -> Void) {
    callback()
    self += amount
  }

  /// Adds `amount`, then throws: a mutation that fails midway.
  fileprivate mutating func add(_ amount: Int, thenThrow: Bool) throws {
    self += amount
    if thenThrow { throw Interrupted() }
  }
}

extension LibraryTests {
  /// Mutating a value that holds an object (an array) through `TVar.value` or a dictionary's
  /// `subscript(_:default:)` works on the value where it is, instead of on a copy that the
  /// mutation would copy again (a quadratic loop of appends).
  @Suite struct MutationInPlaceTests {
    /// The first update of a variable, a key or an element in a block works on a copy, and
    /// using that one from inside the mutation traps (see `MisuseTests`); using the others does
    /// not, nor does using the same one once its mutation has ended.
    @Test func firstMutationsInATransactionMayUseOtherVariables() {
      let variable = TVar(0), other = TVar(0)
      let counts: TDictionary = ["x": 0]
      let array: TArray = [0]
      atomically { _ in
        variable.value.add(1, after: {
          other.value += 1
          counts["x", default: 0] += 1
          array[0] += 1
        })
        counts["x", default: 0].add(1, after: { variable.value += 1 })
        counts["y"].setAfter(5, { array[0] += 1 })
        array[0].add(1, after: { counts["z"] = 7 })
        variable.value += 100
        counts["x", default: 0] += 100
        array[0] += 100
      }
      #expect(variable.value == 102)
      #expect(other.value == 1)
      #expect(counts.dictionary == ["x": 102, "y": 5, "z": 7])
      #expect(array.elements == [103])
    }

    /// A first mutation that throws keeps what it changed, and the variable is usable again at
    /// once in the same transaction.
    @Test func aFirstMutationThatThrowsEndsItsGuard() {
      let variable = TVar(0)
      let counts: TDictionary = ["x": 0]
      let array: TArray = [0]
      atomically { _ in
        #expect(throws: Interrupted.self) { try variable.value.add(1, thenThrow: true) }
        #expect(throws: Interrupted.self) { try counts["x", default: 0].add(1, thenThrow: true) }
        #expect(throws: Interrupted.self) { try array[0].add(1, thenThrow: true) }
        variable.value += 10
        counts["x", default: 0] += 10
        array[0] += 10
      }
      #expect(variable.value == 11)
      #expect(counts["x"] == 11)
      #expect(array.elements == [11])
    }

    /// What the message of a deinit that uses a collection during a drop-in mutation
    /// suggests (see `MisuseTests`): a mutated copy, assigned, frees the old elements once the
    /// variable is let go, so their deinits may use transactional data.
    @Test func assigningAMutatedCopyFreesTheOldValueOutsideTheUpdate() {
      let live = TCounter()
      let items = TVar([CountedObject(live), CountedObject(live)])
      #expect(live.value == 2)
      var copy = items.value
      copy.removeAll()
      items.value = copy
      #expect(live.value == 0)
      #expect(items.value.isEmpty)
    }

    /// The default of `subscript(_:default:)` and `update(forKey:default:_:)` may read
    /// transactional data: outside a transaction it is computed with nothing held (it was
    /// computed while the update held the key's cell, and trapped).
    @Test func aDefaultMayReadATVar() {
      let base = TVar(100)
      let counts = TDictionary<String, Int>()
      counts["a", default: base.value] += 1
      counts["a", default: base.value] += 1
      counts.update(forKey: "b", default: base.value) { $0 += 5 }
      // A body that can throw works on a copy; its default too is computed with nothing held.
      let doubled = try? counts.update(forKey: "d", default: base.value) { (value: inout Int) throws(Interrupted) -> Int in
        value *= 2
        return value
      }
      #expect(doubled == 200)
      counts["d"] = nil
      atomically { _ in counts["c", default: base.value] += 2 }
      #expect(counts.dictionary == ["a": 102, "b": 105, "c": 102])
      let groups = TDictionary<String, [Int]>()
      let seed = TVar([7])
      groups["x", default: seed.value].append(8)
      groups["x", default: seed.value].append(9)
      #expect(groups["x"] == [7, 8, 9])
    }

    @Test func dropInAppendsToATVarDoNotCopyTheArray() {
      let variable = TVar<[Int]>([])
      variable.value.reserveCapacity(64)
      let before = storage(of: variable.value)
      // Checked after every append: a copying mutation frees the old storage, which the next
      // copy may reuse.
      let moved = (0..<10).filter { element in
        variable.value.append(element)
        return storage(of: variable.value) != before
      }
      #expect(moved.isEmpty)
      #expect(variable.value == Array(0..<10))
    }

    @Test func appendsInATransactionCopyTheArrayOnceAtMost() {
      let variable = TVar<[Int]>([])
      variable.value.reserveCapacity(64)
      let moved = atomically { _ in
        // The first write copies the committed array (readers may still need it); the next
        // ones work on the transaction's own copy.
        variable.value.append(0)
        let first = storage(of: variable.value)
        return (1..<10).filter { element in
          variable.value.append(element)
          return storage(of: variable.value) != first
        }
      }
      #expect(moved.isEmpty)
      #expect(variable.value == Array(0..<10))
    }

    @Test func dropInAppendsToADictionaryValueDoNotCopyTheArray() {
      let groups = TDictionary<String, [Int]>()
      groups["a"] = []
      groups["a", default: []].reserveCapacity(64)
      let before = storage(of: groups["a"]!)
      let moved = (0..<10).filter { element in
        groups["a", default: []].append(element)
        return storage(of: groups["a"]!) != before
      }
      #expect(moved.isEmpty)
      #expect(groups["a"] == Array(0..<10))
      // An absent key starts from the default, and is inserted.
      groups["b", default: [100]].append(101)
      #expect(groups.dictionary == ["a": Array(0..<10), "b": [100, 101]])
      #expect(groups.count == 2)
    }

    @Test func appendsToADictionaryValueInATransactionCopyTheArrayOnceAtMost() {
      let groups: TDictionary = ["a": [Int]()]
      let moved = atomically { _ in
        groups["a", default: []].append(0)
        groups["a", default: []].reserveCapacity(64)
        let first = storage(of: groups["a"]!)
        return (1..<10).filter { element in
          groups["a", default: []].append(element)
          return storage(of: groups["a"]!) != first
        }
      }
      #expect(moved.isEmpty)
      #expect(groups.dictionary == ["a": Array(0..<10)])
    }

    /// `update(forKey:_:)` works on a present key's value where it is, outside a transaction
    /// and (after its first update of the key) inside one, and leaves an absent key absent,
    /// without calling its body.
    @Test func updatesOfAPresentKeyDoNotCopyTheArray() {
      let groups: TDictionary = ["a": [Int]()]
      let countBefore: Int? = groups.update(forKey: "a") { value in
        value.reserveCapacity(64)
        return value.count
      }
      #expect(countBefore == 0)
      let before = storage(of: groups["a"]!)
      let moved = (0..<10).filter { element in
        groups.update(forKey: "a") { $0.append(element) }
        return storage(of: groups["a"]!) != before
      }
      #expect(moved.isEmpty)
      let movedInTransaction = atomically { _ in
        groups.update(forKey: "a") { $0.append(10) }
        let first = storage(of: groups["a"]!)
        return (11..<20).filter { element in
          groups.update(forKey: "a") { $0.append(element) }
          return storage(of: groups["a"]!) != first
        }
      }
      #expect(movedInTransaction.isEmpty)
      var called = false
      let outside: Int? = groups.update(forKey: "b") { value in
        called = true
        value.append(1)
        return value.count
      }
      let inside: Int? = atomically { _ in groups.update(forKey: "b") { called = true; return $0.count } }
      #expect(outside == nil && inside == nil && !called)
      #expect(groups.dictionary == ["a": Array(0..<20)] && groups.count == 1)
      // A key the transaction removed is absent to it; one it inserted is present.
      atomically { _ in
        groups["a"] = nil
        let absent: Int? = groups.update(forKey: "a") { $0.count }
        #expect(absent == nil)
        groups["c"] = [1]
        groups.update(forKey: "c") { $0.append(2) }
      }
      #expect(groups.dictionary == ["c": [1, 2]] && groups.count == 1)
      // Trivially copyable values too.
      let counts: TDictionary = ["x": 1]
      let incremented: Int? = counts.update(forKey: "x") { value in
        value += 1
        return value
      }
      let ofAbsent: Int? = counts.update(forKey: "y") { $0 }
      #expect(incremented == 2 && ofAbsent == nil)
      #expect(counts.dictionary == ["x": 2])
    }

    /// A mutation through the optional subscript that sets nil removes the key, and the count
    /// and the index follow, outside a transaction and in one, on a value the transaction
    /// wrote; a rollback brings the key back.
    @Test func aMutationThroughTheOptionalSubscriptThatSetsNilRemovesTheKey() {
      struct Rollback: Error {}
      let groups: TDictionary = ["a": [1], "b": [2], "c": [3]]
      groups["a"].removeWrapped()
      #expect(groups.dictionary == ["b": [2], "c": [3]] && groups.count == 2)
      // The removed key's cell left the index, as a removal's does.
      #expect(groups.storage.index.find("a", hash: groups.storage.index.hash(of: "a")) == nil)
      groups["a"]?.append(9)
      groups["a"] = [4]
      #expect(groups.dictionary == ["a": [4], "b": [2], "c": [3]] && groups.count == 3)
      atomically { _ in
        groups["b"]?.append(5)
        groups["b"].removeWrapped()
        #expect(groups["b"] == nil && groups.count == 2)
        groups["b"]?.append(6)
        groups["d"] = [7]
        groups["d"]?.append(8)
        groups["d"].removeWrapped()
        #expect(groups.count == 2)
      }
      #expect(groups.dictionary == ["a": [4], "c": [3]] && groups.count == 2)
      #expect(throws: Rollback.self) {
        try atomically { _ throws in
          groups["c"]?.append(10)
          groups["c"].removeWrapped()
          throw Rollback()
        }
      }
      #expect(groups.dictionary == ["a": [4], "c": [3]] && groups.count == 2)
      groups["b"] = [11]
      #expect(groups.dictionary == ["a": [4], "b": [11], "c": [3]] && groups.count == 3)
    }

    /// In a transaction, an update of a value the transaction wrote keeps the key's count and
    /// its rollback right, even when the mutation starts a block of its own, and a key the
    /// transaction removed is inserted again.
    @Test func updatesOfAValueWrittenInTheSameTransaction() {
      struct Rollback: Error {}
      let groups: TDictionary = ["a": [1]]
      let counter = TVar(0)
      atomically { _ in
        groups["a", default: []].append(2)
        groups["a", default: []].append(3, counting: counter)
        groups["a", default: []].append(4)
      }
      #expect(groups.dictionary == ["a": [1, 2, 3, 4]] && groups.count == 1 && counter.value == 1)
      try? atomically { _ throws in
        groups["a", default: []].append(5)
        groups["a", default: []].append(6)
        throw Rollback()
      }
      #expect(groups.dictionary == ["a": [1, 2, 3, 4]])
      atomically { _ in
        groups["a"] = nil
        groups["a", default: [7]].append(8)
        groups["a", default: []].append(9)
        groups["b", default: []].append(10)
        groups["b", default: []].append(11)
      }
      #expect(groups.dictionary == ["a": [7, 8, 9], "b": [10, 11]] && groups.count == 2)
    }

    /// `update(forKey:default:_:)` with a body that cannot throw works in place too, outside a
    /// transaction and (after its first update of the key) inside one; a body that can throw
    /// works on a copy, so that a throw leaves the value untouched.
    @Test func updatesWithABodyThatCannotThrowDoNotCopyTheArray() {
      let groups: TDictionary = ["a": [Int]()]
      groups.update(forKey: "a", default: []) { $0.reserveCapacity(64) }
      let before = storage(of: groups["a"]!)
      let moved = (0..<10).filter { element in
        groups.update(forKey: "a", default: []) { $0.append(element) }
        return storage(of: groups["a"]!) != before
      }
      #expect(moved.isEmpty)
      let movedInTransaction = atomically { _ in
        groups.update(forKey: "a", default: []) { $0.append(10) }
        let first = storage(of: groups["a"]!)
        return (11..<20).filter { element in
          groups.update(forKey: "a", default: []) { $0.append(element) }
          return storage(of: groups["a"]!) != first
        }
      }
      #expect(movedInTransaction.isEmpty)
      #expect(groups["a"] == Array(0..<20))
      #expect(throws: Interrupted.self) {
        try groups.update(forKey: "a", default: []) { (value: inout [Int]) throws(Interrupted) in
          value.removeAll()
          throw Interrupted()
        }
      }
      #expect(groups["a"] == Array(0..<20))
      #expect(groups.update(forKey: "b", default: [1]) { $0.append(2); return $0.count } == 2)
      #expect(groups.dictionary == ["a": Array(0..<20), "b": [1, 2]] && groups.count == 2)
    }

    @Test func dropInAppendsToAnArrayElementDoNotCopyIt() {
      let rows: TArray = [[Int](), [1]]
      rows[0].reserveCapacity(64)
      let before = storage(of: rows[0])
      let moved = (0..<10).filter { element in
        rows[0].append(element)
        return storage(of: rows[0]) != before
      }
      #expect(moved.isEmpty)
      atomically { _ in
        rows[1].append(2)
        rows.append([3])
        rows[2].append(4)
      }
      #expect(rows.elements == [Array(0..<10), [1, 2], [3, 4]])
      // Inside a transaction, after the first update of an element.
      let movedInTransaction = atomically { _ in
        rows[1].append(3)
        rows[1].reserveCapacity(64)
        let first = storage(of: rows[1])
        return (4..<10).filter { element in
          rows[1].append(element)
          return storage(of: rows[1]) != first
        }
      }
      #expect(movedInTransaction.isEmpty)
      #expect(rows[1] == Array(1..<10))
    }

    /// A copy taken before a mutation keeps its value: the mutation then copies the array
    /// (its storage is shared), as any mutation of a shared array does.
    @Test func copiesTakenBeforeAMutationKeepTheirValue() {
      let variable = TVar([1, 2])
      let groups: TDictionary = ["a": [1, 2]]
      let variableBefore = variable.value, groupBefore = groups["a"]!
      let snapshot = groups.dictionary
      variable.value.append(3)
      groups["a", default: []].append(3)
      #expect(variableBefore == [1, 2] && groupBefore == [1, 2] && snapshot == ["a": [1, 2]])
      #expect(variable.value == [1, 2, 3] && groups["a"] == [1, 2, 3])
    }

    /// A mutation that throws midway keeps what it changed, as with a stored property or a
    /// `Dictionary`.
    @Test func aMutationThatThrowsMidwayKeepsWhatItChanged() {
      let variable = TVar([1])
      let groups: TDictionary = ["a": [1]]
      #expect(throws: Interrupted.self) { try variable.value.append(2, thenThrow: true) }
      #expect(throws: Interrupted.self) { try groups["a", default: []].append(2, thenThrow: true) }
      #expect(throws: Interrupted.self) { try groups["b", default: []].append(2, thenThrow: true) }
      #expect(variable.value == [1, 2])
      #expect(groups.dictionary == ["a": [1, 2], "b": [2]])
      // Inside a transaction, the same; an error that leaves the transaction rolls it all back.
      atomically { _ in
        try? variable.value.append(3, thenThrow: true)
        try? variable.value.append(4, thenThrow: true)
      }
      #expect(variable.value == [1, 2, 3, 4])
      #expect(throws: Interrupted.self) { try atomically { _ in try variable.value.append(5, thenThrow: true) } }
      #expect(variable.value == [1, 2, 3, 4])
    }
  }

  @Suite struct ConcurrencyMutationInPlaceTests {
    /// Two threads append to the arrays of a dictionary and of a `TVar` outside transactions
    /// while three others (more threads than cores) read them, outside transactions and in
    /// transactions that read each twice: every array read is what some prefix of the appends
    /// made, a transaction reads the same array both times, and nothing is lost.
    @Test func readersSeeWholeAppendsWhileTheyAreMadeInPlace() {
      let groups: TDictionary<Int, [Int]> = [0: [], 1: []]
      let variable = TVar<[Int]>([])
      let appends = TestScale.scaled(20_000), writers = 2, readers = 3
      let done = Atomic<Int>(0), badReads = Atomic<Int>(0)
      // Writer w appends w, w+2, w+4, ... to its own key, and every element to the TVar.
      @Sendable func isPrefixOfAppends(_ array: [Int], key: Int) -> Bool {
        array.indices.allSatisfy { array[$0] == key + 2 * $0 }
      }
      runThreads(writers + readers) { thread in
        if thread < writers {
          for index in 0..<appends {
            groups[thread, default: []].append(thread + 2 * index)
            variable.value.append(thread)
          }
          done.add(1, ordering: .relaxed)
          return
        }
        while done.load(ordering: .relaxed) < writers {
          let key = thread % writers
          if !isPrefixOfAppends(groups[key] ?? [], key: key) { badReads.add(1, ordering: .relaxed) }
          let (first, second, tvarFirst, tvarSecond) = atomically { _ in
            (groups[key] ?? [], groups[key] ?? [], variable.value, variable.value)
          }
          if first != second || tvarFirst != tvarSecond || !isPrefixOfAppends(first, key: key) {
            badReads.add(1, ordering: .relaxed)
          }
        }
      }
      #expect(badReads.load(ordering: .relaxed) == 0)
      #expect(groups[0] == (0..<appends).map { 2 * $0 })
      #expect(groups[1] == (0..<appends).map { 1 + 2 * $0 })
      #expect(variable.value.count == writers * appends)
      #expect(variable.value.filter { $0 == 0 }.count == appends)
    }

    /// Threads update present keys with `update(forKey:_:)` outside transactions (more threads
    /// than cores) while others remove and insert other keys: no update is lost, and an absent
    /// key is never inserted.
    @Test func updatesOfPresentKeysLoseNothing() {
      let map = TDictionary<Int, [Int]>(uniqueKeysWithValues: [(0, []), (1, [])])
      let counts: TDictionary = [0: 0]
      let rounds = TestScale.scaled(2_000), threads = 4
      runThreads(threads) { thread in
        for round in 0..<rounds {
          map.update(forKey: thread % 2) { $0.append(round) }
          counts.update(forKey: 0) { $0 += 1 }
          // An absent key, coming and going.
          map.update(forKey: 100 + thread) { $0.append(round) }
          if thread == 0 { map[2] = [round] } else if thread == 1 { map[2] = nil }
        }
      }
      #expect(counts[0] == threads * rounds)
      #expect(map[0]?.count == 2 * rounds && map[1]?.count == 2 * rounds)
      #expect(map.keys.allSatisfy { $0 < 3 })
    }

    /// Threads append through the optional subscript outside transactions, and remove and
    /// insert keys through it, while others (more threads than cores) read the count and the
    /// whole dictionary in transactions: the two always agree, every array read is whole, and
    /// nothing is lost.
    @Test func theCountFollowsMutationsThroughTheOptionalSubscript() {
      let keys = 8
      let groups = TDictionary<Int, [Int]>(uniqueKeysWithValues: (0..<keys).map { ($0, [Int]()) })
      let rounds = TestScale.scaled(4_000), writers = 2, readers = 2
      let done = Atomic<Int>(0), badReads = Atomic<Int>(0)
      runThreads(writers + readers) { thread in
        if thread < writers {
          // Writer w owns the keys k with k % writers == w; it appends its round to each, and
          // every fourth round removes one of them through the accessor and puts it back.
          for round in 0..<rounds {
            for key in stride(from: thread, to: keys, by: writers) { groups[key]?.append(round) }
            if round % 4 == 3 {
              let key = thread + writers * ((round / 4) % (keys / writers))
              groups[key].removeWrapped()
              groups[key] = []
            }
          }
          done.add(1, ordering: .relaxed)
          return
        }
        while done.load(ordering: .relaxed) < writers {
          let (count, contents) = atomically { _ in (groups.count, groups.dictionary) }
          let increasing = contents.values.allSatisfy { values in zip(values, values.dropFirst()).allSatisfy { $0 + 1 == $1 } }
          if count != contents.count || !increasing { badReads.add(1, ordering: .relaxed) }
        }
      }
      #expect(badReads.load(ordering: .relaxed) == 0)
      #expect(groups.count == keys)
      let final = groups.dictionary
      #expect(final.count == keys)
      // A key removed in its last cycle holds nothing; the others end with the last round.
      #expect(final.values.allSatisfy { $0.isEmpty || $0.last == rounds - 1 })
    }
  }
}

extension Optional {
  /// Sets the optional to nil: a mutation through `dict[key]` that removes the key.
  fileprivate mutating func removeWrapped() { self = nil }

  /// Sets the optional to `value` once `callback` has run.
  fileprivate mutating func setAfter(_ value: Wrapped, _ callback: () -> Void) {
    callback()
    self = value
  }
}
