extension Workload {
  /// A workload whose check always fails, so that CI can prove a failed verification makes
  /// the harness print FAILED and exit with status 1. It is not listed and never runs unless
  /// named: `stm-bench --workloads harness-self-check`.
  static let harnessSelfCheck = Workload(
    name: "harness-self-check",
    summary: "(for CI) a run whose check always fails: the exit status must be 1",
    unit: "runs"
  ) { _ in
    [
      Implementation(name: "deliberately wrong", kind: .library) { _ in
        Trial(ops: 1) { _ in } verify: { "deliberately wrong result (the harness's own check)" }
      }
    ]
  }

  /// Workloads that run only when named.
  static let unlisted: [Workload] = [.harnessSelfCheck]
}
