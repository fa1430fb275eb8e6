import Foundation

/// The queue baseline of BENCHMARKS.md ("Baselines"): a growable ring buffer under a pthread
/// mutex, with a condition variable on which consumers wait while too few items are there.
///
/// A pthread mutex rather than `Synchronization.Mutex`: on Linux the latter is a
/// priority-inheritance lock that can fall into a convoy with more threads than cores
/// (swiftlang/swift#88440), and a condition variable needs a pthread mutex anyway.
final class LockedRingQueue<Element>: @unchecked Sendable {
  // @unchecked: every field below is read and written only while holding `mutex`.
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  private let itemsArrived: UnsafeMutablePointer<pthread_cond_t>
  private var storage: UnsafeMutablePointer<Element>
  /// A power of two, so that an index wraps with a mask.
  private var capacity: Int
  private var head = 0
  private var count = 0
  /// Consumers blocked in `pthread_cond_wait`, so that a producer signals only when someone is
  /// there to wake: an uncontended enqueue then makes no call into the condition variable.
  private var waitingConsumers = 0

  /// Creates an empty queue with room for `initialCapacity` items before it first grows.
  init(initialCapacity: Int = 1024) {
    capacity = max(16, initialCapacity).nextPowerOfTwo
    storage = .allocate(capacity: capacity)
    mutex = .allocate(capacity: 1)
    itemsArrived = .allocate(capacity: 1)
    pthread_mutex_init(mutex, nil)
    pthread_cond_init(itemsArrived, nil)
  }

  deinit {
    for offset in 0..<count {
      (storage + ((head + offset) & (capacity - 1))).deinitialize(count: 1)
    }
    storage.deallocate()
    pthread_cond_destroy(itemsArrived)
    pthread_mutex_destroy(mutex)
    itemsArrived.deallocate()
    mutex.deallocate()
  }

  /// Adds `item` at the end.
  func enqueue(_ item: Element) {
    pthread_mutex_lock(mutex)
    append(item)
    let wake = waitingConsumers > 0
    pthread_mutex_unlock(mutex)
    // Signalled after unlocking, so that the consumer woken does not at once block on the
    // mutex we hold. Safe: `waitingConsumers` was read under the lock, and a consumer counted
    // there is already inside `pthread_cond_wait`, which released the lock atomically.
    if wake { pthread_cond_signal(itemsArrived) }
  }

  /// Adds `items` at the end, in order, as one step: no consumer sees only some of them.
  func enqueue<C: Collection>(contentsOf items: C) where C.Element == Element {
    pthread_mutex_lock(mutex)
    for item in items { append(item) }
    let wake = waitingConsumers > 0
    pthread_mutex_unlock(mutex)
    // One signal per batch: in queue-batch, producers and consumers move batches of one size,
    // so one batch is exactly what one woken consumer needs.
    if wake { pthread_cond_signal(itemsArrived) }
  }

  /// Removes `batchSize` items from the front as one step, waiting until that many are there,
  /// and hands them to `body` in order (under the lock: `body` should only store them).
  func dequeue(_ batchSize: Int = 1, _ body: (Element) -> Void) {
    pthread_mutex_lock(mutex)
    while count < batchSize {
      waitingConsumers += 1
      pthread_cond_wait(itemsArrived, mutex)
      waitingConsumers -= 1
    }
    for _ in 0..<batchSize {
      body((storage + head).move())
      head = (head + 1) & (capacity - 1)
      count -= 1
    }
    pthread_mutex_unlock(mutex)
  }

  /// Removes every item left, without waiting, and returns how many there were (for a check
  /// after the threads are joined).
  func drain() -> Int {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    let left = count
    for _ in 0..<count {
      (storage + head).deinitialize(count: 1)
      head = (head + 1) & (capacity - 1)
    }
    count = 0
    return left
  }

  private func append(_ item: Element) {
    if count == capacity { grow() }
    (storage + ((head + count) & (capacity - 1))).initialize(to: item)
    count += 1
  }

  /// Doubles the capacity, moving the items to the front of the new buffer in queue order.
  private func grow() {
    let newStorage = UnsafeMutablePointer<Element>.allocate(capacity: capacity * 2)
    let firstRun = capacity - head
    newStorage.moveInitialize(from: storage + head, count: firstRun)
    (newStorage + firstRun).moveInitialize(from: storage, count: head)
    storage.deallocate()
    storage = newStorage
    capacity *= 2
    head = 0
  }
}

extension Int {
  /// The smallest power of two at least `self` (for `self` ≥ 1).
  fileprivate var nextPowerOfTwo: Int {
    self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount)
  }
}
