/// The command line, parsed by hand (the harness has no package dependencies).
struct Options {
  var workloads: [Workload] = Workload.all
  var threadCounts: [Int] = [1, 2]
  var jsonPath: String?
  var size: Size = .standard
  /// Seconds one run may take before it counts as hung; by default the size's own.
  var timeLimit: Double?
  /// How often each run is repeated: by a time budget, or `--repeat N` after a warm-up.
  var repetition: Repetition = .untilTimeBudget
  /// Where to write the chart (`--svg`), if anywhere.
  var svgPath: String?
  var action: Action = .run

  enum Action {
    case run
    case list
    case help
    case memory
    /// `stm-bench report LOG [--top N]`: print the report of a conflict log.
    case report(logPath: String, top: Int)
  }

  struct UsageError: Error {
    let message: String
  }

  static let usage = """
    USAGE: stm-bench [--workloads a,b] [--threads 1,2] [--repeat N] [--json PATH] [--svg PATH]
                     [--full | --quick] [--time-limit S]
           stm-bench --memory | --list | --help
           stm-bench report LOG [--top N]

    Runs each workload against the library and the plain-Swift baselines, verifies every
    result, and prints a table of ops/s to stdout (progress goes to stderr). After the tables,
    when the run measured their workloads, come the collections' speed targets, each with this
    run's ratio and whether it met it (a missed target does not change the exit status).

    OPTIONS:
      --workloads a,b   Workloads to run, comma separated (default: all; see --list).
      --threads 1,2     Thread counts, comma separated (default: 1,2).
      --repeat N        Per workload, implementation and thread count: one warm-up run (checked,
                        not reported), then N measured runs; report their median (of an even
                        number, the faster of the two middle runs). By default a
                        short run is repeated, with no warm-up, until the runs took
                        \(Size.standard.repetitionSeconds) s in all or \(Size.standard.maximumRuns) were made (--full: \(Size.full.repetitionSeconds) s or \(Size.full.maximumRuns) runs;
                        --quick: \(Size.quick.repetitionSeconds) s or \(Size.quick.maximumRuns) runs).
      --json PATH       Also write one JSON object per measurement to PATH (JSON Lines).
      --svg PATH        Also write an SVG chart to PATH: per workload, ops/s against threads.
      --full            Every workload at its full total: the default run's totals, and
                        pop-loop's 10,000,000 iterations instead of 2,000,000 (the default
                        run takes about two minutes on 2 cores).
      --quick           A tenth of the full totals, for CI.
      --time-limit S    Seconds one run may take before it is reported as hung and the
                        harness stops (default: 600, or 60 with --quick).
      --memory          Measure the resident memory of a 1,000,000-key TDictionary<Int, Int> beside a
                        Dictionary with the same contents, and print the ratio.
      --list            Print the workloads with a one-line description.
      --help            Print this help.

    REPORT:
      stm-bench report LOG [--top N]
                        Print the report of a conflict log, which a program writes when it runs
                        with STM_CONFLICT_LOG=LOG (or calls ConflictLog.start(writingTo:)): totals,
                        then the N conflicts that cost the most time (default 10), each with its
                        kind, counts, seconds lost and paused, the objects it was on (a key, an
                        index, a variable), each side's atomically call and access, and a hint.

    Exit status: 0 when every run verified, 1 when a run failed its check or hung, 2 on a usage
    error, 3 when the random-number generator's self-check failed (nothing was run).
    """

  init(parsing arguments: [String]) throws(UsageError) {
    if arguments.first == "report" {
      action = try Self.parseReport(arguments.dropFirst())
      return
    }
    var remaining = arguments[...]
    func value(for flag: String) throws(UsageError) -> String {
      guard let value = remaining.popFirst(), !value.hasPrefix("--") else {
        throw UsageError(message: "\(flag) needs a value")
      }
      return value
    }
    // The options of a benchmark run given, which --memory and --list do not take.
    var runOptions: [String] = []
    // The action flag given, if any: two different ones cannot both be done (the last one
    // silently won: `--list --memory` measured memory; found by review).
    var actionFlag: String?
    func choose(_ chosen: Action, by flag: String) throws(UsageError) {
      if let actionFlag, actionFlag != flag {
        throw UsageError(message: "\(actionFlag) and \(flag) cannot be combined")
      }
      actionFlag = flag
      action = chosen
    }
    while let argument = remaining.popFirst() {
      // `--flag=value` reads as `--flag value`, for the flags that take a value.
      var flag = argument
      if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
        flag = String(argument[..<equals])
        guard Self.flagsTakingAValue.contains(flag) else {
          throw UsageError(message: "\(flag) takes no value (in '\(argument)')")
        }
        remaining.insert(String(argument[argument.index(after: equals)...]), at: remaining.startIndex)
      }
      if !["--list", "--memory", "--help", "-h"].contains(flag) { runOptions.append(flag) }
      switch flag {
      case "--workloads":
        workloads = try Self.parseWorkloads(try value(for: flag))
      case "--threads":
        threadCounts = try Self.parseThreadCounts(try value(for: flag))
      case "--repeat":
        let text = try value(for: flag)
        guard let count = Int(text), count >= 1 else {
          throw UsageError(message: "invalid repeat count '\(text)' (expected 1 or more)")
        }
        repetition = .warmUpThen(runs: count)
      case "--json":
        jsonPath = try value(for: flag)
      case "--svg":
        svgPath = try value(for: flag)
      case "--quick", "--full":
        let chosen: Size = flag == "--quick" ? .quick : .full
        guard size == .standard || size == chosen else {
          throw UsageError(message: "--full and --quick cannot be combined")
        }
        size = chosen
      case "--time-limit":
        let text = try value(for: flag)
        guard let seconds = Double(text), seconds > 0, seconds.isFinite else {
          throw UsageError(message: "invalid time limit '\(text)' (expected seconds above 0)")
        }
        timeLimit = seconds
      case "--list":
        try choose(.list, by: flag)
      case "--memory":
        try choose(.memory, by: flag)
      case "--help", "-h":
        try choose(.help, by: "--help")
      default:
        throw UsageError(message: "unknown argument '\(argument)'")
      }
    }
    // They printed or measured without them, and --json wrote no file (found by review).
    let only: String? =
      switch action {
      case .list: "--list"
      case .memory: "--memory"
      default: nil
      }
    if let only, let first = runOptions.first {
      throw UsageError(message: "\(only) takes no other option (\(first) is for benchmark runs)")
    }
  }

  /// The flags followed by a value, which may also be written `--flag=value`.
  private static let flagsTakingAValue: Set = ["--workloads", "--threads", "--repeat", "--json", "--svg", "--time-limit"]

  private static func parseWorkloads(_ list: String) throws(UsageError) -> [Workload] {
    var result: [Workload] = []
    for name in list.split(separator: ",", omittingEmptySubsequences: false) {
      guard let workload = Workload.named(String(name)) else {
        let known = Workload.all.map(\.name).joined(separator: ", ")
        throw UsageError(message: "unknown workload '\(name)' (known: \(known))")
      }
      if !result.contains(where: { $0.name == workload.name }) { result.append(workload) }
    }
    return result
  }

  private static func parseThreadCounts(_ list: String) throws(UsageError) -> [Int] {
    var result: [Int] = []
    for item in list.split(separator: ",", omittingEmptySubsequences: false) {
      guard let count = Int(item), (1...1024).contains(count) else {
        throw UsageError(message: "invalid thread count '\(item)' (expected 1 to 1024)")
      }
      if !result.contains(count) { result.append(count) }
    }
    return result
  }

  /// `report LOG [--top N]`.
  private static func parseReport(_ arguments: ArraySlice<String>) throws(UsageError) -> Action {
    var remaining = arguments
    var path: String?
    var top = 10
    while let argument = remaining.popFirst() {
      if argument == "--top" {
        guard let text = remaining.popFirst(), let count = Int(text), count >= 1 else {
          throw UsageError(message: "--top needs a number of conflicts, 1 or more")
        }
        top = count
      } else if argument.hasPrefix("--") || path != nil {
        throw UsageError(message: "report takes one log file and --top N, not '\(argument)'")
      } else {
        path = argument
      }
    }
    guard let path else { throw UsageError(message: "report needs the path of a conflict log") }
    return .report(logPath: path, top: top)
  }
}
