import Foundation
@testable import STM
import Testing

extension LibraryTests {
  /// What the library's errors and conflict reports say when logged or printed.
  @Suite struct DiagnosticTextTests {
    /// Every public error's `localizedDescription` is its `description`: without a
    /// `LocalizedError` conformance, Foundation gave "The operation could not be completed.
    /// (STM.TransactionQueueError error 0.)".
    @Test func localizedDescriptionsSayWhatDescriptionsSay() {
      let errors: [any Error & CustomStringConvertible] = [
        TransactionQueueError.alreadyRunning, TransactionQueueError.failedEarlier(TQueueClosedError()),
        TQueueClosedError(), TQueueTimeoutError(),
        TransactionEngineError.alreadyStarted, TransactionEngineError.invalidSegmentCount(0),
        ConflictLogError.cannotOpen("/no/such/dir/log", 2), ConflictLogError.malformedLine(3, "x"),
      ]
      for error in errors {
        #expect((error as any Error).localizedDescription == error.description)
      }
    }

    /// A losing side with no location at all is printed as either thing it may be: a
    /// property used outside `atomically`, or a transaction that began before recording (it
    /// was printed as a single operation only; found by review).
    @Test func aSideWithNoLocationIsPrintedAsEitherThingItMayBe() {
      let event = ConflictEvent(outcome: .pause, kind: .writeWrite, seconds: 0.001, location: nil, conflictingLocation: nil, object: "TVar<Int>")
      let printed = ConflictReport(events: [event], seconds: 1, commits: 10).formatted()
      #expect(printed.contains("in the transaction at  (a single operation outside atomically, or one begun before recording)"), "\(printed)")
    }

    /// Counts of one take the singular, in statistics and in reports ("1 commits" was printed).
    @Test func aCountOfOneTakesTheSingular() {
      var one = TransactionStatistics()
      one.commits = 1
      one.aborts[.writeRead] = 1
      one.pauses[.writeWrite] = 1
      one.retries = 1
      #expect(one.description == "1 commit, 1 abort (1x write-read), 1 pause (1x write-write), 1 retry, 0.000s lost in aborts, 0.000s paused")
      var two = one + one
      two.commits = 0
      #expect(two.description.hasPrefix("0 commits, 2 aborts (2x write-read), 2 pauses (2x write-write), 2 retries, "))

      let events = [
        ConflictEvent(outcome: .abort, kind: .writeRead, seconds: 0.5, location: nil, conflictingLocation: nil),
        ConflictEvent(outcome: .pause, kind: .writeWrite, seconds: 0.25, location: nil, conflictingLocation: nil),
        ConflictEvent(outcome: .inevitable, kind: .inevitable, seconds: 0, location: nil, conflictingLocation: nil),
      ]
      let printed = ConflictReport(events: events, seconds: 1, commits: 1).formatted()
      #expect(printed.hasPrefix("1.000s recorded: 1 commit (1 transactions/s), 1 abort (50.0% of attempts), 1 pause\n"), "\(printed)")
      #expect(printed.contains("warning: 1 transaction became inevitable (100.0% of commits)"), "\(printed)")
      #expect(printed.contains("(1x write-read abort)"), "\(printed)")
      #expect(printed.contains("(1x write-write pause)"), "\(printed)")
      let unsummarized = ConflictReport(events: Array(events.prefix(2)), seconds: 0, commits: 0).formatted()
      #expect(unsummarized.hasPrefix("1 abort, 1 pause recorded "), "\(unsummarized)")
    }

    /// A wait for a free segment is a wait for whichever transaction ends first: its row does
    /// not name "the transaction at (unknown)" as the other side.
    @Test func aWaitForAFreeSegmentNamesNoOtherTransaction() {
      let event = ConflictEvent(outcome: .pause, kind: .freeSegment, seconds: 0.01, location: CodeLocation(fileID: "App/A.swift", line: 3), conflictingLocation: nil)
      let printed = ConflictReport(events: [event], seconds: 1, commits: 10).formatted()
      #expect(printed.contains("    in the transaction at  App/A.swift:3\n    by no single transaction: every segment was in use\n"), "\(printed)")
      #expect(!printed.contains("(unknown)"), "\(printed)")
    }

    /// A log that cannot be opened says why, in the system's words, and what to check, not
    /// only an `errno` number.
    @Test func aLogThatCannotBeOpenedSaysWhyAndWhatToCheck() {
      let description = ConflictLogError.cannotOpen("/no/such/dir/log", ENOENT).description
      #expect(description.contains("'/no/such/dir/log'"))
      #expect(description.contains(String(cString: strerror(ENOENT))))
      #expect(description.contains("check that its folder exists"))
    }
  }
}
