import Synchronization

/// One thread's counters. Only the owning thread writes them, so a write is a relaxed load and
/// store (no read-modify-write on a shared line); any thread may read them for a snapshot.
@usableFromInline
final class _StatisticsCounters: @unchecked Sendable {
  let commits = Atomic<Int>(0)
  let retries = Atomic<Int>(0)
  let nanosecondsLostInAborts = Atomic<Int>(0)
  let nanosecondsPaused = Atomic<Int>(0)
  private let aborts: [_AtomicCounterBox]
  private let pauses: [_AtomicCounterBox]

  init() {
    aborts = ContentionKind.allCases.map { _ in _AtomicCounterBox() }
    pauses = ContentionKind.allCases.map { _ in _AtomicCounterBox() }
  }

  @inline(__always)
  static func bump(_ counter: borrowing Atomic<Int>, by amount: Int = 1) {
    // Single writer: the owning thread. Relaxed suffices because readers only want a value
    // that some moment of the run had, not an ordering with other memory.
    counter.store(counter.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
  }

  func recordCommit() { Self.bump(commits) }
  func recordRetry() { Self.bump(retries) }

  func recordAbort(_ kind: ContentionKind, nanoseconds: Int) {
    Self.bump(aborts[kind.index].value)
    Self.bump(nanosecondsLostInAborts, by: nanoseconds)
  }

  func recordPause(_ kind: ContentionKind, nanoseconds: Int) {
    Self.bump(pauses[kind.index].value)
    Self.bump(nanosecondsPaused, by: nanoseconds)
  }

  var snapshot: TransactionStatistics {
    var result = TransactionStatistics()
    result.commits = commits.load(ordering: .relaxed)
    result.retries = retries.load(ordering: .relaxed)
    result.secondsLostInAborts = Double(nanosecondsLostInAborts.load(ordering: .relaxed)) / 1e9
    result.secondsPaused = Double(nanosecondsPaused.load(ordering: .relaxed)) / 1e9
    for kind in ContentionKind.allCases {
      let aborted = aborts[kind.index].value.load(ordering: .relaxed)
      if aborted != 0 { result.aborts[kind] = aborted }
      let paused = pauses[kind.index].value.load(ordering: .relaxed)
      if paused != 0 { result.pauses[kind] = paused }
    }
    return result
  }
}

/// A heap cell for an atomic counter, so that arrays of them can be built.
final class _AtomicCounterBox: Sendable {
  let value = Atomic<Int>(0)
}

extension ContentionKind {
  var index: Int {
    switch self {
    case .writeWrite: 0
    case .writeRead: 1
    case .inevitable: 2
    case .freeSegment: 3
    }
  }
}
