/// The `atomically` call sites the conflict log has seen, numbered from 1 (0: unknown), so that
/// a commit can stamp its versions with a 32-bit site number instead of a string.
///
/// Interning takes a lock; each thread keeps its own cache of the sites it used
/// (`_ThreadContext.siteNumbers`), so the lock is taken once per site and thread.
final class _ConflictSites: Sendable {
  static let shared = _ConflictSites()

  private struct Table {
    var locations: [CodeLocation] = []
    var numbers: [CodeLocation: UInt32] = [:]
  }

  private let table = _Lock(Table())

  /// The number of `fileID`:`line`, allocating one the first time.
  func number(fileID: StaticString, line: UInt, context: _ThreadContext) -> UInt32 {
    let key = _SiteKey(fileID: UInt(bitPattern: fileID.utf8Start), line: line)
    if let known = context.siteNumbers[key] { return known }
    let location = CodeLocation(fileID: "\(fileID)", line: Int(line))
    let number = table.withLock { table in
      if let known = table.numbers[location] { return known }
      table.locations.append(location)
      let number = UInt32(table.locations.count)
      table.numbers[location] = number
      return number
    }
    context.siteNumbers[key] = number
    return number
  }

  /// The location numbered `number`, or nil for 0 (unknown).
  func location(_ number: UInt32) -> CodeLocation? {
    guard number != 0 else { return nil }
    return table.withLock { $0.locations[Int(number) - 1] }
  }
}

/// A call site as the compiler hands it over: the address of the `#fileID` literal and the line.
struct _SiteKey: Hashable {
  let fileID: UInt
  let line: UInt
}
