import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Testing

private enum Empty: Error { case empty }

/// Takes the first item of `queue`, retrying while it is empty: a helper with typed throws
/// passes the retry on as its own error.
private func take(_ queue: TVar<[Int]>, _ transaction: Transaction) throws(Empty) -> Int {
  guard let first = queue.value.first else {
    do { try transaction.retry() } catch { throw .empty }
  }
  queue.value.removeFirst()
  return first
}

extension LibraryTests {
  /// `orElse` and `becomeInevitable()` in the corners a body can reach: typed throws, a retry
  /// caught before, a stale read's signal swallowed. (Each test failed before its fix; found
  /// by review.)
  @Suite struct OrElseAndInevitabilityTests {
    /// The first branch's retry reaches `orElse` as the branch's own error: `second` runs. (The
    /// whole transaction waited instead; a thread fills `urgent` if it is still waiting after
    /// a while, so that the test ends either way.)
    @Test func aTypedThrowsBranchThatRetriesFallsThroughToTheSecond() throws {
      let urgent = TVar<[Int]>([]), normal = TVar([7])
      let done = Gate()
      let rescue = startThread {
        if !done.wait(timeout: 5) { urgent.value = [1] }
      }
      let job = try atomically { (transaction) throws(Empty) -> Int in
        try transaction.orElse(
          { (branch) throws(Empty) in try take(urgent, branch) }, { (branch) throws(Empty) in try take(normal, branch) })
      }
      done.open()
      rescue.wait()
      #expect(job == 7)
      #expect(normal.value.isEmpty)
    }

    /// A retry the body caught before `orElse` neither makes a first branch that completed
    /// give way to the second nor disappears.
    @Test func aRetryRequestedBeforeOrElseStands() {
      let gate = TVar(false), written = TVar(0)
      let outcome = atomically { transaction -> (branch: String, retryStands: Bool) in
        _ = gate.value
        do { try transaction.retry() } catch {}
        let branch = transaction.orElse({ _ in
          written.value = 1
          return "first"
        }, { _ in "second" })
        let retryStands = transaction._retryRequested
        // So that the test ends instead of waiting for `gate`.
        transaction._withdrawRetry()
        return (branch, retryStands)
      }
      #expect(outcome.branch == "first")
      #expect(outcome.retryStands)
      #expect(written.value == 1)
    }

    /// A second `becomeInevitable()` in an attempt whose first call found a stale read (its
    /// signal swallowed) must not succeed: the attempt reruns.
    @Test func aDoomedAttemptCannotBecomeInevitable() {
      let read = TVar(0)
      let attempts = AttemptCounter(), claims = AttemptCounter()
      atomically { transaction in
        attempts.count += 1
        _ = read.value
        guard attempts.count == 1 else { return }
        startThread { read.value = 1 }.wait()
        _ = try? transaction.becomeInevitable()
        if (try? transaction.becomeInevitable()) != nil || transaction.isInevitable { claims.count += 1 }
      }
      #expect(attempts.count == 2)
      #expect(claims.count == 0)
    }
  }
}
