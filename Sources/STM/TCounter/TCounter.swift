/// A transactional integer counter whose increments never conflict with each other.
///
/// ```swift
/// let requests = TCounter()
/// requests.increment()                       // atomic on its own, from any thread
/// atomically { _ in requests.add(3) }        // a delayed update: applied at commit
/// print(requests.value)
/// ```
///
/// Conflicts: ``add(_:)`` and ``increment()`` are commutative updates, applied at commit to the
/// newest value: they conflict with nothing, so any number of threads count at once without
/// aborts. Reading ``value`` conflicts with every transaction that commits an update after the
/// reader's snapshot (and, inside a transaction that already added, turns that transaction's
/// own update into an ordinary read-modify-write).
///
/// `TCounter` is a reference type: copies of a reference share one counter.
public final class TCounter: Sendable {
  let cell: TVar<Int>

  /// Creates a counter holding `initialValue`.
  ///
  /// - Complexity: O(1).
  public init(_ initialValue: Int = 0) {
    cell = TVar(initialValue)
  }

  /// Adds `amount` (which may be negative) as a commutative update; overflow traps at commit.
  ///
  /// Conflicts: none.
  ///
  /// - Complexity: O(1).
  public func add(_ amount: Int) {
    if amount == 1 {
      cell.commute(Self.plusOne)
    } else {
      cell.commute { $0 + amount }
    }
  }

  /// Adds 1 as a commutative update.
  ///
  /// Conflicts: none.
  ///
  /// - Complexity: O(1).
  public func increment() { cell.commute(Self.plusOne) }

  /// Subtracts 1 as a commutative update.
  ///
  /// Conflicts: none.
  ///
  /// - Complexity: O(1).
  public func decrement() { add(-1) }

  private static let plusOne: @Sendable (Int) -> Int = { $0 + 1 }

  /// The counter's value.
  ///
  /// Conflicts: with transactions that commit an update after this one's snapshot.
  ///
  /// - Complexity: O(1).
  public var value: Int { cell.value }
}

extension TCounter: CustomStringConvertible {
  /// `TCounter(<value>)`.
  public var description: String { "TCounter(\(value))" }
}
