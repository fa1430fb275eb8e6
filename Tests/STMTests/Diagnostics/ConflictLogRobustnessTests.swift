import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Testing

extension LibraryTests {
  /// The conflict log's file and report under the ways a program really uses them: started
  /// twice, crashing, started both in code and from the environment, and fed odd values.
  /// (Each test here failed before its fix; found by review.)
  @Suite struct ConflictLogRobustnessTests {
    /// The first recording's buffered lines used to land over the second's in the same file,
    /// which then did not parse.
    @Test func startingAgainOnTheSamePathLeavesTheSecondRecording() throws {
      let path = FileManager.default.temporaryDirectory.appendingPathComponent("swift-stm-restart-\(getpid()).log").path
      defer {
        ConflictLog.stop()
        try? FileManager.default.removeItem(atPath: path)
      }
      try ConflictLog.start(writingTo: path)
      for _ in 0..<20 { try atomically { tx in try tx.becomeInevitable() } }
      try ConflictLog.start(writingTo: path)
      let line = #line; try atomically { tx in try tx.becomeInevitable() }
      ConflictLog.stop()
      let text = try String(contentsOfFile: path, encoding: .utf8)
      let report = try ConflictReport(log: text)
      #expect(report.inevitableTransactions == [here(line): 1], "log:\n\(text)")
    }

    /// A program that crashes leaves every line it wrote (not what a 4 KB buffer flushed), and
    /// the report reads it.
    @Test func aLogCutShortByACrashKeepsEveryEvent() async throws {
      let path = "/tmp/swift-stm-crash-test.log"
      try? FileManager.default.removeItem(atPath: path)
      await #expect(processExitsWith: .failure) {
        setenv("STM_CONFLICT_LOG", "/tmp/swift-stm-crash-test.log", 1)
        for _ in 0..<300 { try? atomically { tx in try tx.becomeInevitable() } }
        fatalError("the program under diagnosis crashes")
      }
      let text = try String(contentsOfFile: path, encoding: .utf8)
      try? FileManager.default.removeItem(atPath: path)
      let report = try ConflictReport(log: text)
      #expect(report.inevitableTransactions.values.reduce(0, +) == 300)
    }

    /// A log whose last line was cut in the middle still parses, without that line; the same
    /// line anywhere else is malformed.
    @Test func onlyAnUnfinishedLastLineIsLeftOut() throws {
      let whole = "inevitable\tinevitable\t0.0\tApp/Main.swift:3\t\n"
      let torn = "inevitable\tinevitable\t0.0\tApp/Ma"
      #expect(try ConflictReport(log: whole + whole + torn).inevitableTransactions.values.reduce(0, +) == 2)
      #expect(throws: ConflictLogError.malformedLine(2, torn)) { try ConflictReport(log: whole + torn + "\n" + whole) }
      #expect(throws: ConflictLogError.malformedLine(2, torn)) { try ConflictReport(log: whole + torn + "\n") }
    }

    /// A recording the program starts before its first transaction goes on when the engine
    /// then reads `STM_CONFLICT_LOG`; it used to be replaced by the variable's.
    @Test func aRecordingStartedInCodeIsNotReplacedByTheVariable() async throws {
      let mine = "/tmp/swift-stm-mine.log", variable = "/tmp/swift-stm-variable.log"
      for path in [mine, variable] { try? FileManager.default.removeItem(atPath: path) }
      await #expect(processExitsWith: .success) {
        setenv("STM_CONFLICT_LOG", "/tmp/swift-stm-variable.log", 1)
        try! ConflictLog.start(writingTo: "/tmp/swift-stm-mine.log")
        try? atomically { tx in try tx.becomeInevitable() }
        ConflictLog.stop()
        exit(0)
      }
      let text = try String(contentsOfFile: mine, encoding: .utf8)
      for path in [mine, variable] { try? FileManager.default.removeItem(atPath: path) }
      #expect(try ConflictReport(log: text).inevitableTransactions.values.reduce(0, +) == 1, "mine:\n\(text)")
    }

    /// The log never writes such times: they are malformed, not events that printing later
    /// trapped on.
    @Test func timesThatAreNegativeOrNotFiniteAreMalformed() {
      for line in ["abort\twriteRead\tnan\t\t", "abort\twriteRead\tinf\t\t", "abort\twriteRead\t-3\t\t", "summary\tinf\t10", "summary\t1.0\t-5"] {
        #expect(throws: ConflictLogError.malformedLine(1, line)) { try ConflictReport(log: line + "\n") }
      }
    }

    /// Printing takes any value the public API can hold: a difference of statistics may be
    /// negative, a report may cover a few nanoseconds, and `top` may be 0 or less.
    @Test func printingTakesAnyValue() {
      var spent = TransactionStatistics()
      spent.secondsPaused = -0.25
      spent.secondsLostInAborts = 1.5
      #expect(spent.description.hasSuffix("1.500s lost in aborts, -0.250s paused"))
      let event = ConflictEvent(outcome: .abort, kind: .writeRead, seconds: 1, location: nil, conflictingLocation: nil)
      let report = ConflictReport(events: [event], seconds: 1e-300, commits: 5)
      let printed = report.formatted(top: -1)
      #expect(printed.contains("transactions/s"))
      #expect(printed.hasSuffix("Top conflicts by time lost:\n(1 more)"))
    }
  }
}
