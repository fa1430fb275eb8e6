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
