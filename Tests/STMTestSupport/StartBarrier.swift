import Foundation
import Synchronization

/// Releases a group of threads at once, so that stress tests really overlap.
public final class StartBarrier: Sendable {
  private let parties: Int
  private let arrived = Atomic<Int>(0)
  private let gate = DispatchSemaphore(value: 0)

  public init(parties: Int) {
    self.parties = parties
  }

  /// Blocks until `parties` threads have called it.
  public func arriveAndWait() {
    if arrived.add(1, ordering: .sequentiallyConsistent).newValue == parties {
      for _ in 0..<parties { gate.signal() }
    }
    gate.wait()
  }
}

/// Runs `body(index)` on `count` new threads, released together behind a barrier, and returns
/// when all have finished.
public func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
  let barrier = StartBarrier(parties: count)
  let done = DispatchGroup()
  for index in 0..<count {
    done.enter()
    let thread = Thread {
      barrier.arriveAndWait()
      body(index)
      done.leave()
    }
    thread.stackSize = 1 << 20
    thread.start()
  }
  done.wait()
}

/// Starts `body` on a new thread and returns a group that is left when it finishes.
@discardableResult
public func startThread(_ body: @escaping @Sendable () -> Void) -> DispatchGroup {
  let done = DispatchGroup()
  done.enter()
  Thread.detachNewThread {
    body()
    done.leave()
  }
  return done
}
