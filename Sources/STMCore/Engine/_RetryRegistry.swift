import Synchronization

/// Where transactions that called `retry()` wait for a cell they read to change.
///
/// Waiters are kept in stripes hashed by cell address, so a commit checks one counter per cell
/// it wrote (a load of a line that changes only when waiters come and go) and takes a stripe's
/// lock only when somebody waits there. Within a stripe they are found by address: a list that
/// every commit scanned made commits to any cell slow down with the read sets of the waiting
/// transactions (one waiting over 100,000 cells made unrelated one-write commits 7 times
/// slower; found by review).
///
/// `@unchecked Sendable`: `stripeHandles` is written only by `init`, and the stripes it points
/// to are `Sendable` and kept by `stripes`.
final class _RetryRegistry: @unchecked Sendable {
  fileprivate final class Stripe: Sendable {
    let count = Atomic<Int>(0)
    /// The waiters of each cell address, by identity: a waiter leaving the cells of its read
    /// set finds itself in each without a scan of the others waiting there (with a list, many
    /// waiters over the same cells left in time quadratic in their number; found by review).
    let entries = _Lock<[UInt: [ObjectIdentifier: _Waiter]]>([:])
  }

  fileprivate let stripes: [Stripe] = (0..<64).map { _ in Stripe() }
  /// `stripes` again, as unretained handles in a buffer that lives as long as the registry:
  /// a commit that wakes waiters finds its stripe without retaining it (a queue's producer
  /// did that for every item a waiting consumer was registered for, on lines that the
  /// consumers' commits retain too). Written only by `init`.
  private let stripeHandles: UnsafeMutableBufferPointer<Unmanaged<Stripe>>
  /// All registrations, over every stripe: while it is 0 (almost always) a commit checks this
  /// one line, which only registering and waking write, instead of a stripe per cell.
  private let registrations = Atomic<Int>(0)

  init() {
    stripeHandles = .allocate(capacity: stripes.count)
    _ = stripeHandles.initialize(from: stripes.lazy.map(Unmanaged.passUnretained))
  }

  deinit {
    stripeHandles.deallocate()
  }

  /// The stripe of the cell at `address`, unretained: `stripes` keeps it.
  private func stripe(for address: UInt) -> Unmanaged<Stripe> {
    // Cells are at least 16-byte aligned; mix the higher bits in.
    stripeHandles[Int(truncatingIfNeeded: (address >> 4) ^ (address >> 10)) & (stripeHandles.count - 1)]
  }

  /// Registers a waiter for a change to any of `cells` after `snapshot`. Called while the
  /// snapshot is still announced, so the cells' newest versions can be inspected safely; the
  /// waiter is woken at once if a change already happened.
  func register(for cells: [_Cell], after snapshot: UInt64) -> _Waiter {
    let waiter = _Waiter()
    // The counts go up before the entries go in: a waker that removes an entry subtracts what
    // it removed, so counting first can over-count for a moment but never leaves a count at 0
    // while another waiter's entry is in place (which would make a commit skip its wake-up).
    registrations.add(cells.count, ordering: .sequentiallyConsistent)
    for cell in cells {
      stripe(for: cell.address)._withUnsafeGuaranteedRef { stripe in
        stripe.count.add(1, ordering: .sequentiallyConsistent)
        let isNew = stripe.entries.withLock { entries in
          entries[cell.address, default: [:]].updateValue(waiter, forKey: ObjectIdentifier(waiter)) == nil
        }
        // A cell the read set names twice is one registration (the read sets given here have
        // each cell once; this keeps the counts exact if one did not).
        if !isNew {
          stripe.count.subtract(1, ordering: .relaxed)
          registrations.subtract(1, ordering: .relaxed)
        }
      }
    }
    // Pairs with the fence in the commit path: either the committer sees our entries, or we
    // see its new version here and do not sleep. (A drop-in update without a commit number
    // has no such fence: it found every registrant's snapshot withdrawn, which is stored only
    // after this, and acquired that store; see `_EngineEntry.finishInPlaceMutation`.)
    atomicMemoryFence(ordering: .sequentiallyConsistent)
    for cell in cells where cell.hasChanged(since: snapshot) {
      waiter.wake()
      break
    }
    return waiter
  }

  /// Removes a woken waiter's remaining registrations.
  func finish(_ waiter: _Waiter, for cells: [_Cell]) {
    unregister(waiter, from: cells)
  }

  private func unregister(_ waiter: _Waiter, from cells: [_Cell]) {
    for cell in cells {
      stripe(for: cell.address)._withUnsafeGuaranteedRef { stripe in
        let removed = stripe.entries.withLock { entries in
          guard let index = entries.index(forKey: cell.address),
            entries.values[index].removeValue(forKey: ObjectIdentifier(waiter)) != nil
          else { return 0 }
          if entries.values[index].isEmpty { entries.remove(at: index) }
          return 1
        }
        if removed > 0 {
          stripe.count.subtract(removed, ordering: .relaxed)
          registrations.subtract(removed, ordering: .relaxed)
        }
      }
    }
  }

  /// Wakes the transactions waiting for `cell`. Called after the new version is published.
  @inline(__always)
  func wakeWaiters(of cell: _Cell) {
    wakeWaiters(ofCellAt: cell.address)
  }

  /// `wakeWaiters(of:)` for the cell at `address`: for a caller that has let go of the lock
  /// that kept the cell alive, and may find it freed by now (a waiter registered for the cell
  /// keeps it alive itself; a cell made since at the same address gets a spurious wake-up).
  @inline(__always)
  func wakeWaiters(ofCellAt address: UInt) {
    // Relaxed, like the stripe's count below: the commit's fence orders this load after its
    // publication (for a drop-in update without a commit number, its scan's acquiring loads
    // of the registrants' withdrawals do), and a registrant's fence orders its increment
    // before its check.
    guard registrations.load(ordering: .relaxed) > 0 else { return }
    wakeRegisteredWaiters(of: address)
  }

  private func wakeRegisteredWaiters(of address: UInt) {
    stripe(for: address)._withUnsafeGuaranteedRef { wakeRegisteredWaiters(of: address, in: $0) }
  }

  private func wakeRegisteredWaiters(of address: UInt, in stripe: Stripe) {
    guard stripe.count.load(ordering: .relaxed) > 0 else { return }
    let woken = stripe.entries.withLock { $0.removeValue(forKey: address) ?? [:] }
    if !woken.isEmpty {
      stripe.count.subtract(woken.count, ordering: .relaxed)
      registrations.subtract(woken.count, ordering: .relaxed)
    }
    for waiter in woken.values { waiter.wake() }
  }
}

extension _Cell {
  /// Whether a commit has published a version newer than `snapshot`, or the cell is retired.
  ///
  /// A commit lock held now is no change: its holder wakes the waiters registered for the
  /// cell once it has published, after the fence that pairs with the registration's (or, for
  /// an update without a commit number, after finding the registrant's snapshot withdrawn,
  /// which comes after the registration), and a holder that publishes nothing (a commit that
  /// fails validation, a trim, a cancelled update) changes nothing. Counted as a change, a
  /// lock held while the caller's code ran (a drop-in in-place mutation) woke the waiter at
  /// once, again and again: it reran thousands of times during a 100 ms mutation (found by
  /// review).
  func hasChanged(since snapshot: UInt64) -> Bool {
    // A retired cell is written no more: its key lives, if at all, in a fresh cell.
    if isRetired { return true }
    return head.load(ordering: .acquiring)._withUnsafeGuaranteedRef { $0.stamp } > snapshot
  }
}

extension _RetryRegistry {
  /// How many (cell, waiter) registrations are outstanding; for leak checks.
  var pendingEntries: Int {
    stripes.reduce(0) { $0 + $1.entries.withLock { $0.values.reduce(0) { $0 + $1.count } } }
  }

  /// How many waiters are registered for `cell`; for tests that must know a transaction is
  /// waiting on it before they change it (the global count also counts other tests' waiters).
  func pendingEntries(for cell: _Cell) -> Int {
    stripe(for: cell.address)._withUnsafeGuaranteedRef { stripe in
      stripe.entries.withLock { $0[cell.address]?.count ?? 0 }
    }
  }
}

extension _EngineEntry {
  /// Wakes the transactions waiting on `cell`, which a collection has just retired.
  @usableFromInline
  static func wakeWaitersOfRetired(_ cell: _Cell) {
    // Pairs with the fence in `_RetryRegistry.register`: a waiter registered after it sees
    // the retired flag in its check for changes (`hasChanged(since:)`), one registered before
    // it is found here.
    atomicMemoryFence(ordering: .sequentiallyConsistent)
    // Borrowed, not retained: the registry lives as long as the engine, and a retain and a
    // release write its reference count, on a line that every commit reads (`registrations`),
    // once per retired cell (every committed removal of a dictionary key).
    Unmanaged.passUnretained(_Engine.shared)._withUnsafeGuaranteedRef { engine in
      Unmanaged.passUnretained(engine.retryWaiters)._withUnsafeGuaranteedRef { $0.wakeWaiters(of: cell) }
    }
  }
}
