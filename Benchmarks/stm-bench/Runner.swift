import Dispatch
import Foundation
import STM
import Synchronization

/// What one timed run of one implementation measured.
struct BenchmarkResult {
  let workload: String
  let implementation: String
  let kind: ImplementationKind
  let threads: Int
  let ops: Int
  let seconds: Double
  /// Engine counters over the run; library implementations only.
  let statistics: TransactionStatistics?
  /// `nil` when the check passed, else what it found wrong.
  var failure: String?
  /// The trial's own measurements, if it has any (``Trial/detail``).
  var detail: String?
  /// The producers' aborts, for the queues (``Trial/producerAborts``).
  var producerAborts: Int?
  /// The aborts of every run made for this figure, the warm-up included, when there was
  /// more than one: the figure is one run's (the median's), and a "0 aborts" target must
  /// hold in all of them (found by a helper's review: a row said 0 aborts where two of its
  /// runs had aborted).
  var allRuns: AllRuns?
  /// How many measured runs the reported one is the median of.
  var runs = 1
  /// Whether an unreported warm-up run came before the measured ones (`--repeat`).
  var afterWarmUp = false
  /// Whether the run did not finish within its time limit; its threads are still blocked.
  var hung = false

  var verified: Bool { failure == nil }
  var opsPerSecond: Double { seconds > 0 ? Double(ops) / seconds : 0 }

  /// Aborts summed over several runs of one figure.
  struct AllRuns {
    var count = 0
    var aborts = 0
    var producerAborts: Int?

    mutating func add(_ run: BenchmarkResult) {
      count += 1
      aborts += run.statistics?.totalAborts ?? 0
      if let producers = run.producerAborts { producerAborts = (producerAborts ?? 0) + producers }
    }
  }
}

/// How many times each (workload, implementation, thread count) is run.
enum Repetition {
  /// Once, or, when a run is short, until the runs together took `size.repetitionSeconds`
  /// (at most `size.maximumRuns`): the default, so that a run of milliseconds is not at the
  /// mercy of one preemption while a run of seconds is not needlessly repeated.
  case untilTimeBudget
  /// One warm-up run, checked but not reported, then exactly `runs` measured runs (`--repeat`).
  case warmUpThen(runs: Int)
}

enum Runner {
  /// Measures `implementation` as `repetition` says and returns the median measured run (by
  /// time). A failed check (or a hung run), in the warm-up too, ends the series and is what is
  /// returned.
  static func measureRepeatedly(
    _ implementation: Implementation, of workload: Workload, threads: Int, size: Size,
    repetition: Repetition, timeLimit: Double
  ) -> BenchmarkResult {
    func measureOnce() -> BenchmarkResult {
      measure(implementation, of: workload, threads: threads, timeLimit: timeLimit)
    }
    var runs: [BenchmarkResult] = []
    var allRuns = BenchmarkResult.AllRuns()
    switch repetition {
    case .untilTimeBudget:
      var elapsed = 0.0
      repeat {
        let run = measureOnce()
        if !run.verified { return run }
        runs.append(run)
        allRuns.add(run)
        elapsed += run.seconds
      } while elapsed < size.repetitionSeconds && runs.count < size.maximumRuns
    case .warmUpThen(let count):
      var warmUp = measureOnce()
      if !warmUp.verified {
        warmUp.failure = warmUp.failure.map { "in the warm-up run: \($0)" }
        return warmUp
      }
      allRuns.add(warmUp)
      for _ in 0..<count {
        let run = measureOnce()
        if !run.verified { return run }
        runs.append(run)
        allRuns.add(run)
      }
    }
    var median = runs.sorted { $0.seconds < $1.seconds }[(runs.count - 1) / 2]
    median.runs = runs.count
    if case .warmUpThen = repetition { median.afterWarmUp = true }
    if allRuns.count > 1 && median.statistics != nil { median.allRuns = allRuns }
    return median
  }

  /// Runs `trial` on `threads` threads (or the trial's own ``Trial/workerCount``) started
  /// together, and checks it.
  ///
  /// As BENCHMARKS.md ("Timing") asks: the structure is built and the threads started first,
  /// parked at a barrier; the clock starts when all are released together and stops when the
  /// last one is joined; the check runs after.
  ///
  /// A run whose threads have not all finished after `timeLimit` seconds is returned as hung,
  /// unchecked, with its threads left blocked: a deadlock is then reported as a failure instead
  /// of stalling the harness (and CI) for good.
  static func measure(
    _ implementation: Implementation, of workload: Workload, threads: Int, timeLimit: Double
  ) -> BenchmarkResult {
    HeapHygiene.returnFreedMemory()
    let trial = implementation.prepare(threads)
    let work = trial.work
    let gate = StartGate()
    let finished = DispatchSemaphore(value: 0)
    let workerCount = trial.workerCount ?? threads
    let workers = (0..<workerCount).map { thread in
      spawnThread {
        gate.arriveAndWait()
        work(thread)
        finished.signal()
      }
    }
    gate.waitForArrivals(workerCount)
    let before = implementation.kind == .library ? TransactionEngine.statistics : nil
    let start = ContinuousClock.now
    gate.open()
    let deadline = DispatchTime.now() + timeLimit
    for _ in workers where finished.wait(timeout: deadline) == .timedOut {
      var result = BenchmarkResult(
        workload: workload.name, implementation: implementation.name, kind: implementation.kind,
        threads: threads, ops: trial.ops, seconds: secondsElapsed(since: start), statistics: nil,
        failure: "did not finish within \(String(format: "%g", timeLimit)) s (hung?)")
      result.hung = true
      return result
    }
    // Every worker has signalled; the joins wait only for the threads to exit, as before.
    for worker in workers { joinThread(worker) }
    let seconds = secondsElapsed(since: start)
    let statistics = before.map { TransactionEngine.statistics - $0 }
    var result = BenchmarkResult(
      workload: workload.name, implementation: implementation.name, kind: implementation.kind,
      threads: threads, ops: trial.ops, seconds: seconds, statistics: statistics,
      failure: trial.verify())
    result.detail = trial.detail?()
    result.producerAborts = trial.producerAborts?()
    return result
  }
}

/// Keeps one run's garbage out of the next run's measurement.
///
/// A run's structure is freed on the main thread when the run ends, and glibc's allocator
/// files the small blocks of another thread's arena in that arena's fast bins. The next run's
/// first thread to pick up the arena then pays for merging all of them (millions, after a
/// big dictionary) inside its first large allocation, within the timed region: the second of
/// two dict-grow runs spent a tenth of its time in `malloc_consolidate`, and T=2, which always
/// follows T=1, looked slower than it is. Trimming the heap between runs does that merging
/// outside the clock, for the library and the baselines alike.
enum HeapHygiene {
  #if canImport(Glibc)
  /// glibc's `malloc_trim`, which the Glibc module does not import.
  private static let trim: (@convention(c) (Int) -> Int32)? = dlsym(nil, "malloc_trim").map {
    unsafeBitCast($0, to: (@convention(c) (Int) -> Int32).self)
  }
  #endif

  /// Merges the free blocks of every arena and returns free pages to the system (glibc);
  /// elsewhere, nothing.
  static func returnFreedMemory() {
    #if canImport(Glibc)
    _ = trim?(0)
    #endif
  }
}

private func secondsElapsed(since start: ContinuousClock.Instant) -> Double {
  let elapsed = ContinuousClock.now - start
  return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// A start barrier: workers check in and spin (yielding the core) until the runner opens it, so
/// that they are all runnable the moment the clock starts instead of waking one by one from a
/// condition variable.
private final class StartGate: Sendable {
  private let arrived = Atomic<Int>(0)
  private let isOpen = Atomic<Bool>(false)

  func arriveAndWait() {
    arrived.wrappingAdd(1, ordering: .relaxed)
    // Acquiring pairs with `open`'s release: whatever the runner did before opening (building
    // the structure) is visible to the worker's first access.
    while !isOpen.load(ordering: .acquiring) { sched_yield() }
  }

  func waitForArrivals(_ count: Int) {
    while arrived.load(ordering: .relaxed) < count { sched_yield() }
  }

  func open() { isOpen.store(true, ordering: .releasing) }
}

/// A thread with a real join, so that the clock stops when the last worker has finished.
private final class ThreadBody {
  let body: @Sendable () -> Void
  init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

private func spawnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
  var attributes = pthread_attr_t()
  pthread_attr_init(&attributes)
  defer { pthread_attr_destroy(&attributes) }
  // Generous, because the per-account-lock audit nests 1,024 `withLock` calls.
  pthread_attr_setstacksize(&attributes, 16 << 20)
  let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
  var thread = pthread_t()
  let status = pthread_create(&thread, &attributes, { context in
    Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue().body()
    return nil
  }, context)
  precondition(status == 0, "pthread_create failed: \(status)")
  return thread
}

private func joinThread(_ thread: pthread_t) {
  let status = pthread_join(thread, nil)
  precondition(status == 0, "pthread_join failed: \(status)")
}
