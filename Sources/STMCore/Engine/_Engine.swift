import Foundation
import Synchronization

/// Process-wide engine state: the segment pool, the commit clock, the reclamation horizon and
/// the inevitable token. Created on first use from ``TransactionEngine``'s configuration.
@usableFromInline
final class _Engine: @unchecked Sendable {
  @usableFromInline static let shared = _Engine(segmentCount: _Configuration.start())

  let segments: [_Segment]
  /// `segments` again, as unretained handles in a buffer that lives as long as the engine, so
  /// that the hot path of `acquireSegment` touches no reference count and no array header.
  /// Written only by `init` (which is why the class can promise `Sendable`).
  private let segmentHandles: UnsafeMutableBufferPointer<Unmanaged<_Segment>>
  /// How many segments, from the first, threads may have taken so far: raised before a thread
  /// can first take a segment at or past it, and never lowered (see `noteSegmentsInUse`).
  ///
  /// The scans that every update and commit makes of the segments' snapshot slots stop here:
  /// a pool has twice as many segments as the machine has cores (at least 8), and in a
  /// program whose threads that ever used the engine are fewer than that (each new thread
  /// gets the next segment in turn, and a thread that finds its own busy counts the whole
  /// pool), each update read the slots of segments no thread had taken (8 on a 2-core
  /// machine, 32 on a 16-core one, for one thread).
  let segmentsInUse = Atomic<Int>(0)
  /// Keeps `clock` off the cache line of the fields above, which every operation reads.
  private let paddingBeforeClock = _CacheLinePadding()
  /// The commit counter: the number of the newest commit that has taken a number. A snapshot
  /// is a value of this counter; commit numbers are taken with a fetch-and-add.
  let clock = Atomic<UInt64>(0)
  /// Keeps `clock` off the cache line of the fields below: every commit writes it, and a line
  /// shared with fields that other threads only read would move between cores on each commit.
  private let paddingAfterClock = _CacheLinePadding()
  /// Every transaction that is running now, or starts later, has a snapshot at least this
  /// large, so versions older than the newest one at or below it can be dropped.
  let horizon = Atomic<UInt64>(0)
  /// 0, or the tag of the segment running the inevitable transaction.
  let inevitableHolder = Atomic<Int>(0)
  let inevitableWaiters = _WaitList()
  let freeSegmentWaiters = _WaitList()
  let retryWaiters = _RetryRegistry()
  let reclaimer = _HistoryReclaimer()

  /// The shared engine's initializer; tests also make small engines of their own, which no
  /// thread runs transactions on, to check the engine's scans.
  init(segmentCount: Int) {
    var segments: [_Segment] = []
    for index in 0..<segmentCount {
      segments.append(_Segment(index: index))
    }
    self.segments = segments
    segmentHandles = .allocate(capacity: segmentCount)
    _ = segmentHandles.initialize(from: segments.lazy.map { Unmanaged.passUnretained($0) })
  }

  // MARK: Segments

  /// Takes a free segment for the calling thread, waiting (a pause, noted here) while all
  /// are busy. Unretained: segments live as long as the engine, and a retain here would be an
  /// atomic instruction on every operation.
  func acquireSegment(for context: _ThreadContext) -> Unmanaged<_Segment> {
    var waitStarted = 0
    let segment = acquireSegment(for: context, waitStarted: &waitStarted)
    if waitStarted != 0 { notePause(.freeSegment, since: waitStarted, context: context, segment: nil, conflictingSite: 0) }
    return segment
  }

  /// As `acquireSegment(for:)`, leaving the pause to the caller: when all segments were busy,
  /// `waitStarted` says since when, so that a transaction can note the wait once its segment
  /// shows its `atomically` call (noted without one, it read as a single operation's).
  func acquireSegment(for context: _ThreadContext, waitStarted: inout Int) -> Unmanaged<_Segment> {
    // Almost always the thread's own segment is free: one compare-and-swap on a line that
    // other threads touch only when their own segments are busy.
    if let preferred = tryAcquirePreferredSegment(for: context) { return preferred }
    return acquireAnotherSegment(for: context, waitStarted: &waitStarted)
  }

  /// The calling thread's own segment if it is free; nil otherwise, without searching or
  /// waiting.
  @inline(__always)
  func tryAcquirePreferredSegment(for context: _ThreadContext) -> Unmanaged<_Segment>? {
    guard context.preferredSegment < segmentHandles.count else { return nil }
    let preferred = segmentHandles[context.preferredSegment]
    return preferred._withUnsafeGuaranteedRef { $0.tryAcquire() } ? preferred : nil
  }

  /// `acquireSegment(for:)` when the thread's own segment is busy. Out of line: inlined, its
  /// waiting code gave the fast path a stack frame of unknown size, a metadata lookup and a
  /// stack check on every operation.
  @inline(never)
  private func acquireAnotherSegment(for context: _ThreadContext, waitStarted: inout Int) -> Unmanaged<_Segment> {
    // The search below may take any segment.
    noteSegmentsInUse(upTo: segmentHandles.count)
    if let segment = tryAcquireSegment(preferring: context.preferredSegment) {
      context.preferredSegment = segment._withUnsafeGuaranteedRef { $0.index }
      return segment
    }
    waitStarted = _monotonicNanoseconds()
    _notePauseBegan()
    while true {
      let waiter = _Waiter()
      freeSegmentWaiters.enqueue(waiter)
      // Re-check after enqueueing: a release that happened before the enqueue saw no waiter.
      if let segment = tryAcquireSegment(preferring: context.preferredSegment) {
        freeSegmentWaiters.remove(waiter)
        context.preferredSegment = segment._withUnsafeGuaranteedRef { $0.index }
        return segment
      }
      // A release does not fence before it looks for waiters (that would cost every transaction
      // a full barrier), so a wake-up can be missed; waking up on a short timer bounds the cost
      // of that rare race in this already-rare situation.
      if !waiter.block(timeoutMilliseconds: 1) { freeSegmentWaiters.remove(waiter) }
    }
  }

  private func tryAcquireSegment(preferring preferred: Int) -> Unmanaged<_Segment>? {
    let count = segmentHandles.count
    for offset in 0..<count {
      let segment = segmentHandles[(preferred &+ offset) % count]
      if segment._withUnsafeGuaranteedRef({ $0.tryAcquire() }) { return segment }
    }
    return nil
  }

  /// Counts the first `count` segments as in use, before the calling thread takes one of them.
  ///
  /// A scan of the snapshot slots that reads `segmentsInUse` after it read the clock (or took a
  /// number) and skips a segment taken for the first time meanwhile misses nothing it needs.
  /// The calling thread's own load or exchange below, sequentially consistent like the scan's
  /// load, reads the raised count, so it follows the scan's load (which read an older one) in
  /// the single total order, and the segment's first announcement follows it there. The
  /// snapshot announced, read from the clock after that, is at or above anything the scan
  /// compares it with (its clock, its number), and a reader announcing that late meets an
  /// update's lock as readers on segments in use do (see `unnumberedOverwritePosition(for:)`).
  /// (An acquiring load that found the count raised by another thread would not do: in the
  /// language's memory model it orders nothing against the scan's load. Found by review.)
  func noteSegmentsInUse(upTo count: Int) {
    var current = segmentsInUse.load(ordering: .sequentiallyConsistent)
    while current < count {
      let (exchanged, original) = segmentsInUse.compareExchange(
        expected: current, desired: count, ordering: .sequentiallyConsistent)
      if exchanged { return }
      current = original
    }
  }

  /// The segments that a scan of the snapshot slots must read (see `noteSegmentsInUse`):
  /// call after reading the clock, or taking a number, that the scan compares with.
  @inline(__always)
  private var segmentsToScan: UnsafeMutableBufferPointer<Unmanaged<_Segment>> {
    UnsafeMutableBufferPointer(rebasing: segmentHandles.prefix(segmentsInUse.load(ordering: .sequentiallyConsistent)))
  }

  /// The commit number (or `_CommitNumber` sentinel) the segment tagged `tag` shows, read
  /// acquiring; through the unretained handles, so that a validating commit retains nothing.
  func commitNumber(ofSegmentTagged tag: Int) -> UInt64 {
    segmentHandles[tag - 1]._withUnsafeGuaranteedRef { $0.commitNumber.load(ordering: .acquiring) }
  }

  /// The same, read sequentially consistent, for a reader that found the segment holding a
  /// cell it reads (`_Segment.visibleVersion`). An update without a number shows `numbering`
  /// (a sequentially consistent exchange) after it took the lock and before its scan of the
  /// snapshots; the reader announced its snapshot before it looked at the lock. Acquiring, the
  /// memory model (not x86 or arm64 hardware) let the reader see the `unnumbered` shown
  /// before, and read the version the update was overwriting (found by review). The same
  /// instruction on x86.
  func commitNumberForReader(ofSegmentTagged tag: Int) -> UInt64 {
    segmentHandles[tag - 1]._withUnsafeGuaranteedRef { $0.commitNumber.load(ordering: .sequentiallyConsistent) }
  }

  func releaseSegment(_ segment: _Segment) {
    segment.release()
    freeSegmentWaiters.wakeAllWithoutFence()
  }

  // MARK: Snapshots and reclamation

  /// Publishes that `segment` is about to read at a snapshot, and returns that snapshot.
  ///
  /// The announcement is stored before the snapshot is read (both sequentially consistent), so a
  /// concurrent `recomputeHorizon()` either sees the announcement or read the clock before this
  /// snapshot was taken; either way the horizon it computes is at most this snapshot.
  func announceSnapshot(for segment: _Segment) -> UInt64 {
    segment.announcedSnapshot.store(clock.load(ordering: .sequentiallyConsistent), ordering: .sequentiallyConsistent)
    let snapshot = clock.load(ordering: .sequentiallyConsistent)
    segment.newestSnapshot = snapshot
    return snapshot
  }

  /// Publishes that `segment` is about to look a key up in an index without a lock (see
  /// `_SingleOperation`), and returns the clock it announced: whatever leaves an index after
  /// the announcement is stamped with a clock not earlier than it, so it is not freed before
  /// the announcement is withdrawn. The value is no snapshot to read at, so the caller reads
  /// only under commit locks.
  ///
  /// Any clock value already passed will do, and an older one only keeps retired cells a
  /// little longer. So the announcement reads neither the clock, whose line every commit
  /// writes (at two threads, reading it before taking a commit number moved that line twice
  /// per drop-in update), nor anything else that moves: it is the later of `known` (a clock
  /// value the calling thread saw, such as its last commit number) and the horizon (read
  /// acquiring: whatever the horizon's writer read of the clock then happened before this
  /// announcement, so a cell whose removal read an older clock left the index before the
  /// lookup starts).
  ///
  /// It goes in the segment's `occupancy` word, not its snapshot slot: a lookup pins what leaves
  /// an index (see `oldestAnnouncedAccess()`), not versions, and keeping it off the snapshot
  /// slot's line spares the commits that read every snapshot slot a line that moves between
  /// cores on every drop-in update.
  ///
  /// The caller holds `segment`: the announcement shares a word with the segment's occupancy,
  /// so a store into a segment nobody holds would hand it out, or lock it out for good.
  func announceForLookup(for segment: _Segment, after known: UInt64) -> UInt64 {
    assert(segment.occupancy.load(ordering: .relaxed) != _SegmentOccupancy.free, "announcing a lookup on a free segment")
    let announced = lookupAnnouncement(after: known)
    segment.occupancy.store(announced, ordering: .sequentiallyConsistent)
    return announced
  }

  /// The clock value a lookup announces (see `announceForLookup(for:after:)`).
  @inline(__always)
  func lookupAnnouncement(after known: UInt64) -> UInt64 {
    max(known, horizon.load(ordering: .acquiring))
  }

  /// For the drop-in update's quick road (`_QuickUpdate`): `tryAcquirePreferredSegment(for:)`
  /// and `announceForLookup(for:after:)` in one compare-and-swap of the segment's `occupancy`;
  /// nil, holding and announcing nothing, if the thread's own segment is busy. Returns the
  /// segment and the clock value announced.
  ///
  /// `marking`: the word also marks the update as a commit in flight
  /// (`_SegmentOccupancy.quickUpdate`), and the call returns nil, holding nothing, if a
  /// transaction is inevitable (the general road waits for it). The mark stands for
  /// `_Segment.committing` until the update locks its cell (`enterCommitAfterQuickLookup(_:)`):
  /// the exchange and the token's load after it are the Dekker pairing that `enterCommit`
  /// makes with its flag's store, so the update's commit needs no fenced instruction of its
  /// own for it (one of the four it took). Only for a key whose `==` is the standard
  /// library's: a transaction taking the token waits for the lookup, and a key's own `==`
  /// that wrote transactional data (waiting for that transaction to end) would then wait for
  /// good (found by review).
  @inline(__always)
  func tryAcquirePreferredSegment(
    for context: _ThreadContext, announcingQuickLookupAfter known: UInt64, marking: Bool
  ) -> (segment: Unmanaged<_Segment>, announced: UInt64)? {
    guard context.preferredSegment < segmentHandles.count else { return nil }
    let preferred = segmentHandles[context.preferredSegment]
    // Read before the exchange, as `announceForLookup` reads it before its store.
    let announced = lookupAnnouncement(after: known)
    assert(announced < _SegmentOccupancy.quickUpdate, "the clock has reached 2^62")
    let word = marking ? announced | _SegmentOccupancy.quickUpdate : announced
    guard preferred._withUnsafeGuaranteedRef({ $0.tryAcquire(announcingLookup: word) }) else { return nil }
    #if DEBUG
    context.quickUpdatesBegun += 1
    #endif
    // After the exchange: a transaction that takes the token from now on waits for this
    // update, and one that took it before is seen here.
    if marking && inevitableHolder.load(ordering: .sequentiallyConsistent) != 0 {
      // Without `releaseSegment`'s wake-up of threads waiting for a free segment: they look
      // again every millisecond (`acquireAnotherSegment`), and a call here kept the quick
      // road's start out of line (a call and 20 instructions more on every update).
      preferred._withUnsafeGuaranteedRef { $0.release() }
      return nil
    }
    return (preferred, announced)
  }

  /// Takes `context`'s own segment for a quick update (`_QuickUpdate.start`), announcing its
  /// lookup; nil, holding nothing, when the quick road is closed now.
  @inline(__always)
  func tryBeginQuickUpdate(for context: _ThreadContext, markingTheLookup: Bool) -> Unmanaged<_Segment>? {
    guard let (segment, announced) = tryAcquirePreferredSegment(
      for: context, announcingQuickLookupAfter: context.lastCommit.number, marking: markingTheLookup)
    else { return nil }
    segment._withUnsafeGuaranteedRef { segment in
      segment.context = context
      segment.snapshot = announced
    }
    return segment
  }


  /// Hands a quick road's segment, its lookup still announced, to the general road: takes the
  /// quick update's mark off, if it made one (see
  /// `tryAcquirePreferredSegment(for:announcingQuickLookupAfter:marking:)`),
  /// so that a transaction becoming inevitable stops waiting for it; the general road marks
  /// its commit itself (`enterCommit`), and waits there for that transaction.
  func dropQuickUpdateMark(of segment: _Segment) {
    let word = segment.occupancy.load(ordering: .relaxed)
    segment.occupancy.store(_SegmentOccupancy.announcedLookup(word), ordering: .releasing)
  }

  /// Withdraws `segment`'s snapshot, leaving the newest one it announced in the slot (see
  /// `_Segment.announcedSnapshot`).
  func withdrawSnapshot(for segment: _Segment) {
    segment.announcedSnapshot.store(_SnapshotSlot.withdrawn | segment.newestSnapshot, ordering: .releasing)
  }

  /// Withdraws `segment`'s lookup announcement; the caller holds `segment` (see
  /// `announceForLookup(for:after:)`).
  func withdrawLookup(for segment: _Segment) {
    assert(segment.occupancy.load(ordering: .relaxed) != _SegmentOccupancy.free, "withdrawing a lookup on a free segment")
    segment.occupancy.store(_SegmentOccupancy.held, ordering: .releasing)
  }

  /// The oldest snapshot announced now, or `bound` if none is older: with the clock as
  /// `bound`, every running and future transaction reads at this snapshot or a later one.
  /// (See `announceSnapshot(for:)` for why a snapshot being announced meanwhile cannot be
  /// older.)
  func oldestAnnouncedSnapshot(bound: UInt64? = nil) -> UInt64 {
    var oldest = bound ?? clock.load(ordering: .sequentiallyConsistent)
    // Through the unretained handles: a drop-in update scans on every write (see
    // `trimHistory`), and iterating `segments` retained and released each one.
    for segment in segmentsToScan {
      oldest = min(oldest, segment._withUnsafeGuaranteedRef { $0.announcedSnapshot.load(ordering: .sequentiallyConsistent) })
    }
    return oldest
  }

  /// Whether no segment announces a snapshot below `number`: `oldestAnnouncedSnapshot(bound:
  /// number) >= number`, asked on every drop-in update, in a loop that stops at the first
  /// such snapshot instead of keeping a minimum.
  func noSnapshotAnnounced(below number: UInt64) -> Bool {
    for segment in segmentsToScan {
      let announced = segment._withUnsafeGuaranteedRef { $0.announcedSnapshot.load(ordering: .sequentiallyConsistent) }
      if announced < number { return false }
    }
    return true
  }

  /// Where a drop-in update of one cell (and perhaps of a count beside it: see
  /// `unnumberedOverwrite(of:commutingWith:by:)`), which holds the commit locks, stands in the
  /// serial order if it overwrites the cell's only version in place without taking a commit
  /// number: just after the commits numbered up to the returned clock value, and before every
  /// snapshot taken at that value or later. Nil when it must take a number instead: some
  /// snapshot is announced, or one was taken at the clock's present value.
  ///
  /// Taking no number leaves the clock's line alone: at two threads, the fetch-and-add that
  /// every drop-in update made moved that line between the cores on every update, and capped
  /// updates of disjoint keys near one thread's speed. Leaving the version's stamp as it is
  /// is safe under the conditions checked here:
  /// - No transaction can have read the version: one that read it announced a snapshot, kept
  ///   it announced until it had validated its reads, and registered as a waiter before
  ///   withdrawing it; this scan would have found it (so the update would take a number, and
  ///   a new stamp, as ever), or it saw the withdrawal and so this update wakes it.
  /// - No snapshot can see the value change under it: the update shows `numbering`, the
  ///   sequentially consistent exchange below (or, on the quick road, which shows it before
  ///   locking, the lock's compare-and-swap) is a full fence, and a reader announcing after
  ///   this scan meets the cell's lock and waits for it (`_CommitNumber.mayPrecede`), then
  ///   reads the new value at the old stamp, which its snapshot covers.
  /// - The order stays serial: snapshots taken at the returned value or above it see this
  ///   update, as they must (it ended before they started, or they waited for it), and none
  ///   taken at the returned value before the update exists (a withdrawn slot keeps the
  ///   newest snapshot its segment took, in the same word), so those that did not see it are
  ///   below it. Commits numbered at or below the value validated before this scan (their
  ///   snapshots were announced until then), and the next number taken is above it.
  /// Two such updates of different cells may share a position: neither reads what the other
  /// writes, and no snapshot sees one without the other. Updates of one cell are told apart
  /// by the version's `overwrites` count. Two membership changes may also share a count cell,
  /// and then a position and even an `overwrites` count (each reports its key's): they add
  /// to the count without deciding anything from it, so either order is the same (see
  /// `unnumberedOverwrite(of:commutingWith:by:)`).
  @inline(__always)
  func unnumberedOverwritePosition(for segment: _Segment) -> UInt64? {
    // A segment that shows `numbering` now showed it before this operation's first lock,
    // whose sequentially consistent compare-and-swap fenced it: every commit and update
    // stores `unnumbered` or `numbering` before its first lock, `numbering` only on the quick
    // road (`enterCommitAfterQuickLookup(_:)` or `tryEnterCommit(_:showing:)`), and only this
    // thread writes its segment's number.
    if segment.commitNumber.load(ordering: .relaxed) != _CommitNumber.numbering {
      _ = segment.commitNumber.exchange(_CommitNumber.numbering, ordering: .sequentiallyConsistent)
    }
    // The clock is read on both sides of the scan, and a move gives up: it keeps the argument
    // above to one clock value (a commit that took a number meanwhile could not have read the
    // cell unseen anyway: it validates after numbering, and would meet the lock).
    let position = clock.load(ordering: .sequentiallyConsistent)
    for handle in segmentsToScan {
      let slot = handle._withUnsafeGuaranteedRef { $0.announcedSnapshot.load(ordering: .sequentiallyConsistent) }
      // Withdrawn, with a newest snapshot below `position`; an announced snapshot (below
      // `withdrawn`) wraps around to above it.
      if slot &- _SnapshotSlot.withdrawn >= position { return nil }
    }
    guard clock.load(ordering: .sequentiallyConsistent) == position else { return nil }
    return position
  }

  /// A clock that every running snapshot and every lookup under way started at or after:
  /// what has left an index since this clock may still be in use; what left before may go.
  /// Raises the horizon on the way.
  func oldestAnnouncedAccess() -> UInt64 {
    var oldest = recomputeHorizon()
    for segment in segments {
      // A segment that announces no lookup shows a sentinel above any clock value.
      oldest = min(oldest, _SegmentOccupancy.announcedLookup(segment.occupancy.load(ordering: .sequentiallyConsistent)))
    }
    return oldest
  }

  /// Raises the reclamation horizon to the oldest snapshot still announced.
  @discardableResult
  func recomputeHorizon() -> UInt64 {
    let oldest = oldestAnnouncedSnapshot()
    var current = horizon.load(ordering: .acquiring)
    while current < oldest {
      let (exchanged, original) = horizon.compareExchange(
        expected: current, desired: oldest, ordering: .acquiringAndReleasing)
      if exchanged { return oldest }
      current = original
    }
    return current
  }

  // MARK: Inevitability

  /// Makes `segment`'s transaction the inevitable one: waits for the token, then for every
  /// commit in flight to finish, after which no other transaction can commit a write until the
  /// token is released.
  func acquireInevitability(for segment: _Segment, context: _ThreadContext) {
    if inevitableHolder.load(ordering: .relaxed) == segment.tag { return }
    var pausedSince: Int?
    var holderSite: UInt32 = 0
    while true {
      let (acquired, holder) = inevitableHolder.compareExchange(
        expected: 0, desired: segment.tag, ordering: .sequentiallyConsistent)
      if acquired { break }
      if holder == segment.tag { break }
      if pausedSince == nil {
        pausedSince = _monotonicNanoseconds()
        holderSite = site(ofSegmentTagged: holder)
        _notePauseBegan()
      }
      waitForInevitableTransaction(since: pausedSince!)
    }
    if let pausedSince {
      notePause(.inevitable, since: pausedSince, context: context, segment: segment, conflictingSite: holderSite)
    }
    // Dekker pairing with `enterCommit`: we stored the token (sequentially consistent) and now
    // read every `committing` flag; a committer stores its flag and then reads the token. One of
    // the two sees the other, so no commit slips past unseen. The quick road's compare-and-swap
    // of its occupancy word stands for its flag until it locks (see
    // `tryAcquirePreferredSegment(for:announcingQuickLookupAfter:marking:)`).
    for other in segments where other !== segment {
      var backoff = _Backoff()
      while other.mayBeCommitting {
        backoff.pause()
      }
    }
  }

  /// Tells the conflict log that `segment`'s transaction became inevitable: once it holds, so
  /// that a `becomeInevitable()` that finds a stale read, and reruns inevitable from the
  /// start, counts once.
  func noteBecameInevitable(_ segment: _Segment) {
    guard _ConflictRecorder.isRecording else { return }
    let site = segment.siteNumber.load(ordering: .relaxed)
    _ConflictRecorder.shared.record(.inevitable, .inevitable, nanoseconds: 0, site: site, conflictingSite: 0)
  }

  /// Blocks until the inevitable transaction has ended (or a wake-up races with the check).
  ///
  /// An inevitable transaction whose body waits for another thread that is itself waiting here
  /// can never finish; the engine cannot tell that from a long inevitable transaction, so after
  /// ten seconds it says so once on standard error and goes on waiting.
  private func waitForInevitableTransaction(since started: Int) {
    let waiter = _Waiter()
    inevitableWaiters.enqueue(waiter)
    guard inevitableHolder.load(ordering: .sequentiallyConsistent) != 0 else {
      inevitableWaiters.remove(waiter)
      return
    }
    // Callers re-check the token and wait again, so a timed-out wait only re-arms the check.
    if !waiter.block(timeoutMilliseconds: 1_000) {
      inevitableWaiters.remove(waiter)
      if _monotonicNanoseconds() - started > 10_000_000_000 { _warnAboutLongInevitableWait() }
    }
  }

  func releaseInevitability(for segment: _Segment) {
    let (released, _) = inevitableHolder.compareExchange(
      expected: segment.tag, desired: 0, ordering: .sequentiallyConsistent)
    if released { inevitableWaiters.wakeAll() }
  }

  /// Marks `segment` as committing, waiting (a pause) while another transaction is inevitable.
  func enterCommit(_ segment: _Segment, context: _ThreadContext) {
    if tryEnterCommit(segment) { return }
    waitToEnterCommit(segment, context: context)
    segment.commitNumber.store(_CommitNumber.unnumbered, ordering: .releasing)
  }

  /// The quick road's `tryEnterCommit`, after a marked lookup: marks `segment` committing and
  /// shows `_CommitNumber.numbering`, before the update locks its cell. Neither store is
  /// fenced.
  ///
  /// - The commit mark needs no token check: the quick update's occupancy word marked it as a
  ///   commit in flight, which a transaction taking the token waits for, since before it
  ///   looked the token up (see
  ///   `tryAcquirePreferredSegment(for:announcingQuickLookupAfter:marking:)`). This mark is
  ///   stored before the lookup is withdrawn (a releasing store), so the mark goes on standing
  ///   without a gap. (After a lookup that was not marked, the quick road calls
  ///   `tryEnterCommit(_:showing:)`, fenced, showing `numbering` too.)
  /// - `numbering` from the start: the update ends either numbered or overwriting without a
  ///   number, and readers that meet its lock must wait for it in the second case. Shown
  ///   before the lock's compare-and-swap (sequentially consistent), it is seen by whoever
  ///   sees the lock, and that compare-and-swap is the fence that
  ///   `unnumberedOverwritePosition(for:)` needs before it scans the snapshots: the exchange
  ///   it makes otherwise, a fenced instruction, is left out. Readers of the key wait for the
  ///   update's whole mutation instead of carrying on before it, and a validating commit that
  ///   read the key counts the update as a conflict for that long (see `_CommitNumber`): on
  ///   the quick road that is the caller's change to a trivially copyable value, such as
  ///   `+= 1`, and the load of the value's version.
  @inline(__always)
  func enterCommitAfterQuickLookup(_ segment: _Segment) {
    segment.committing.store(true, ordering: .relaxed)
    segment.commitNumber.store(_CommitNumber.numbering, ordering: .releasing)
  }

  /// Marks `segment` as committing unless another segment's transaction is inevitable; returns
  /// whether it did (if not, the mark is withdrawn). Shows `shown`: `_CommitNumber.unnumbered`,
  /// or `numbering` for the quick road (see `enterCommitAfterQuickLookup(_:)`).
  @inline(__always)
  func tryEnterCommit(_ segment: _Segment, showing shown: UInt64 = _CommitNumber.unnumbered) -> Bool {
    segment.committing.store(true, ordering: .sequentiallyConsistent)
    let holder = inevitableHolder.load(ordering: .sequentiallyConsistent)
    guard holder == 0 || holder == segment.tag else {
      segment.committing.store(false, ordering: .sequentiallyConsistent)
      return false
    }
    // Release: a reader that meets one of this segment's earlier commit locks and then reads
    // this value must also see that commit's versions.
    segment.commitNumber.store(shown, ordering: .releasing)
    return true
  }

  /// `enterCommit` while another segment's transaction is inevitable: withdraws the mark,
  /// waits for that transaction to end, and marks again. Out of line, so that the common case
  /// stays a few instructions.
  @inline(never)
  private func waitToEnterCommit(_ segment: _Segment, context: _ThreadContext) {
    var pausedSince: Int?
    var holderSite: UInt32 = 0
    while true {
      segment.committing.store(true, ordering: .sequentiallyConsistent)
      let holder = inevitableHolder.load(ordering: .sequentiallyConsistent)
      if holder == 0 || holder == segment.tag { break }
      segment.committing.store(false, ordering: .sequentiallyConsistent)
      if pausedSince == nil {
        pausedSince = _monotonicNanoseconds()
        holderSite = site(ofSegmentTagged: holder)
        _notePauseBegan()
      }
      waitForInevitableTransaction(since: pausedSince!)
    }
    if let pausedSince {
      notePause(.inevitable, since: pausedSince, context: context, segment: segment, conflictingSite: holderSite)
    }
  }

  func leaveCommit(_ segment: _Segment) {
    segment.committing.store(false, ordering: .releasing)
  }
}

/// Start-up configuration, fixed when the engine first runs a transaction.
enum _Configuration {
  private struct State {
    var segmentCount: Int?
    var started = false
  }
  private static let state = _Lock(State())

  /// The segment count used when neither ``TransactionEngine/configure(segmentCount:)`` nor
  /// `STM_SEGMENTS` says otherwise: twice the cores, at least 8, at most 64, so that an
  /// oversubscribed program rarely waits for a segment while the pool stays small to scan.
  static var defaultSegmentCount: Int {
    min(64, max(8, 2 * ProcessInfo.processInfo.activeProcessorCount))
  }

  static func environmentSegmentCount(
    _ environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> Int? {
    guard let text = environment["STM_SEGMENTS"] else { return nil }
    guard let count = parseSegmentCount(text) else {
      fatalError("STM_SEGMENTS must be a whole number from 1 to 1024, not '\(text)'. Unset it to use the default.")
    }
    return count
  }

  static func parseSegmentCount(_ text: String) -> Int? {
    guard let count = Int(text.trimmingCharacters(in: .whitespaces)), (1...1024).contains(count) else {
      return nil
    }
    return count
  }

  static func start() -> Int {
    state.withLock { state in
      state.started = true
      return state.segmentCount ?? environmentSegmentCount() ?? defaultSegmentCount
    }
  }

  static func configure(segmentCount: Int) throws(TransactionEngineError) {
    guard (1...1024).contains(segmentCount) else {
      throw .invalidSegmentCount(segmentCount)
    }
    try state.withLock { (state: inout State) throws(TransactionEngineError) in
      if state.started { throw .alreadyStarted }
      state.segmentCount = segmentCount
    }
  }
}

private let _longInevitableWaitWarned = Atomic<Bool>(false)

/// Says once per process that a thread has waited very long for the inevitable transaction.
private func _warnAboutLongInevitableWait() {
  guard !_longInevitableWaitWarned.exchange(true, ordering: .relaxed) else { return }
  let message = "swift-stm: a transaction has waited more than 10 s for the inevitable transaction. "
    + "If the inevitable transaction's body waits for this thread (a semaphore, a join, a sync "
    + "dispatch), that is a deadlock: an inevitable transaction must not wait for other transactions.\n"
  FileHandle.standardError.write(Data(message.utf8))
}

/// 64 bytes of nothing: a stored property of this type between two others puts them on
/// different cache lines (stored properties of a class are laid out in declaration order).
package struct _CacheLinePadding {
  private let words: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)

  package init() {}
}
