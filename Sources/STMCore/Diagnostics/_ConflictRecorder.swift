#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The conflict log's switch and sink.
///
/// Off, it costs one relaxed load of ``isOn`` where an abort, a pause or an escalation is
/// counted anyway, and one store per published version (its site number, 0). On, each event
/// takes a lock, is kept in memory and, with a file, written as one line.
final class _ConflictRecorder: @unchecked Sendable {
  static let shared = _ConflictRecorder()

  /// Relaxed: a thread that misses the switch by a few events records them or not; nothing
  /// else depends on the order.
  let isOn = Atomic<Bool>(false)

  private struct Recording {
    var events: [ConflictEvent] = []
    var file: UnsafeMutablePointer<FILE>?
    var startedNanoseconds: Int
    var commitsAtStart: Int
  }

  private let recording = _Lock<Recording?>(nil)

  private init() {}

  /// Records an event; call only while ``isOn``.
  func record(_ outcome: ConflictEvent.Outcome, _ kind: ContentionKind, nanoseconds: Int, site: UInt32, conflictingSite: UInt32) {
    let sites = _ConflictSites.shared
    let event = ConflictEvent(
      outcome: outcome, kind: kind, seconds: Double(nanoseconds) / 1e9,
      location: sites.location(site), conflictingLocation: sites.location(conflictingSite))
    recording.withLock { recording in
      guard recording != nil else { return }
      recording!.events.append(event)
      if let file = recording!.file { fputs(event.logLine + "\n", file) }
    }
  }

  func start(writingTo path: String?) throws(ConflictLogError) {
    var file: UnsafeMutablePointer<FILE>?
    if let path {
      file = fopen(path, "w")
      guard file != nil else { throw .cannotOpen(path, errno) }
      fputs(ConflictEvent.logHeader + "\n", file)
    }
    // Read before taking the lock: the statistics registry has a lock of its own.
    let fresh = Recording(
      file: file, startedNanoseconds: _monotonicNanoseconds(), commitsAtStart: TransactionEngine.statistics.commits)
    let previous = recording.withLock { recording in
      defer { recording = fresh }
      return recording
    }
    if let previousFile = previous?.file { finish(previousFile, previous!) }
    isOn.store(true, ordering: .relaxed)
    Self.flushAtExit
  }

  /// Stops recording; returns the report of what was recorded, or nil if nothing was.
  func stop() -> ConflictReport? {
    isOn.store(false, ordering: .relaxed)
    guard let ended = recording.withLock({ recording in defer { recording = nil }; return recording }) else {
      return nil
    }
    if let file = ended.file { finish(file, ended) }
    return report(of: ended)
  }

  func report() -> ConflictReport? {
    recording.withLock { $0 }.map(report(of:))
  }

  private func report(of recording: Recording) -> ConflictReport {
    ConflictReport(
      events: recording.events, seconds: Double(_monotonicNanoseconds() - recording.startedNanoseconds) / 1e9,
      commits: TransactionEngine.statistics.commits - recording.commitsAtStart)
  }

  /// Writes the summary line (wall seconds and commits) and closes the file.
  private func finish(_ file: UnsafeMutablePointer<FILE>, _ recording: Recording) {
    let summary = report(of: recording)
    fputs("summary\t\(summary.seconds)\t\(summary.commits)\n", file)
    fclose(file)
  }

  /// Registered once: a program that exits while recording to a file still gets its summary.
  private static let flushAtExit: Void = {
    atexit { _ = _ConflictRecorder.shared.stop() }
  }()
}

extension _Engine {
  /// Counts a pause that began at `started`, and logs it while the conflict log records:
  /// `segment` is the waiting transaction's (nil before it has one), `conflictingSite` that of
  /// the transaction it waited for (see ``site(ofSegmentTagged:)``).
  func notePause(_ kind: ContentionKind, since started: Int, context: _ThreadContext, segment: _Segment?, conflictingSite: UInt32) {
    let nanoseconds = _monotonicNanoseconds() - started
    context.statistics.recordPause(kind, nanoseconds: nanoseconds)
    guard _ConflictRecorder.shared.isOn.load(ordering: .relaxed) else { return }
    _ConflictRecorder.shared.record(
      .pause, kind, nanoseconds: nanoseconds, site: segment?.siteNumber.load(ordering: .relaxed) ?? 0,
      conflictingSite: conflictingSite)
  }

  /// While the conflict log records, the site of the transaction running on the segment with
  /// tag `tag` (0 otherwise, or for no segment). Read it while that transaction is still in the
  /// way: once it ends, its segment shows no site, or another transaction's.
  func site(ofSegmentTagged tag: Int) -> UInt32 {
    guard tag > 0, _ConflictRecorder.shared.isOn.load(ordering: .relaxed) else { return 0 }
    return segments[tag - 1].siteNumber.load(ordering: .relaxed)
  }

  /// Counts an abort of `segment`'s attempt, and logs it while the conflict log records.
  func noteAbort(_ kind: ContentionKind, of segment: _Segment, context: _ThreadContext) {
    let nanoseconds = _monotonicNanoseconds() - segment.attemptStarted
    context.statistics.recordAbort(kind, nanoseconds: nanoseconds)
    guard _ConflictRecorder.shared.isOn.load(ordering: .relaxed) else { return }
    _ConflictRecorder.shared.record(
      .abort, kind, nanoseconds: nanoseconds, site: segment.siteNumber.load(ordering: .relaxed),
      conflictingSite: segment.conflictingSite)
  }

  /// Shows `segment`'s call site to the conflict log for the attempt that starts now.
  func noteSite(of segment: _Segment, fileID: StaticString, line: UInt, context: _ThreadContext) {
    segment.conflictingSite = 0
    guard _ConflictRecorder.shared.isOn.load(ordering: .relaxed) else { return }
    // Relaxed: only the conflict log reads it, and a stale number there is harmless. The
    // attempt's end puts 0 back, so single operations outside `atomically` show no site.
    segment.siteNumber.store(
      _ConflictSites.shared.number(fileID: fileID, line: line, context: context), ordering: .relaxed)
  }
}
