import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Testing

/// A key whose description holds a NUL, as a user's `debugDescription` may.
private struct KeyWithANul: Hashable, Sendable, CustomDebugStringConvertible {
  let id: Int
  var debugDescription: String { "key\0\(id)" }
}

/// An abort line and a summary line of a log file, for logs made by hand.
private let anAbortLine = "abort\twriteRead\t0.5\tApp/A.swift:1\tApp/B.swift:2\tApp/A.swift:3\tApp/B.swift:4\tTVar<Int>\n"
private let aSummaryLine = "summary\t1.0\t10\n"

/// Runs `count` transactions that each become inevitable, one conflict log event each.
private func becomeInevitable(times count: Int) {
  for _ in 0..<count { try? atomically { tx in try tx.becomeInevitable() } }
}

/// A path in the temporary directory that this process alone uses.
private func logPath(_ name: String) -> String {
  FileManager.default.temporaryDirectory.appendingPathComponent("swift-stm-\(name)-\(getpid()).log").path
}

extension LibraryTests {
  /// The conflict log's file as other programs and other processes leave it: odd bytes in a
  /// description, Windows line ends, a cut last line, no summary, two processes writing one
  /// path. (Each test here failed before its fix; found by review.)
  @Suite struct ConflictLogFileTests {
    /// A NUL in an object's description: written as a C string, the line stopped there, its
    /// line break with it, the next event ran on in the same line, and the file did not parse.
    @Test func aNulInAnObjectsDescriptionLeavesAFileThatParses() throws {
      let path = logPath("nul")
      defer { try? FileManager.default.removeItem(atPath: path) }
      let map = TDictionary<KeyWithANul, Int>()
      map[KeyWithANul(id: 1)] = 0
      let other = TVar(0)
      try ConflictLog.start(writingTo: path)
      defer { ConflictLog.stop() }
      for round in 1...2 {
        let hold = FirstAttemptHold()
        let reader = startThread {
          atomically { _ in
            _ = map[KeyWithANul(id: 1)]
            hold.hold()
            other.value += 1
          }
        }
        hold.reached.wait()
        map[KeyWithANul(id: 1)] = round
        hold.resume.open()
        reader.wait()
      }
      let live = try #require(ConflictLog.stop())
      #expect(live.aborts == 2)
      let text = try String(contentsOfFile: path, encoding: .utf8)
      #expect(!text.contains("\0"), "a NUL went into the file unescaped")
      let parsed = try ConflictReport(log: text)
      #expect(parsed.conflicts == live.conflicts)
      #expect(parsed.conflicts.first?.objects.keys.first?.contains("key\01") == true)
    }

    /// Read line by character, a log with "\r\n" line ends was one line, a comment: the report
    /// said "No conflicts.".
    @Test func aLogWithWindowsLineEndsReadsAsTheSameLog() throws {
      let log = "# swift-stm conflict log 2\n" + anAbortLine + aSummaryLine
      let windows = try ConflictReport(log: log.replacingOccurrences(of: "\n", with: "\r\n"))
      let unix = try ConflictReport(log: log)
      #expect(unix.aborts == 1 && unix.commits == 10)
      #expect(windows.conflicts == unix.conflicts)
      #expect(windows.commits == unix.commits && windows.seconds == unix.seconds)
    }

    /// The log ends every line it writes with a line break, so a last line without one was
    /// cut, even when what is left parses: an event on a cut description, or a summary read
    /// as 4,000 commits where it said 40,000.
    @Test func aLastLineWithoutItsLineBreakIsLeftOutEvenWhenItParses() throws {
      let cutEvent = String(anAbortLine.dropLast(4))
      #expect(ConflictEvent(logLine: Substring(cutEvent)) != nil, "the cut line must parse for this test to mean anything")
      #expect(try ConflictReport(log: anAbortLine + cutEvent).aborts == 1)
      let cutSummary = try ConflictReport(log: anAbortLine + "summary\t2.5\t4000")
      #expect(cutSummary.commits == 0 && cutSummary.seconds == 0)
    }

    /// Without its summary line (a program that crashed while recording), the report printed
    /// 0 commits in 0 seconds and every attempt as an abort.
    @Test func aLogWithoutItsSummarySaysTheCommitsAreUnknown() throws {
      let inevitable = String(repeating: "inevitable\tinevitable\t0.0\tApp/A.swift:1\t\t\t\t\n", count: 2)
      let printed = try ConflictReport(log: String(repeating: anAbortLine, count: 3) + inevitable).formatted()
      #expect(!printed.contains("of attempts") && !printed.contains("transactions/s") && !printed.contains("of commits"), "\(printed)")
      #expect(printed.hasPrefix("3 aborts, 0 pauses recorded (the log has no summary line"), "\(printed)")
      #expect(printed.contains("warning: 2 transactions became inevitable; "), "\(printed)")
      let summarized = try ConflictReport(log: String(repeating: anAbortLine, count: 3) + aSummaryLine).formatted()
      #expect(summarized.hasPrefix("1.000s recorded: 10 commits (10 transactions/s), 3 aborts (23.1% of attempts)"), "\(summarized)")
    }

    /// A process that inherits `STM_CONFLICT_LOG` and writes the file its parent writes: each
    /// wrote at its own offset, over the other's lines and past the end, and the file did not
    /// parse. Now each line lands whole at the end, and the report sums both.
    @Test func twoProcessesWritingOnePathLeaveAFileThatParses() async throws {
      let path = "/tmp/swift-stm-two-processes.log"
      defer { try? FileManager.default.removeItem(atPath: path) }
      try ConflictLog.start(writingTo: path)
      defer { ConflictLog.stop() }
      becomeInevitable(times: 50)
      await #expect(processExitsWith: .success) {
        setenv("STM_CONFLICT_LOG", "/tmp/swift-stm-two-processes.log", 1)
        // The synchronous form, from a synchronous function: the body here is async.
        func becomeInevitableThreeTimes() {
          for _ in 0..<3 { try? atomically { tx in try tx.becomeInevitable() } }
        }
        becomeInevitableThreeTimes()
        exit(0)
      }
      becomeInevitable(times: 5)
      ConflictLog.stop()
      let report = try ConflictReport(log: String(contentsOfFile: path, encoding: .utf8))
      // The child emptied the file as it opened it: the parent's first 50 went.
      #expect(report.inevitableTransactions.values.reduce(0, +) == 8)
    }

    /// The report `stop()` returns is the one whose summary the file ends with: it was made a
    /// second time, a moment later, and the seconds differed.
    @Test func stopReturnsTheReportTheFileSummarizes() throws {
      let path = logPath("summary")
      defer { try? FileManager.default.removeItem(atPath: path) }
      try ConflictLog.start(writingTo: path)
      becomeInevitable(times: 3)
      let live = try #require(ConflictLog.stop())
      let parsed = try ConflictReport(log: String(contentsOfFile: path, encoding: .utf8))
      #expect(parsed.seconds == live.seconds)
      #expect(parsed.commits == live.commits)
    }

    /// One large recorded transaction left its thread a notes table of its size for good.
    @Test func aLargeRecordedTransactionLeavesNoLargeNotesTable() throws {
      let variables = (0..<20_000).map { TVar($0) }
      try ConflictLog.start()
      atomically { _ in for variable in variables { _ = variable.read() } }
      ConflictLog.stop()
      atomically { _ in variables[0].value += 1 }
      #expect(_ThreadContext.current.diagnostics.notes.capacity <= 2_048, "a table for 20,000 notes was kept")
    }

    /// A read that only waited for a commit gets advice of its own: nothing made it stale.
    @Test func readsThatOnlyWaitedGetTheirOwnHint() {
      let waited = ConflictReport.Conflict.hint(for: .writeRead, aborted: false)
      #expect(waited != ConflictReport.Conflict.hint(for: .writeRead, aborted: true))
      #expect(waited.hasPrefix("Reads waited for commits"))
    }
  }
}
