import STM
import Testing

@testable import stm_bench

/// The harness's verdicts on the collections' targets (`Targets`), from made-up figures: a
/// wrong comparison, or a target judged from the wrong row, would print a verdict that the
/// run's own table contradicts.
@Suite("stm-bench targets")
struct TargetsTests {
  /// A verified row of `ops` units in `seconds` (so `ops / seconds` a second), with `aborts`
  /// for the library.
  private func row(
    _ workload: Workload, _ implementation: String, _ kind: ImplementationKind, threads: Int,
    rate: Double, aborts: Int = 0, producerAborts: Int? = nil, failure: String? = nil
  ) -> BenchmarkResult {
    var statistics: TransactionStatistics?
    if kind == .library {
      statistics = TransactionStatistics()
      if aborts > 0 { statistics!.aborts[.writeWrite] = aborts }
    }
    var result = BenchmarkResult(
      workload: workload.name, implementation: implementation, kind: kind, threads: threads, ops: 1_000,
      seconds: 1_000 / rate, statistics: statistics, failure: failure)
    result.producerAborts = producerAborts
    return result
  }

  /// Every target's workload at T=1 and T=2, with figures that meet every target.
  private func passingRun() -> Targets.Results {
    let disjoint = Workload.dictDisjoint, grow = Workload.dictGrow
    let list = Workload.listAppend, queue = Workload.queueMPMC, mandelbrot = Workload.mandelbrot
    return [
      (disjoint, [
        row(disjoint, "TDictionary", .library, threads: 1, rate: 60),
        row(disjoint, "TDictionary", .library, threads: 2, rate: 120),
        row(disjoint, "TDictionary atomically", .library, threads: 1, rate: 10),
        row(disjoint, "TDictionary atomically", .library, threads: 2, rate: 12),
        row(disjoint, "Mutex<[Int: Int]>", .baseline, threads: 1, rate: 100),
        row(disjoint, "Mutex<[Int: Int]>", .baseline, threads: 2, rate: 80),
      ]),
      (grow, [
        row(grow, "TDictionary", .library, threads: 1, rate: 10),
        row(grow, "TDictionary", .library, threads: 2, rate: 19),
        row(grow, "Mutex<[Int: Int]>", .baseline, threads: 1, rate: 40),
      ]),
      (list, [
        row(list, "TArray", .library, threads: 1, rate: 5),
        row(list, "TArray", .library, threads: 2, rate: 6),
      ]),
      (queue, [
        row(queue, "TQueue", .library, threads: 1, rate: 5, aborts: 3, producerAborts: 0),
        row(queue, "TQueue", .library, threads: 2, rate: 6, aborts: 7, producerAborts: 0),
      ]),
      (mandelbrot, [
        row(mandelbrot, "TArray of rows", .library, threads: 1, rate: 0.96),
        row(mandelbrot, "TArray of rows", .library, threads: 2, rate: 1.9),
        row(mandelbrot, "serial", .serial, threads: 1, rate: 1),
      ]),
    ]
  }

  private func verdict(_ results: Targets.Results, _ target: String) throws -> Targets.Verdict {
    try #require(Targets.verdicts(results).first { $0.target == target }, "no target named \(target)")
  }

  @Test func aRunThatMeetsEveryTargetIsJudgedSo() {
    let verdicts = Targets.verdicts(passingRun())
    #expect(verdicts.count == 9)
    #expect(verdicts.allSatisfy { $0.met == true }, "\(verdicts.filter { $0.met != true })")
    let section = Targets.section(passingRun()) ?? ""
    #expect(section.components(separatedBy: "\n").filter { $0.hasSuffix("met") }.count == 9)
  }

  @Test func ratiosComeFromTheMainLibraryRowAndTheNamedBaseline() throws {
    let run = passingRun()
    #expect(try verdict(run, "dict-disjoint: TDictionary, T=2 over T=1").measured == "2.00")
    #expect(try verdict(run, "dict-disjoint: TDictionary over Mutex<[Int: Int]>, T=1").measured == "0.60")
    #expect(try verdict(run, "dict-disjoint: TDictionary over Mutex<[Int: Int]>, T=2").measured == "1.50")
    #expect(try verdict(run, "dict-grow: TDictionary, T=2 over T=1").measured == "1.90")
    // Time over serial: the serial rate over the library's.
    #expect(try verdict(run, "mandelbrot: TArray of rows time over serial, T=1").measured == "1.04")
    // The consumers' aborts are not the producers'.
    #expect(try verdict(run, "queue-mpmc: library, producers' aborts at every T").measured == "0")
  }

  @Test func eachTargetCanBeMissed() throws {
    var run = passingRun()
    // dict-disjoint: 0.40x the Mutex at T=1, 1.9 times at T=2 (still ≥ 1.8), 0.95x the Mutex.
    run[0].measurements[0] = row(.dictDisjoint, "TDictionary", .library, threads: 1, rate: 40)
    run[0].measurements[1] = row(.dictDisjoint, "TDictionary", .library, threads: 2, rate: 76, aborts: 2)
    // dict-grow: 1.70 times.
    run[1].measurements[1] = row(.dictGrow, "TDictionary", .library, threads: 2, rate: 17)
    run[2].measurements[1] = row(.listAppend, "TArray", .library, threads: 2, rate: 6, aborts: 1)
    run[3].measurements[0] = row(.queueMPMC, "TQueue", .library, threads: 1, rate: 5, producerAborts: 4)
    // mandelbrot: 1.10 times serial's time.
    run[4].measurements[0] = row(.mandelbrot, "TArray of rows", .library, threads: 1, rate: 1 / 1.1)
    let verdicts = Targets.verdicts(run)
    let missed = verdicts.filter { $0.met == false }.map(\.target)
    #expect(missed.count == 7)
    #expect(Set(missed) == [
      "dict-disjoint: library, aborts at T=2",
      "dict-grow: TDictionary, T=2 over T=1",
      "list-append: library, aborts at every T",
      "queue-mpmc: library, producers' aborts at every T",
      "dict-disjoint: TDictionary over Mutex<[Int: Int]>, T=2",
      "dict-disjoint: TDictionary over Mutex<[Int: Int]>, T=1",
      "mandelbrot: TArray of rows time over serial, T=1",
    ])
    #expect(try verdict(run, "dict-disjoint: TDictionary, T=2 over T=1").met == true)
    #expect(try verdict(run, "dict-disjoint: library, aborts at T=2").measured == "2")
  }

  @Test func aBoundIsJudgedOnTheFigureAsPrinted() throws {
    var run = passingRun()
    // 1.7996 prints as 1.80: met, as the table shows it.
    run[1].measurements[1] = row(.dictGrow, "TDictionary", .library, threads: 2, rate: 17.996)
    let grow = try verdict(run, "dict-grow: TDictionary, T=2 over T=1")
    #expect(grow.measured == "1.80" && grow.met == true)
  }

  @Test func whatTheRunDidNotMeasureIsNotJudged() throws {
    var run = passingRun()
    run[0].measurements.removeAll { $0.threads == 2 }
    run[4].measurements[2] = row(.mandelbrot, "serial", .serial, threads: 1, rate: 1, failure: "checksum differs")
    run.remove(at: 2)
    for target in [
      "dict-disjoint: library, aborts at T=2", "dict-disjoint: TDictionary, T=2 over T=1",
      "dict-disjoint: TDictionary over Mutex<[Int: Int]>, T=2", "list-append: library, aborts at every T",
    ] {
      let judged = try verdict(run, target)
      #expect(judged.met == nil && judged.measured == "not measured", "\(judged)")
    }
    let mandelbrot = try verdict(run, "mandelbrot: TArray of rows time over serial, T=1")
    #expect(mandelbrot.met == nil && mandelbrot.measured == "serial T=1 failed")
    #expect(try verdict(run, "dict-disjoint: TDictionary over Mutex<[Int: Int]>, T=1").met == true)
    // A failed baseline, on the other side of the ratio.
    run[0].measurements[2] = row(.dictDisjoint, "Mutex<[Int: Int]>", .baseline, threads: 1, rate: 100, failure: "lost an update")
    let overMutex = try verdict(run, "dict-disjoint: TDictionary over Mutex<[Int: Int]>, T=1")
    #expect(overMutex.met == nil && overMutex.measured == "Mutex<[Int: Int]> T=1 failed")
  }

  @Test func noSectionWithoutATargetsWorkload() {
    #expect(Targets.section([(Workload.bank, [])]) == nil)
    #expect(Targets.section([(Workload.dictGrow, [])]) != nil)
  }
}
