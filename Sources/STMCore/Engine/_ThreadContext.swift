import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What the engine keeps per thread: the transaction running on it (found implicitly, so that
/// `TVar` operations need no transaction argument), the segment it prefers, and its counters.
@usableFromInline
final class _ThreadContext: @unchecked Sendable {
  // Only the owning thread touches the stored properties, except `statistics`, whose fields
  // are atomics that any thread may read. That is also why dynamic exclusivity checks are off.

  /// The segment of the transaction running on this thread, or nil outside `atomically`.
  /// Unowned: segments live as long as the process.
  @exclusivity(unchecked) @usableFromInline unowned(unsafe) var segment: _Segment?
  /// Set while an in-place mutation of a `TVar` outside a transaction holds the cell's commit
  /// lock: touching any transactional data then would deadlock, so it traps instead.
  @exclusivity(unchecked) @usableFromInline var inPlaceMutation = false
  /// The segment this thread used last; trying it first keeps each thread on its own lines.
  @exclusivity(unchecked) var preferredSegment: Int
  let statistics = _StatisticsCounters()
  /// Where this thread's last committed transaction sits in the serial order: a writing commit
  /// takes its commit number; a read-only one sits just after the commit its snapshot saw.
  /// Tests replay transactions in this order.
  @exclusivity(unchecked) var lastCommit = _SerialPosition(number: 0, isReadOnly: true)
  /// xorshift state for randomized backoff; per thread, so threads do not back off in step.
  @exclusivity(unchecked) var backoffRandom: UInt64

  private init(preferredSegment: Int) {
    self.preferredSegment = preferredSegment
    backoffRandom = 0x9E37_79B9_7F4A_7C15 &* UInt64(preferredSegment + 1)
  }

  /// A pseudo-random number for backoff decisions.
  func nextBackoffRandom() -> UInt64 {
    backoffRandom ^= backoffRandom >> 12
    backoffRandom ^= backoffRandom << 25
    backoffRandom ^= backoffRandom >> 27
    return backoffRandom &* 0x2545_F491_4F6C_DD1D
  }

  /// The calling thread's context, created on first use.
  @usableFromInline
  static var current: _ThreadContext {
    @inline(__always) get {
      if let raw = pthread_getspecific(_threadContextKey) {
        return Unmanaged<_ThreadContext>.fromOpaque(raw).takeUnretainedValue()
      }
      return makeCurrent()
    }
  }

  @inline(never)
  private static func makeCurrent() -> _ThreadContext {
    let context = _ThreadContext(preferredSegment: nextPreferredSegment.add(1, ordering: .relaxed).oldValue)
    pthread_setspecific(_threadContextKey, Unmanaged.passRetained(context).toOpaque())
    _StatisticsRegistry.shared.register(context.statistics)
    return context
  }

  private static let nextPreferredSegment = Atomic<Int>(0)

  deinit {
    _StatisticsRegistry.shared.retire(statistics)
  }
}

/// A transaction's place in the serial order that the engine's commits are equivalent to.
struct _SerialPosition: Comparable, Hashable, Sendable {
  var number: UInt64
  var isReadOnly: Bool

  static func < (lhs: Self, rhs: Self) -> Bool {
    (lhs.number, lhs.isReadOnly ? 1 : 0) < (rhs.number, rhs.isReadOnly ? 1 : 0)
  }
}

/// The thread-specific slot holding each thread's `_ThreadContext`; its destructor releases the
/// context when the thread exits.
@usableFromInline
let _threadContextKey: pthread_key_t = {
  var key = pthread_key_t()
  let status = pthread_key_create(&key) { raw in
    guard let raw else { return }
    Unmanaged<_ThreadContext>.fromOpaque(raw).release()
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
