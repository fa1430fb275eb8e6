/// The source locations the conflict log has seen, and the *sites* built from them, so that a
/// commit can stamp each version with one 32-bit number instead of strings.
///
/// A location is a `#fileID`:`#line` (numbered from 1; 0: unknown). A site is a pair of
/// locations, the `atomically` call of a transaction (0 for a single operation outside
/// `atomically`) and the call of the operation that accessed the cell there (0: not known),
/// also numbered from 1 (0: nothing known). A segment shows the site of its transaction with
/// no access; a version carries the site of the write that published it.
///
/// Interning takes a lock; each thread caches the numbers it used
/// (`_ThreadDiagnostics`), so the lock is taken once per location or site and thread.
final class _ConflictSites: Sendable {
  static let shared = _ConflictSites()

  private struct Table {
    var locations: [CodeLocation] = []
    var locationNumbers: [CodeLocation: UInt32] = [:]
    var sites: [(transaction: UInt32, access: UInt32)] = []
    var siteNumbers: [UInt64: UInt32] = [:]
  }

  private let table = _Lock(Table())

  /// The number of `fileID`:`line`, allocating one the first time; 0 for line 0 (unknown).
  func location(fileID: StaticString, line: UInt, context: _ThreadContext) -> UInt32 {
    guard line != 0 else { return 0 }
    let key = _SiteKey(fileID: UInt(bitPattern: fileID.utf8Start), line: line)
    if let known = context.diagnostics.locationNumbers[key] { return known }
    let location = CodeLocation(fileID: "\(fileID)", line: Int(line))
    let number = table.withLock { table in
      if let known = table.locationNumbers[location] { return known }
      table.locations.append(location)
      let number = UInt32(table.locations.count)
      table.locationNumbers[location] = number
      return number
    }
    context.diagnostics.locationNumbers[key] = number
    return number
  }

  /// The site of an access at location `access` by a transaction started at location
  /// `transaction`; 0 when both are unknown.
  func site(transaction: UInt32, access: UInt32, context: _ThreadContext) -> UInt32 {
    let key = UInt64(transaction) << 32 | UInt64(access)
    guard key != 0 else { return 0 }
    if let known = context.diagnostics.siteNumbers[key] { return known }
    let number = table.withLock { table in
      if let known = table.siteNumbers[key] { return known }
      table.sites.append((transaction, access))
      let number = UInt32(table.sites.count)
      table.siteNumbers[key] = number
      return number
    }
    context.diagnostics.siteNumbers[key] = number
    return number
  }

  /// The locations of site `number`: its transaction's `atomically` call and its access.
  func sides(of number: UInt32) -> (transaction: CodeLocation?, access: CodeLocation?) {
    guard number != 0 else { return (nil, nil) }
    return table.withLock { table in
      let site = table.sites[Int(number) - 1]
      return (Self.location(site.transaction, in: table), Self.location(site.access, in: table))
    }
  }

  /// The location numbered `number`.
  func location(_ number: UInt32) -> CodeLocation? {
    guard number != 0 else { return nil }
    return table.withLock { Self.location(number, in: $0) }
  }

  private static func location(_ number: UInt32, in table: Table) -> CodeLocation? {
    number == 0 ? nil : table.locations[Int(number) - 1]
  }
}

/// A call site as the compiler hands it over: the address of the `#fileID` literal and the line.
struct _SiteKey: Hashable {
  let fileID: UInt
  let line: UInt
}
