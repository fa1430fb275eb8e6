import Synchronization

// The engine primitives that the collections in `STM` are built from. They are `package`, not
// public: their contracts (retirement, delayed appends, in-place updates that may decline) are
// easy to misuse, and the collections wrap each in an operation with a documented conflict rule.

/// The holder a retirement writes into a cell's `lockWord`, and housekeeping that publishes
/// nothing either (a peek during an in-place update, the history reclaimer's trim). Negative,
/// so that readers and validators, which wait only for positive (segment) holders, carry on:
/// none of these publishes a version.
@usableFromInline let _retireTag = -1

extension TVar {
  /// Detaches the variable for good if its newest value satisfies `predicate`, checked under
  /// its commit lock; returns whether it did.
  ///
  /// A collection retires the cell of a removed key, then drops it from its index, so a later
  /// insert of that key makes a fresh cell. From then on a commit that writes the retired cell
  /// fails (write–write) and a transaction that read it cannot commit a write (write–read):
  /// both rerun, look the key up again, and find the fresh cell. Call it outside transactions,
  /// holding the index lock that guards the lookup of this cell (never the other way round:
  /// commits never take index locks).
  ///
  /// A cell that an inevitable transaction writes is not retired (see
  /// `_Cell.pinForInevitable()`). The caller then wakes the transactions waiting in `retry()`
  /// on the cell (`_wakeWaitersOfRetired()`), once the cell has left its index: no commit
  /// will ever write it again, and they must look the key up anew. (Woken before, they found
  /// the same cell, which woke them again at once, until it left: a waiter for an absent key
  /// reran about a thousand times while other threads inserted and removed other keys; found
  /// by review.)
  @inlinable
  package func _retire(if predicate: (Value) -> Bool) -> Bool {
    cell.spinLock(as: _retireTag)
    let retiring = !cell.isPinned && cell.head.load(ordering: .acquiring)._withUnsafeGuaranteedRef {
      predicate(unsafeDowncast($0, to: _Version<Value>.self).value)
    }
    if retiring { cell.markRetired() }
    // Whoever takes the lock next sees the flag (the release stores the word that holds it).
    cell.unlock()
    return retiring
  }

  /// Wakes the transactions waiting in `retry()` on this variable's cell, which `_retire(if:)`
  /// retired and its collection has taken out of its index.
  @inlinable
  package func _wakeWaitersOfRetired() { _EngineEntry.wakeWaitersOfRetired(cell) }

  /// Inside `transaction`, which is inevitable: pins the variable's cell so that no collection
  /// retires it until the transaction ends (see `_Cell.pinForInevitable()`); returns false,
  /// pinning nothing, if the cell is retired already (look the key up again).
  @inlinable
  package func _pinForInevitable(in transaction: Transaction) -> Bool { transaction._withSegment { $0.pin(cell) } }

  /// The variable's cell, unretained: for a collection that keeps the variable and passes its
  /// cell to an in-place update (see `_TypedCell.endInPlaceUpdate(_:publishing:alongWith:_:)`)
  /// without the retain and release that copying the variable out of an array costs.
  @inlinable
  package var _unretainedCell: Unmanaged<_TypedCell<Value>> { Unmanaged.passUnretained(cell) }

  /// Outside a transaction: runs `body` on the newest value while holding the commit lock, and
  /// publishes the new value if `body` says so, as one atomic step. Returns nil, without
  /// calling `body`, when the variable is retired.
  ///
  /// `body` must not touch transactional data (that traps).
  @usableFromInline
  package func _updateInPlace<Result>(_ body: (inout Value) -> (publish: Bool, result: Result)) -> Result? {
    guard let update = _beginInPlaceUpdate() else { return nil }
    var value = update.value
    let (publish, result) = body(&value)
    cell.endInPlaceUpdate(handingOver: consume update, publishing: publish ? value : nil)
    return result
  }

  /// Inside a transaction: calls `body` with the running transaction's batch of delayed
  /// appends on this variable (its anchor), made with `make` if it has none yet, to change it
  /// in place. A batch from before the innermost checkpoint (`orElse`) is copied first, unless
  /// `appendingOnly` says that `body` only appends items (see `_DelayedAppend`). `body` must
  /// not touch transactional data (it would find the batch in the middle of a change).
  @inlinable
  package func _withDelayedAppend<Batch: _DelayedAppend, Result>(
    in transaction: Transaction, appendingOnly: Bool = false, _ make: () -> Batch, _ body: (inout Batch) throws -> Result
  ) rethrows -> Result where Batch.Anchor == Value {
    let box = transaction._withSegment { $0.delayedAppend(on: cell, appendingOnly: appendingOnly) { _DelayedAppendBox(make()) } }
    return try box._withUnsafeGuaranteedRef { try body(&unsafeDowncast($0, to: _DelayedAppendBox<Batch>.self).batch) }
  }

  /// Inside a transaction: drops its batch of delayed appends on this variable, for a
  /// collection whose transaction took every item of it back (appended, then removed): an
  /// empty batch would still land, as a new version of the anchor that a reader of it (an
  /// array's `count`) would conflict with. The batch must be empty.
  @inlinable
  package func _dropEmptyDelayedAppend(in transaction: Transaction) {
    transaction._withSegment { $0.dropDelayedAppend(on: cell) }
  }

  /// Inside a transaction: `body` applied to its batch on this variable, or nil if it has none.
  /// Read it only; call ``_withDelayedAppend(in:appendingOnly:_:_:)`` to change it.
  @inlinable
  package func _existingDelayedAppend<Batch: _DelayedAppend, Result>(
    in transaction: Transaction, as type: Batch.Type, _ body: (borrowing Batch) -> Result
  ) -> Result? where Batch.Anchor == Value {
    guard let box = transaction._withSegment({ $0.existingDelayedAppend(on: cell) }) else { return nil }
    return box._withUnsafeGuaranteedRef { body(unsafeDowncast($0, to: _DelayedAppendBox<Batch>.self).batch) }
  }

  /// Inside `transaction`: the value this transaction wrote to the variable in its current
  /// block, held where it is (in a pending version no one else sees, so that a mutation of an
  /// array there does not copy it); nil when the transaction has no such write.
  @inlinable
  package func _ownWrite(in transaction: Transaction) -> _OwnWrite<Value>? {
    guard let pending = transaction._withSegment({ $0.writableVersion(of: cell) }) else { return nil }
    return _OwnWrite(version: unsafeDowncast(pending, to: _Version<Value>.self), cell: cell)
  }

  /// The newest committed value, copied under the commit lock without joining any transaction
  /// and without marking a read: for tests and diagnostics. Housekeeping under a lock of its
  /// own uses `_newestCommittedValueSatisfies(_:)`, which copies nothing.
  @inlinable
  package var _newestCommittedValue: Value { withNewestCommittedValue { copy $0 } }

  /// Whether the newest committed value satisfies `predicate`, tested under the commit lock
  /// without joining any transaction and without marking a read: for housekeeping (sweeps),
  /// never for a decision that must be atomic with anything else. The value is tested where
  /// it is, not copied out: a copy that outlived the lock could be the value's last reference
  /// once a writer replaced it, and its deinit, the user's code, then ran wherever the caller
  /// was, under a sweep's stripe lock (found by review).
  @inlinable
  package func _newestCommittedValueSatisfies(_ predicate: (borrowing Value) -> Bool) -> Bool {
    let satisfies = withNewestCommittedValue(predicate)
    _noteHousekeepingReadEnded(satisfies)
    return satisfies
  }

  /// Calls `body` with the newest committed value, under the commit lock.
  @inlinable
  func withNewestCommittedValue<Result>(_ body: (borrowing Value) -> Result) -> Result {
    cell.spinLock(as: _retireTag)
    defer { cell.unlock() }
    // Under the lock the head cannot be replaced, so it cannot be freed while we look at it.
    return cell.head.load(ordering: .acquiring)._withUnsafeGuaranteedRef {
      body(unsafeDowncast($0, to: _Version<Value>.self).value)
    }
  }
}

extension Transaction {
  /// The index of the segment running this transaction: collections spread per-transaction
  /// bookkeeping (a dictionary's count) over segments, so that concurrent transactions touch
  /// different cells.
  @inlinable
  package var _segmentIndex: Int { _withSegment { $0.index } }

  /// The commit number this transaction reads at.
  @inlinable
  package var _snapshot: UInt64 { _withSegment { $0.snapshot } }

  /// Whether the transaction is inevitable (it asked, or the engine escalated it): it must not
  /// lose, so a collection keeps the cells it writes from being retired until it ends.
  @inlinable
  package var _isInevitable: Bool { _withSegment { $0.isInevitable } }

  /// Whether the body called ``becomeInevitable()`` (so it must not wait).
  @usableFromInline
  package var _isInevitableByRequest: Bool { _withSegment { $0.isInevitableByRequest } }
}

/// Where the engine's commit clock stands, and the oldest snapshot a running transaction may
/// read at: a collection that detaches a cell keeps it reachable for snapshots taken before
/// the detachment (``now`` then) until ``oldestRunningSnapshot()`` has passed that value.
@usableFromInline
package enum _EngineClock {
  @usableFromInline
  package static var now: UInt64 { _Engine.shared.clock.load(ordering: .sequentiallyConsistent) }

  /// Moves the clock on by one, as an empty commit would, and returns the new value: above
  /// the snapshot of every transaction running now. For housekeeping that must be ordered
  /// after those snapshots without committing anything.
  @usableFromInline
  package static func advance() -> UInt64 {
    _Engine.shared.clock.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
  }

  /// Every running and future transaction reads at a snapshot at least this large, and every
  /// lookup under way in a single operation announced a clock at least this large.
  @usableFromInline
  package static func oldestRunningSnapshot() -> UInt64 { _Engine.shared.oldestAnnouncedAccess() }
}

extension TVar {
  /// Inside `transaction`: the value it would read from the variable (its own write, or the
  /// value at its snapshot), without recording a read, so that no commit of the variable makes
  /// the transaction conflict; nil when the transaction has only delayed updates of it.
  ///
  /// For a collection that scans many variables for one that justifies its answer (a present
  /// key, for `isEmpty`) and then reads that one: the answer may rest only on what was read.
  @inlinable
  package func _peek(in transaction: Transaction) -> Value? {
    transaction._withSegment { $0.peek(cell) }?._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value }
  }
}

extension TVar {
  /// Inside `transaction`: whether it has written the variable (in any block), so that reading
  /// it returns the transaction's own value rather than the snapshot's.
  @inlinable
  package func _isWritten(in transaction: Transaction) -> Bool { transaction._withSegment { $0.hasWrite(of: cell) } }

  /// Inside `transaction`, for a `_modify` accessor that mutates a copy of the variable's value
  /// and writes it back when the mutation ends: until `_endMutatingCopy(in:)`, reading, writing
  /// or commuting the variable in the transaction traps, as Swift's exclusivity checks would,
  /// instead of having what it wrote overwritten by the copy. Begin after reading the value,
  /// end before writing it back.
  @inlinable
  package func _beginMutatingCopy(in transaction: Transaction) { transaction._withSegment { $0.beginMutatingCopy(of: cell) } }

  /// Ends what `_beginMutatingCopy(in:)` began.
  @inlinable
  package func _endMutatingCopy(in transaction: Transaction) { transaction._withSegment { $0.endMutatingCopy(of: cell) } }
}

extension _TypedCell {
  /// `TVar._beginMutatingCopy(in:)`, for a collection that holds the cell itself (making the
  /// `TVar` retained and released it).
  @inlinable
  package final func _beginMutatingCopy(in transaction: Transaction) { transaction._withSegment { $0.beginMutatingCopy(of: self) } }

  /// Ends what `_beginMutatingCopy(in:)` began, in the transaction running on the calling
  /// thread (the one that began it).
  @inlinable
  package final func _endMutatingCopy() {
    _ThreadState.current.pointee.segment?._withUnsafeGuaranteedRef { $0.endMutatingCopy(of: self) }
  }

  /// Ends what `_beginMutatingCopy(in:)` began and writes the copy, `value`, as the running
  /// transaction's write of the cell: what `_endMutatingCopy()` and then setting
  /// `TVar.value` do, for a collection that holds the cell unretained.
  @inlinable
  package final func _endMutatingCopy(writingBack value: Value) {
    _ThreadState.current.pointee.segment.unsafelyUnwrapped._withUnsafeGuaranteedRef { segment in
      segment.endMutatingCopy(of: self)
      write(value, by: segment)
    }
  }
}

/// A transaction's own pending write of a variable (see `TVar._ownWrite(in:)`).
///
/// Unretained: the transaction's redo log holds the version and the cell for as long as the
/// handle is used (between `beginMutation()` and `endMutation(storing:)`, nothing can replace
/// the write: reading, writing or commuting the variable traps while it is flagged, and a
/// rolled-back block restores a log that still holds it). Holding no reference also keeps
/// the handle trivially copyable, so that a `_modify` accessor of a dictionary or an array of
/// trivially copyable values destroys nothing at its end: with two strong references, each
/// drop-in `dict[key, default: 0] += 1` destroyed its bookkeeping through the generic value
/// witnesses of its type, about a tenth of the update's instructions.
@usableFromInline
package struct _OwnWrite<Value> {
  @usableFromInline let unmanagedVersion: Unmanaged<_Version<Value>>
  @usableFromInline let unmanagedCell: Unmanaged<_Cell>

  @inlinable
  init(version: _Version<Value>, cell: _Cell) {
    unmanagedVersion = .passUnretained(version)
    unmanagedCell = .passUnretained(cell)
  }

  /// Calls `body` with the written value, where it is.
  @inlinable
  package func withValue<Result>(_ body: (inout Value) -> Result) -> Result {
    unmanagedVersion._withUnsafeGuaranteedRef { body(&$0.value) }
  }

  /// Marks the write as being mutated in place until `endMutation()`: reading or writing the
  /// variable meanwhile traps (see `_VersionFlags.mutatingInPlace`).
  @inlinable
  package func beginMutation() { unmanagedVersion._withUnsafeGuaranteedRef { $0.flags |= _VersionFlags.mutatingInPlace } }

  /// Ends what `beginMutation()` began by putting `value` back into the write. Returns whether
  /// that was all: false when a block that the mutation started (a nested `atomically`) wrote
  /// a version of its own meanwhile, and the caller must also write `value` the usual way.
  @inlinable
  package func endMutation(storing value: Value) -> Bool {
    unmanagedVersion._withUnsafeGuaranteedRef { version in
      version.flags &= ~_VersionFlags.mutatingInPlace
      version.value = value
    }
    guard let transaction = Transaction._currentChecked else { return false }
    let current = unmanagedCell._withUnsafeGuaranteedRef { cell in transaction._withSegment { $0.writableVersion(of: cell) } }
    return current.map { Unmanaged.passUnretained($0).toOpaque() == unmanagedVersion.toOpaque() } ?? false
  }
}
