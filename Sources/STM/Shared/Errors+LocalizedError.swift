import Foundation

// As for the engine's errors (see STMCore's `Errors+LocalizedError.swift`): `localizedDescription`
// says what `description` says, not the type's name and a case number.

extension TransactionQueueError: LocalizedError {
  /// The same as ``description``.
  public var errorDescription: String? { description }
}

extension TQueueClosedError: LocalizedError {
  /// The same as ``description``.
  public var errorDescription: String? { description }
}

extension TQueueTimeoutError: LocalizedError {
  /// The same as ``description``.
  public var errorDescription: String? { description }
}
