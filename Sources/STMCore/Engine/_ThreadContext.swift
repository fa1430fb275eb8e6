import Synchronization
import _STMThreadLocal
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The per-thread state that hot paths read: a plain struct behind a thread-local pointer, so
/// that finding the running transaction costs no reference counting.
@usableFromInline
struct _ThreadState {
  /// The segment of the transaction running on this thread, or nil outside `atomically`.
  /// Unretained: segments live as long as the process.
  @usableFromInline var segment: Unmanaged<_Segment>?
  /// Set while code runs where touching transactional data would deadlock or corrupt a commit
  /// (an in-place mutation outside a transaction holds a cell's commit lock; a commute's
  /// transform runs while its commit publishes); such access traps with this message.
  @usableFromInline var forbiddenAccess: _Misuse? = nil
  /// The thread's context, retained by this state until the thread exits.
  @usableFromInline let context: Unmanaged<_ThreadContext>
  /// How many releases of values that drop-in updates wrote over are under way on the thread,
  /// one inside another, and the values written over by those past the deepest allowed,
  /// released after it (see `release(writtenOver:by:)`).
  @usableFromInline var writtenOverReleaseDepth = 0
  @usableFromInline var writtenOverWaiting: [Any] = []

  /// The calling thread's state, created on first use. Found in a C thread-local variable
  /// (`_STMThreadLocal`): on ELF platforms one load, where `pthread_getspecific` was a call of
  /// about 17 instructions and a load of the key, made by every operation.
  @inlinable
  static var current: UnsafeMutablePointer<_ThreadState> {
    @inline(__always) get {
      if let raw = _stm_current_thread_state() {
        return raw.assumingMemoryBound(to: _ThreadState.self)
      }
      return _ThreadContext.makeCurrentState()
    }
  }

  /// The calling thread's state, or nil if the thread has not used the engine yet: unlike
  /// `current`, this does not start the engine (see `TransactionEngine`).
  @inlinable
  static var currentIfMade: UnsafeMutablePointer<_ThreadState>? {
    _stm_current_thread_state()?.assumingMemoryBound(to: _ThreadState.self)
  }
}

/// What the engine keeps per thread: the transaction running on it (found implicitly, so that
/// `TVar` operations need no transaction argument), the segment it prefers, and its counters.
@usableFromInline
final class _ThreadContext: @unchecked Sendable {
  // Only the owning thread touches the stored properties, except `statistics`, whose fields
  // are atomics that any thread may read. That is also why dynamic exclusivity checks are off.

  /// The thread's hot state; owned by the thread-specific key (see `_threadStateKey`), whose
  /// destructor frees it as the thread exits.
  @usableFromInline let state: UnsafeMutablePointer<_ThreadState>

  /// The segment of the transaction running on this thread, or nil outside `atomically`.
  @usableFromInline var segment: _Segment? {
    get { state.pointee.segment?.takeUnretainedValue() }
    set { state.pointee.segment = newValue.map(Unmanaged.passUnretained) }
  }
  /// See `_ThreadState.forbiddenAccess`.
  @usableFromInline var forbiddenAccess: _Misuse? {
    get { state.pointee.forbiddenAccess }
    set { state.pointee.forbiddenAccess = newValue }
  }
  /// `_Engine.shared`, kept here because reading a lazily made global checks that it is made,
  /// a call on every read; single operations outside transactions take it from here.
  /// Unmanaged, so that reading it costs no reference counting either.
  @usableFromInline let engine: Unmanaged<_Engine> = .passUnretained(_Engine.shared)
  /// The segment this thread used last; trying it first keeps each thread on its own lines.
  @exclusivity(unchecked) var preferredSegment: Int
  let statistics = _StatisticsCounters()
  /// Where this thread's last committed transaction sits in the serial order: a writing commit
  /// takes its commit number; a read-only one sits just after the commit its snapshot saw.
  /// Tests replay transactions in this order.
  @exclusivity(unchecked) var lastCommit = _SerialPosition(number: 0, isReadOnly: true)
  /// What this thread's last attempt or drop-in update let go of while it held its segment or
  /// a lock, freed once it held neither (see `_Leftovers`); empty in between.
  @exclusivity(unchecked) var leftovers = _Leftovers()
  /// Set while `releaseLeftovers()` runs, and what the deinits it runs set aside meanwhile.
  @exclusivity(unchecked) var isReleasingLeftovers = false
  @exclusivity(unchecked) var setAsideWhileReleasing: [_Leftovers] = []
  /// How many calls of `releaseLeftovers()` nested in another are freeing what was set aside
  /// meanwhile: at `maximumReleaseNesting`, deeper calls leave theirs to the innermost.
  @exclusivity(unchecked) var setAsideReleaseDepth = 0
  /// The most nested releases of what deinits set aside: deep enough for deinits that free
  /// values whose deinits run transactions, shallow enough for any thread's stack.
  @inlinable static var maximumReleaseNesting: Int { 16 }
  /// The conflict log's state for this thread (see `_ThreadDiagnostics`).
  @exclusivity(unchecked) var diagnostics = _ThreadDiagnostics()
  /// Versions this thread's commits dropped, for its next writes to reuse.
  let versionCache = _VersionCache()
  #if DEBUG
  /// Drop-in updates this thread began on the quick road (`_QuickUpdate`), for tests that
  /// must know the road was taken.
  @exclusivity(unchecked) var quickUpdatesBegun = 0
  /// Single operations outside transactions this thread began by taking a segment of its own
  /// (`_EngineEntry.beginSingleOperation`), for tests that must know a road was continued, not
  /// begun again.
  @exclusivity(unchecked) var singleOperationsBegun = 0
  /// How long this thread's transactions must have run to take the reclaimer's turn as they
  /// end, if anything waits for it (`_HistoryReclaimer.keeperTurnAfter`): tests set `.min`, to
  /// make a turn certain (the clock read at the end may lag the one read at the start), or
  /// `.max`, to leave what they kept to a later commit's turn.
  @exclusivity(unchecked) var keeperTurnAfter = _HistoryReclaimer.keeperTurnAfter
  #endif
  #if !DEBUG
  /// See the debug build's property, which tests set.
  var keeperTurnAfter: Int { _HistoryReclaimer.keeperTurnAfter }
  #endif
  /// xorshift state for randomized backoff; per thread, so threads do not back off in step.
  @exclusivity(unchecked) var backoffRandom: UInt64

  /// The context of the thread that came `turn`-th to the engine (from 0).
  private init(turn: Int, segmentCount: Int, state: UnsafeMutablePointer<_ThreadState>) {
    preferredSegment = turn % segmentCount
    self.state = state
    // Seeded by the turn, not the preferred segment: threads a pool's length apart share a
    // segment, and would back off in step (found by review).
    backoffRandom = 0x9E37_79B9_7F4A_7C15 &* UInt64(turn + 1)
  }

  /// A pseudo-random number for backoff decisions.
  func nextBackoffRandom() -> UInt64 {
    backoffRandom ^= backoffRandom >> 12
    backoffRandom ^= backoffRandom << 25
    backoffRandom ^= backoffRandom >> 27
    return backoffRandom &* 0x2545_F491_4F6C_DD1D
  }

  /// A version of type `type` from the cache of `context` (the calling thread's), retained
  /// once for the caller, if it has one.
  @usableFromInline
  static func takeCachedVersion(_ type: ObjectIdentifier, from context: Unmanaged<_ThreadContext>) -> Unmanaged<_VersionBase>? {
    context._withUnsafeGuaranteedRef { $0.versionCache.take(type) }
  }

  /// The calling thread's context, created on first use.
  @usableFromInline
  static var current: _ThreadContext {
    @inline(__always) get { _ThreadState.current.pointee.context.takeUnretainedValue() }
  }

  @usableFromInline @inline(never)
  static func makeCurrentState() -> UnsafeMutablePointer<_ThreadState> {
    // The thread-specific key owns the state; the thread-local variable only finds it. Where
    // the variable was torn down before the key's destructor ran (the loader's own teardown
    // of thread-local storage, on platforms whose order this library does not control), a
    // destructor that uses the engine in between finds the state the key still holds, rather
    // than making a second one over it, which would never be freed (noted by review).
    if let owned = pthread_getspecific(_threadStateKey) {
      let state = owned.assumingMemoryBound(to: _ThreadState.self)
      _stm_set_current_thread_state(state)
      return state
    }
    let state = UnsafeMutablePointer<_ThreadState>.allocate(capacity: 1)
    // Threads take the segments in turn. Within the pool from the start: a preference beyond
    // it made a thread's first operation search for a segment, and its first drop-in update
    // miss the quick road (`_QuickUpdate`; found by review).
    let turn = nextTurn.add(1, ordering: .relaxed).oldValue
    let context = _ThreadContext(turn: turn, segmentCount: _Engine.shared.segments.count, state: state)
    _Engine.shared.noteSegmentsInUse(upTo: context.preferredSegment + 1)
    state.initialize(to: _ThreadState(segment: nil, context: Unmanaged.passRetained(context)))
    // The key owns the state: its value has the destructor free it as the thread exits, and
    // finds it again for a thread whose variable was torn down first (above).
    pthread_setspecific(_threadStateKey, state)
    _stm_set_current_thread_state(state)
    _StatisticsRegistry.shared.register(context.statistics)
    _ = readConflictLogEnvironment
    return state
  }

  /// `STM_CONFLICT_LOG`, read once, when the first thread uses the engine.
  private static let readConflictLogEnvironment: Void = ConflictLog.startFromProcessEnvironment()

  private static let nextTurn = Atomic<Int>(0)

  deinit {
    _StatisticsRegistry.shared.retire(statistics)
    // Empty: every attempt and update frees its leftovers before it returns.
    leftovers.reads.deallocate()
  }
}

/// A transaction's place in the serial order that the engine's commits are equivalent to.
///
/// A writing commit stands at its number; a read-only one after the writers of its snapshot's
/// number. A drop-in update that overwrote its cell without taking a number (see
/// `_Engine.unnumberedOverwritePosition(for:)`) stands after the writer numbered `number` and
/// before the readers at it, as the `overwrite`-th such update of its cell's version; two of
/// them on different cells may share a position (they do not depend on each other).
struct _SerialPosition: Comparable, Hashable, Sendable {
  var number: UInt64
  var isReadOnly: Bool
  /// 0 for a numbered commit or a read-only one; from 1 for an update without a number.
  var overwrite: UInt16 = 0

  static func < (lhs: Self, rhs: Self) -> Bool {
    (lhs.number, lhs.isReadOnly ? 1 : 0, lhs.overwrite) < (rhs.number, rhs.isReadOnly ? 1 : 0, rhs.overwrite)
  }
}

/// The thread-specific slot that owns each thread's `_ThreadState`: its destructor releases the
/// context and frees the state when the thread exits. (Operations find the state in the
/// thread-local variable of `_STMThreadLocal`, and come here only when that is empty: see
/// `makeCurrentState()`.) The destructor clears that variable first: a destructor of another
/// key that runs later and uses the engine makes a new state, which the thread's exit frees in
/// turn, as it did when the state was looked up by this key.
let _threadStateKey: pthread_key_t = {
  var key = pthread_key_t()
  let status = pthread_key_create(&key) { raw in
    guard let raw else { return }
    _stm_set_current_thread_state(nil)
    let state = raw.assumingMemoryBound(to: _ThreadState.self)
    let context = state.pointee.context
    state.deinitialize(count: 1)
    state.deallocate()
    context.release()
  }
  precondition(status == 0, "swift-stm could not create its thread-specific key (error \(status))")
  return key
}()

/// The live threads' counters, plus the totals of threads that have exited.
final class _StatisticsRegistry: Sendable {
  static let shared = _StatisticsRegistry()

  private struct State {
    var live: [ObjectIdentifier: _StatisticsCounters] = [:]
    var retired = TransactionStatistics()
  }
  private let state = _Lock(State())

  func register(_ counters: _StatisticsCounters) {
    state.withLock { $0.live[ObjectIdentifier(counters)] = counters }
  }

  func retire(_ counters: _StatisticsCounters) {
    let final = counters.snapshot
    state.withLock { state in
      state.live[ObjectIdentifier(counters)] = nil
      state.retired = state.retired + final
    }
  }

  var total: TransactionStatistics {
    state.withLock { state in
      state.live.values.reduce(state.retired) { $0 + $1.snapshot }
    }
  }
}
