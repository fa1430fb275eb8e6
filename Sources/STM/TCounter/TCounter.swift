/// A transactional integer counter whose increments never conflict with each other.
///
/// ```swift
/// let requests = TCounter()
/// requests.increment()                       // atomic on its own, from any thread
/// atomically { _ in requests.add(3) }        // a delayed update: applied at commit
/// print(requests.value)
/// ```
///
/// Conflicts: ``add(_:fileID:line:)`` and ``increment(fileID:line:)`` are commutative updates, applied at commit to the
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
  /// - Parameter initialValue: The count to start from (default 0).
  /// - Complexity: O(1).
  public init(_ initialValue: Int = 0) {
    cell = TVar(initialValue)
  }

  /// Adds `amount` (which may be negative) as a commutative update. A transaction's additions
  /// are summed while the sum fits in an `Int` and applied at commit, or where the transaction
  /// reads the counter after them; overflow traps there, and only where adding the amounts one
  /// by one would.
  ///
  /// Conflicts: none.
  ///
  /// - Parameters:
  ///   - amount: The amount to add.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1).
  public func add(_ amount: Int, fileID: StaticString = #fileID, line: UInt = #line) {
    cell._commuteAdding(amount, at: _CallSite(fileID: fileID, line: line, owner: self))
  }

  /// Adds 1 as a commutative update.
  ///
  /// Conflicts: none.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1).
  public func increment(fileID: StaticString = #fileID, line: UInt = #line) { add(1, fileID: fileID, line: line) }

  /// Subtracts 1 as a commutative update.
  ///
  /// Conflicts: none.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1).
  public func decrement(fileID: StaticString = #fileID, line: UInt = #line) { add(-1, fileID: fileID, line: line) }

  /// The counter's value.
  ///
  /// Conflicts: with transactions that commit an update after this one's snapshot.
  ///
  /// A property cannot see where it is used: the ``ConflictLog`` shows the `atomically` call as
  /// the place of this read.
  ///
  /// - Complexity: O(1).
  public var value: Int { cell._notedValue(.read, at: .unknown(in: self)) }

  /// Adds `amount` to `counter` as a commutative update: `counter.add(amount)`, spelled as
  /// for an `Int`. The counter is a reference, so a `let` counter takes it.
  ///
  /// Conflicts: none.
  ///
  /// An operator cannot see where it is used: the ``ConflictLog`` shows the `atomically` call
  /// as the place of this update. ``add(_:fileID:line:)`` names its own line.
  ///
  /// - Complexity: O(1).
  public static func += (counter: TCounter, amount: Int) {
    counter.cell._commuteAdding(amount, at: .unknown(in: counter))
  }

  /// Subtracts `amount` from `counter` as a commutative update: `counter.add(-amount)`,
  /// spelled as for an `Int`. It traps on overflow only where `Int`'s `-=` would (an `amount`
  /// of `Int.min` too, which has no negation of its own).
  ///
  /// Conflicts: none.
  ///
  /// An operator cannot see where it is used: the ``ConflictLog`` shows the `atomically` call
  /// as the place of this update. ``add(_:fileID:line:)`` names its own line.
  ///
  /// - Complexity: O(1).
  public static func -= (counter: TCounter, amount: Int) {
    let site = _CallSite.unknown(in: counter)
    guard amount == .min else { return counter.cell._commuteAdding(-amount, at: site) }
    // -Int.min is Int.max + 1, added in two parts, in one step: the sum overflows only where
    // subtracting would.
    _singleOperation(at: site) { _ in
      counter.cell._commuteAdding(.max, at: site)
      counter.cell._commuteAdding(1, at: site)
    }
  }
}

extension TCounter: CustomStringConvertible {
  /// `TCounter(<value>)`.
  ///
  /// Conflicts: as ``value``.
  public var description: String { "TCounter(\(value))" }
}
