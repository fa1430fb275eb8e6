import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic time in nanoseconds, for the statistics' time lost and time paused.
@usableFromInline
func _monotonicNanoseconds() -> Int {
  var now = timespec()
  clock_gettime(CLOCK_MONOTONIC, &now)
  return now.tv_sec * 1_000_000_000 + now.tv_nsec
}

/// `_monotonicNanoseconds()`, from a clock that is cheaper to read and may lag it by a few
/// milliseconds (Linux's coarse clock, read without a system call's timer work): for a check
/// made at the end of most transactions that only needs to tell whether one ran for ten.
func _coarseMonotonicNanoseconds() -> Int {
  var now = timespec()
  #if os(Linux)
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now)
  #else
  clock_gettime(CLOCK_MONOTONIC, &now)
  #endif
  return now.tv_sec * 1_000_000_000 + now.tv_nsec
}

/// A deadline on Dispatch's clock, in uptime nanoseconds, the clock that `_Waiter` blocks
/// on: a `ContinuousClock.Instant` turned into it once, when a wait begins, so that every look
/// at whether it has passed, and every timed block, reads the same clock.
///
/// The two clocks tick at the same rate while the machine is awake. Dispatch's stops while it
/// sleeps, where the continuous clock goes on: a wait through a system sleep ends late by
/// that long.
@usableFromInline
package struct _Deadline: Sendable {
  /// Never `UInt64.max`, which `_RetryWait` keeps for "no deadline".
  package let uptimeNanoseconds: UInt64

  /// `deadline` on Dispatch's clock; one already passed is now.
  @usableFromInline
  package init(_ deadline: ContinuousClock.Instant) {
    let remaining = ContinuousClock.now.duration(to: deadline)
    let now = DispatchTime.now().uptimeNanoseconds
    guard remaining > .zero else {
      uptimeNanoseconds = now
      return
    }
    let (seconds, attoseconds) = remaining.components
    // Past about 290 years: as good as none, but still a deadline (blocks are a day at most:
    // see `_Waiter.block(until:)`).
    let latest = UInt64.max - 1
    guard seconds < 9_000_000_000 else {
      uptimeNanoseconds = latest
      return
    }
    uptimeNanoseconds = min(now + UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000), latest)
  }

  /// Whether Dispatch's clock has reached the deadline.
  @usableFromInline
  package var hasPassed: Bool { DispatchTime.now().uptimeNanoseconds >= uptimeNanoseconds }

  package var dispatchTime: DispatchTime { DispatchTime(uptimeNanoseconds: uptimeNanoseconds) }
}

/// Waits for a short-lived condition (another commit finishing its publication) without
/// burning a core that the other thread may need: a few polls, then yields to the scheduler.
/// With more threads than cores the holder may be preempted, and yielding lets it run.
@usableFromInline
package struct _Backoff {
  private var rounds = 0

  @usableFromInline package init() {}

  @usableFromInline
  package mutating func pause() {
    rounds += 1
    if rounds > 256 {
      // The holder has been off a core for a long while (threads outnumber cores): sleep a
      // little rather than keep yielding, so that waiters stop competing with it for the CPU.
      usleep(50)
    } else if rounds > 16 {
      sched_yield()
    }
  }
}

extension _Backoff {
  /// Waits a random time that doubles with each abort in a row before a transaction reruns, so
  /// that transactions fighting over one cell stop colliding in lockstep.
  static func afterAbort(_ abortsInARow: Int, _ context: _ThreadContext) {
    let window = UInt64(64) << UInt64(min(abortsInARow, 8))
    // A counted loop, not `for _ in 0..<spins`: unspecialized, as in a debug build, each step
    // of a range's iterator looked up the range's type metadata under a runtime lock, and
    // eight threads backing off under Thread Sanitizer convoyed on it for minutes.
    var spins = context.nextBackoffRandom() % window
    while spins > 0 {
      _backoffSink.add(0, ordering: .relaxed)
      spins -= 1
    }
    if abortsInARow >= 3 { sched_yield() }
  }
}

/// A location for backoff loops to touch so that the compiler keeps them.
private let _backoffSink = Atomic<Int>(0)
