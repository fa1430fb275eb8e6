#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A plain pthread mutex around some state, for the engine's rare slow paths (wait lists,
/// registries, configuration).
///
/// Not `Synchronization.Mutex`: on Linux that lock spins and then hands off to a sleeping waiter,
/// which convoys when threads outnumber cores (DESIGN.md), and its lock and unlock live in the
/// uninstrumented standard library, so Thread Sanitizer cannot see the ordering it provides and
/// reports every access it protects as a race. Thread Sanitizer intercepts pthread mutexes.
@usableFromInline
package final class _Lock<State>: @unchecked Sendable {
  @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
  /// Touched only inside `withLock`, so the mutex already guarantees exclusive access; the
  /// dynamic exclusivity check would cost every index lookup a runtime call.
  @exclusivity(unchecked) @usableFromInline var state: State

  package init(_ state: State) {
    mutex = .allocate(capacity: 1)
    mutex.initialize(to: pthread_mutex_t())
    pthread_mutex_init(mutex, nil)
    self.state = state
  }

  deinit {
    pthread_mutex_destroy(mutex)
    mutex.deinitialize(count: 1)
    mutex.deallocate()
  }

  /// The state, copied out under the lock. Read a stored closure (a test hook) this way, not
  /// with `withLock { $0 }`: the state is stored as a generic `State`, so passing a closure
  /// `inout` converts it to the caller's calling convention and back, and stores back a
  /// closure wrapped in two more thunks each time. A hook read a few thousand times then
  /// overflowed the stack when called (found by review).
  @inlinable
  package var value: State {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return state
  }

  @inlinable
  package func withLock<Result, Failure: Error>(_ body: (inout State) throws(Failure) -> Result) throws(Failure) -> Result {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return try body(&state)
  }
}
