import Foundation
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// `Transaction.retry(until:)`: a wait for a change that ends by a deadline, after which the
  /// call returns and the body goes on.
  @Suite struct TimedRetryTests {
    /// Nothing changes: the wait ends at the deadline, the rerun's call returns, and the body
    /// returns what it chose for a timeout. It sleeps meanwhile: at most a couple of reruns
    /// (the first attempt, the one after the deadline, and one more if the thread woke a hair
    /// early), and every wait is counted as a retry.
    @Test func aTimedRetryReturnsOnceItsDeadlineHasPassed() {
      let variable = TVar(0)
      let attempts = Atomic<Int>(0)
      let before = TransactionEngine.currentThreadStatistics
      let started = ContinuousClock.now
      let deadline = started + .milliseconds(200)
      let outcome: String = try! atomically { tx in
        attempts.add(1, ordering: .relaxed)
        guard variable.value != 0 else {
          try tx.retry(until: deadline)
          return "timed out"
        }
        return "changed"
      }
      let waited = ContinuousClock.now - started
      let retries = (TransactionEngine.currentThreadStatistics - before).retries
      #expect(outcome == "timed out")
      #expect(waited >= .milliseconds(200))
      #expect(waited < .seconds(30))
      #expect((2...3).contains(attempts.load(ordering: .relaxed)), "ran \(attempts.load(ordering: .relaxed)) times")
      #expect(retries == attempts.load(ordering: .relaxed) - 1)
    }

    /// A deadline centuries off sleeps as one a minute off does, until a change. (Dispatch's
    /// semaphore times out at once past about 146 years of uptime, and the transaction reran
    /// without end, spinning a core; found by review.)
    @Test func aDeadlineCenturiesOffStillSleeps() {
      let variable = TVar(0)
      let attempts = Atomic<Int>(0)
      let deadline = ContinuousClock.now + .seconds(10_000_000_000)
      let waiting = startThread {
        try! atomically { tx in
          attempts.add(1, ordering: .relaxed)
          if variable.value == 0 { try tx.retry(until: deadline) }
        }
      }
      #expect(waitForWaiters(on: [variable.cell]))
      usleep(300_000)
      #expect(attempts.load(ordering: .relaxed) == 1, "reran \(attempts.load(ordering: .relaxed) - 1) times while nothing changed")
      variable.value = 1
      #expect(waiting.wait(timeout: .now() + 60) == .success)
      #expect(attempts.load(ordering: .relaxed) == 2)
    }

    /// A change before the deadline wakes the wait at once, as for `retry()`.
    @Test func aTimedRetryWakesForAChangeBeforeItsDeadline() {
      let variable = TVar(0)
      let result = _Lock<(String, Duration)?>(nil)
      let deadline = ContinuousClock.now + .seconds(120)
      let waiter = startThread {
        let outcome: String = try! atomically { tx in
          guard variable.value != 0 else {
            try tx.retry(until: deadline)
            return "timed out"
          }
          return "changed to \(variable.value)"
        }
        result.withLock { $0 = (outcome, deadline - ContinuousClock.now) }
      }
      #expect(waitForWaiters(on: [variable.cell]))
      variable.value = 7
      #expect(waiter.wait(timeout: .now() + 60) == .success)
      let (outcome, left) = result.withLock { $0 } ?? ("none", .zero)
      #expect(outcome == "changed to 7")
      #expect(left > .seconds(60), "woke only \(left) before the deadline")
    }

    /// A deadline already passed neither waits nor counts a retry: the call returns at once.
    @Test func aPassedDeadlineReturnsAtOnce() {
      let variable = TVar(0)
      let before = TransactionEngine.currentThreadStatistics
      let outcome: String = try! atomically { tx in
        guard variable.value != 0 else {
          try tx.retry(until: ContinuousClock.now - .seconds(1))
          return "timed out"
        }
        return "changed"
      }
      #expect(outcome == "timed out")
      #expect((TransactionEngine.currentThreadStatistics - before).retries == 0)
    }

    /// With a deadline the wait ends in any case, so a transaction that has read nothing may
    /// wait until it (where `retry()` traps: `MisuseTests`).
    @Test func aTimedRetryThatReadNothingWaitsUntilItsDeadline() {
      let started = ContinuousClock.now
      let deadline = started + .milliseconds(100)
      let outcome: String = try! atomically { tx in
        try tx.retry(until: deadline)
        return "timed out"
      }
      #expect(outcome == "timed out")
      #expect(ContinuousClock.now - started >= .milliseconds(100))
    }

    /// A deadline belongs to its attempt: a later transaction's `retry()` on the same thread
    /// sleeps until a change, not rerunning again and again for a deadline long gone.
    @Test func aDeadlineDoesNotOutliveItsAttempt() {
      let variable = TVar(0)
      let attempts = Atomic<Int>(0)
      let waiter = startThread {
        let deadline = ContinuousClock.now + .milliseconds(20)
        _ = try! atomically { tx -> Bool in
          guard variable.value != 0 else {
            try tx.retry(until: deadline)
            return false
          }
          return true
        }
        try! atomically { tx in
          attempts.add(1, ordering: .relaxed)
          guard variable.value != 0 else { try tx.retry() }
        }
      }
      #expect(waitForWaiters(on: [variable.cell]))
      Thread.sleep(forTimeInterval: 0.1)
      variable.value = 1
      #expect(waiter.wait(timeout: .now() + 60) == .success)
      #expect(attempts.load(ordering: .relaxed) <= 3, "the plain retry ran \(attempts.load(ordering: .relaxed)) times")
    }

    /// In `orElse`, the first branch's timed retry hands over to the second; when that one
    /// retries too, the wait covers both branches' reads and ends by the first branch's
    /// deadline, after which the first branch goes past its call.
    @Test func orElseWaitsForEitherBranchUntilTheFirstBranchsDeadline() {
      let first = TVar(0), second = TVar(0)
      let started = ContinuousClock.now
      let timedOut = try! atomically { tx in try Self.firstOrElseSecond(tx, first, second, until: started + .milliseconds(150)) }
      #expect(timedOut == "first timed out")
      #expect(ContinuousClock.now - started >= .milliseconds(150))

      // The second branch's read wakes the wait too, long before the deadline.
      let result = _Lock<String?>(nil)
      let deadline = ContinuousClock.now + .seconds(120)
      let waiter = startThread {
        let outcome = try! atomically { tx in try Self.firstOrElseSecond(tx, first, second, until: deadline) }
        result.withLock { $0 = outcome }
      }
      #expect(waitForWaiters(on: [first.cell, second.cell], atLeast: 2))
      second.value = 1
      #expect(waiter.wait(timeout: .now() + 60) == .success)
      #expect(result.withLock { $0 } == "second")
      #expect(ContinuousClock.now < deadline - .seconds(60))
    }

    /// The first branch waits for `first` until `deadline`; the second for `second`.
    private static func firstOrElseSecond(
      _ tx: Transaction, _ first: TVar<Int>, _ second: TVar<Int>, until deadline: ContinuousClock.Instant
    ) throws -> String {
      try tx.orElse(
        { tx in
          guard first.value != 0 else {
            try tx.retry(until: deadline)
            return "first timed out"
          }
          return "first"
        },
        { tx in
          guard second.value != 0 else { try tx.retry() }
          return "second"
        })
    }

    /// Two timed retries in one attempt: the wait ends by the earlier deadline. Here the
    /// second branch's deadline is the earlier one, so the wait ends then and that branch,
    /// rerun, goes past its call while the first branch still waits for its own.
    @Test func theEarlierOfTwoDeadlinesEndsTheWait() {
      let variable = TVar(0)
      let started = ContinuousClock.now
      let (late, early) = (started + .seconds(120), started + .milliseconds(150))
      let outcome: String = try! atomically { tx in
        try tx.orElse(
          { tx in
            guard variable.value != 0 else {
              try tx.retry(until: late)
              return "first timed out"
            }
            return "changed"
          },
          { tx in
            guard variable.value != 0 else {
              try tx.retry(until: early)
              return "second timed out"
            }
            return "changed"
          })
      }
      #expect(outcome == "second timed out")
      #expect(ContinuousClock.now - started < .seconds(60))
    }

    /// The async form of `atomically` suspends for a timed retry, and ends the suspension at
    /// the deadline, or at a change before it.
    @Test func theAsyncFormEndsItsWaitAtTheDeadlineOrAtAChange() async {
      let variable = TVar(0)
      let started = ContinuousClock.now
      let timedOut: String = try! await atomically { tx in
        guard variable.value != 0 else {
          try tx.retry(until: started + .milliseconds(150))
          return "timed out"
        }
        return "changed"
      }
      #expect(timedOut == "timed out")
      #expect(ContinuousClock.now - started >= .milliseconds(150))

      let deadline = ContinuousClock.now + .seconds(120)
      let waiting = Task {
        try! await atomically { tx -> String in
          guard variable.value != 0 else {
            try tx.retry(until: deadline)
            return "timed out"
          }
          return "changed"
        }
      }
      #expect(waitForWaiters(on: [variable.cell]))
      variable.value = 1
      #expect(await waiting.value == "changed")
      #expect(ContinuousClock.now < deadline - .seconds(60))
    }
  }
}
