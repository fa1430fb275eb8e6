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
/// when all have finished and exited. Traps, naming the caller, if they have not finished
/// within `seconds`: a stuck thread fails the run instead of hanging it.
public func runThreads(
  _ count: Int, seconds: Double = 900, fileID: String = #fileID, line: Int = #line,
  _ body: @escaping @Sendable (Int) -> Void
) {
  let barrier = StartBarrier(parties: count)
  let threads = (0..<count).map { index in
    spawnThread {
      barrier.arriveAndWait()
      body(index)
    }
  }
  let finished = DispatchSemaphore(value: 0)
  Thread.detachNewThread {
    if finished.wait(timeout: .now() + seconds) == .timedOut {
      fatalError("Test threads did not finish within \(seconds)s (\(fileID):\(line)): they are stuck")
    }
  }
  for thread in threads { pthread_join(thread, nil) }
  finished.signal()
}

/// A thread started by `startThread`, to wait for.
public final class ThreadHandle: Sendable {
  private let done: DispatchGroup

  fileprivate init(_ done: DispatchGroup) {
    self.done = done
  }

  /// Waits until the thread has exited; fails loudly, as `Gate` does, rather than hang the
  /// whole test run when a wake-up is lost.
  public func wait(seconds: Double = 600, fileID: String = #fileID, line: Int = #line) {
    if done.wait(timeout: .now() + seconds) == .timedOut {
      fatalError("A test thread did not finish within \(seconds)s (\(fileID):\(line)): it is stuck")
    }
  }

  /// Whether the thread exited before `timeout`.
  public func wait(timeout: DispatchTime) -> DispatchTimeoutResult {
    done.wait(timeout: timeout)
  }
}

/// Starts `body` on a new thread and returns a handle to wait for its exit.
@discardableResult
public func startThread(_ body: @escaping @Sendable () -> Void) -> ThreadHandle {
  let done = DispatchGroup()
  done.enter()
  let thread = spawnThread(body)
  // A joiner of its own, which touches no transactional state.
  Thread.detachNewThread {
    pthread_join(thread, nil)
    done.leave()
  }
  return ThreadHandle(done)
}

/// The closure a spawned thread runs.
private final class ThreadBody: @unchecked Sendable {
  let run: @Sendable () -> Void
  init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Starts `body` on a joinable POSIX thread with a 1 MiB stack.
///
/// Joinable, so that waiting for it includes its exit: the engine frees a thread's state (its
/// cache of versions among it) in a thread-specific destructor that runs after `body` returns.
/// Waiting only for `body` let that cleanup overlap the next test, and a test that counts live
/// versions counted another test's threads going away.
private func spawnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
  var attributes = pthread_attr_t()
  pthread_attr_init(&attributes)
  defer { pthread_attr_destroy(&attributes) }
  pthread_attr_setstacksize(&attributes, 1 << 20)
  let argument = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
  var thread = pthread_t()
  let status = pthread_create(&thread, &attributes, { raw in
    Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
    return nil
  }, argument)
  precondition(status == 0, "could not start a test thread (error \(status))")
  return thread
}
