/// A read-modify-write of a variable's value for `TVar.value`'s `_modify` accessor: begun by
/// `TVar._beginMutation()`, ended by `TVar._endMutation(_:publishing:)`, with one yield of
/// the value between.
///
/// Split so because a coroutine with several yields (one per road below) is not inlined into
/// its caller, and its frame was then allocated on the heap: a `malloc` and a `free` at every
/// `counter.value += 1`, about a quarter of a drop-in update's instructions and a tenth of
/// a one-variable transaction's. With one yield the accessor is inlined and its frame is the
/// caller's (the dictionary's and the array's subscripts do the same).
@usableFromInline
package struct _VariableMutation<Value> {
  /// How the mutation began, and so how it ends.
  @usableFromInline
  enum Road {
    /// Inside a transaction that wrote the variable in its current block, for a value that
    /// may hold an object: that write, which the value was moved out of and goes back into.
    /// It is flagged meanwhile, so that using the variable traps (see
    /// `_VersionFlags.mutatingInPlace`); the transaction's log holds it until the block ends,
    /// which cannot happen before the mutation does.
    case ownWrite(Unmanaged<_Version<Value>>)
    /// Inside a transaction otherwise: a copy of the value it reads, written back as its
    /// write. The cell is listed as being mutated on a copy meanwhile, so that using the
    /// variable traps instead of being overwritten by the copy.
    case copy(Unmanaged<_Segment>)
    /// Outside a transaction, for a trivially copyable value: the cell locked, and a copy,
    /// published at the end.
    case locked(Unmanaged<_Segment>, Unmanaged<_ThreadContext>)
    /// Outside a transaction, for a value that may hold an object: the cell locked and the
    /// update placed in the commit order before the mutation runs (under a commit number, or,
    /// when no snapshot can see the cell, at the newest version's own stamp: see
    /// `_EngineEntry.numberInPlaceMutation(of:_:_:)`), so that the value can be moved out of
    /// the newest version and back (`overwritable`) when the engine allows that version to be
    /// overwritten; otherwise a copy, published in a new version.
    case numbered(Unmanaged<_Segment>, Unmanaged<_ThreadContext>, number: UInt64, overwritable: Unmanaged<_VersionBase>?)
  }

  @usableFromInline let road: Road
  /// The value when the mutation began, until `takeValue()`.
  @usableFromInline var value: Value?

  @inlinable
  init(_ road: Road, value: consuming Value) {
    self.road = road
    self.value = value
  }

  /// The value, moved out: a copy left here would make mutating an array copy it.
  @inlinable
  mutating func takeValue() -> Value { value.take().unsafelyUnwrapped }
}

extension TVar {
  /// Begins a mutation of the value (see `_VariableMutation`): inside a transaction a read,
  /// outside one the cell's commit lock, held until `_endMutation(_:publishing:)`.
  @inlinable
  package func _beginMutation() -> _VariableMutation<Value> {
    let state = _ThreadState.current
    // The segment stays unretained: the transaction holds it until it ends, and retaining it
    // cost two calls into the runtime per `+=`.
    if let segment = state.pointee.segment {
      if let misuse = state.pointee.forbiddenAccess { _misuse(misuse) }
      // The transaction's own value, in a version written in this block that no one else
      // sees: mutated out of it and back, so that a second `.append(x)` does not copy the
      // array. (A trivially copyable value costs nothing to copy.)
      if !_isPOD(Value.self), let pending = segment._withUnsafeGuaranteedRef({ $0.writableVersion(of: cell) }) {
        let version = unsafeDowncast(pending, to: _Version<Value>.self)
        // Reading or writing the variable from inside the mutation would find no value (or
        // replace one in pieces): it traps instead, as Swift's exclusivity checks would.
        version.flags |= _VersionFlags.mutatingInPlace
        return _VariableMutation(.ownWrite(.passUnretained(version)), value: version.moveValueOut())
      }
      // The first update in the block mutates a copy (other transactions may be reading the
      // committed value); using the variable meanwhile traps, as above.
      let current = segment._withUnsafeGuaranteedRef { cell.value(readBy: $0) }
      segment._withUnsafeGuaranteedRef { $0.beginMutatingCopy(of: cell) }
      return _VariableMutation(.copy(segment), value: current)
    }
    let context = state.pointee.context
    let (segment, newest) = _EngineEntry.beginInPlaceMutation(of: cell, context)
    // Read through the handle, not a reference: the engine overwrites the newest version only
    // while nothing else holds it.
    func newestValue() -> Value { newest._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value } }
    if _isPOD(Value.self) { return _VariableMutation(.locked(segment, context), value: newestValue()) }
    // A value that may hold an object (an array, a string) is mutated in its version when the
    // engine allows the version to be overwritten: a copy would make the mutation copy the
    // whole array, every time. That needs the update's place in the order before the mutation
    // runs.
    let (number, overwritable) = _EngineEntry.numberMutation(of: cell, segment, context)
    guard let overwritable else {
      return _VariableMutation(.numbered(segment, context, number: number, overwritable: nil), value: newestValue())
    }
    // Under the lock, with the update's place taken, no reader can reach the version until the
    // value is back in it: readers at or above that place wait for the lock, and none below it
    // can see the version (see `_EngineEntry.numberMutation(of:_:_:)`).
    let moved = overwritable._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).moveValueOut() }
    return _VariableMutation(.numbered(segment, context, number: number, overwritable: overwritable), value: moved)
  }

  /// Ends what `_beginMutation()` began by storing `value`: back into the version it was moved
  /// out of, or as the transaction's write, or published outside a transaction. Called however
  /// the mutation ends, by a thrown error too: a mutation keeps what it changed.
  @inlinable
  package func _endMutation(_ mutation: _VariableMutation<Value>, publishing value: consuming Value) {
    switch mutation.road {
    case .ownWrite(let version):
      // Moved through an optional: a closure cannot consume a parameter.
      var moving: Value? = consume value
      version._withUnsafeGuaranteedRef { version in
        version.moveValueIn(moving.take().unsafelyUnwrapped)
        version.flags &= ~_VersionFlags.mutatingInPlace
      }
    case .copy(let segment):
      segment._withUnsafeGuaranteedRef { segment in
        segment.endMutatingCopy(of: cell)
        _write(value, in: segment)
      }
    case .locked(let segment, let context):
      cell.endInPlaceMutation(segment, context, publishing: value)
    case .numbered(let segment, let context, number: let number, overwritable: let overwritable?):
      var moving: Value? = consume value
      overwritable._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).moveValueIn(moving.take().unsafelyUnwrapped) }
      _EngineEntry.endNumberedMutation(of: cell, segment, context, numbered: number, publishing: overwritable)
    case .numbered(let segment, let context, number: let number, overwritable: nil):
      _EngineEntry.endNumberedMutation(
        of: cell, segment, context, numbered: number, publishing: cell.makePendingVersion(value, cachedBy: context))
    }
  }
}

extension _Version {
  /// Moves the value out, leaving the version without one until `moveValueIn(_:)`: only while
  /// nothing can read the version or free it (a mutation that has flagged the transaction's own
  /// write, or that holds the cell's lock at a place in the order no reader has reached).
  @inlinable
  func moveValueOut() -> Value { withUnsafeMutablePointer(to: &value) { $0.move() } }

  /// Puts a value back into a version that `moveValueOut()` emptied.
  @inlinable
  func moveValueIn(_ newValue: consuming Value) {
    var moving: Value? = consume newValue
    withUnsafeMutablePointer(to: &value) { $0.initialize(to: moving.take().unsafelyUnwrapped) }
  }
}
