import Foundation
@testable import STM
@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// Windows of the commit protocol that the mutation-testing sweep found no test for.
  @Suite struct MutationGapTests {
    /// A reader whose snapshot is at or above a commit's number must wait for that commit while
    /// it is still publishing, after it has shown its number (here, stopped in a commute
    /// transform, which runs under the commit's locks): the commit's versions are not all in
    /// their chains yet. Reading past the lock gave a snapshot that misses the commit it
    /// includes. (Mutation: `visibleVersion(of:)` comparing the holder's number against
    /// `snapshot - 1` instead of `snapshot`. `aReadWaitsForACommitThatHasTakenItsNumber` catches
    /// it only if the reader happens to look between the number's store and the publication;
    /// here the commit stays in that window until released.)
    @Test func aReadWaitsForACommitNumberedAtItsSnapshotThatIsStillPublishing() {
      let x = TVar(0), y = TVar(0)
      let inCommute = Gate(), release = Gate()
      let writerDone = startThread {
        atomically { _ in
          y.value = 1
          x.commute { value in
            inCommute.open()
            release.wait()
            return value + 1
          }
        }
      }
      inCommute.wait()
      // The writer has shown its number and holds both cells: any snapshot from now on covers it.
      let seen = LockedBox<[Int]>([])
      let readerDone = startThread { seen.value = atomically { _ in [x.value, y.value] } }
      let readerWaited = readerDone.wait(timeout: .now() + 0.3) == .timedOut
      release.open()
      writerDone.wait()
      readerDone.wait()
      #expect(readerWaited, "the reader did not wait for a commit its snapshot covers")
      #expect(seen.value == [1, 1], "the reader's snapshot missed a commit numbered at or below it")
    }

    /// A committing transaction keeps its snapshot announced until it has validated its reads:
    /// a drop-in update may overwrite a cell's only version in place, without a new stamp, only
    /// when no announced snapshot could have read it (see
    /// `_Engine.unnumberedOverwritePosition(for:)`). Here the commit waits for the lock of the
    /// cell it writes while such an update changes a cell it read; it must rerun and see the
    /// update. (Mutation: withdrawing the snapshot as the commit begins let it validate a stale
    /// read, and commit `y == 10` after the update of `x`.)
    @Test func aCommitWaitingForALockStillMakesDropInUpdatesOfItsReadsTakeANumber() {
      let x = TVar(0), y = TVar(0), z = TVar(0)
      let held = Gate(), release = Gate()
      // Holds `y`'s commit lock: an in-place mutation holds its cell while its body runs.
      let holderDone = startThread {
        mutateHoldingTheCell(&y.value, held: held, release: release)
      }
      held.wait()
      let attempts = AttemptCount()
      let before = pausesBegun
      let committerDone = startThread {
        atomically { _ in
          let attempt = attempts.next()
          let seen = x.value
          // Moves the clock past this attempt's snapshot, so that only an announced snapshot
          // can keep the update below from overwriting without a number.
          if attempt == 1 { startThread { atomically { _ in z.value = 1 } }.wait() }
          y.value = seen + 10
        }
      }
      // The commit is waiting for `y`'s lock, its read of `x` not yet validated.
      #expect(waitForAPause(after: before), "the commit never waited for the lock of y")
      startThread { x.value += 5 }.wait()
      release.open()
      holderDone.wait()
      committerDone.wait()
      #expect(x.value == 5)
      #expect(y.value == 15, "the commit validated a read of x that an update had overwritten")
      #expect(attempts.value == 2)
    }

    /// A transaction that read a key's cell, and calls `retry()` after the cell has left the
    /// map (a removal committed before its snapshot detaches the cell after the commit), is
    /// woken at once when it registers: a later insert of the key goes into a fresh cell, and
    /// would never wake a waiter registered on the old one. (Mutation: `_Cell.hasChanged(since:)`
    /// without its check of `isRetired`; the waiter slept through the insert.)
    @Test func aRetryOnACellThatLeftTheMapMeanwhileWakesAtOnce() {
      let map = TDictionary<Int, Int>()
      map[7] = 1
      let removed = Gate(), detach = Gate()
      let removerDone = startThread {
        atomically { tx in
          // Registered ahead of the removal's own hook, which detaches the cell.
          tx.afterCommit {
            removed.open()
            detach.wait()
          }
          map[7] = nil
        }
      }
      removed.wait()
      // The removal has committed; its empty cell is still in the map until the detach.
      let attempts = AttemptCount()
      let deadline = ContinuousClock.now + .seconds(15)
      let seen = LockedBox<Int?>(nil)
      let waiterDone = startThread {
        seen.value = try? atomically { tx -> Int? in
          let attempt = attempts.next()
          guard let value = map[7] else {
            if attempt == 1 {
              detach.open()
              removerDone.wait()
            }
            try tx.retry(until: deadline)
            return nil
          }
          return value
        }
      }
      // The first attempt registers on the retired cell, which must wake it at once.
      let pollUntil = Date().addingTimeInterval(5)
      while attempts.value < 2 && Date() < pollUntil { usleep(1_000) }
      #expect(attempts.value >= 2, "the retry registered on a retired cell and was not woken")
      map[7] = 2
      #expect(waiterDone.wait(timeout: .now() + 5) == .success, "the waiter slept through the insert")
      waiterDone.wait()
      #expect(seen.value == 2)
    }

    /// A drop-in insert wakes a transaction waiting in `retry()` on the map's count: the insert
    /// changes a count cell as the companion of its key's cell, and the waiter read only the
    /// count cells. (Mutation: `finishInPlaceMutation` not waking the companion's waiters; the
    /// waiter slept through the insert.)
    @Test func aRetryOnAMapsCountWakesForADropInInsert() {
      let map = TDictionary<Int, Int>()
      let deadline = ContinuousClock.now + .seconds(15)
      let seen = LockedBox(-1)
      let waiterDone = startThread {
        seen.value =
          (try? atomically { tx -> Int in
            let count = map.count
            if count == 0 { try tx.retry(until: deadline) }
            return count
          }) ?? -1
      }
      let countCells = map.storage.count.cells.map(\.cell)
      #expect(waitForWaiters(on: countCells, atLeast: countCells.count), "the transaction never waited on the count")
      map[1] = 1
      #expect(waiterDone.wait(timeout: .now() + 5) == .success, "the waiter slept through the insert")
      waiterDone.wait()
      #expect(seen.value == 1)
    }

    /// A place freed in a full bounded queue wakes a producer parked on it outside a
    /// transaction, whether a drop-in dequeue frees it or a transaction's does. (Mutations: the
    /// drop-in dequeue not waking the producers' lot, and a transaction's dequeue not asking
    /// for a wake-up at its commit; either way the producer slept, and only a suite's time
    /// limit noticed.)
    @Test(arguments: [false, true])
    func aDequeueWakesAProducerParkedOnAFullQueue(inATransaction: Bool) throws {
      let queue = TQueue<Int>(capacity: 1)
      try queue.enqueue(0)
      let producer = startThread { try? queue.enqueue(1) }
      #expect(waitForParkedProducers(on: queue), "the producer never parked")
      let taken = inATransaction ? atomically { _ in queue.tryDequeue() } : queue.tryDequeue()
      #expect(taken == 0)
      let woken = producer.wait(timeout: .now() + 5) == .success
      #expect(woken, "the producer slept through the place freed for it")
      // A producer left asleep ends when the queue closes, so that the test does not hang.
      if !woken { queue.close() }
      producer.wait()
      #expect(queue.tryDequeue() == (woken ? 1 : nil))
    }
  }
}

/// Holds the cell behind `value` (an in-place mutation outside a transaction) until `release`.
private func mutateHoldingTheCell(_ value: inout Int, held: Gate, release: Gate) {
  held.open()
  release.wait()
  value += 1
}

/// Counts the attempts of a transaction body.
private final class AttemptCount: Sendable {
  private let count = Atomic<Int>(0)
  func next() -> Int { count.add(1, ordering: .relaxed).newValue }
  var value: Int { count.load(ordering: .relaxed) }
}
