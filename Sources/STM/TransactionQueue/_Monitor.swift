#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex and condition variable around some state: the scheduler's own bookkeeping,
/// which is deliberately not transactional so that it can never conflict with the work it runs.
///
/// A pthread lock rather than `Synchronization.Mutex` for the reasons `_Lock` gives in STMCore:
/// no convoy when threads outnumber cores, and Thread Sanitizer sees the ordering it provides.
final class _Monitor<State>: @unchecked Sendable {
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  private let condition: UnsafeMutablePointer<pthread_cond_t>
  /// Reached only under `mutex`, whose holder cannot reach it again (a second `withLock` on the
  /// same thread would wait for itself), so Swift's dynamic exclusivity checks, a call into the
  /// runtime on every access, guard nothing here.
  @exclusivity(unchecked) private var state: State

  init(_ state: State) {
    mutex = .allocate(capacity: 1)
    mutex.initialize(to: pthread_mutex_t())
    pthread_mutex_init(mutex, nil)
    condition = .allocate(capacity: 1)
    condition.initialize(to: pthread_cond_t())
    pthread_cond_init(condition, nil)
    self.state = state
  }

  deinit {
    pthread_cond_destroy(condition)
    condition.deinitialize(count: 1)
    condition.deallocate()
    pthread_mutex_destroy(mutex)
    mutex.deinitialize(count: 1)
    mutex.deallocate()
  }

  func withLock<Result>(_ body: (inout State) throws -> Result) rethrows -> Result {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return try body(&state)
  }

  /// Calls `decide` under the lock until it returns a value, sleeping on the condition variable
  /// between calls; `decide` sees the state as the last waker left it.
  func wait<Result>(until decide: (inout State) -> Result?) -> Result {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    while true {
      if let result = decide(&state) { return result }
      pthread_cond_wait(condition, mutex)
    }
  }

  /// Wakes one thread sleeping in ``wait(until:)``.
  func wakeOne() { pthread_cond_signal(condition) }

  /// Wakes every thread sleeping in ``wait(until:)``.
  func wakeAll() { pthread_cond_broadcast(condition) }
}

/// Starts `body` on a new detached thread with the platform's default stack size.
func _startDetachedThread(_ body: @escaping @Sendable () -> Void) {
  final class Box: @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
  }
  var attributes = pthread_attr_t()
  pthread_attr_init(&attributes)
  defer { pthread_attr_destroy(&attributes) }
  pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
  let box = Unmanaged.passRetained(Box(body))
  #if canImport(Darwin)
  var thread: pthread_t?
  #else
  var thread = pthread_t()
  #endif
  let status = pthread_create(&thread, &attributes, { raw in
    #if canImport(Darwin)
    Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
    #else
    Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
    #endif
    return nil
  }, box.toOpaque())
  if status != 0 {
    box.release()
    fatalError("TransactionQueue could not start a worker thread (pthread_create returned \(status)); the system is out of threads or memory.")
  }
}
