import Dispatch
import Synchronization

/// One blocked party: a thread parked on a semaphore, or a task suspended on a continuation.
///
/// A waiter can be registered (and woken) before its owner decides how to wait, which lets a
/// retrying transaction register while its snapshot is still announced. `wake()` may be called
/// any number of times from any thread; only the first has an effect. A `TQueue` parks its
/// waiting consumers and producers on waiters of its own (`_Parking`).
package final class _Waiter: Sendable {
  private enum State {
    case waiting
    case woken
    case parked
    case suspended(CheckedContinuation<Void, Never>)
  }

  private let state = _Lock(State.waiting)
  private let semaphore = DispatchSemaphore(value: 0)

  package init() {}

  package func wake() {
    let action: (() -> Void)? = state.withLock { state in
      switch state {
      case .woken:
        return nil
      case .waiting:
        state = .woken
        return nil
      case .parked:
        state = .woken
        return { self.semaphore.signal() }
      case .suspended(let continuation):
        state = .woken
        return { continuation.resume() }
      }
    }
    action?()
  }

  /// Blocks the calling thread until `wake()`.
  package func block() {
    let mustPark = state.withLock { state in
      if case .woken = state { return false }
      state = .parked
      return true
    }
    if mustPark { semaphore.wait() }
  }

  /// Blocks until `wake()` or the timeout; returns whether it was woken. A waiter that timed out
  /// must not be reused.
  func block(timeoutMilliseconds: Int) -> Bool {
    block(until: .now() + .milliseconds(timeoutMilliseconds))
  }

  /// Blocks until `wake()` or `deadline`, or for a day at most; returns whether it was woken.
  /// A waiter that timed out counts as woken from then on: a later `wake()` does nothing, and
  /// it must not be reused. Callers whose deadline has not passed wait again.
  ///
  /// The day's limit: Dispatch's semaphore times out at once for an uptime past about 2⁶²
  /// nanoseconds (146 years, on Linux), so a wait until a deadline that far off spun a core,
  /// blocking again and again (found by review).
  package func block(until deadline: DispatchTime) -> Bool {
    let mustPark = state.withLock { state in
      if case .woken = state { return false }
      state = .parked
      return true
    }
    guard mustPark else { return true }
    let nearer = DispatchTime.now().uptimeNanoseconds.addingReportingOverflow(Self.longestBlock)
    let end = nearer.overflow ? deadline : min(deadline, DispatchTime(uptimeNanoseconds: nearer.partialValue))
    if semaphore.wait(timeout: end) == .success { return true }
    // Timed out; a wake may still race with us, in which case it is consumed here.
    return state.withLock { state in
      if case .woken = state { return true }
      state = .woken
      return false
    }
  }

  /// Wakes this waiter at `deadline` (Dispatch's uptime, in nanoseconds), for a task about to
  /// suspend on it: a timer task, which the caller cancels as soon as its wait ends.
  package func wake(atUptimeNanoseconds deadline: UInt64) -> Task<Void, Never> {
    Task {
      let now = DispatchTime.now().uptimeNanoseconds
      if deadline > now {
        do { try await Task.sleep(nanoseconds: deadline - now) } catch { return }
      }
      self.wake()
    }
  }

  /// The longest that `block(until:)` blocks in one go: a day, in nanoseconds.
  static let longestBlock: UInt64 = 86_400 * 1_000_000_000

  /// Suspends the calling task until `wake()`.
  package func suspend() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let resumeNow = state.withLock { state in
        if case .woken = state { return true }
        state = .suspended(continuation)
        return false
      }
      if resumeNow { continuation.resume() }
    }
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
