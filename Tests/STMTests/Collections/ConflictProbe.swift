import Dispatch
import Foundation
import STM
import STMTestSupport

/// Statistics a worker thread reports back to the test.
final class ThreadReport: @unchecked Sendable {
  private let lock = NSLock()
  private var stored = TransactionStatistics()
  var value: TransactionStatistics {
    get { lock.withLock { stored } }
    set { lock.withLock { stored = newValue } }
  }
}

/// Counts attempts of a transaction body across reruns (touched by one thread at a time).
final class AttemptCounter: @unchecked Sendable {
  var count = 0
}

/// Stages one interleaving and says whether the transaction that commits second aborted.
///
/// A transaction runs `first` on one thread and stops before committing; `second` then runs on
/// another thread (outside any transaction, so as single operations, unless it calls
/// `atomically` itself) and finishes; then the first transaction commits. It also writes a
/// private variable, so that it is a writing transaction that validates its reads (a read-only
/// one commits at its snapshot and never aborts). Returns how many times it aborted.
func abortsOfSecondCommitter(
  first: @escaping @Sendable () -> Void, then second: @escaping @Sendable () -> Void
) -> Int {
  let marker = TVar(0)
  let staged = Gate(), secondDone = Gate()
  let attempts = AttemptCounter()
  let report = ThreadReport()
  let firstDone = startThread {
    let before = TransactionEngine.currentThreadStatistics
    atomically { _ in
      attempts.count += 1
      first()
      marker.value = 1
      if attempts.count == 1 {
        staged.open()
        secondDone.wait()
      }
    }
    report.value = TransactionEngine.currentThreadStatistics - before
  }
  staged.wait()
  startThread(second).wait()
  secondDone.open()
  firstDone.wait()
  return report.value.totalAborts
}
