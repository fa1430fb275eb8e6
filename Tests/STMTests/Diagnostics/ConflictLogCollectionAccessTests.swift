import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Testing

extension LibraryTests {
  /// The collections name the key, index or part a conflict was on, and their operations
  /// (subscripts and methods) name their calls. Every conflict here is staged, so the recording
  /// must hold exactly one conflict, with exactly these fields.
  @Suite struct ConflictLogCollectionAccessTests {
    @Test func aStaleReadOfADictionaryKeyNamesTheKey() throws {
      let balances: TDictionary<String, Int> = ["alice": 10, "bob": 0]
      let readerLine = LockedBox(0), readLine = LockedBox(0)
      var writerLine = 0, writeLine = 0
      let report = try recordWhile({ hold in
        readerLine.value = #line; atomically { _ in
          readLine.value = #line; let alice = balances["alice"] ?? 0
          hold.hold()
          balances["bob"] = alice
        }
      }, losesTo: {
        writerLine = #line; atomically { _ in
          writeLine = #line; balances["alice"] = 20
        }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, aborts: 1, location: here(readerLine.value), accessLocation: here(readLine.value),
          conflictingLocation: here(writerLine), conflictingAccessLocation: here(writeLine),
          object: #"TDictionary<String, Int>["alice"]"#),
        in: report)
      #expect(balances["bob"] == 20)
    }

    @Test func aReadWaitingForACommitNamesTheIndex() throws {
      let array: TArray<Int> = [1, 2, 3]
      let committerLine = LockedBox(0), writeLine = LockedBox(0), readerLine = LockedBox(0), readLine = LockedBox(0)
      let report = try recordWhile({
        readerLine.value = #line; atomically { _ in
          readLine.value = #line; _ = array[0]
        }
      }, waitsFor: {
        committerLine.value = #line; atomically { _ in
          writeLine.value = #line; array[0] = 10
        }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, pauses: 1, location: here(readerLine.value), accessLocation: here(readLine.value),
          conflictingLocation: here(committerLine.value), conflictingAccessLocation: here(writeLine.value),
          object: "TArray<Int>[0]"),
        in: report)
    }

    /// Commutative updates never abort, but one cell's commits wait for each other's lock: a
    /// write-write pause, naming both increments.
    @Test func aCommitWaitingForACellsLockNamesBothWrites() throws {
      let counter = TCounter()
      let holderLine = LockedBox(0), holderWriteLine = LockedBox(0), waiterLine = LockedBox(0), waiterWriteLine = LockedBox(0)
      let report = try recordWhile({
        waiterLine.value = #line; atomically { _ in
          waiterWriteLine.value = #line; counter.increment()
        }
      }, waitsFor: {
        holderLine.value = #line; atomically { _ in
          holderWriteLine.value = #line; counter.increment()
        }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeWrite, pauses: 1, location: here(waiterLine.value), accessLocation: here(waiterWriteLine.value),
          conflictingLocation: here(holderLine.value), conflictingAccessLocation: here(holderWriteLine.value),
          object: "TCounter"),
        in: report)
      #expect(counter.value == 2)
    }

    /// A single operation outside `atomically` has no transaction location, but its own call
    /// is its access location: here it makes a transaction's read stale. An in-place update
    /// (`+=`) of a present key, which outside a recording takes a quick road that notes
    /// nothing, must take the general road while the log records, or no call names it.
    @Test(arguments: [false, true]) func aSingleOperationThatWinsIsNamedByItsCall(updatingInPlace: Bool) throws {
      let balances: TDictionary<String, Int> = ["alice": 10]
      let y = TVar(0)
      let readerLine = LockedBox(0), readLine = LockedBox(0)
      var writeLine = 0
      let report = try recordWhile({ hold in
        readerLine.value = #line; atomically { _ in
          readLine.value = #line; _ = balances["alice"]
          hold.hold()
          y.value += 1
        }
      }, losesTo: {
        writeLine = #line; if updatingInPlace { balances["alice", default: 0] += 10 } else { balances["alice"] = 20 }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, aborts: 1, location: here(readerLine.value), accessLocation: here(readLine.value),
          conflictingLocation: nil, conflictingAccessLocation: here(writeLine),
          object: #"TDictionary<String, Int>["alice"]"#),
        in: report)
      #expect(report.formatted().contains("by a single operation outside atomically, writing at \(here(writeLine))"))
      #expect(balances["alice"] == 20)
    }

    /// A single read outside `atomically` that waits for a commit is recorded at its call.
    @Test func aSingleOperationThatWaitsIsNamedByItsCall() throws {
      let array: TArray<Int> = [1]
      let committerLine = LockedBox(0), writeLine = LockedBox(0), readLine = LockedBox(0)
      let report = try recordWhile({
        readLine.value = #line; _ = array[0]
      }, waitsFor: {
        committerLine.value = #line; atomically { _ in
          writeLine.value = #line; array[0] = 10
        }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, pauses: 1, location: nil, accessLocation: here(readLine.value),
          conflictingLocation: here(committerLine.value), conflictingAccessLocation: here(writeLine.value),
          object: "TArray<Int>[0]"),
        in: report)
      #expect(report.formatted().contains("in a single operation outside atomically, reading at \(here(readLine.value))"))
    }

    /// An operation that runs as a transaction of its own outside `atomically` (an append) is a
    /// single operation at its call too, not an `atomically` call inside the library.
    @Test func anAppendOutsideAtomicallyIsASingleOperationAtItsCall() throws {
      let array = TArray<Int>()
      let y = TVar(0)
      let readerLine = LockedBox(0)
      var appendLine = 0
      let report = try recordWhile({ hold in
        readerLine.value = #line; atomically { _ in
          _ = array.count
          hold.hold()
          y.value += 1
        }
      }, losesTo: {
        appendLine = #line; array.append(1)
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, aborts: 1, location: here(readerLine.value), accessLocation: here(readerLine.value),
          conflictingLocation: nil, conflictingAccessLocation: here(appendLine), object: "TArray<Int> count"),
        in: report)
    }

    /// A consumer that lost the head to another is told so, at both dequeues.
    @Test func consumersTakingTheSameItemNameTheQueuesHead() throws {
      let jobs = TQueue<Int>()
      try jobs.enqueue(1)
      try jobs.enqueue(2)
      let loserLine = LockedBox(0), loserTakeLine = LockedBox(0)
      var winnerTakeLine = 0
      let report = try recordWhile({ hold in
        loserLine.value = #line; atomically { _ in
          loserTakeLine.value = #line; _ = jobs.tryDequeue()
          hold.hold()
        }
      }, losesTo: {
        winnerTakeLine = #line; _ = jobs.tryDequeue()
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, aborts: 1, location: here(loserLine.value), accessLocation: here(loserTakeLine.value),
          conflictingLocation: nil, conflictingAccessLocation: here(winnerTakeLine), object: "TQueue<Int> head"),
        in: report)
    }

    /// A consumer that found the queue empty, beaten by an enqueue inside a transaction, names
    /// the enqueue's call as the other side's write: the link it read is written as the
    /// enqueue's batch lands at commit, which published it under the `atomically` call alone
    /// (found by review).
    @Test func aConsumerBeatenByAnEnqueueInATransactionNamesTheEnqueue() throws {
      let jobs = TQueue<Int>()
      let other = TVar(0)
      let loserLine = LockedBox(0), loserTakeLine = LockedBox(0)
      var winnerLine = 0, enqueueLine = 0
      let report = try recordWhile({ hold in
        loserLine.value = #line; atomically { _ in
          loserTakeLine.value = #line; _ = jobs.tryDequeue()
          hold.hold()
          other.value += 1
        }
      }, losesTo: {
        winnerLine = #line; atomically { _ in
          enqueueLine = #line; try! jobs.enqueue(1)
        }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, aborts: 1, location: here(loserLine.value), accessLocation: here(loserTakeLine.value),
          conflictingLocation: here(winnerLine), conflictingAccessLocation: here(enqueueLine), object: "TQueue<Int> head"),
        in: report)
    }

    /// Off, the collections keep no notes; on, the notes last only as long as the transaction
    /// or the single operation.
    @Test func collectionsKeepNotesOnlyWhileRecording() throws {
      let names: TDictionary<String, Int> = ["a": 1]
      ConflictLog.stop()
      let keptWhileOff = atomically { _ in
        names["a"] = 2
        return _ThreadContext.current.diagnostics.notes.count
      }
      #expect(keptWhileOff == 0)
      try ConflictLog.start()
      defer { ConflictLog.stop() }
      let keptWhileOn = atomically { _ in
        names["a"] = 3
        return _ThreadContext.current.diagnostics.notes.count
      }
      #expect(keptWhileOn == 1)
      names["b"] = 1
      #expect(_ThreadContext.current.diagnostics.notes.isEmpty)
    }

    /// A queue's node that no operation named (one that began before the log started) is
    /// reported as a queue's node, not by the cell's Swift type, which names internals.
    @Test func aQueueNodeNoNoteNamedIsReportedAsOne() {
      #expect(_LinkedCell<Int?>(1).variableDescription == "TQueue node (Optional<Int>)")
    }
  }
}
