@testable import STMCore
import STMTestSupport
import Synchronization
import Testing

extension LibraryTests {
  /// The scans of the snapshot slots that updates and commits make read the segments threads
  /// may have taken (`_Engine.segmentsInUse`), not the whole pool.
  @Suite struct SegmentsInUseTests {
    /// A scan sees a snapshot announced on any segment counted in use, and counting more
    /// segments in use brings theirs into the scans; counting fewer changes nothing.
    @Test func scansReadEverySegmentInUse() {
      let engine = _Engine(segmentCount: 4)
      engine.noteSegmentsInUse(upTo: 2)
      // A slot past the segments in use: no thread can have taken that segment, so no scan reads it.
      engine.segments[3].announcedSnapshot.store(5, ordering: .sequentiallyConsistent)
      #expect(engine.noSnapshotAnnounced(below: 10))
      #expect(engine.oldestAnnouncedSnapshot(bound: 10) == 10)
      engine.segments[1].announcedSnapshot.store(7, ordering: .sequentiallyConsistent)
      #expect(!engine.noSnapshotAnnounced(below: 10))
      #expect(engine.oldestAnnouncedSnapshot(bound: 10) == 7)
      #expect(engine.unnumberedOverwritePosition(for: engine.segments[0]) == nil)
      engine.noteSegmentsInUse(upTo: 1)
      #expect(engine.segmentsInUse.load(ordering: .relaxed) == 2, "the count of segments in use went down")
      #expect(engine.oldestAnnouncedSnapshot(bound: 10) == 7)
      engine.noteSegmentsInUse(upTo: 4)
      #expect(engine.oldestAnnouncedSnapshot(bound: 10) == 5)
      engine.segments[1].announcedSnapshot.store(_SnapshotSlot.withdrawn, ordering: .sequentiallyConsistent)
      engine.segments[3].announcedSnapshot.store(_SnapshotSlot.withdrawn, ordering: .sequentiallyConsistent)
      #expect(engine.noSnapshotAnnounced(below: 10))
      // With no snapshot announced, and none taken at the clock's present value, an update
      // may overwrite in place.
      engine.clock.store(20, ordering: .sequentiallyConsistent)
      #expect(engine.unnumberedOverwritePosition(for: engine.segments[0]) == 20)
    }

    /// A thread's own segment counts as in use from the thread's first operation on, before
    /// it can take the segment; otherwise an update's scan could miss the snapshot of a
    /// transaction running there. (The count is the shared engine's, which only grows: once
    /// earlier tests in the process have brought it to the whole pool, this holds whatever
    /// a new thread does, so the check bites when the suite runs on its own, or first.)
    @Test func aThreadsOwnSegmentIsInUseFromItsFirstOperation() {
      let engine = _Engine.shared
      let missing = LockedBox<[Int]>([])
      for _ in 0..<(engine.segments.count + 2) {
        startThread {
          let preferred = _ThreadContext.current.preferredSegment
          if engine.segmentsInUse.load(ordering: .relaxed) <= preferred { missing.value.append(preferred) }
        }.wait()
      }
      #expect(missing.value == [], "segments taken before they counted as in use: \(missing.value)")
    }
  }
}
