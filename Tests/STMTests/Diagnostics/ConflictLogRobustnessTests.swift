import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Testing

extension LibraryTests {
  /// The conflict log's file and report under the ways a program really uses them (started
  /// twice, crashing, started both in code and from the environment, fed odd values), and
  /// what it says about the rarer events (a failed `becomeInevitable()`, a wait for a segment).
  /// (Each test here failed before its fix; found by review.)
  @Suite struct ConflictLogRobustnessTests {
    /// A location with a tab or a line break in its file (a caller may pass any `fileID`)
    /// reads back from the file: the locations were written unescaped, and the file did not
    /// parse.
    @Test(arguments: 0..<3)
    func aLocationThatNeedsEscapesReadsBack(variant: Int) throws {
      let path = FileManager.default.temporaryDirectory.appendingPathComponent("swift-stm-escape-\(getpid()).log").path
      defer { try? FileManager.default.removeItem(atPath: path) }
      try ConflictLog.start(writingTo: path)
      let fileID: StaticString = variant == 0 ? "App/Tab\tName.swift" : variant == 1 ? "App/Line\nBreak.swift" : "App\\Back\\slash.swift"
      try atomically({ tx in try tx.becomeInevitable() }, fileID: fileID, line: 7)
      let live = try #require(ConflictLog.stop())
      #expect(live.inevitableTransactions == [CodeLocation(fileID: "\(fileID)", line: 7): 1])
      let parsed = try ConflictReport(log: String(contentsOfFile: path, encoding: .utf8))
      #expect(parsed.inevitableTransactions == live.inevitableTransactions)
    }

    /// The warning's list of where transactions became inevitable prints ties in the order of
    /// their locations, in every process: it followed dictionary order, which each process's
    /// hashing seed decides, so separate reports of one log differed in order and in which
    /// three locations they showed.
    @Test func theInevitableWarningPrintsTiesInTheOrderOfTheirLocations() {
      var log = ""
      for file in ["F", "B", "E", "A", "D", "C"] {
        for _ in 0..<100 { log += "inevitable\tinevitable\t0.0\tApp/\(file).swift:1\t\t\t\t\n" }
      }
      for _ in 0..<100 { log += "inevitable\tinevitable\t0.0\t\t\t\t\t\n" }
      let printed = (try? ConflictReport(log: log).formatted()) ?? ""
      let listed = printed.split(separator: "\n").filter { $0.hasPrefix("    100x") }
      #expect(listed == ["    100x  App/A.swift:1", "    100x  App/B.swift:1", "    100x  App/C.swift:1"])
    }

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

    /// Starting again returns the report of the recording it ended, as `stop()` would have
    /// (it was dropped), and the new recording starts from nothing.
    @Test func startingAgainReturnsTheEndedRecordingsReport() throws {
      defer { ConflictLog.stop() }
      #expect(try ConflictLog.start() == nil)
      let first = #line; for _ in 0..<3 { try atomically { tx in try tx.becomeInevitable() } }
      let ended = try ConflictLog.start()
      #expect(ended?.inevitableTransactions == [here(first): 3])
      #expect(ended.map { $0.commits >= 3 } == true)
      let second = #line; try atomically { tx in try tx.becomeInevitable() }
      #expect(ConflictLog.stop()?.inevitableTransactions == [here(second): 1])
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

    /// Starts racing on two threads: each recording is finished (its summary written) by the
    /// start that replaces it or by the stop; one was dropped unfinished. (Found by review.)
    @Test func racingStartsFinishEveryRecording() {
      let directory = FileManager.default.temporaryDirectory
      var unfinished = 0
      for round in 0..<100 {
        let paths = (0..<2).map { directory.appendingPathComponent("swift-stm-race-\(getpid())-\(round)-\($0).log").path }
        runThreads(2) { index in _ = try? ConflictLog.start(writingTo: paths[index]) }
        ConflictLog.stop()
        for path in paths {
          let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
          if !text.contains("summary\t") { unfinished += 1 }
          try? FileManager.default.removeItem(atPath: path)
        }
      }
      #expect(unfinished == 0)
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

    /// Text with no line break at all is a log only if it is empty or a cut header: "hello
    /// world" was read as a cut last line, a log with no conflicts.
    @Test func textWithNoLineBreakIsALogOnlyIfItStartsAsOne() throws {
      for text in ["hello world", "inevitable\tinevitable\t0.0\tApp/Ma"] {
        #expect(throws: ConflictLogError.malformedLine(1, text)) { try ConflictReport(log: text) }
      }
      for text in ["", "# swift-stm conf", String(ConflictEvent.logHeader.prefix(40))] {
        let report = try ConflictReport(log: text)
        #expect(report.conflicts.isEmpty && report.commits == 0, "\(text)")
      }
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

    /// A `becomeInevitable()` that finds a stale read: one escalation for the transaction (it
    /// was counted for the failed attempt too), an abort that names the variable read and
    /// where both sides touched it (it named nothing), and no time counted both as lost and as
    /// paused (the wait for the token was in both). The read was made stale by the inevitable
    /// transaction, so the abort is an inevitable one, as at a commit (it was counted as
    /// write-read; found by review).
    @Test func aBecomeInevitableThatFindsAStaleReadIsReportedOnce() throws {
      let x = TVar(0)
      let aHolds = Gate(), releaseA = Gate(), bRead = Gate()
      let aLine = LockedBox(0), aWriteLine = LockedBox(0), bLine = LockedBox(0), readLine = LockedBox(0)
      let spent = LockedBox(TransactionStatistics()), wall = LockedBox(0.0)
      try ConflictLog.start()
      defer { ConflictLog.stop() }
      let a = startThread {
        aLine.value = #line; try? atomically { tx in
          try tx.becomeInevitable()
          aWriteLine.value = #line; x.write(1)
          aHolds.open()
          releaseA.wait()
        }
      }
      aHolds.wait()
      let before = pausesBegun
      let b = startThread {
        let before = TransactionEngine.currentThreadStatistics
        let started = Date()
        bLine.value = #line; try? atomically { tx in
          readLine.value = #line; _ = x.read()
          bRead.open()
          try tx.becomeInevitable()
        }
        wall.value = Date().timeIntervalSince(started)
        spent.value = TransactionEngine.currentThreadStatistics - before
      }
      bRead.wait()
      #expect(waitForAPause(after: before), "B never waited for the token")
      Thread.sleep(forTimeInterval: 0.2)
      releaseA.open()
      a.wait()
      b.wait()
      let report = try #require(ConflictLog.stop())
      #expect(report.inevitableTransactions == [here(aLine.value): 1, here(bLine.value): 1])
      let abort = try #require(report.conflicts.first { $0.aborts > 0 })
      #expect(abort.kind == .inevitable)
      #expect(spent.value.aborts == [.inevitable: 1], "\(spent.value)")
      #expect(abort.location == here(bLine.value))
      #expect(abort.conflictingLocation == here(aLine.value))
      #expect(abort.objects == ["TVar<Int>": 1])
      #expect(abort.accessLocation == here(readLine.value))
      #expect(abort.conflictingAccessLocation == here(aWriteLine.value))
      #expect(spent.value.secondsPaused >= 0.15, "B waited for the token")
      #expect(spent.value.secondsLostInAborts + spent.value.secondsPaused <= wall.value + 0.01)
    }

    /// A transaction that waits for a free segment is an `atomically` call; the wait was
    /// reported as a single operation's.
    @Test func aWaitForAFreeSegmentNamesItsAtomicallyCall() throws {
      let count = TransactionEngine.segmentCount
      let inside = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
      try ConflictLog.start()
      defer { ConflictLog.stop() }
      let holders = (0..<count).map { _ in
        startThread {
          atomically { _ in
            inside.signal()
            release.wait()
          }
        }
      }
      for _ in 0..<count { inside.wait() }
      let waiterLine = LockedBox(0)
      let before = pausesBegun
      let waiter = startThread {
        waiterLine.value = #line; atomically { _ in }
      }
      #expect(waitForAPause(after: before), "the waiter never waited for a segment")
      for _ in 0..<count { release.signal() }
      for holder in holders { holder.wait() }
      waiter.wait()
      let report = try #require(ConflictLog.stop())
      let wait = try #require(report.conflicts.first { $0.kind == .freeSegment })
      #expect(wait.location == here(waiterLine.value))
    }

    /// Conflicts that tie on time and counts print in the order of their locations, both
    /// sides': the same events print the same way in every process (the other side's were left
    /// to dictionary order, which a process's random hashing seed decides).
    @Test func tiesAreOrderedByEveryLocation() throws {
      let events = ["App/B.swift:1", "App/A.swift:1", "App/C.swift:1"].map { other in
        ConflictEvent(
          outcome: .abort, kind: .writeRead, seconds: 0.5, location: CodeLocation(parsing: "App/W.swift:3"),
          conflictingLocation: CodeLocation(parsing: other))
      }
      for order in [events, events.reversed(), [events[1], events[2], events[0]]] {
        let report = ConflictReport(events: order, seconds: 1, commits: 1)
        #expect(report.conflicts.map { $0.conflictingLocation?.description } == ["App/A.swift:1", "App/B.swift:1", "App/C.swift:1"])
      }
    }

    /// The log never writes such times: they are malformed, not events that printing later
    /// trapped on.
    @Test func timesThatAreNegativeOrNotFiniteAreMalformed() {
      for line in ["abort\twriteRead\tnan\t\t", "abort\twriteRead\tinf\t\t", "abort\twriteRead\t-3\t\t", "summary\tinf\t10", "summary\t1.0\t-5"] {
        #expect(throws: ConflictLogError.malformedLine(1, line)) { try ConflictReport(log: line + "\n") }
      }
    }

    /// The log writes a location's line from 1; a location field with a line of 0 or less, or
    /// none, is damaged (they parsed as locations). A file left empty by a caller that passes
    /// its own `fileID` is written, and reads back.
    @Test func locationsWithALineBelowOneAreMalformed() throws {
      for field in ["App/A.swift:0", "App/A.swift:-3", "App/A.swift:", "App/A.swift"] {
        let line = "abort\twriteRead\t0.5\t\(field)\t"
        #expect(throws: ConflictLogError.malformedLine(1, line)) { try ConflictReport(log: line + "\n") }
      }
      let report = try ConflictReport(log: "abort\twriteRead\t0.5\tApp/A.swift:1\t\n")
      #expect(report.conflicts.map { $0.location } == [CodeLocation(fileID: "App/A.swift", line: 1)])

      let path = FileManager.default.temporaryDirectory.appendingPathComponent("swift-stm-empty-file-\(getpid()).log").path
      defer { try? FileManager.default.removeItem(atPath: path) }
      try ConflictLog.start(writingTo: path)
      try atomically({ transaction in try transaction.becomeInevitable() }, fileID: "", line: 3)
      let live = ConflictLog.stop()
      let read = try ConflictReport(log: String(contentsOfFile: path, encoding: .utf8))
      #expect(read.inevitableTransactions == [CodeLocation(fileID: "", line: 3): 1])
      #expect(live?.inevitableTransactions == read.inevitableTransactions)
    }

    /// Summary lines whose commits add up past `Int.max` are malformed, and a report given
    /// `Int.max` commits prints: both trapped on the overflow (found by review).
    @Test func commitsNearIntMaxNeitherTrapNorWrap() throws {
      let summary = "summary\t1.0\t\(Int.max - 5)"
      let abort = "abort\twriteRead\t0.5\tApp/A.swift:1\t"
      #expect(throws: ConflictLogError.malformedLine(2, summary)) { try ConflictReport(log: "\(summary)\n\(summary)\n") }
      let report = try ConflictReport(log: "\(summary)\n\(abort)\n\(abort)\n\(abort)\n\(abort)\n\(abort)\n\(abort)\n")
      #expect(report.commits == Int.max - 5 && report.aborts == 6)
      #expect(report.formatted().contains("6 aborts (0.0% of attempts)"), "\(report.formatted())")
      let huge = ConflictReport(events: [ConflictEvent(outcome: .abort, kind: .writeRead, seconds: 1, location: nil, conflictingLocation: nil)], seconds: 1, commits: Int.max)
      #expect(huge.formatted().contains("1 abort (0.0% of attempts)"), "\(huge.formatted())")
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
