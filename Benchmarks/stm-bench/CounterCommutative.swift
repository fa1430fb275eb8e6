import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `counter-commutative`: every op adds 1 to one shared counter as a delayed,
  /// commutative update.
  static let counterCommutative = Workload(
    name: "counter-commutative",
    summary: "add 1 to one shared counter as a commutative update; check counter == total",
    unit: "ops"
  ) { size in
    let total = size.scaled(2_000_000)
    return [
      Implementation(name: "TVar commute", kind: .library) { threads in
        let counter = TVar(0)
        return Trial(ops: total) { thread in
          for _ in share(of: total, thread: thread, threads: threads) {
            atomically { _ in counter.commute { $0 + 1 } }
          }
        } verify: {
          checkCounter(counter.value, total)
        }
      },
      .atomicCounter(total: total),
      Implementation(name: "padded per-thread", kind: .baseline) { threads in
        let counters = PaddedCounters(count: threads)
        return Trial(ops: total) { thread in
          for _ in share(of: total, thread: thread, threads: threads) { counters.increment(thread) }
        } verify: {
          checkCounter(counters.sum, total)
        }
      },
    ]
  }
}

/// One counter per thread, each alone in its own 128-byte block (two cache lines, because
/// x86's adjacent-line prefetcher pairs them), added up when read.
final class PaddedCounters: @unchecked Sendable {
  // @unchecked: slot `i` is written only by thread `i`, and every access is atomic.
  private static let stride = 128
  private let base: UnsafeMutableRawPointer
  private let count: Int

  init(count: Int) {
    self.count = count
    base = .allocate(byteCount: Self.stride * count, alignment: Self.stride)
    for index in 0..<count {
      (base + Self.stride * index).initializeMemory(as: Atomic<Int>.self, to: Atomic(0))
    }
  }

  deinit {
    for index in 0..<count {
      _ = slot(index).move()
    }
    base.deallocate()
  }

  private func slot(_ index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
    (base + Self.stride * index).assumingMemoryBound(to: Atomic<Int>.self)
  }

  @inline(__always)
  func increment(_ thread: Int) {
    // A load and a store rather than a read-modify-write: the owning thread is the only writer,
    // and readers only need some value the counter had (relaxed; the join orders the final sum).
    let counter = slot(thread)
    counter.pointee.store(counter.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
  }

  var sum: Int {
    (0..<count).reduce(0) { $0 + slot($1).pointee.load(ordering: .relaxed) }
  }
}
