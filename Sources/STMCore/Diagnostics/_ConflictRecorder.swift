#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Whether the conflict log records: the switch every access path checks.
///
/// A global of its own, not a property of `_ConflictRecorder.shared`: its initial value is a
/// constant, so it needs no lazy initialization, and a client's inlined check is a call to a
/// bare address getter and one load, instead of a `swift_once` check first.
///
/// Relaxed: a thread that misses the switch by a few events records them or not; nothing else
/// depends on the order.
@usableFromInline let _conflictLogIsOn = Atomic<Bool>(false)

/// The conflict log's sink.
///
/// Off, the log costs one relaxed load of `_conflictLogIsOn` per noted access (see
/// `TVar._noteAccess`) and where an abort, a pause or an escalation is counted anyway, and one
/// store per published version (its site number, 0). On, each event takes a lock, is added to
/// its conflict's totals and, with a file, written as one line.
@usableFromInline
final class _ConflictRecorder: @unchecked Sendable {
  static let shared = _ConflictRecorder()

  /// Whether the log records; what every access path checks before noting anything.
  @inlinable
  static var isRecording: Bool { _conflictLogIsOn.load(ordering: .relaxed) }

  private struct Recording {
    var tally = ConflictReport.Tally()
    /// The log file's descriptor, if it has one.
    var file: Int32?
    var startedNanoseconds: Int
    var commitsAtStart: Int
  }

  private let recording = _Lock<Recording?>(nil)

  private init() {}

  /// Records an event of the transaction showing site `site`; call only while recording.
  ///
  /// `cell` is the object of the conflict, if any, which the transaction was reading
  /// (`reading`) or writing; `context` is its thread's, whose notes say where it accessed
  /// `cell` and what `cell` is. `conflictingSite` is the other side's site: the version that
  /// made the read stale or the commit waited for (see `_ConflictSites`).
  func record(
    _ outcome: ConflictEvent.Outcome, _ kind: ContentionKind, nanoseconds: Int, site: UInt32,
    cell: _Cell? = nil, reading: Bool = false, context: _ThreadContext? = nil, conflictingSite: UInt32
  ) {
    let sites = _ConflictSites.shared
    let own = sites.sides(of: site), other = sites.sides(of: conflictingSite)
    var object: String?, access: CodeLocation?, otherAccess: CodeLocation?
    if let cell {
      let diagnostics = context?.diagnostics
      object = diagnostics?.objectDescription(of: cell) ?? cell.variableDescription
      // Where the access is not known (a property), the `atomically` call is the best place.
      access = sites.location(diagnostics?.accessLocation(of: cell, reading: reading) ?? 0) ?? own.access ?? own.transaction
      otherAccess = other.access ?? other.transaction
    }
    let event = ConflictEvent(
      outcome: outcome, kind: kind, seconds: Double(nanoseconds) / 1e9, location: own.transaction,
      conflictingLocation: other.transaction, accessLocation: access, conflictingAccessLocation: otherAccess, object: object)
    recording.withLock { recording in
      guard recording != nil else { return }
      recording!.tally.add(event)
      if let file = recording!.file { Self.writeLine(event.logLine, to: file) }
    }
  }

  /// Returns the report of the recording it ended, if one was running (one that another
  /// thread started meanwhile, if that is the one it replaced).
  func start(writingTo path: String?) throws(ConflictLogError) -> ConflictReport? {
    // The previous recording ends first: opened again, its own path would be emptied under
    // its open stream, whose buffered lines would then land over the new log (found by review).
    let previous = endRecording().map(finish)
    let (_, replaced) = try install(writingTo: path, unlessRecording: false)
    return replaced ?? previous
  }

  /// Starts recording into `path` unless a recording is running (checked as it would be
  /// installed, so that one started meanwhile on another thread goes on); returns whether it
  /// started.
  func startUnlessRecording(writingTo path: String) throws(ConflictLogError) -> Bool {
    if Self.isRecording { return false }
    return try install(writingTo: path, unlessRecording: true).installed
  }

  /// Opens the file and makes a recording into it the running one. One that another thread
  /// started meanwhile is finished (or, `unlessRecording`, kept, and this one given up), so
  /// that no recording is dropped without its summary (found by review). Returns whether it
  /// started, and the report of the one it finished.
  private func install(
    writingTo path: String?, unlessRecording: Bool
  ) throws(ConflictLogError) -> (installed: Bool, replaced: ConflictReport?) {
    var file: Int32?
    if let path {
      // Appending: two processes given the same path (a program that starts copies of
      // itself, which inherit `STM_CONFLICT_LOG`) each wrote at their own offset, over the
      // other's lines, and left a file that did not parse (found by review). Each line now
      // lands whole at the end, whoever writes it.
      let opened = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
      guard opened >= 0 else { throw .cannotOpen(path, errno) }
      file = opened
      Self.writeLine(ConflictEvent.logHeader, to: opened)
    }
    // Read before taking the lock: the statistics registry has a lock of its own.
    let fresh = Recording(
      file: file, startedNanoseconds: _monotonicNanoseconds(), commitsAtStart: TransactionEngine.statistics.commits)
    let (installed, replaced) = recording.withLock { recording -> (Bool, Recording?) in
      if unlessRecording && recording != nil { return (false, nil) }
      defer { recording = fresh }
      // Under the lock, as `endRecording` clears it: the switch is on exactly while a
      // recording is (a racing stop could otherwise leave it on with none).
      _conflictLogIsOn.store(true, ordering: .relaxed)
      return (true, recording)
    }
    let replacedReport = replaced.map(finish)
    if !installed, let file { close(file) }
    Self.flushAtExit
    return (installed, replacedReport)
  }

  /// Stops recording; returns the report of what was recorded, or nil if nothing was.
  func stop() -> ConflictReport? {
    endRecording().map(finish)
  }

  /// Takes the running recording out, if any, and turns the switch off.
  private func endRecording() -> Recording? {
    recording.withLock { recording in
      _conflictLogIsOn.store(false, ordering: .relaxed)
      defer { recording = nil }
      return recording
    }
  }

  func report() -> ConflictReport? {
    recording.withLock { $0 }.map(report(of:))
  }

  private func report(of recording: Recording) -> ConflictReport {
    ConflictReport(
      recording.tally, seconds: Double(_monotonicNanoseconds() - recording.startedNanoseconds) / 1e9,
      commits: TransactionEngine.statistics.commits - recording.commitsAtStart)
  }

  /// The report of `ended`, a recording taken out of the switch; its file, if any, gets the
  /// report's summary line (wall seconds and commits) and is closed. One report for both: made
  /// twice, the file's summary and the one returned differed in their seconds, and could in
  /// their commits (found by review).
  private func finish(_ ended: Recording) -> ConflictReport {
    let summary = report(of: ended)
    if let file = ended.file {
      Self.writeLine("summary\t\(summary.seconds)\t\(summary.commits)", to: file)
      close(file)
    }
    return summary
  }

  /// Writes `line` and its line break in one `write`, unbuffered: a program that crashes or is
  /// killed, the one most worth diagnosing, leaves every event it recorded, and a file that
  /// another process appends to gets the line whole. By length, not as a C string: a NUL in an
  /// object's description cut the line there, line break included, and the next event ran on
  /// in the same line (found by review; the log escapes NUL now too).
  private static func writeLine(_ line: String, to file: Int32) {
    var bytes = Array(line.utf8)
    bytes.append(UInt8(ascii: "\n"))
    bytes.withUnsafeBytes { buffer in
      var written = 0
      while written < buffer.count {
        let result = write(file, buffer.baseAddress! + written, buffer.count - written)
        if result > 0 {
          written += result
        } else if result < 0 && errno == EINTR {
          continue
        } else {
          // A full disk or a closed descriptor: the recording in memory goes on without the file.
          return
        }
      }
    }
  }

  /// Registered once: a program that exits while recording to a file still gets its summary.
  private static let flushAtExit: Void = {
    atexit { _ = _ConflictRecorder.shared.stop() }
  }()
}

extension _Engine {
  /// Counts a pause that began at `started`, and logs it while the conflict log records:
  /// `segment` is the waiting transaction's (nil before it has one), `conflictingSite` that of
  /// the transaction it waited for (see ``site(ofSegmentTagged:)``), and `cell` the cell it
  /// waited to read (`reading`) or to lock, if any.
  func notePause(
    _ kind: ContentionKind, since started: Int, context: _ThreadContext, segment: _Segment?, conflictingSite: UInt32,
    cell: _Cell? = nil, reading: Bool = false
  ) {
    let nanoseconds = _monotonicNanoseconds() - started
    context.statistics.recordPause(kind, nanoseconds: nanoseconds)
    segment?.pausedInAttempt += nanoseconds
    guard _ConflictRecorder.isRecording else { return }
    _ConflictRecorder.shared.record(
      .pause, kind, nanoseconds: nanoseconds, site: segment?.siteNumber.load(ordering: .relaxed) ?? 0,
      cell: cell, reading: reading, context: context, conflictingSite: conflictingSite)
  }

  /// While the conflict log records, the site of the transaction running on the segment with
  /// tag `tag` (0 otherwise, or for no segment). Read it while that transaction is still in the
  /// way: once it ends, its segment shows no site, or another transaction's.
  func site(ofSegmentTagged tag: Int) -> UInt32 {
    guard tag > 0, _ConflictRecorder.isRecording else { return 0 }
    return segments[tag - 1].siteNumber.load(ordering: .relaxed)
  }

  /// After a pause for the commit on the segment tagged `tag`: the site of `version` (with the
  /// location of the write) if that commit published it, else `fallback` (its transaction's
  /// site, read when the pause began). Call only while `version` cannot be freed.
  ///
  /// The segment still shows the number of its last commit, so a version stamped with it is
  /// that commit's, even if it took its number while the pause was watching it. If the segment
  /// has moved on, or the commit published nothing here, the stamps differ.
  func site(of version: _VersionBase, ifPublishedBySegmentTagged tag: Int, otherwise fallback: UInt32) -> UInt32 {
    guard tag > 0, _ConflictRecorder.isRecording else { return fallback }
    let number = commitNumber(ofSegmentTagged: tag)
    return version.stamp == number && version.site != 0 ? version.site : fallback
  }

  /// Counts an abort of `segment`'s attempt, and logs it while the conflict log records, with
  /// the cell its validation found in conflict (see `_Segment.conflictingCell`).
  func noteAbort(_ kind: ContentionKind, of segment: _Segment, context: _ThreadContext) {
    // Its pauses are counted as paused already.
    let nanoseconds = max(0, _monotonicNanoseconds() - segment.attemptStarted - segment.pausedInAttempt)
    context.statistics.recordAbort(kind, nanoseconds: nanoseconds)
    guard _ConflictRecorder.isRecording else { return }
    // The attempt has not ended yet, so its read set and redo log still keep the cell alive
    // (or, for an index's cell read without a retain, its announced snapshot does).
    _ConflictRecorder.shared.record(
      .abort, kind, nanoseconds: nanoseconds, site: segment.siteNumber.load(ordering: .relaxed),
      cell: segment.conflictingCell?.takeUnretainedValue(), reading: segment.conflictingCellWasRead, context: context,
      conflictingSite: segment.conflictingSite)
  }

  /// Shows `segment`'s call site to the conflict log for the attempt that starts now: an
  /// `atomically` call, or the public operation that runs as a transaction of its own
  /// (`isSingleOperation`).
  func noteSite(of segment: _Segment, fileID: StaticString, line: UInt, isSingleOperation: Bool, context: _ThreadContext) {
    segment.conflictingSite = 0
    segment.conflictingCell = nil
    guard _ConflictRecorder.isRecording else { return }
    let sites = _ConflictSites.shared
    let location = sites.location(fileID: fileID, line: line, context: context)
    let transaction = isSingleOperation ? 0 : location
    context.diagnostics.transactionLocation = transaction
    // Relaxed: only the conflict log reads it, and a stale number there is harmless. The
    // attempt's end puts 0 back, so single operations show only what they note themselves.
    segment.siteNumber.store(
      sites.site(transaction: transaction, access: isSingleOperation ? location : 0, context: context), ordering: .relaxed)
  }

  /// The site to stamp on the versions a single operation outside a transaction publishes:
  /// no transaction, and the access it noted on `cell` (0 while the log does not record).
  /// The check is inlined into every drop-in update; the lookup is not.
  @inline(__always)
  func singleOperationSite(writing cell: _Cell, context: _ThreadContext) -> UInt32 {
    guard _ConflictRecorder.isRecording else { return 0 }
    return recordedSingleOperationSite(writing: cell, context: context)
  }

  private func recordedSingleOperationSite(writing cell: _Cell, context: _ThreadContext) -> UInt32 {
    let diagnostics = context.diagnostics
    let write = diagnostics.accessLocation(of: cell, reading: false)
    let access = write != 0 ? write : diagnostics.accessLocation(of: cell, reading: true)
    return _ConflictSites.shared.site(transaction: 0, access: access, context: context)
  }
}

extension _Segment {
  /// The site to stamp on this transaction's new version of `cell`: its `atomically` call and
  /// where it wrote `cell`, so that a transaction this commit makes lose can name both. Off,
  /// the segment shows no site, and this is 0.
  @inline(__always)
  func publishedSite(of cell: _Cell) -> UInt32 {
    let site = siteNumber.load(ordering: .relaxed)
    guard site != 0, let context else { return site }
    return publishedSite(of: cell, transactionSite: site, context: context)
  }

  private func publishedSite(of cell: _Cell, transactionSite: UInt32, context: _ThreadContext) -> UInt32 {
    let write = context.diagnostics.accessLocation(of: cell, reading: false)
    guard write != 0 else { return transactionSite }
    return _ConflictSites.shared.site(transaction: context.diagnostics.transactionLocation, access: write, context: context)
  }
}
