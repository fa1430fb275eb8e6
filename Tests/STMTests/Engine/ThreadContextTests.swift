import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Testing

extension LibraryTests {
  /// What each thread gets when it first uses the engine.
  @Suite struct ThreadContextTests {
    /// New threads take the segments in turn, within the pool from the start (so that a
    /// thread's first drop-in update can take the quick road), and each gets a backoff
    /// sequence of its own, even the threads a pool's length apart that share a segment
    /// (seeded by the segment, they backed off in step; found by review).
    @Test func newThreadsTakeSegmentsInTurnAndBackOffEachTheirOwnWay() {
      let count = _Engine.shared.segments.count
      let seen = LockedBox<[(segment: Int, random: UInt64)]>([])
      for _ in 0...count {
        startThread {
          let context = _ThreadContext.current
          seen.value.append((context.preferredSegment, context.nextBackoffRandom()))
        }.wait()
      }
      let segments = seen.value.map(\.segment)
      #expect(segments.allSatisfy { (0..<count).contains($0) }, "a preferred segment outside the pool: \(segments)")
      #expect(zip(segments, segments.dropFirst()).allSatisfy { ($0 + 1) % count == $1 }, "not in turn: \(segments)")
      let randoms = seen.value.map(\.random)
      #expect(Set(randoms).count == randoms.count, "two new threads share a backoff sequence")
    }

    /// A thread-exit destructor that runs after the engine's (its key was made later) and uses
    /// the engine finds no state, gets a new one, and that one is freed in turn: the engine's
    /// destructor clears the thread-local variable that operations read before it frees the
    /// state. Left pointing at the freed state, the variable handed it to the later destructor.
    @Test func aDestructorRunAfterTheEnginesGetsAFreshState() {
      _ = _ThreadContext.current
      let key = makeKey(after: _threadStateKey) { _ in LaterDestructor.run() }
      defer { pthread_key_delete(key) }
      let commitsBefore = TransactionEngine.statistics.commits
      startThread {
        LaterDestructor.counter.value += 1
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
      }.wait()
      #expect(LaterDestructor.foundAState.value == [false])
      #expect(LaterDestructor.counter.value == 2)
      #expect(TransactionEngine.statistics.commits - commitsBefore >= 2)
    }

    /// The same for the list that frees a queue's nodes one after another: a later destructor
    /// that drops a queue of many items frees its nodes through a new list, not the freed one.
    @Test func aDestructorRunAfterTheEnginesFreesAQueueThroughAFreshList() {
      // The list's key, made at a thread's first list, exists before `key`, and its destructor
      // runs first as a thread exits.
      LaterDestructor.dropAQueue()
      let key = makeKey(after: _DeferredRelease.keyForTests) { _ in LaterDestructor.dropAQueue() }
      defer { pthread_key_delete(key) }
      startThread {
        LaterDestructor.dropAQueue()
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
      }.wait()
      #expect(LaterDestructor.queuesDropped.value == 3)
      #expect(LaterDestructor.foundAList.value == [false])
    }
  }
}

/// A thread-specific key whose destructor runs after `earlier`'s as a thread exits: made with
/// a higher number (glibc runs destructors in key order, and hands out the lowest free key).
private func makeKey(
  after earlier: pthread_key_t, destructor: @escaping @convention(c) (UnsafeMutableRawPointer?) -> Void
) -> pthread_key_t {
  var lower: [pthread_key_t] = []
  defer { for key in lower { pthread_key_delete(key) } }
  while true {
    var key = pthread_key_t()
    precondition(pthread_key_create(&key, destructor) == 0, "no thread-specific key left")
    if key > earlier { return key }
    lower.append(key)
  }
}

/// What the tests of later destructors run as their threads exit.
private enum LaterDestructor {
  static let counter = TVar(0)
  static let foundAState = LockedBox<[Bool]>([])

  static func run() {
    foundAState.value.append(_ThreadState.currentIfMade != nil)
    atomically { _ in counter.value += 1 }
  }

  static let queuesDropped = LockedBox(0)

  static let foundAList = LockedBox<[Bool]>([])

  /// Makes a queue of 5,000 items and drops it: its nodes go through `_DeferredRelease`. On a
  /// thread that is exiting (its second call in the test), notes first whether the thread's
  /// list was still where operations find it.
  static func dropAQueue() {
    if queuesDropped.value == 2 { foundAList.value.append(_DeferredRelease.threadHasList) }
    do {
      let queue = TQueue<Int>()
      for item in 0..<5_000 { try? queue.enqueue(item) }
      #expect(queue.count == 5_000)
    }
    queuesDropped.value += 1
  }
}
