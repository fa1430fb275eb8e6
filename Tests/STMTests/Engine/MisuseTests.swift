import Foundation
import STM
import Testing

/// What an exit test's process wrote to standard error (its trap message).
/// The start of the message for a commute transform that touches transactional data.
let commuteMessage = "A commute transform used a TVar, a transaction handle or atomically"

func standardError(of result: ExitTest.Result?) -> String {
  String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}

/// Each mistake traps with a message that names it and says what to do.
extension LibraryTests {
  @Suite struct MisuseTests {
    @Test func retryInATransactionThatReadNothingTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        _ = try? atomically { tx in try tx.retry() }
      }
      #expect(standardError(of: result).contains("has read no TVar"))
    }

    @Test func retryAfterBecomingInevitableTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let cell = TVar(0)
        _ = try? atomically { tx in
          _ = cell.value
          try tx.becomeInevitable()
          try tx.retry()
        }
      }
      #expect(standardError(of: result).contains("after becomeInevitable()"))
    }

    /// `retry(until:)` waits as `retry()` does before its deadline, so it traps there too.
    @Test func aTimedRetryAfterBecomingInevitableTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let cell = TVar(0)
        _ = try? atomically { tx in
          _ = cell.value
          try tx.becomeInevitable()
          try tx.retry(until: ContinuousClock.now + .seconds(60))
        }
      }
      #expect(standardError(of: result).contains("retry(until:) before its deadline"))
    }

    @Test func aHandleUsedAfterItsBlockTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        var escaped: Transaction?
        atomically { tx in escaped = tx }
        escaped?.afterCommit {}
      }
      #expect(standardError(of: result).contains("Transaction.afterCommit(_:) was used outside the atomically block"))
    }

    /// A handle kept from an attempt that reran, used in the rerun, inside its own block and on
    /// its own thread: the message says the attempt has ended and the body got a new handle.
    /// It said the handle was used after its block or from another thread (found by review).
    @Test func aHandleKeptFromAnAttemptThatRanAgainTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let read = TVar(0), written = TVar(0)
        var first: Transaction?
        atomically { tx in
          written.value = read.value
          guard let first else {
            first = tx
            // Written by another thread before this attempt commits, so that it reruns.
            let done = DispatchSemaphore(value: 0)
            Thread { read.value = 1; done.signal() }.start()
            done.wait()
            return
          }
          first.afterCommit {}
        }
      }
      #expect(standardError(of: result).contains(
        "Transaction.afterCommit(_:) was used with the handle of an attempt that has ended: the body ran again"))
    }

    /// A handle kept from an earlier block on the same thread, used inside a later one.
    @Test func aHandleKeptFromAnEarlierBlockTrapsInALaterOne() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        var escaped: Transaction?
        atomically { tx in escaped = tx }
        atomically { _ in escaped?.afterCommit {} }
      }
      #expect(standardError(of: result).contains("Transaction.afterCommit(_:) was used with the handle of an attempt that has ended"))
    }

    /// Another thread's handle, used in a transaction that runs on the very segment its attempt
    /// ran on (one segment in all): the message says the handle left its block, not that this
    /// thread's attempt ended (segments are pooled, so the segment does not tell the threads
    /// apart; found by review).
    @Test func anotherThreadsHandleOnTheSameSegmentTrapsAsUsedOutsideItsBlock() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        try TransactionEngine.configure(segmentCount: 1)
        let escaped = LockedBox<Transaction?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
          atomically { tx in escaped.value = tx }
          done.signal()
        }.start()
        done.wait()
        atomically { _ in escaped.value?.afterCommit {} }
      }
      #expect(standardError(of: result).contains("Transaction.afterCommit(_:) was used outside the atomically block"))
    }

    /// An escaped handle used inside an in-place mutation outside a transaction: the message
    /// names the handle, not the mutation (whose advice does not apply).
    @Test func aHandleUsedAfterItsBlockInsideADropInUpdateTrapsNamingTheHandle() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        var escaped: Transaction?
        atomically { tx in escaped = tx }
        let counts: TDictionary = ["a": 1]
        counts.update(forKey: "a", default: 0) { value in
          escaped?.afterCommit {}
          value += 1
        }
      }
      #expect(standardError(of: result).contains("Transaction.afterCommit(_:) was used outside the atomically block"))
    }

    /// A mutating method whose callback uses the very value being mutated in place: the value
    /// is not whole until the mutation ends, so a transaction that reads or writes it traps
    /// (writing it could free the storage the mutation is working on).
    @Test func usingATVarFromInsideItsOwnMutationInATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let list = TVar([3, 1, 2])
        atomically { _ in
          list.value.append(4)
          list.value.sort { a, b in
            list.value = []
            return a < b
          }
        }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    @Test func usingADictionaryKeyFromInsideItsOwnMutationInATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let groups: TDictionary = ["a": [3, 1, 2]]
        atomically { _ in
          groups["a", default: []].append(4)
          groups["a", default: []].sort { a, b in
            _ = groups["a"]
            return a < b
          }
        }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    /// The first update of a variable in a block mutates a copy, written back when the mutation
    /// ends: a use of the variable from inside the mutation traps there too, rather than have
    /// the copy overwrite what it wrote (it used to: the inner `+= 10` was lost).
    @Test func usingATVarFromInsideItsFirstMutationInATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counter = TVar(0)
        atomically { _ in counter.value.add(1, after: { counter.value += 10 }) }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    /// The body of an `update(forKey:default:_:)` that can throw, and `merge`'s `combine`, run
    /// between the key's read and its write: a use of the key from inside them traps too,
    /// rather than have the update overwrite what it wrote (the inner write was lost, with no
    /// trap, where the body that cannot throw trapped; found by review).
    @Test func usingADictionaryKeyFromInsideAThrowingUpdateInATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counts: TDictionary = ["a": 1]
        try? atomically { (_: Transaction) throws(any Error) in
          try counts.update(forKey: "a", default: 0) { (value: inout Int) throws(any Error) in
            counts["a"] = 100
            value += 1
          }
        }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    @Test func usingADictionaryKeyFromInsideMergesCombineTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counts: TDictionary = ["a": 1]
        counts.merge([("a", 1)]) { old, new in
          counts["a"] = 100
          return old + new
        }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    @Test func usingADictionaryKeyFromInsideItsFirstMutationInATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counts: TDictionary = ["a": 1]
        atomically { _ in counts["a", default: 0].add(1, after: { counts["a"] = 10 }) }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    @Test func usingADictionaryKeyFromInsideAMutationOfItsOptionalValueTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counts: TDictionary<String, Int> = [:]
        atomically { _ in counts["a"].setAfter(1, { _ = counts["a"] }) }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    @Test func usingAnArrayElementFromInsideItsFirstMutationInATransactionTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let array: TArray = [1, 2]
        atomically { _ in array[0].add(1, after: { array[0] = 10 }) }
      }
      #expect(standardError(of: result).contains("while its own value was being mutated in place"))
    }

    /// Outside a transaction, an in-place mutation holds its variable; a deinit that it runs
    /// (an element `removeAll()` drops) is inside it, and using a collection there traps with
    /// a message that says so and what to do instead (see `MutationInPlaceTests` for the way
    /// that works).
    @Test func aDeinitRunByADropInMutationThatUsesACounterTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let live = TCounter()
        let items = TVar([CountedObject(live)])
        items.value.removeAll()
      }
      let message = standardError(of: result)
      #expect(message.contains("in a deinit that such a mutation ran"))
      #expect(message.contains("mutate a copy and assign it"))
    }

    /// The body of `update(forKey:_:)` runs while the update holds the key's cell, outside a
    /// transaction: a `TVar` used there traps, and the message names the method.
    @Test func usingATVarInsideADropInUpdateOfAPresentKeyTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let groups: TDictionary = ["a": [1]]
        let other = TVar(0)
        groups.update(forKey: "a") { $0.append(other.value) }
      }
      let message = standardError(of: result)
      #expect(message.contains("while a value was being mutated in place"))
      #expect(message.contains("dict.update(forKey:_:)"))
    }

    @Test func aCommuteTransformThatTouchesATVarTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counter = TVar(0), config = TVar(5)
        atomically { _ in counter.commute { $0 + config.value } }
      }
      #expect(standardError(of: result).contains("commute transform used a TVar"))
    }

    // A transform also runs during the body: when the transaction reads its variable, or
    // commutes a variable it wrote. It joined the transaction there, and one that read its own
    // variable recursed until the stack overflowed; a handle used in a transform, or a
    // transform outside a transaction, got another mistake's message. (Found by review.)

    @Test func aCommuteTransformThatTouchesATVarTrapsWhenTheVariableIsRead() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counter = TVar(0), config = TVar(5)
        atomically { _ in
          counter.commute { $0 + config.value }
          _ = counter.value
        }
      }
      #expect(standardError(of: result).contains(commuteMessage))
    }

    @Test func aCommuteTransformThatTouchesATVarTrapsAfterAWrite() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counter = TVar(0), config = TVar(5)
        atomically { _ in
          counter.value = 1
          counter.commute { $0 + config.value }
        }
      }
      #expect(standardError(of: result).contains(commuteMessage))
    }

    @Test func aCommuteTransformThatReadsItsOwnVariableTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counter = TVar(0)
        atomically { _ in
          counter.commute { $0 + counter.value }
          _ = counter.value
        }
      }
      #expect(standardError(of: result).contains(commuteMessage))
    }

    @Test func aCommuteTransformThatUsesTheHandleTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counter = TVar(0)
        atomically { transaction in
          counter.commute {
            transaction.afterCommit {}
            return $0 + 1
          }
        }
      }
      #expect(standardError(of: result).contains(commuteMessage))
    }

    @Test func aCommuteTransformOutsideATransactionThatTouchesATVarTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counter = TVar(0), config = TVar(5)
        counter.commute { $0 + config.value }
      }
      #expect(standardError(of: result).contains(commuteMessage))
    }

    @Test func touchingATVarDuringAnInPlaceMutationTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let first = TVar(0), second = TVar(0)
        func bump(_ value: inout Int) { value += second.value }
        bump(&first.value)
      }
      #expect(standardError(of: result).contains("mutated in place"))
    }

    /// A counter that would go past `Int.max` traps with a message naming the counter and the
    /// numbers, not Swift's bare "arithmetic overflow": outside a transaction at once, inside
    /// one at commit, where the transaction's sum is applied.
    @Test func aCounterThatOverflowsTrapsWithAMessageNamingIt() async {
      let outside = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        TCounter(Int.max - 1).add(2)
      }
      #expect(standardError(of: outside).contains("Adding 2 to an Int counter holding \(Int.max - 1) overflows Int"))
      let atCommit = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counter = TCounter(Int.min)
        atomically { _ in counter.add(-1) }
      }
      #expect(standardError(of: atCommit).contains("Adding -1 to an Int counter holding \(Int.min) overflows Int"))
    }
  }
}

extension Int {
  /// Adds `amount` once `callback` has run: a mutating method whose callback can reach the
  /// variable being mutated.
  fileprivate mutating func add(_ amount: Int, after callback: () -> Void) {
    callback()
    self += amount
  }
}

extension Optional {
  /// Sets the optional to `value` once `callback` has run.
  fileprivate mutating func setAfter(_ value: Wrapped, _ callback: () -> Void) {
    callback()
    self = value
  }
}

/// An object that counts itself in `live` while it exists.
final class CountedObject: Sendable {
  let live: TCounter

  init(_ live: TCounter) {
    self.live = live
    live.increment()
  }

  deinit { live.decrement() }
}
