import STM
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// Set algebra whose argument is another `TSet` reads both sets at one snapshot, outside a
  /// transaction as inside one. The argument was read before or after the set's own step, at
  /// another moment: two sets kept equal by every commit compared unequal, and
  /// `a.formIntersection(b)` removed elements from `a` that `b` held (found by review).
  @Suite struct ConcurrencySetAlgebraTests {
    /// Readers, more threads than cores, compare two sets that every commit changes together.
    @Test func comparisonsWithAnotherTSetSeeOneState() {
      let a = TSet<Int>(), b = TSet<Int>()
      let stop = Atomic<Bool>(false)
      let violations = LockedBox<[String: Int]>([:])
      @Sendable func note(_ name: String) { violations.value[name, default: 0] += 1 }
      runThreads(4) { index in
        if index == 0 {
          for round in 0..<TestScale.scaled(3_000) {
            atomically { _ in
              a.insert(round % 16)
              b.insert(round % 16)
            }
            atomically { _ in
              a.remove((round + 5) % 16)
              b.remove((round + 5) % 16)
            }
          }
          stop.store(true, ordering: .relaxed)
          return
        }
        while !stop.load(ordering: .relaxed) {
          if !a.isSubset(of: b) { note("isSubset") }
          if a.isStrictSubset(of: b) { note("isStrictSubset") }
          if b.isStrictSuperset(of: a) { note("isStrictSuperset") }
          if !a.subtracting(b).isEmpty { note("subtracting") }
          if !a.symmetricDifference(b).isEmpty { note("symmetricDifference") }
        }
      }
      #expect(violations.value.isEmpty)
    }

    /// Every commit inserts an element into both sets: intersecting one with the other, outside
    /// a transaction, must never remove anything.
    @Test func intersectingWithAnotherTSetLosesNothing() {
      let a = TSet<Int>(), b = TSet<Int>()
      let stop = Atomic<Bool>(false)
      let total = TestScale.scaled(3_000)
      runThreads(3) { index in
        if index == 0 {
          for element in 0..<total {
            atomically { _ in
              a.insert(element)
              b.insert(element)
            }
          }
          stop.store(true, ordering: .relaxed)
          return
        }
        while !stop.load(ordering: .relaxed) {
          a.formIntersection(b)
          a.formSymmetricDifference(TSet<Int>())
        }
      }
      #expect(a.count == total)
      #expect(b.count == total)
    }
  }
}
