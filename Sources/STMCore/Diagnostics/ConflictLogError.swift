#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a conflict log could not be started or read.
public enum ConflictLogError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The log file could not be opened for writing (the path and `errno`).
  case cannotOpen(String, Int32)
  /// A line of a log file is not one the conflict log writes (its number from 1, and the line).
  case malformedLine(Int, String)

  /// What went wrong, in a sentence naming the file (with the system's reason, and what to
  /// check) or the line.
  public var description: String {
    switch self {
    case .cannotOpen(let path, let error):
      "cannot open the conflict log '\(path)' for writing: \(String(cString: strerror(error))) (errno \(error)); "
        + "check that its folder exists and that the process may write there"
    case .malformedLine(let number, let line):
      "line \(number) of the conflict log is not a conflict record: '\(line)'"
    }
  }
}
