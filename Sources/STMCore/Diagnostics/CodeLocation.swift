/// A place in the source code: a file, as `#fileID` names it (`Module/File.swift`), and a line.
public struct CodeLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The file, as `#fileID` names it: `Module/File.swift`.
  public let fileID: String
  /// The line, from 1.
  public let line: Int

  /// Creates the location of `line` in the file `fileID` (`Module/File.swift`).
  ///
  /// - Parameters:
  ///   - fileID: The file, as `#fileID` names it.
  ///   - line: The line, from 1.
  /// - Complexity: O(1).
  public init(fileID: String, line: Int) {
    self.fileID = fileID
    self.line = line
  }

  /// `Module/File.swift:42`.
  public var description: String { "\(fileID):\(line)" }

  /// Parses `Module/File.swift:42`, as ``description`` writes it, with a line from 1: the log
  /// never writes another (a line 0 or -3 is a damaged field). The file may be empty, as a
  /// caller that passes its own `fileID` may make it.
  init?(parsing text: Substring) {
    guard let colon = text.lastIndex(of: ":"), let line = Int(text[text.index(after: colon)...]), line >= 1
    else { return nil }
    self.init(fileID: String(text[..<colon]), line: line)
  }

  /// Orders locations by file, then by line.
  ///
  /// - Complexity: O(*n*) for file IDs of *n* characters.
  public static func < (lhs: Self, rhs: Self) -> Bool {
    (lhs.fileID, lhs.line) < (rhs.fileID, rhs.line)
  }
}
