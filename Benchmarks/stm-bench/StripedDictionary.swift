import Synchronization

// The dictionary baselines of BENCHMARKS.md ("Baselines"), shared by the dict workloads.

/// A dictionary under one lock: the shared dictionary that `TDictionary` replaces.
final class LockedDictionary<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  let value: Mutex<[Key: Value]>
  init(_ value: [Key: Value]) { self.value = Mutex(value) }
}

/// A dictionary split by key hash into 64 stripes, each a `Dictionary` under its own lock: what
/// an experienced Swift engineer writes for a concurrent map.
///
/// Every operation on one key is atomic (it holds its stripe's lock); nothing more is. Several
/// operations, as soon as their keys fall in different stripes, are *not* atomic as a group.
///
/// Each stripe's lock and dictionary sit alone in their own 128-byte block (two cache lines,
/// because x86's adjacent-line prefetcher pairs them), so that threads working in different
/// stripes never share a cache line.
final class StripedDictionary<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
  // @unchecked: the stripes are only reached through their locks.
  typealias Stripe = Mutex<[Key: Value]>

  static var stripeCount: Int { 64 }
  private static var stride: Int { 128 }
  private let base: UnsafeMutableRawPointer

  /// Creates an empty dictionary with room for about `minimumCapacity` keys in all.
  init(minimumCapacity: Int = 0) {
    precondition(MemoryLayout<Stripe>.size <= Self.stride, "a stripe does not fit its block")
    base = .allocate(byteCount: Self.stride * Self.stripeCount, alignment: Self.stride)
    // Hashes spread keys evenly, plus a margin for the unevenness of any one run.
    let perStripe = minimumCapacity == 0 ? 0 : minimumCapacity / Self.stripeCount * 9 / 8 + 16
    for index in 0..<Self.stripeCount {
      (base + Self.stride * index).initializeMemory(
        as: Stripe.self, to: Mutex([Key: Value](minimumCapacity: perStripe)))
    }
  }

  deinit {
    for index in 0..<Self.stripeCount {
      _ = stripe(at: index).move()
    }
    base.deallocate()
  }

  @inline(__always)
  private func stripe(at index: Int) -> UnsafeMutablePointer<Stripe> {
    (base + Self.stride * index).assumingMemoryBound(to: Stripe.self)
  }

  /// The stripe of `key`: the top 6 bits of its hash, so that the dictionary inside the stripe
  /// still sees varied low bits.
  @inline(__always)
  private func stripe(for key: Key) -> UnsafeMutablePointer<Stripe> {
    stripe(at: Int(UInt(bitPattern: key.hashValue) >> (UInt.bitWidth - 6)))
  }

  /// Runs `body` on the stripe that holds `key`, under that stripe's lock: one atomic step.
  @inline(__always)
  func withLock<Result: Sendable>(forKey key: Key, _ body: (inout [Key: Value]) -> Result) -> Result {
    stripe(for: key).pointee.withLock { body(&$0) }
  }

  /// The number of keys, adding up the stripes one lock at a time (exact when no thread is
  /// changing the dictionary).
  var count: Int {
    (0..<Self.stripeCount).reduce(0) { total, index in
      total + stripe(at: index).pointee.withLock { $0.count }
    }
  }

  /// Calls `body` with every key and value, stripe by stripe, under each stripe's lock in turn
  /// (a consistent view only when no thread is changing the dictionary).
  func forEach(_ body: (Key, Value) -> Void) {
    for index in 0..<Self.stripeCount {
      stripe(at: index).pointee.withLock { dictionary in
        for (key, value) in dictionary { body(key, value) }
      }
    }
  }
}
