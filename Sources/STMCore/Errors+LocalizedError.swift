import Foundation

// `localizedDescription`, which logging code reaches for, says what `description` says. Without
// `LocalizedError`, Foundation gives only the type's name and a case number there ("The
// operation could not be completed. (STM.TransactionEngineError error 0.)"; found by review).

extension TransactionEngineError: LocalizedError {
  /// The same as ``description``.
  public var errorDescription: String? { description }
}

extension ConflictLogError: LocalizedError {
  /// The same as ``description``.
  public var errorDescription: String? { description }
}
