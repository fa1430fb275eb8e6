/// The speed targets of the collections (the issue that asked for these workloads), checked
/// against the figures of one run, as the issue asks them to be reported: ratios within one
/// run, never absolute times.
///
/// A target is checked only when the run measured everything it compares, and verified it;
/// otherwise it says what it would need. The verdict never changes the exit status: on a
/// shared machine the figures move from run to run, and a missed target is a finding to
/// report, not a failed check. (The memory target has its own run, `--memory`.)
enum Targets {
  /// One target's verdict on one run.
  struct Verdict {
    /// What is compared, e.g. "dict-disjoint: TDictionary, T=2 over T=1".
    let target: String
    /// The bound, e.g. "≥ 1.80".
    let goal: String
    /// The figure, or what the run lacked to compute it.
    let measured: String
    /// Whether the figure meets the goal; nil when it could not be computed.
    let met: Bool?
  }

  typealias Results = [(workload: Workload, measurements: [BenchmarkResult])]

  /// The workloads some target reads: the section is printed only when the run measured one.
  static let workloadNames: Set<String> = ["dict-disjoint", "dict-grow", "list-append", "queue-mpmc", "mandelbrot"]

  /// Every target's verdict on `results`, in the issue's order.
  static func verdicts(_ results: Results) -> [Verdict] {
    let rows = Rows(results)
    return [
      rows.noAborts("dict-disjoint", threads: 2),
      rows.speedUp("dict-disjoint", atLeast: 1.8),
      rows.noAborts("dict-grow", threads: 2),
      rows.speedUp("dict-grow", atLeast: 1.8),
      rows.noAborts("list-append", threads: nil),
      rows.noProducerAborts("queue-mpmc"),
      rows.overBaseline("dict-disjoint", "Mutex<[Int: Int]>", threads: 2, atLeast: 1.3),
      rows.overBaseline("dict-disjoint", "Mutex<[Int: Int]>", threads: 1, atLeast: 0.5),
      rows.timeOverSerial("mandelbrot", atMost: 1.05),
    ]
  }

  /// The section the harness prints after the tables, or nil when the run measured none of the
  /// targets' workloads.
  static func section(_ results: Results) -> String? {
    guard results.contains(where: { workloadNames.contains($0.workload.name) }) else { return nil }
    let verdicts = verdicts(results)
    let rows = [["target", "goal", "this run", ""]]
      + verdicts.map { [$0.target, $0.goal, $0.measured, $0.met.map { $0 ? "met" : "MISSED" } ?? "-"] }
    var lines = ["targets: the collections issue's, as ratios within this run (a shared machine moves them from run to run)"]
    lines += Report.layout(rows, leftAligned: 2).map { "  " + $0 }
    return lines.joined(separator: "\n") + "\n"
  }

  /// A run's rows, looked up by workload, implementation and thread count (a failed one is
  /// found too, and reported as failed).
  private struct Rows {
    let results: Results

    init(_ results: Results) { self.results = results }

    func measurements(of workload: String) -> [BenchmarkResult] {
      results.first { $0.workload.name == workload }?.measurements ?? []
    }

    /// The workload's main library implementation: the first library row it measured (its
    /// drop-in form, where it also has one inside `atomically`).
    func mainLibrary(of workload: String) -> String? {
      measurements(of: workload).first { $0.kind == .library }?.implementation
    }

    func row(_ workload: String, _ implementation: String, threads: Int) -> BenchmarkResult? {
      measurements(of: workload).first { $0.implementation == implementation && $0.threads == threads }
    }

    /// "dict-disjoint: library, aborts at T=2" ≤ 0, over every library implementation and every
    /// run made for each figure (a "0 aborts" target must hold in all of them). `threads` nil:
    /// at every thread count measured.
    func noAborts(_ workload: String, threads: Int?) -> Verdict {
      let at = threads.map { "at T=\($0)" } ?? "at every T"
      return zeroVerdict("\(workload): library, aborts \(at)", workload, threads: threads) { row in
        row.allRuns?.aborts ?? row.statistics?.totalAborts
      }
    }

    /// The producers' aborts of every library implementation at every thread count.
    func noProducerAborts(_ workload: String) -> Verdict {
      zeroVerdict("\(workload): library, producers' aborts at every T", workload, threads: nil) { row in
        row.allRuns?.producerAborts ?? row.producerAborts
      }
    }

    private func zeroVerdict(
      _ target: String, _ workload: String, threads: Int?, count: (BenchmarkResult) -> Int?
    ) -> Verdict {
      let library = measurements(of: workload).filter { $0.kind == .library && (threads == nil || $0.threads == threads) }
      guard !library.isEmpty else {
        return Verdict(target: target, goal: "0", measured: "not measured", met: nil)
      }
      if let failed = library.first(where: { !$0.verified }) {
        return Verdict(target: target, goal: "0", measured: "\(failed.implementation) T=\(failed.threads) failed", met: nil)
      }
      var total = 0
      for row in library {
        guard let aborts = count(row) else {
          return Verdict(target: target, goal: "0", measured: "\(row.implementation) counts none", met: nil)
        }
        total += aborts
      }
      return Verdict(target: target, goal: "0", measured: String(total), met: total == 0)
    }

    /// The main library implementation's throughput at T=2 over its own at T=1.
    func speedUp(_ workload: String, atLeast bound: Double) -> Verdict {
      let name = mainLibrary(of: workload)
      let target = "\(workload): \(name ?? "library"), T=2 over T=1"
      let goal = "≥ " + Report.formatRatio(bound, sign: "")
      guard let name else { return Verdict(target: target, goal: goal, measured: "not measured", met: nil) }
      return ratioVerdict(
        target, goal, row(workload, name, threads: 2), over: row(workload, name, threads: 1)
      ) { $0 >= bound }
    }

    /// The main library implementation's throughput over a baseline's, at the same T.
    func overBaseline(_ workload: String, _ baseline: String, threads: Int, atLeast bound: Double) -> Verdict {
      let name = mainLibrary(of: workload)
      let target = "\(workload): \(name ?? "library") over \(baseline), T=\(threads)"
      let goal = "≥ " + Report.formatRatio(bound, sign: "")
      guard let name else { return Verdict(target: target, goal: goal, measured: "not measured", met: nil) }
      return ratioVerdict(
        target, goal, row(workload, name, threads: threads), over: row(workload, baseline, threads: threads)
      ) { $0 >= bound }
    }

    /// The main library implementation's time at T=1 over the serial reference's: the serial
    /// rate over the library's.
    func timeOverSerial(_ workload: String, atMost bound: Double) -> Verdict {
      let name = mainLibrary(of: workload)
      let serial = measurements(of: workload).first { $0.kind == .serial }?.implementation
      let target = "\(workload): \(name ?? "library") time over \(serial ?? "serial"), T=1"
      let goal = "≤ " + Report.formatRatio(bound, sign: "")
      guard let name, let serial else { return Verdict(target: target, goal: goal, measured: "not measured", met: nil) }
      return ratioVerdict(
        target, goal, row(workload, serial, threads: 1), over: row(workload, name, threads: 1)
      ) { $0 <= bound }
    }

    /// `numerator`'s ops/s over `denominator`'s, judged by `meets`.
    private func ratioVerdict(
      _ target: String, _ goal: String, _ numerator: BenchmarkResult?, over denominator: BenchmarkResult?,
      meets: (Double) -> Bool
    ) -> Verdict {
      guard let numerator, let denominator else {
        return Verdict(target: target, goal: goal, measured: "not measured", met: nil)
      }
      for row in [numerator, denominator] where !row.verified {
        return Verdict(target: target, goal: goal, measured: "\(row.implementation) T=\(row.threads) failed", met: nil)
      }
      guard denominator.opsPerSecond > 0 else {
        return Verdict(target: target, goal: goal, measured: "no time measured", met: nil)
      }
      let ratio = numerator.opsPerSecond / denominator.opsPerSecond
      // Judged on the figure as printed, so that the verdict never contradicts it.
      let shown = Report.formatRatio(ratio, sign: "")
      return Verdict(target: target, goal: goal, measured: shown, met: meets(Double(shown) ?? ratio))
    }
  }
}
