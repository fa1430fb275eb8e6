import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Testing

extension LibraryTests {
  /// Each abort and pause is recorded with the object the two sides collided on and where each
  /// side accessed it, besides their `atomically` calls. Every conflict here is staged, so the
  /// recording must hold exactly one conflict, with exactly these fields.
  @Suite struct ConflictLogAccessTests {
    @Test func aStaleReadOfATVarNamesTheVariableAndBothAccesses() throws {
      let x = TVar(0), y = TVar(0)
      let readerLine = LockedBox(0), readLine = LockedBox(0)
      var writerLine = 0, writeLine = 0
      let report = try recordWhile({ hold in
        readerLine.value = #line; atomically { _ in
          readLine.value = #line; _ = x.read()
          hold.hold()
          y.value += 1
        }
      }, losesTo: {
        writerLine = #line; atomically { _ in
          writeLine = #line; x.write(1)
        }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, aborts: 1, location: here(readerLine.value), accessLocation: here(readLine.value),
          conflictingLocation: here(writerLine), conflictingAccessLocation: here(writeLine), object: "TVar<Int>"),
        in: report)
    }

    /// `TVar.value` cannot see its caller: both accesses are placed at their `atomically` calls.
    @Test func propertyAccessesArePlacedAtTheirAtomicallyCalls() throws {
      let x = TVar(0), y = TVar(0)
      let readerLine = LockedBox(0)
      var writerLine = 0
      let report = try recordWhile({ hold in
        readerLine.value = #line; atomically { _ in
          _ = x.value
          hold.hold()
          y.value += 1
        }
      }, losesTo: {
        writerLine = #line; atomically { _ in
          x.value = 1
        }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, aborts: 1, location: here(readerLine.value), accessLocation: here(readerLine.value),
          conflictingLocation: here(writerLine), conflictingAccessLocation: here(writerLine), object: "TVar<Int>"),
        in: report)
    }

    @Test func blindWritesNameBothWrites() throws {
      let x = TVar(0)
      let loserLine = LockedBox(0), loserWriteLine = LockedBox(0)
      var winnerLine = 0, winnerWriteLine = 0
      let report = try recordWhile({ hold in
        loserLine.value = #line; atomically { _ in
          loserWriteLine.value = #line; x.write(10)
          hold.hold()
        }
      }, losesTo: {
        winnerLine = #line; atomically { _ in
          winnerWriteLine = #line; x.write(20)
        }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeWrite, aborts: 1, location: here(loserLine.value), accessLocation: here(loserWriteLine.value),
          conflictingLocation: here(winnerLine), conflictingAccessLocation: here(winnerWriteLine), object: "TVar<Int>"),
        in: report)
      #expect(x.value == 10)
    }

    /// A read that waits for a commit publishing the version it must see names the write it
    /// waited for, even though that commit took its number while the reader watched it.
    @Test func aReadWaitingForACommitNamesTheWrite() throws {
      let x = TVar(0)
      let committerLine = LockedBox(0), writeLine = LockedBox(0), readerLine = LockedBox(0), readLine = LockedBox(0)
      let report = try recordWhile({
        readerLine.value = #line; atomically { _ in
          readLine.value = #line; _ = x.read()
        }
      }, waitsFor: {
        committerLine.value = #line; atomically { _ in
          writeLine.value = #line; x.write(1)
        }
      })
      expectOnly(
        ExpectedConflict(
          kind: .writeRead, pauses: 1, location: here(readerLine.value), accessLocation: here(readLine.value),
          conflictingLocation: here(committerLine.value), conflictingAccessLocation: here(writeLine.value),
          object: "TVar<Int>"),
        in: report)
    }

    /// Off, nothing keeps notes; on, they last only as long as the transaction.
    @Test func accessNotesAreKeptOnlyWhileRecordingAndOnlyForTheTransaction() throws {
      let x = TVar(0)
      ConflictLog.stop()
      let keptWhileOff = atomically { _ in
        x.write(x.read() + 1)
        return _ThreadContext.current.diagnostics.notes.count
      }
      #expect(keptWhileOff == 0)
      try ConflictLog.start()
      defer { ConflictLog.stop() }
      let keptWhileOn = atomically { _ in
        x.write(x.read() + 1)
        return _ThreadContext.current.diagnostics.notes.count
      }
      #expect(keptWhileOn == 1)
      #expect(_ThreadContext.current.diagnostics.notes.isEmpty)
      x.write(5)
      #expect(_ThreadContext.current.diagnostics.notes.isEmpty)
    }
  }
}
