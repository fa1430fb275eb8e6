import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `counter-hot`: every op adds 1 to one shared counter, read-modify-write.
  static let counterHot = Workload(
    name: "counter-hot",
    summary: "add 1 to one shared counter (read-modify-write); check counter == total",
    unit: "ops"
  ) { size in
    let total = size.scaled(2_000_000)
    return [
      Implementation(name: "TVar +=", kind: .library) { threads in
        let counter = TVar(0)
        return Trial(ops: total) { thread in
          // Outside `atomically`, an in-place update is one atomic read-modify-write.
          for _ in share(of: total, thread: thread, threads: threads) { counter.value += 1 }
        } verify: {
          checkCounter(counter.value, total)
        }
      },
      Implementation(name: "TVar atomically", kind: .library) { threads in
        let counter = TVar(0)
        return Trial(ops: total) { thread in
          for _ in share(of: total, thread: thread, threads: threads) {
            atomically { _ in counter.value += 1 }
          }
        } verify: {
          checkCounter(counter.value, total)
        }
      },
      .atomicCounter(total: total),
      Implementation(name: "Mutex<Int>", kind: .baseline) { threads in
        let counter = MutexCounter()
        return Trial(ops: total) { thread in
          for _ in share(of: total, thread: thread, threads: threads) {
            counter.value.withLock { $0 += 1 }
          }
        } verify: {
          checkCounter(counter.value.withLock { $0 }, total)
        }
      },
      Implementation(name: "actor", kind: .baseline) { threads in
        let counter = CounterActor()
        return Trial(ops: total) { thread in
          let ops = share(of: total, thread: thread, threads: threads).count
          waitForTask {
            for _ in 0..<ops { await counter.increment(caller: thread) }
          }
        } verify: {
          checkCounter(waitForTask { await counter.value }, total)
        } detail: {
          waitForTask { await counter.turns.description }
        }
      },
    ]
  }
}

extension Implementation {
  /// The `Atomic<Int>` baseline that both counter workloads share.
  static func atomicCounter(total: Int) -> Implementation {
    Implementation(name: "Atomic<Int>", kind: .baseline) { threads in
      let counter = AtomicCounter()
      return Trial(ops: total) { thread in
        for _ in share(of: total, thread: thread, threads: threads) {
          // Relaxed: a counter orders nothing else; the join publishes the final value.
          counter.value.wrappingAdd(1, ordering: .relaxed)
        }
      } verify: {
        checkCounter(counter.value.load(ordering: .relaxed), total)
      }
    }
  }
}

/// An `Atomic<Int>` on the heap, so that closures can share it.
final class AtomicCounter: Sendable {
  let value = Atomic<Int>(0)
}

/// A `Mutex<Int>` on the heap, so that closures can share it.
final class MutexCounter: Sendable {
  let value = Mutex(0)
}

/// The counter workloads' check.
func checkCounter(_ value: Int, _ total: Int) -> String? {
  value == total ? nil : "counter is \(value), expected \(total)"
}
