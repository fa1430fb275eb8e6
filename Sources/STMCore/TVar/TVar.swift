/// A transactional variable: a shared cell whose reads and writes are atomic.
///
/// Inside ``atomically(_:fileID:line:)-88o9x`` a `TVar` joins the running transaction: reads see the
/// transaction's snapshot and its own writes, and writes become visible at commit. Outside, each
/// operation is a transaction of its own: reading ``value`` is an atomic read of the newest
/// committed value, and updating it in place (`counter.value += 1`) is one atomic
/// read-modify-write.
///
/// ```swift
/// let hits = TVar(0)
/// hits.value += 1                   // atomic on its own
/// atomically { _ in                 // several operations, one atomic step
///   hits.value += 1
///   lastVisit.value = .now
/// }
/// ```
///
/// Copies of a `TVar` refer to the same cell; `==` compares identity.
///
/// Conflicts: a transaction that read a `TVar` conflicts with any transaction that commits a
/// write to it after the first one's snapshot; two transactions that write it conflict
/// (one reruns). ``commute(_:fileID:line:)`` never makes its own transaction rerun, and two
/// commutes never conflict; once committed it is a write like any other, so a transaction
/// that read the variable before then reruns.
public struct TVar<Value: Sendable> {
  @usableFromInline let cell: _TypedCell<Value>

  /// Creates a variable holding `value`.
  ///
  /// Creating a `TVar` inside a transaction is fine; it is private to that transaction until a
  /// committed value refers to it.
  ///
  /// - Parameter value: The initial value.
  /// - Complexity: O(1).
  @inlinable
  public init(_ value: Value) {
    cell = _TypedCell(value)
  }

  /// The variable's value.
  ///
  /// Inside a transaction, getting it reads the transaction's snapshot (or its own pending
  /// write) and marks the variable as read; setting it buffers the write until commit.
  /// Outside, getting it is an atomic read of the newest committed value, setting it commits at
  /// once, and an in-place update such as `+= 1` or `.append(x)` is one atomic
  /// read-modify-write that holds the variable briefly (the mutation must not touch other
  /// `TVar`s, nor may the deinits of what it frees, such as the elements `removeAll()` drops;
  /// put such code in `atomically`, or assign a mutated copy instead: the value an assignment
  /// replaces is freed after the variable is let go).
  ///
  /// An in-place update works on the value where it is, without copying it, outside a
  /// transaction whenever no running transaction could still read the value it replaces, and
  /// inside one once the transaction has written the variable: `.append(x)` on an array costs
  /// O(1), not a copy of the array. (The first write of a variable in a transaction copies
  /// the committed value, which other transactions may be reading.) A trivially copyable value
  /// (numbers, a struct of them, an `InlineArray`) is updated on a copy instead, on the
  /// stack: cheap for a small value, but each update of a large inline value copies all of it;
  /// keep such a value behind a reference (an `Array`) to update it in place. A mutation that
  /// throws midway keeps what it changed, as with a stored property. Using the variable from
  /// inside its own mutation (from a closure that a mutating method calls) traps, inside a
  /// transaction as outside, as Swift's exclusivity checks would.
  ///
  /// Conflicts: a read conflicts with a later commit that writes this variable; a write conflicts
  /// with concurrent writes of it.
  ///
  /// A property cannot see where it is used, so the ``ConflictLog`` shows the `atomically` call
  /// as the place of these accesses; ``read(fileID:line:)`` and ``write(_:fileID:line:)`` do the
  /// same with their own line.
  ///
  /// - Complexity: O(1) to read and to write; a commit is described on ``atomically(_:fileID:line:)-88o9x``.
  ///   A transaction that reads a variable which others have committed to since it began steps
  ///   back over those versions to the one of its snapshot, one step per version (drop-in
  ///   writes mostly change the newest version in place, adding none).
  @inlinable
  public var value: Value {
    get { cell.currentValue }
    nonmutating set {
      let state = _ThreadState.current
      if let segment = state.pointee.segment {
        if let misuse = state.pointee.forbiddenAccess { _misuse(misuse) }
        segment._withUnsafeGuaranteedRef { _write(newValue, in: $0) }
        return
      }
      let context = state.pointee.context
      let (segment, _) = _EngineEntry.beginInPlaceMutation(of: cell, context)
      cell.endInPlaceMutation(segment, context, publishing: newValue)
    }
    // A mutation that throws midway keeps what it changed, as with a stored property. One
    // yield, so that the accessor is inlined into its caller (see `_VariableMutation`).
    @inline(__always) nonmutating _modify {
      var mutation = _beginMutation()
      // Moved out, not copied: a second reference would make mutating an array copy it.
      var current = mutation.takeValue()
      defer { _endMutation(mutation, publishing: current) }
      yield &current
    }
  }

  /// Buffers `newValue` as the running transaction's write (on `segment`): into the version it
  /// already wrote in the current checkpoint generation, if any, else into a new one.
  @inlinable
  func _write(_ newValue: Value, in segment: _Segment) {
    cell.write(newValue, by: segment)
  }

  /// Reads the value, as getting ``value`` does, and shows this call to the ``ConflictLog`` as
  /// the place of the read.
  ///
  /// ```swift
  /// let balance = account.read()
  /// account.write(balance - 40)
  /// ```
  ///
  /// Conflicts: as reading ``value``.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The value: the transaction's snapshot or its own write; outside a transaction,
  ///   the newest committed value.
  /// - Complexity: O(1).
  @inlinable
  public func read(fileID: StaticString = #fileID, line: UInt = #line) -> Value {
    _notedValue(.read, at: _CallSite(fileID: fileID, line: line))
  }

  /// Writes the value, as setting ``value`` does, and shows this call to the ``ConflictLog``
  /// as the place of the write.
  ///
  /// Conflicts: as writing ``value``.
  ///
  /// - Parameters:
  ///   - newValue: The value to store.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1).
  @inlinable
  public func write(_ newValue: Value, fileID: StaticString = #fileID, line: UInt = #line) {
    _noteAccess(.write, at: _CallSite(fileID: fileID, line: line))
    value = newValue
  }

  /// Applies `transform` to the value as a delayed, commutative update.
  ///
  /// Inside a transaction the update is not applied now: it is recorded and applied at commit
  /// to whatever value is newest then. It reads nothing at snapshot time, so two transactions
  /// that only commute the same variable never conflict (counters, sums, appends). If the
  /// transaction later reads the variable, it sees its snapshot value with its updates applied,
  /// and from then on the variable counts as read and written.
  ///
  /// ```swift
  /// atomically { _ in requests.commute { $0 + 1 } }   // never conflicts with other increments
  /// ```
  ///
  /// Outside a transaction this is an atomic read-modify-write.
  ///
  /// Conflicts: none for this transaction, until it reads the variable: other transactions'
  /// writes and commutes of it never make this one rerun. Once committed, the update is a
  /// write, and transactions that read the variable before it commit rerun.
  ///
  /// - Parameters:
  ///   - transform: A function of the old value; it must be pure, since it runs at commit
  ///     (possibly on a value other transactions have changed) and may run again. It must not
  ///     touch a `TVar` or start a transaction: that traps with a message saying so. Read what
  ///     it needs in the transaction and capture the value.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1) now; O(*k*) at commit for *k* recorded updates.
  @inlinable
  public func commute(_ transform: @escaping (Value) -> Value, fileID: StaticString = #fileID, line: UInt = #line) {
    _commute(transform, at: _CallSite(fileID: fileID, line: line))
  }

  /// ``commute(_:fileID:line:)`` for a collection, which names the call and itself in `site`.
  @inlinable
  package func _commute(_ transform: @escaping (Value) -> Value, at site: _CallSite, as part: @autoclosure () -> _ConflictPart = .whole) {
    _noteAccess(.write, at: site, as: part())
    let state = _ThreadState.current
    // Borrowed: a reference taken from the handle was retained and released.
    if let segment = state.pointee.segment {
      if let misuse = state.pointee.forbiddenAccess { _misuse(misuse) }
      segment._withUnsafeGuaranteedRef { segment in
        segment.recordCommute(cell) { base in
          cell.makeVersion(transform(unsafeDowncast(base, to: _Version<Value>.self).value))
        }
      }
      return
    }
    let context = state.pointee.context
    let (segment, newest) = _EngineEntry.beginInPlaceMutation(of: cell, context)
    // The in-place update bars transactional data already; the message names the transform.
    let barred = state.pointee.forbiddenAccess
    state.pointee.forbiddenAccess = .transactionalAccessInCommute
    let updated = newest._withUnsafeGuaranteedRef {
      transform(unsafeDowncast($0, to: _Version<Value>.self).value)
    }
    state.pointee.forbiddenAccess = barred
    cell.endInPlaceMutation(segment, context, publishing: updated)
  }

  /// Replaces the value and returns the previous one, as one atomic step.
  ///
  /// Conflicts: as a read followed by a write.
  ///
  /// - Parameters:
  ///   - newValue: The value to store.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The value before the swap.
  /// - Complexity: O(1).
  @inlinable
  @discardableResult
  public func swap(_ newValue: Value, fileID: StaticString = #fileID, line: UInt = #line) -> Value {
    _noteAccess(.readWrite, at: _CallSite(fileID: fileID, line: line))
    var old = newValue
    Swift.swap(&value, &old)
    return old
  }
}

extension TVar: Sendable {}

extension TVar: Equatable {
  /// Whether two handles refer to the same variable.
  @inlinable
  public static func == (lhs: TVar, rhs: TVar) -> Bool { lhs.cell === rhs.cell }
}

extension TVar: Hashable {
  /// Hashes the variable's identity, not its value: equal handles hash alike, and hashing
  /// reads nothing transactional.
  @inlinable
  public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(cell)) }
}

extension TVar: CustomStringConvertible {
  /// `TVar(<value>)`, reading the value as ``value`` does.
  ///
  /// Conflicts: as a read of ``value``.
  public var description: String { "TVar(\(value))" }
}

extension TVar where Value == Int {
  /// `_commute({ $0 + amount }, at:as:)`, recorded in a transaction as a number added to the
  /// entry's running sum rather than as a closure: what counters (`TCounter`, a collection's
  /// count, a bounded queue's tally of freed places) use. Outside a transaction, an in-place
  /// update, as `_commute` does. Traps on overflow when the sum is applied, only where adding
  /// the amounts one by one would (see `_Segment.recordAddition`).
  @inlinable
  package func _commuteAdding(_ amount: Int, at site: _CallSite, as part: @autoclosure () -> _ConflictPart = .whole) {
    _noteAccess(.write, at: site, as: part())
    let state = _ThreadState.current
    // Borrowed: a reference taken from the handle was retained and released.
    if let segment = state.pointee.segment {
      if let misuse = state.pointee.forbiddenAccess { _misuse(misuse) }
      segment._withUnsafeGuaranteedRef { $0.recordAddition(cell, amount) }
      return
    }
    let context = state.pointee.context
    let (segment, newest) = _EngineEntry.beginInPlaceMutation(of: cell, context)
    let updated = _appliedAddition(newest._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Int>.self).value }, amount)
    cell.endInPlaceMutation(segment, context, publishing: updated)
  }
}

extension TVar: Encodable where Value: Encodable {
  /// Encodes the variable's value, as the value itself encodes: a type that holds variables
  /// can synthesize its `Codable` conformance. Outside a transaction each variable is read on
  /// its own; encode inside ``atomically(_:fileID:line:)-88o9x`` to read them all at one
  /// snapshot.
  ///
  /// Conflicts: as a read of ``value``.
  ///
  /// - Parameter encoder: The encoder to write to.
  /// - Throws: What `encoder` throws.
  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(value)
  }
}

extension TVar: Decodable where Value: Decodable {
  /// Creates a new variable holding the value that `decoder` holds. It is a variable of its
  /// own: not equal (`==`) to the one that was encoded.
  ///
  /// - Parameter decoder: The decoder to read from.
  /// - Throws: What decoding a `Value` throws; then no variable is made.
  public init(from decoder: any Decoder) throws {
    self.init(try decoder.singleValueContainer().decode(Value.self))
  }
}
