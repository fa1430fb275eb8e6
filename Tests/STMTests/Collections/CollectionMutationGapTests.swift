import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// Invariants of the collections layer that the mutation-testing sweep of the collections
  /// (tables, key index, map storage, sets, arrays, queues, the scheduler) found no test for.
  @Suite struct CollectionMutationGapTests {
    /// Inside a transaction, `dequeue(until:)` of a closed, empty queue returns nil at once, as
    /// the form without a deadline does: a closed queue gets no more items, so there is nothing
    /// to wait for. (Mutation: `take(_:until:at:)` without its check of `closed`; the
    /// transaction waited in `retry(until:)` for the deadline and threw `TQueueTimeoutError`.)
    @Test func aTimedDequeueInATransactionOfAClosedEmptyQueueReturnsNilAtOnce() throws {
      let queue = TQueue<Int>()
      queue.close()
      let started = ContinuousClock.now
      let taken = try atomically { _ in try queue.dequeue(until: started + .seconds(3)) }
      #expect(taken == nil)
      #expect(ContinuousClock.now - started < .seconds(2), "the transaction waited for a closed queue")
    }

    /// A producer that finds a bounded queue full looks for places before it parks; on a closed
    /// queue that look says so, and the producer throws instead of parking: a close that came
    /// before it parked has already given out its wake-up, and no other is coming. (Mutation:
    /// `lookForPlaces(at:)` without its check of `closed`; the producer parked for good. A
    /// drop-in `enqueue` meets that window only when the close lands between its in-place
    /// attempt and its park, so this test calls the step itself.)
    @Test func aProducerLookingForPlacesInAClosedFullQueueThrowsInsteadOfParking() throws {
      let queue = TQueue<Int>(capacity: 1)
      try queue.enqueue(0)
      queue.close()
      let site = _CallSite.unknown(in: queue)
      #expect(queue.lookForPlaces(at: site) == .closed)
      let thrown = LockedBox<(any Error)?>(nil)
      let producer = startThread {
        do { _ = try queue.refillBudget(at: .unknown(in: queue)) } catch { thrown.value = error }
      }
      let ended = producer.wait(timeout: .now() + 5) == .success
      #expect(ended, "the producer parked on a closed queue")
      // A producer left parked is woken by hand, so that the test does not hang.
      if !ended { queue.waitingProducers!.wake(upTo: .max) }
      producer.wait()
      #expect(thrown.value is TQueueClosedError)
    }

    /// Work added while a run waits wakes an idle worker, whether it is added outside a
    /// transaction or by a transaction's commit: here the only running callback waits in
    /// `retry()` for the added one, and the other worker sleeps in the scheduler until told.
    /// (Mutations: `_SchedulerState.add(_:)`, and `addCommitted(_:)`, answering that no worker
    /// needs waking during a run; the added callback was never started and the run hung.)
    @Test(arguments: [false, true])
    func workAddedDuringARunWakesAnIdleWorker(inATransaction: Bool) throws {
      let queue = TransactionQueue()
      let flag = TVar(false)
      queue.add { try atomically { transaction in if !flag.value { try transaction.retry() } } }
      let runner = startThread { try? queue.run(threads: 2) }
      #expect(waitForWaiters(on: [flag.cell]), "the first callback never waited")
      let release: @Sendable () -> Void = { flag.value = true }
      startThread {
        if inATransaction {
          atomically { _ in queue.add(release) }
        } else {
          queue.add(release)
        }
      }.wait()
      let ended = runEnded(runner, nudging: queue, release: { flag.value = true })
      #expect(ended, "the added callback was never started")
      #expect(flag.value)
    }

    /// A cancellation that arrives late, for a run that has ended, does not stop the next run:
    /// runs are numbered, and a cancel names its run. (Mutation: `_SchedulerState.cancel(run:)`
    /// without the check of the run's number; a run's cancel handler that fired just as the
    /// next run started stopped that one. Only a race reaches it through `TransactionQueue`,
    /// so this test drives the scheduler's state itself.)
    @Test func aLateCancelDoesNotStopTheNextRun() throws {
      var state = _SchedulerState()
      let first = try state.beginRun(workers: 1)
      if case .leave = state.nextStep() {} else { Issue.record("an empty run did not let its worker leave") }
      #expect(state.workerLeft().ended)
      #expect(state.takeOutcome() != nil)
      let second = try state.beginRun(workers: 1)
      #expect(second != first)
      #expect(state.cancel(run: first) == nil, "the first run's cancel stopped the second run")
      #expect(!state.isStopping)
      #expect(state.cancel(run: second) != nil)
      #expect(state.isStopping)
    }

    /// A run ends when its last callback does, though another worker went idle before that:
    /// the last callback's end wakes the idle workers, which then leave. (Mutation:
    /// `_SchedulerState.finishedCallback` answering no wake-up when the run has nothing left;
    /// the idle worker slept and the run never returned, which only a suite's time limit
    /// noticed.)
    @Test func aRunEndsWhenItsLastCallbackFinishesWhileAnotherWorkerIsIdle() {
      let queue = TransactionQueue()
      let firstStarted = Gate(), secondStarted = Gate(), releaseFirst = Gate(), releaseSecond = Gate()
      queue.add {
        firstStarted.open()
        releaseFirst.wait()
      }
      queue.add {
        secondStarted.open()
        releaseSecond.wait()
      }
      let runner = startThread { try? queue.run(threads: 2) }
      firstStarted.wait()
      secondStarted.wait()
      releaseSecond.open()
      // Time for the second callback's worker to find nothing to do and sleep in the
      // scheduler; the test passes either way on a correct scheduler.
      usleep(100_000)
      releaseFirst.open()
      #expect(runEnded(runner, nudging: queue), "the run did not end with its last callback")
    }
  }
}

/// Waits up to five seconds for `runner`, a thread running `queue`, to end; returns whether it
/// did. A run left hanging (under a mutation) gets `release` and then empty callbacks, which
/// wake its sleeping workers, until it ends, so that the test does not hang.
private func runEnded(_ runner: ThreadHandle, nudging queue: TransactionQueue, release: () -> Void = {}) -> Bool {
  if runner.wait(timeout: .now() + 5) == .success { return true }
  release()
  while runner.wait(timeout: .now() + 0.5) == .timedOut { queue.add {} }
  return false
}
