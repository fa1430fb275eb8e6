import Foundation
@testable import STM
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// `TArray` under threads that append outside transactions, where each append holds the
  /// count's lock instead of running a transaction.
  @Suite struct ConcurrencyArrayTests {
    /// 4 appenders (more threads than cores) started at once, beside a thread that takes the
    /// last element and puts it back in transactions, whose commits hold the count and the
    /// last slot: no appender reruns, every element lands once, and each thread's elements
    /// keep their order.
    @Test func dropInAppendersTakeTurnsAndKeepTheirOrder() {
      let array = TArray<Int>()
      let appenders = 4, perThread = TestScale.scaled(5_000)
      let aborts = Atomic<Int>(0), appendersDone = Atomic<Int>(0)
      runThreads(appenders + 1) { thread in
        guard thread < appenders else {
          // Takes the last element and puts it back, in one transaction: the array is the
          // same after each commit, but its last slot is written and its count read.
          while appendersDone.load(ordering: .acquiring) < appenders {
            atomically { _ in
              if let last = array.popLast() { array.append(last) }
            }
          }
          return
        }
        let before = TransactionEngine.currentThreadStatistics
        for item in 0..<perThread { array.append(thread * perThread + item) }
        aborts.add((TransactionEngine.currentThreadStatistics - before).totalAborts, ordering: .relaxed)
        appendersDone.add(1, ordering: .releasing)
      }
      #expect(aborts.load(ordering: .relaxed) == 0)
      let elements = array.elements
      #expect(elements.count == appenders * perThread)
      #expect(elements.sorted() == Array(0..<(appenders * perThread)))
      for thread in 0..<appenders {
        let own = elements.filter { $0 / perThread == thread }
        #expect(own == own.sorted(), "thread \(thread)'s elements out of order")
      }
    }

    /// `insert(_:at:)`, `remove(at:)` and `swapAt(_:_:)` move elements as one atomic step
    /// each, beside drop-in appends: 5 threads (more than cores) started at once, one
    /// appending, one inserting, one removing and two swapping, lose no element and make none
    /// twice. (Each thread picks its indices against the count in the same transaction.)
    @Test func insertsRemovalsAndSwapsBesideAppendsKeepEveryElementOnce() {
      let array = TArray<Int>(0..<64)
      let perThread = TestScale.scaled(300)
      let removedByThread = LockedBox<[Int]>([])
      runThreads(5) { thread in
        var random = SeededRandom(thread: thread)
        var removed: [Int] = []
        for item in 0..<perThread {
          let value = (thread + 1) * 1_000_000 + item
          switch thread {
          case 0: array.append(value)
          case 1: atomically { _ in array.insert(value, at: random.below(array.count + 1)) }
          case 2:
            if let element = atomically({ _ in array.isEmpty ? nil : array.remove(at: random.below(array.count)) }) {
              removed.append(element)
            }
          default:
            atomically { _ in
              let count = array.count
              array.swapAt(random.below(count), random.below(count))
            }
          }
        }
        if thread == 2 { removedByThread.value = removed }
      }
      let all = (array.elements + removedByThread.value).sorted()
      let expected = (Array(0..<64) + (0..<perThread).flatMap { [1_000_000 + $0, 2_000_000 + $0] }).sorted()
      #expect(all == expected)
      #expect(array.count + removedByThread.value.count == expected.count)
    }

    /// `array[i] += 1` outside a transaction is one atomic read-modify-write: 4 threads (more
    /// than cores) adding to the same two elements lose no update. (A read and then a write
    /// would let two threads read the same value and both write it plus one.)
    @Test func dropInCompoundUpdatesOfAnElementAreAtomic() {
      let array: TArray = [0, 0]
      let threads = 4, perThread = TestScale.scaled(20_000)
      runThreads(threads) { thread in
        for _ in 0..<perThread { array[thread % 2] += 1 }
      }
      #expect(array.elements == [threads / 2 * perThread, threads / 2 * perThread])
    }

    /// Drop-in `popLast` holds the count's lock too: 2 threads popping and 2 appending at
    /// once never rerun (not even when the reclaimer holds a slot for a moment: they start
    /// over rather than run a transaction), and every element appended is popped once or left
    /// in the array.
    @Test func dropInPopsAndAppendsTakeTurns() {
      let array = TArray<Int>()
      let appenders = 2, poppers = 2, perThread = TestScale.scaled(10_000)
      let popped = (0..<poppers).map { _ in LockedBox<[Int]>([]) }
      let aborts = Atomic<Int>(0), appendersDone = Atomic<Int>(0)
      runThreads(appenders + poppers) { thread in
        let before = TransactionEngine.currentThreadStatistics
        if thread < appenders {
          for item in 0..<perThread { array.append(thread * perThread + item) }
          appendersDone.add(1, ordering: .releasing)
        } else {
          var mine: [Int] = []
          while appendersDone.load(ordering: .acquiring) < appenders {
            if let item = array.popLast() { mine.append(item) }
          }
          popped[thread - appenders].value = mine
        }
        aborts.add((TransactionEngine.currentThreadStatistics - before).totalAborts, ordering: .relaxed)
      }
      #expect(aborts.load(ordering: .relaxed) == 0)
      let all = popped.flatMap(\.value) + array.elements
      #expect(all.sorted() == Array(0..<(appenders * perThread)))
      // Removing from an empty array changes nothing.
      while array.popLast() != nil {}
      #expect(array.popLast() == nil && array.count == 0)
    }

    #if DEBUG
    /// A drop-in append whose slot is held by a committing transaction (one that wrote that
    /// index while it was in bounds, before a removal) waits until that commit is over and
    /// then lands once. (It waits by letting go of the count and starting over: waiting for
    /// the slot while holding the count could deadlock with a commit that locks the two the
    /// other way round; see `TArray.appendInPlace`.)
    @Test func aDropInAppendThatFindsItsSlotHeldWaitsForIt() {
      let array: TArray<Int> = [1, 2]
      let pause = CommitNumberPause()
      defer { pause.remove() }
      let staged = Gate(), popped = Gate()
      let runs = AttemptCounter()
      let writer = startThread {
        pause.stopThisThreadsNextCommit()
        atomically { _ in
          runs.count += 1
          if array.count > 1, array[1] == 2 { array[1] = 5 }
          if runs.count == 1 {
            staged.open()
            popped.wait()
          }
        }
      }
      staged.wait()
      #expect(array.popLast() == 2)
      popped.open()
      // The writer now holds index 1's slot, with its commit number taken; the count is 1.
      pause.numbered.wait()
      let appender = startThread { array.append(7) }
      #expect(appender.wait(timeout: .now() + 0.3) == .timedOut)
      pause.release.open()
      writer.wait()
      appender.wait()
      // The writer reran (its read of index 1 was stale) and found 7 there, or no index 1 yet.
      #expect(runs.count == 2)
      #expect(array.elements == [1, 7])
    }
    #endif

    /// 4 threads (more than cores), started at once, make the cells of the same 2,000 fresh
    /// indices in the same order: whichever thread's cell an index keeps, every thread gets
    /// that one, and no index has two.
    @Test func threadsMakingTheSameCellsGetTheSameOnes() {
      let directory = _SlotDirectory<Int>()
      let threads = 4, indices = 2_000
      // Each thread's list in a box of its own: a `Mutex` captured by the threads' closure was
      // reported by Thread Sanitizer as a race on the closure's capture.
      let found = (0..<threads).map { _ in LockedBox<[ObjectIdentifier]>([]) }
      runThreads(threads) { thread in
        found[thread].value = (0..<indices).map { ObjectIdentifier(directory.slot($0)._retainedCell.takeRetainedValue()) }
      }
      let cells = found.map(\.value)
      for thread in 1..<threads { #expect(cells[thread] == cells[0], "thread \(thread) got other cells") }
      #expect(Set(cells[0]).count == indices)
      #expect(directory.madeCellCount == indices)
    }

    /// 4 threads (more than cores), started at once, append outside and inside transactions,
    /// so that several make the same indices' cells at the same moment (each tops up the
    /// cells ahead of the appends) while commits land elements in them: every index ends up
    /// with one cell, holding one element, and every element lands once.
    @Test func threadsRacingToMakeCellsAgreeOnEachIndexsCell() {
      let array = TArray<Int>()
      let threads = 4, perThread = TestScale.scaled(5_000)
      runThreads(threads) { thread in
        for item in 0..<perThread {
          let element = thread * perThread + item
          if thread % 2 == 0 { array.append(element) } else { atomically { _ in array.append(element) } }
        }
      }
      let count = array.count
      #expect(count == threads * perThread)
      #expect(array.elements.sorted() == Array(0..<(threads * perThread)))
      var cells = Set<ObjectIdentifier>()
      for index in 0..<count {
        guard let slot = array.slots.existingSlot(index) else {
          Issue.record("index \(index) has no cell")
          continue
        }
        cells.insert(ObjectIdentifier(slot._retainedCell.takeRetainedValue()))
        // The cell found now is the one the element landed in.
        #expect(slot.value != nil)
      }
      #expect(cells.count == count)
      #expect(array.slots.madeCellCount <= count + 2 * threads * _SlotDirectory<Int>.cellsMadeAhead)
    }

    /// `target.append(contentsOf: source)` of a `TArray` or a `TSet`, outside a transaction, is
    /// one atomic step: the source is read in the same step as the append lands. A writer adds
    /// `k` to the source and appends the marker `-k` to the target in one transaction, for
    /// k = 1, 2, ...; a copier appends the source and then a 0. Each copy (a run of positive
    /// elements, which lands whole) must be exactly 1 through the number of markers before it,
    /// in order for a `TArray`. Read first and appended after, a copy landed after markers
    /// whose numbers it lacked: a copy of 152 after 354 markers, of 10 after 17.
    @Test(arguments: ["TArray", "TSet"])
    func appendingATransactionalCollectionReadsItInTheSameStep(sourceKind: String) {
      let array = TArray<Int>(), set = TSet<Int>(), target = TArray<Int>()
      let writes = TestScale.scaled(400)
      let writerDone = Atomic<Bool>(false), copiesMade = Atomic<Int>(0)
      runThreads(2) { thread in
        guard thread == 0 else {
          for k in 1...writes {
            atomically { _ in
              if sourceKind == "TArray" { array.append(k) } else { set.insert(k) }
              target.append(-k)
            }
            // Every tenth write waits for a copy made since the one before, so that copies
            // interleave with the writes however the threads are scheduled (alone on a core,
            // the writer finished before any copier had begun).
            if k % 10 == 0 {
              let seen = copiesMade.load(ordering: .acquiring)
              while copiesMade.load(ordering: .acquiring) == seen { sched_yield() }
            }
          }
          writerDone.store(true, ordering: .releasing)
          return
        }
        while !writerDone.load(ordering: .acquiring) {
          if sourceKind == "TArray" { target.append(contentsOf: array) } else { target.append(contentsOf: set) }
          target.append(0)
          copiesMade.add(1, ordering: .releasing)
        }
      }
      var markers = 0, copy: [Int] = [], copies = 0, misplaced: [String] = []
      func endCopy() {
        let expected = Array(1..<(markers + 1))
        if !copy.isEmpty && (sourceKind == "TArray" ? copy : copy.sorted()) != expected {
          misplaced.append("a copy of \(copy.count) after \(markers) markers")
        }
        copies += copy.isEmpty ? 0 : 1
        copy = []
      }
      for element in target.elements {
        if element > 0 {
          copy.append(element)
        } else {
          endCopy()
          if element < 0 { markers += 1 }
        }
      }
      endCopy()
      #expect(markers == writes)
      #expect(copies > 0, "no copy of a non-empty source was made while the writer ran")
      #expect(misplaced.isEmpty, "\(misplaced.count) of \(copies) copies: \(misplaced.prefix(3))")
    }
  }
}
