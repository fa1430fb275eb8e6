import Dispatch
import Synchronization

/// One blocked party: a thread parked on a semaphore, or a task suspended on a continuation.
///
/// `wake()` may be called any number of times from any thread; only the first call resumes the
/// waiter, so that several committers racing to wake the same retrying transaction are harmless.
final class _Waiter: Sendable {
  private let fired = Atomic<Bool>(false)
  private let semaphore: DispatchSemaphore?
  private let continuation: _Lock<CheckedContinuation<Void, Never>?>

  /// A waiter that blocks the calling thread in `block()`.
  init() {
    semaphore = DispatchSemaphore(value: 0)
    continuation = _Lock(nil)
  }

  /// A waiter that resumes `continuation` when woken.
  init(continuation: CheckedContinuation<Void, Never>) {
    semaphore = nil
    self.continuation = _Lock(continuation)
  }

  var hasFired: Bool { fired.load(ordering: .acquiring) }

  func wake() {
    guard !fired.exchange(true, ordering: .acquiringAndReleasing) else { return }
    if let semaphore {
      semaphore.signal()
    } else if let resume = continuation.withLock({ $0.take() }) {
      resume.resume()
    }
  }

  /// Blocks until `wake()`; for waiters made with `init()`.
  func block() {
    semaphore?.wait()
  }

  /// Blocks until `wake()` or the timeout; returns whether it was woken.
  func block(timeoutMilliseconds: Int) -> Bool {
    guard let semaphore else { return false }
    return semaphore.wait(timeout: .now() + .milliseconds(timeoutMilliseconds)) == .success
  }
}

/// A list of parked threads or tasks waiting for one event (a segment freed, the inevitable
/// transaction finished). Waiters check their condition after enqueueing, so a wake-up that
/// races with the enqueue is never lost.
final class _WaitList: Sendable {
  private let waiters = _Lock<[_Waiter]>([])
  /// Read without the lock on the releasing side, so that a release with nobody waiting costs
  /// one load of a line that only changes when somebody starts waiting.
  private let count = Atomic<Int>(0)

  func enqueue(_ waiter: _Waiter) {
    waiters.withLock { $0.append(waiter) }
    count.add(1, ordering: .sequentiallyConsistent)
  }

  func remove(_ waiter: _Waiter) {
    let removed = waiters.withLock { list in
      let before = list.count
      list.removeAll { $0 === waiter }
      return before - list.count
    }
    if removed > 0 { count.subtract(removed, ordering: .sequentiallyConsistent) }
  }

  /// Wakes everyone waiting. Callers make their state change visible before calling this
  /// (a sequentially consistent store), which pairs with the enqueue-then-recheck of waiters.
  func wakeAll() {
    guard count.load(ordering: .sequentiallyConsistent) > 0 else { return }
    wakeEveryone()
  }

  /// `wakeAll()` for a caller that did not fence after its state change, and so tolerates a
  /// missed waiter (which then wakes on its own timer).
  func wakeAllWithoutFence() {
    guard count.load(ordering: .relaxed) > 0 else { return }
    wakeEveryone()
  }

  private func wakeEveryone() {
    let woken = waiters.withLock { list in
      let all = list
      list.removeAll()
      return all
    }
    if !woken.isEmpty { count.subtract(woken.count, ordering: .sequentiallyConsistent) }
    for waiter in woken { waiter.wake() }
  }
}
