import Foundation
import STM

/// The harness from arguments to exit status.
enum BenchmarkCommand {
  static func run(arguments: [String]) -> Int32 {
    let options: Options
    do {
      options = try Options(parsing: arguments)
    } catch {
      printError("stm-bench: \(error.message)\n\n\(Options.usage)")
      return 2
    }
    switch options.action {
    case .help:
      print(Options.usage)
      return 0
    case .list:
      let width = Workload.all.map(\.name.count).max() ?? 0
      for workload in Workload.all {
        print(workload.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + workload.summary)
      }
      return 0
    case .memory:
      return MemoryFootprint.run()
    case .report(let path, let top):
      return printReport(ofLog: path, top: top)
    case .run:
      return runWorkloads(options, arguments: arguments)
    }
  }

  /// `stm-bench report`: 0 when printed, 1 when the log cannot be read or parsed.
  private static func printReport(ofLog path: String, top: Int) -> Int32 {
    // Decoded leniently: a program that crashed may have left its last line cut in the middle
    // of a character, and the report leaves a cut last line out (found by review).
    guard let data = FileManager.default.contents(atPath: path) else {
      printError("stm-bench: cannot read the conflict log '\(path)'")
      return 1
    }
    let text = String(decoding: data, as: UTF8.self)
    do {
      print(try ConflictReport(log: text).formatted(top: top))
      return 0
    } catch {
      printError("stm-bench: \(error)")
      return 1
    }
  }

  private static func runWorkloads(_ options: Options, arguments: [String]) -> Int32 {
    if let failure = Xorshift64Star.selfCheckFailure() {
      printError("stm-bench: PRNG self-check failed: \(failure)")
      return 3
    }
    let cores = MachineDescription.availableCores
    let most = options.threadCounts.max() ?? 1
    let perThread = options.workloads.map(\.workersPerThread).max() ?? 1
    if most * perThread > cores {
      // Not an error: oversubscription is worth measuring too. But a speed-up past the core
      // count is time slicing, and the chart does not say so by itself.
      let queues = perThread > 1 ? " in the queue workloads, T producers and T consumers" : ""
      printError(
        "stm-bench: note: this process may use \(cores) \(cores == 1 ? "core" : "cores"), and T=\(most) runs "
          + "\(most * perThread) threads\(queues): those runs share cores")
    }
    var json: JSONLinesWriter?
    if let path = options.jsonPath {
      guard let writer = JSONLinesWriter(path: path) else {
        printError("stm-bench: cannot write \(path)")
        return 2
      }
      json = writer
    }
    var results: [(workload: Workload, measurements: [BenchmarkResult])] = []
    // Rewritten after every workload, so that a run cut short still leaves a chart of what it
    // measured; written once before the first, so that a path that cannot be written is
    // reported before minutes of measuring rather than after.
    func writeChart() -> Bool {
      guard let path = options.svgPath else { return true }
      let svg = Chart.svg(results: results, arguments: arguments)
      do {
        try svg.write(toFile: path, atomically: true, encoding: .utf8)
        return true
      } catch {
        printError("stm-bench: cannot write \(path): \(error.localizedDescription)")
        return false
      }
    }
    guard writeChart() else { return 2 }
    var allVerified = true
    for workload in options.workloads {
      results.append((workload, []))
      var measurements: [BenchmarkResult] = []
      for implementation in workload.implementations(options.size) {
        // The serial reference is single-threaded by definition.
        let threadCounts = implementation.kind == .serial ? [1] : options.threadCounts
        for threads in threadCounts {
          let measurement = Runner.measureRepeatedly(
            implementation, of: workload, threads: threads, size: options.size,
            repetition: options.repetition, timeLimit: options.timeLimit ?? options.size.timeLimit)
          printError(Report.progressLine(measurement))
          json?.write(Report.jsonLine(measurement))
          allVerified = allVerified && measurement.verified
          measurements.append(measurement)
          results[results.count - 1].measurements = measurements
          if measurement.hung {
            // Its threads are still blocked, perhaps holding the engine's locks, so no later
            // run could be trusted (or finish): stop here, with what was measured.
            print(Report.table(for: workload, measurements))
            _ = writeChart()
            printError("stm-bench: stopping: a run hung and its threads are still blocked")
            return 1
          }
        }
      }
      print(Report.table(for: workload, measurements))
      fflush(nil)  // stdout, so that the table interleaves sensibly with stderr
      guard writeChart() else { return 2 }
    }
    // After every table, so that the verdicts read the figures printed above them.
    if let targets = Targets.section(results) { print(targets) }
    return allVerified ? 0 : 1
  }
}

func printError(_ message: String) {
  FileHandle.standardError.write(Data((message + "\n").utf8))
}
