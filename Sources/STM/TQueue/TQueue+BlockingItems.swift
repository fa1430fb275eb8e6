import STMCore

extension TQueue {
  /// The items, dequeued one at a time as iteration asks for them, blocking the thread while
  /// the queue is empty: a consumer thread's loop, `for job in jobs.blockingItems { … }`,
  /// without the `try` that ``dequeue(fileID:line:)-9itxg`` asks for (it throws only to retry
  /// inside a transaction). Iteration ends once the queue is closed and drained.
  ///
  /// For threads outside transactions. A task iterates the queue itself (`for await`), which
  /// suspends instead of blocking; a transaction's body uses ``dequeue(fileID:line:)-9itxg``
  /// or ``tryDequeue(fileID:line:)``. Asking for an item inside a transaction traps.
  ///
  /// Several iterations, on any threads, share the items: each item goes to one of them.
  /// An item that iteration has dequeued is gone from the queue, even if the loop then stops.
  ///
  /// Conflicts: making the sequence reads nothing. Each item is taken as
  /// ``dequeue(fileID:line:)-9itxg`` takes one outside a transaction: the loop never reruns,
  /// it waits its turn at the head instead; a transactional consumer that read the head
  /// meanwhile reruns.
  public var blockingItems: BlockingItems { BlockingItems(queue: self) }

  /// A sequence that dequeues its items, blocking the thread while the queue is empty (see
  /// ``TQueue/blockingItems``).
  public struct BlockingItems: Sequence, IteratorProtocol, Sendable {
    let queue: TQueue

    /// Dequeues the next item, blocking the thread while the queue is empty; nil once the
    /// queue is closed and drained.
    ///
    /// Outside a transaction only: inside one, waiting would need a retry, and this traps
    /// with a message that says to use ``TQueue/dequeue(fileID:line:)-9itxg`` there.
    ///
    /// Conflicts: as ``TQueue/blockingItems`` says.
    ///
    /// - Complexity: O(1), plus the wait.
    public mutating func next() -> Element? {
      let site = _CallSite.unknown(in: queue)
      if Transaction._currentChecked != nil {
        _trap(
          "TQueue.blockingItems was iterated inside a transaction, where waiting for an item needs a retry. Use try queue.dequeue() there (it retries), or tryDequeue().",
          at: site)
      }
      // Without a deadline, the wait cannot time out.
      do { return try queue.blockingDequeue(at: site) } catch { preconditionFailure("a dequeue without a deadline timed out") }
    }
  }
}
