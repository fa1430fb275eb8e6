/// A benchmark workload of BENCHMARKS.md: a fixed total amount of work, run by every
/// implementation (the library's and the plain-Swift baselines) at every thread count.
///
/// To add a workload, write one file that defines `extension Workload { static let … }` and add
/// that name to ``Workload/all``.
struct Workload: Sendable {
  /// The name used on the command line and in the JSON output.
  let name: String
  /// One line for `--list`.
  let summary: String
  /// What one op counts (transactions, numbers, …), for the table's heading.
  let unit: String
  /// How many threads a run at T threads starts per T: 2 for the queues (T producers and T
  /// consumers), for the note on runs that share cores.
  var workersPerThread = 1
  /// The implementations to compare, for a run of the given size.
  let implementations: @Sendable (Size) -> [Implementation]
}

extension Workload {
  /// Every registered workload, in the order a full run measures them.
  static let all: [Workload] = [
    .counterHot,
    .counterCommutative,
    .bank,
    .parallelSum,
    .dictDisjoint,
    .dictMixed,
    .dictGrow,
    .listAppend,
    .popLoop,
    .mandelbrot,
    .queueMPMC,
    .queueBatch,
    .primes,
    .astar,
  ]

  static func named(_ name: String) -> Workload? {
    (all + unlisted).first { $0.name == name }
  }
}

/// How big a run is: the totals of BENCHMARKS.md (`--full`), the default run (the same totals
/// except where a workload names a smaller standard one, so that the whole run stays under two
/// minutes on 2 cores), or a tenth of the full totals for CI (`--quick`).
enum Size: Sendable {
  case full
  case standard
  case quick

  /// Short runs are repeated, and the median reported, until they have taken this long in all
  /// or reached ``maximumRuns``; a run that takes longer runs once.
  var repetitionSeconds: Double {
    switch self {
    // A run of a few milliseconds (parallel-sum) is at the mercy of one preemption on a shared
    // 2-core machine; a median of many such runs is what makes its T=2/T=1 ratio repeatable.
    case .full: 1.0
    case .standard: 0.5
    case .quick: 0.05
    }
  }

  /// Seconds one run may take before the harness reports it as hung: far beyond any run's
  /// expected time on a 2-core machine, so that only a deadlock reaches it.
  var timeLimit: Double {
    switch self {
    case .full, .standard: 600
    case .quick: 60
    }
  }

  var maximumRuns: Int {
    switch self {
    case .full: 21
    case .standard: 11
    case .quick: 3
    }
  }

  /// `total` for a full run; `standard` (or `total`) for the default run; a tenth of `total`
  /// for a quick one.
  func scaled(_ total: Int, standard: Int? = nil) -> Int {
    switch self {
    case .full: total
    case .standard: standard ?? total
    case .quick: total / 10
    }
  }
}

/// What an implementation is, as the JSON `kind` field names it.
enum ImplementationKind: String, Sendable {
  /// The library's own implementation.
  case library
  /// A plain-Swift alternative that a user would otherwise write.
  case baseline
  /// A single-threaded run with no synchronization: the single-thread reference.
  case serial
}

/// One way of running a workload.
struct Implementation: Sendable {
  let name: String
  let kind: ImplementationKind
  /// Builds the shared structure for a run with `threads` threads; the runner times only the
  /// trial's `work`.
  let prepare: @Sendable (_ threads: Int) -> Trial
}

/// One prepared run: the work of each thread, and the check that runs after the clock stops.
struct Trial {
  /// How many of the workload's units the run does in all.
  let ops: Int
  /// How many threads run `work`, when not the run's thread count T: the queues run T producers
  /// and T consumers.
  let workerCount: Int?
  /// The work of thread `thread` (0-based), run once per thread, all threads together.
  let work: @Sendable (_ thread: Int) -> Void
  /// Runs after every thread is joined; `nil` when the result is right, else what is wrong.
  let verify: () -> String?
  /// Runs after the check: measurements of the workload's own for the progress line (the
  /// producers' aborts, say), which the engine's process-wide counters cannot tell apart.
  let detail: (() -> String?)?
  /// Runs after the check, for the queues: how many aborts the producers' transactions made
  /// (a target of its own, reported beside the run's `aborts`).
  let producerAborts: (() -> Int)?

  init(
    ops: Int, workerCount: Int? = nil,
    work: @escaping @Sendable (_ thread: Int) -> Void,
    verify: @escaping () -> String?,
    detail: (() -> String?)? = nil,
    producerAborts: (() -> Int)? = nil
  ) {
    self.ops = ops
    self.workerCount = workerCount
    self.work = work
    self.verify = verify
    self.detail = detail
    self.producerAborts = producerAborts
  }
}

/// The contiguous share of `0..<total` that thread `thread` of `threads` does:
/// `[t·total/T, (t+1)·total/T)`, the split BENCHMARKS.md gives for the queues.
func share(of total: Int, thread: Int, threads: Int) -> Range<Int> {
  (thread * total / threads)..<((thread + 1) * total / threads)
}
