import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Testing

/// The location of line `line` of the calling test file, as the conflict log records it.
func here(_ line: Int, fileID: String = #fileID) -> CodeLocation {
  CodeLocation(fileID: fileID, line: line)
}

/// Holds the first attempt of a transaction at a point its body chooses, so that a test can
/// commit a conflicting transaction there; later attempts run through.
final class FirstAttemptHold: Sendable {
  /// Opened when the first attempt reaches ``hold()``.
  let reached = Gate()
  /// Open it to let the first attempt go on.
  let resume = Gate()
  private let first = LockedBox(true)

  /// Call in the body: waits for ``resume`` on the first attempt only.
  func hold() {
    guard first.value else { return }
    first.value = false
    reached.open()
    resume.wait()
  }
}

/// Records the conflict log while `loser` runs on a new thread and `winner` runs on this one,
/// in between: `loser` calls `hold()` on the handle it gets inside its transaction, where its
/// first attempt waits until `winner` has returned. Returns the report of the recording.
func recordWhile(
  _ loser: @escaping @Sendable (FirstAttemptHold) -> Void, losesTo winner: () -> Void,
  sourceLocation: SourceLocation = #_sourceLocation
) throws -> ConflictReport {
  let hold = FirstAttemptHold()
  try ConflictLog.start()
  defer { ConflictLog.stop() }
  let thread = startThread { loser(hold) }
  hold.reached.wait()
  winner()
  hold.resume.open()
  thread.wait()
  return try #require(ConflictLog.stop(), sourceLocation: sourceLocation)
}

/// Records the conflict log while `waiter` waits for the commit of `committer`: the committer's
/// commit stops right after taking its number, holding its cells, and the waiter (started
/// then, on a thread of its own) runs into it and pauses; the committer goes on 50 ms after
/// that pause began.
func recordWhile(
  _ waiter: @escaping @Sendable () -> Void, waitsFor committer: @escaping @Sendable () -> Void,
  sourceLocation: SourceLocation = #_sourceLocation
) throws -> ConflictReport {
  let pause = CommitNumberPause()
  defer { pause.remove() }
  try ConflictLog.start()
  defer { ConflictLog.stop() }
  let first = startThread {
    pause.stopThisThreadsNextCommit()
    committer()
  }
  pause.numbered.wait()
  let before = pausesBegun
  let second = startThread(waiter)
  #expect(waitForAPause(after: before), "the waiter never paused", sourceLocation: sourceLocation)
  Thread.sleep(forTimeInterval: 0.05)
  pause.release.open()
  first.wait()
  second.wait()
  return try #require(ConflictLog.stop(), sourceLocation: sourceLocation)
}

/// What a recording is expected to hold: exactly one conflict, with these fields.
struct ExpectedConflict {
  var kind: ContentionKind
  var aborts = 0
  var pauses = 0
  var location: CodeLocation?
  var accessLocation: CodeLocation?
  var conflictingLocation: CodeLocation?
  var conflictingAccessLocation: CodeLocation?
  var object: String?
}

/// Checks that `report` holds exactly the conflict `expected`, and nothing else.
func expectOnly(_ expected: ExpectedConflict, in report: ConflictReport, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(report.conflicts.count == 1, "conflicts: \(report.conflicts)", sourceLocation: sourceLocation)
  guard let conflict = report.conflicts.first else { return }
  #expect(conflict.kind == expected.kind, sourceLocation: sourceLocation)
  #expect(conflict.aborts == expected.aborts, sourceLocation: sourceLocation)
  #expect(conflict.pauses == expected.pauses, sourceLocation: sourceLocation)
  #expect(conflict.location == expected.location, "location", sourceLocation: sourceLocation)
  #expect(conflict.accessLocation == expected.accessLocation, "access location", sourceLocation: sourceLocation)
  #expect(conflict.conflictingLocation == expected.conflictingLocation, "conflicting location", sourceLocation: sourceLocation)
  #expect(
    conflict.conflictingAccessLocation == expected.conflictingAccessLocation, "conflicting access location",
    sourceLocation: sourceLocation)
  let events = expected.aborts + expected.pauses
  #expect(conflict.objects == (expected.object.map { [$0: events] } ?? [:]), "objects", sourceLocation: sourceLocation)
  if expected.aborts > 0 { #expect(conflict.secondsLostInAborts > 0, sourceLocation: sourceLocation) }
  if expected.pauses > 0 { #expect(conflict.secondsPaused >= 0.04, "paused while held", sourceLocation: sourceLocation) }
  #expect(report.inevitableTransactions.isEmpty, sourceLocation: sourceLocation)
}
