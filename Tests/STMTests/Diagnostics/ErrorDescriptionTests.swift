import Foundation
@testable import STM
import Testing

extension LibraryTests {
  /// What the library's errors say when logged.
  @Suite struct ErrorDescriptionTests {
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
  }
}
