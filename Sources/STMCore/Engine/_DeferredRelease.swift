import _STMThreadLocal
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Releases objects one after another instead of recursively.
///
/// A queue's nodes reach each other through their cells' versions, so the last reference to
/// the oldest of a long run of consumed nodes (kept by a snapshot that was pinning the head's
/// history) would free the whole run recursively, one stack frame group per node, and
/// overflow the stack. A node (`_LinkedCell`) hands its newest version here as it goes
/// instead, as an unmanaged retain that no stored property releases later: the first call on
/// a thread drains the list in a loop, and releases that happen during the drain only append
/// to it.
enum _DeferredRelease {
  /// A thread's own list, reached only by that thread: Swift's dynamic exclusivity checks on
  /// its fields (three or more per release, about 240 instructions per queue item) guard
  /// against nothing.
  private final class Pending {
    @exclusivity(unchecked) var objects: [Unmanaged<AnyObject>] = []
    @exclusivity(unchecked) var draining = false
  }

  /// The thread-specific slot that owns each thread's list: its destructor frees the list as the
  /// thread exits. The list is found through a thread-local variable of `_STMThreadLocal` (one
  /// load on ELF platforms, where `pthread_getspecific` was a call, and reading this lazily made
  /// key another), and here only when that is empty (`makePending()`). The destructor clears
  /// the variable first, as `_threadStateKey`'s does.
  private static let key: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { raw in
      _stm_set_current_deferred_releases(nil)
      if let raw { Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(raw)).release() }
    }
    return key
  }()

  /// Whether the calling thread's list is where operations find it: for tests.
  static var threadHasList: Bool { _stm_current_deferred_releases() != nil }

  /// The thread-specific key of the lists, for tests that order their own keys' destructors
  /// after its destructor.
  static var keyForTests: pthread_key_t { key }

  /// The thread's list, unretained: the thread-specific slot keeps it until the thread ends
  /// (a reference taken here was a retain and a release on every node a queue frees).
  private static var pending: Unmanaged<Pending> {
    if let raw = _stm_current_deferred_releases() {
      return Unmanaged<Pending>.fromOpaque(raw)
    }
    return makePending()
  }

  /// The thread's list as its key holds it, which the variable lost (see
  /// `_ThreadContext.makeCurrentState()`), or a new one.
  @inline(never)
  private static func makePending() -> Unmanaged<Pending> {
    if let owned = pthread_getspecific(key) {
      _stm_set_current_deferred_releases(owned)
      return Unmanaged<Pending>.fromOpaque(owned)
    }
    let created = Unmanaged.passRetained(Pending())
    pthread_setspecific(key, created.toOpaque())
    _stm_set_current_deferred_releases(created.toOpaque())
    return created
  }

  /// Releases `object` (one retain, transferred by the caller) after any release already in
  /// progress on this thread.
  static func release(_ object: Unmanaged<AnyObject>) {
    pending._withUnsafeGuaranteedRef { pending in
      guard !pending.draining else {
        pending.objects.append(object)
        return
      }
      pending.draining = true
      // The first object goes at once, without passing through the list (the common case, a
      // queue's consumed node letting go of its newest version, which holds the next node,
      // never uses the list at all); the deinits it sets off append to the list instead of
      // recursing.
      object.release()
      while let next = pending.objects.popLast() {
        next.release()
      }
      pending.draining = false
    }
  }
}
