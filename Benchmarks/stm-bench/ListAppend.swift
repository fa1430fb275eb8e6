import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `list-append`: one shared list; each transaction does 64 rounds of private
  /// xorshift work, then appends the result.
  static let listAppend = Workload(
    name: "list-append",
    summary: "64 rounds of private work, then one append to a shared list; check each thread's order",
    unit: "appends"
  ) { size in
    let total = size.scaled(2_000_000)
    return [
      Implementation(name: "TArray", kind: .library) { threads in
        let list = TArray<UInt64>()
        return Trial(ops: total) { thread in
          var sequence = ListAppend.Sequence(thread: thread)
          for _ in share(of: total, thread: thread, threads: threads) {
            // The private work runs inside the transaction, as in the workload; it starts from
            // a copy of the state, so that a rerun computes the same item, and the state
            // advances only once the append has committed.
            sequence = atomically { _ in
              var next = sequence
              list.append(next.nextItem())
              return next
            }
          }
        } verify: {
          ListAppend.check(list.elements, threads: threads, total: total)
        }
      },
      Implementation(name: "Mutex<[UInt64]>", kind: .baseline) { threads in
        let list = ListAppend.LockedList(capacity: total)
        return Trial(ops: total) { thread in
          var sequence = ListAppend.Sequence(thread: thread)
          for _ in share(of: total, thread: thread, threads: threads) {
            // The private work outside the lock, as a user would write it.
            let item = sequence.nextItem()
            list.value.withLock { $0.append(item) }
          }
        } verify: {
          ListAppend.check(list.value.withLock { $0 }, threads: threads, total: total)
        }
      },
      Implementation(name: "actor", kind: .baseline) { threads in
        let list = ListActor(capacity: total)
        return Trial(ops: total) { thread in
          let appends = share(of: total, thread: thread, threads: threads).count
          waitForTask {
            var sequence = ListAppend.Sequence(thread: thread)
            for _ in 0..<appends {
              // The private work outside the actor, as with the lock.
              let item = sequence.nextItem()
              await list.append(item, caller: thread)
            }
          }
        } verify: {
          ListAppend.check(waitForTask { await list.items }, threads: threads, total: total)
        } detail: {
          waitForTask { await list.turns.description }
        }
      },
    ]
  }
}

/// The formulas of BENCHMARKS.md ("Exact formulas", list-append), shared by every
/// implementation.
enum ListAppend {
  /// Thread t's items: its state s starts at its xorshift64* seed, and each item applies 64
  /// xorshift steps to s and is the 64th output, `s &* 0x2545F4914F6CDD1D`.
  struct Sequence {
    private var generator: Xorshift64Star

    init(thread: Int) {
      generator = Xorshift64Star(thread: thread)
    }

    /// The next item (thread 0's first is 1600740367233771821).
    @inline(__always)
    mutating func nextItem() -> UInt64 {
      // The 63 outputs thrown away cost only their multiplication, which the optimizer drops;
      // the 64 state steps are the work.
      for _ in 0..<63 { _ = generator.next() }
      return generator.next()
    }
  }

  /// The check of BENCHMARKS.md: the list has `total` items, and it is an interleaving of the
  /// threads' sequences, each in its own order: walking it, every item is the next one due
  /// from some thread.
  static func check(_ list: [UInt64], threads: Int, total: Int) -> String? {
    var firstItem = Sequence(thread: 0)
    if firstItem.nextItem() != 1_600_740_367_233_771_821 {
      return "thread 0's first item is not 1600740367233771821: the generator is wrong"
    }
    var problems: [String] = []
    if list.count != total { problems.append("the list holds \(list.count) items, expected \(total)") }
    var sequences = (0..<threads).map { Sequence(thread: $0) }
    var remaining = (0..<threads).map { share(of: total, thread: $0, threads: threads).count }
    // The item each thread owes next, mapping to that thread. Two threads owing the same 64-bit
    // value at once would make the walk ambiguous; with T sequences of pseudo-random values
    // that does not happen in practice.
    var due: [UInt64: Int] = [:]
    for thread in 0..<threads where remaining[thread] > 0 {
      due[sequences[thread].nextItem()] = thread
    }
    for (position, item) in list.enumerated() {
      guard let thread = due.removeValue(forKey: item) else {
        problems.append("item \(position) (\(item)) is not the next item of any thread")
        break
      }
      remaining[thread] -= 1
      if remaining[thread] > 0 { due[sequences[thread].nextItem()] = thread }
    }
    return problems.isEmpty ? nil : problems.joined(separator: "; ")
  }

  /// The baseline's list: an array under one lock, its capacity reserved for the whole run.
  final class LockedList: Sendable {
    let value: Mutex<[UInt64]>

    init(capacity: Int) {
      var items: [UInt64] = []
      items.reserveCapacity(capacity)
      value = Mutex(items)
    }
  }
}
