import Foundation
@testable import STM
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// Operations over many keys or elements, run as one atomic step, under another thread's
  /// writes (each found by review).
  @Suite struct ConcurrencyBulkOperationTests {
    /// A single-pass sequence, the numbers 1 to 5, that inserts `conflicting` from another
    /// thread (which commits at once) the first time its second number is asked for: a bulk
    /// update that reads it inside its transaction then conflicts and reruns.
    private func numbers(inserting conflicting: @escaping @Sendable () -> Void) -> AnyIterator<Int> {
      var next = 0
      var conflicted = false
      return AnyIterator {
        next += 1
        if next == 2 && !conflicted {
          conflicted = true
          startThread(conflicting).wait()
        }
        return next <= 5 ? next : nil
      }
    }

    /// A rerun of `formUnion`, `subtract`, `formSymmetricDifference` or `merge` must not find
    /// its sequence used up: they read it before their transaction (`formUnion` of a
    /// single-pass sequence that made it rerun left the set holding only the other thread's
    /// element).
    @Test func bulkUpdatesReadASinglePassSequenceOnce() {
      let union = TSet<Int>()
      union.formUnion(numbers { union.insert(1) })
      #expect(union.elements == Set(1...5))

      let subtraction = TSet(1...6)
      subtraction.subtract(numbers { subtraction.insert(1) })
      #expect(subtraction.elements == [6])

      let symmetric = TSet([1, 9])
      symmetric.formSymmetricDifference(numbers { symmetric.insert(2) })
      #expect(symmetric.elements == [3, 4, 5, 9])

      let merged = TDictionary<Int, Int>()
      merged.merge(numbers { merged[1] = 100 }.lazy.map { ($0, $0) }, uniquingKeysWith: +)
      #expect(merged.dictionary == [1: 101, 2: 2, 3: 3, 4: 4, 5: 5])
    }

    /// A single-pass sequence, the numbers 1 to 5, each of which reads `variable`, which
    /// another thread changes as the second number is made: a step that reads the sequence
    /// then conflicts and reruns.
    private func numbers(reading variable: TVar<Int>) -> AnyIterator<Int> {
      var next = 0
      return AnyIterator {
        next += 1
        _ = variable.value
        if next == 2 { startThread { variable.value += 1 }.wait() }
        return next <= 5 ? next : nil
      }
    }

    /// The initializers from a sequence read it before their step as well: `TSet(_:)` and
    /// `TDictionary(uniqueKeysWithValues:)` read it inside, and a rerun found it used up and
    /// left the new set or dictionary empty (found by review).
    @Test func initializersReadASinglePassSequenceOnce() {
      let set = TSet(numbers(reading: TVar(0)))
      #expect(set.elements == Set(1...5))
      let dictionary = TDictionary(uniqueKeysWithValues: numbers(reading: TVar(0)).lazy.map { ($0, $0 * 10) })
      #expect(dictionary.dictionary == [1: 10, 2: 20, 3: 30, 4: 40, 5: 50])
      let combined = TDictionary(numbers(reading: TVar(0)).lazy.map { ($0 % 2, $0) }, uniquingKeysWith: +)
      #expect(combined.dictionary == [0: 6, 1: 9])
    }

    /// `map` and `Array(_:)` trust `underestimatedCount`, and force-unwrap that many elements:
    /// outside a transaction the count and the iteration are two snapshots, so a key removed
    /// between them made `map` trap. Outside a transaction the hint is 0 now; inside, it is
    /// the count, which iteration agrees with.
    @Test func mappingADictionaryWhileKeysComeAndGoNeverTraps() {
      let dictionary: TDictionary = [0: 0]
      #expect(dictionary.underestimatedCount == 0)
      atomically { _ in #expect(dictionary.underestimatedCount == 1) }
      let done = Atomic<Bool>(false)
      let toggler = startThread {
        while !done.load(ordering: .relaxed) {
          dictionary[1] = 1
          dictionary[1] = nil
        }
      }
      for _ in 0..<TestScale.scaled(20_000) {
        let keys = dictionary.map(\.key)
        #expect(keys.contains(0))
      }
      done.store(true, ordering: .relaxed)
      toggler.wait()
    }
  }
}
