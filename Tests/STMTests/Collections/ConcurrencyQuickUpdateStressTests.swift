import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

/// A key whose `==` is its own code, not the standard library's: the quick road enters its
/// commit only after such a key's lookup (see `_KeyHash.hasLibraryEquality(of:)`).
private struct WrappedKey: Hashable, Sendable {
  let id: Int
}

/// What the updaters of `quickUpdatesNeverLandWhileAnotherTransactionIsInevitable` have
/// finished, and what the checkers found.
private final class Ledger: Sendable {
  /// Per key, how many of its updates have returned.
  private let returnedOfKey0 = Atomic<Int>(0), returnedOfKey1 = Atomic<Int>(0)
  let stop = Atomic<Bool>(false)
  // `_Lock`, not `Mutex`: Thread Sanitizer cannot see the ordering `Mutex` gives on Linux.
  let violations = _Lock<[String]>([])
  let inevitableRuns = Atomic<Int>(0)

  func returnedCount(_ key: Int) -> Int {
    key == 0 ? returnedOfKey0.load(ordering: .acquiring) : returnedOfKey1.load(ordering: .acquiring)
  }

  func noteReturned(_ updates: Int, ofKey key: Int) {
    if key == 0 {
      returnedOfKey0.store(updates, ordering: .releasing)
    } else {
      returnedOfKey1.store(updates, ordering: .releasing)
    }
  }

  func note(_ violation: String) { violations.withLock { if $0.count < 5 { $0.append(violation) } } }
}

extension LibraryTests {
  /// The quick road against inevitability, under load: more threads than cores, started behind
  /// a barrier.
  @Suite struct ConcurrencyQuickUpdateStressTests {
    /// Two threads update their own key with `dict[key, default: 0] += 1` on the quick road, a
    /// third reads both keys outside transactions, and a fourth runs inevitable transactions
    /// back to back. No update may land while a transaction is inevitable: one that read a
    /// key after becoming inevitable must not see an update of it return before it ends.
    /// Every read sees every update that returned before the read began. For keys whose
    /// `==` is the standard library's (the update counts as a commit in flight from its
    /// lookup) and for others (it enters its commit after the lookup).
    @Test(arguments: [true, false]) func quickUpdatesNeverLandWhileAnotherTransactionIsInevitable(libraryKeys: Bool) {
      if libraryKeys {
        expectNoUpdateLandsDuringInevitability(key: { $0 })
      } else {
        expectNoUpdateLandsDuringInevitability(key: { WrappedKey(id: $0) })
      }
    }
  }
}

private func expectNoUpdateLandsDuringInevitability<Key: Hashable & Sendable>(key: @escaping @Sendable (Int) -> Key) {
  let counts = TDictionary<Key, Int>()
  counts[key(0)] = 0
  counts[key(1)] = 0
  let ledger = Ledger()
  let seconds = TestScale.isLong ? 10.0 : 1.0
  let deadline = Date().addingTimeInterval(seconds)
  let begun = Atomic<Int>(0)
  runThreads(4) { thread in
    switch thread {
    case 0, 1:
      var updates = 0
      #if DEBUG
      let before = _ThreadContext.current.quickUpdatesBegun
      #endif
      while !ledger.stop.load(ordering: .relaxed) {
        counts[key(thread), default: 0] += 1
        updates += 1
        ledger.noteReturned(updates, ofKey: thread)
      }
      #if DEBUG
      begun.add(_ThreadContext.current.quickUpdatesBegun - before, ordering: .relaxed)
      #endif
    case 2:
      while !ledger.stop.load(ordering: .relaxed) {
        for index in 0..<2 {
          let returned = ledger.returnedCount(index)
          let seen = counts[key(index)] ?? -1
          if seen < returned { ledger.note("a read saw \(seen) after \(returned) updates of key \(index) returned") }
        }
      }
    default:
      while Date() < deadline {
        atomically { transaction in
          try! transaction.becomeInevitable()
          for index in 0..<2 {
            let returned = ledger.returnedCount(index)
            let seen = counts[key(index)] ?? -1
            if seen < returned { ledger.note("an inevitable read saw \(seen) after \(returned) updates of key \(index) returned") }
            // Long enough for an update that slipped past the token to return meanwhile.
            var spin = 0
            for step in 0..<2_000 { spin &+= step }
            if spin == 42 { print(spin) }
            let after = ledger.returnedCount(index)
            if after > seen {
              ledger.note("update \(after) of key \(index) returned while a transaction that had read \(seen) was inevitable")
            }
          }
        }
        ledger.inevitableRuns.add(1, ordering: .relaxed)
      }
      ledger.stop.store(true, ordering: .relaxed)
    }
  }
  #expect(ledger.violations.withLock { $0 } == [])
  #expect(ledger.inevitableRuns.load(ordering: .relaxed) > 10, "too few inevitable transactions to mean anything")
  for index in 0..<2 { #expect(counts[key(index)] == ledger.returnedCount(index)) }
  #if DEBUG
  #expect(begun.load(ordering: .relaxed) > 0, "no update took the quick road")
  #endif
}
