import Foundation
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
  }
}
