/// A collection operation outside any transaction that must find its cell before it can read
/// or update it: a dictionary's `dict[key]`, looked up in an index that readers search without
/// a lock.
///
/// It holds a segment and announces a snapshot (`beginReading()`) or a lookup
/// (`beginUpdating()`) until it has read the cell or locked it for an update. The
/// announcement is what makes the lock-free lookup safe: a cell or an index table taken out of
/// an index is freed only once every snapshot and lookup announced before that has been
/// withdrawn (see `_EngineClock.oldestRunningSnapshot()`), so whatever the lookup found stays
/// valid memory until the operation has it locked or read.
@usableFromInline
package struct _SingleOperation {
  // Unretained: segments and thread contexts outlive every operation.
  @usableFromInline let segment: Unmanaged<_Segment>
  @usableFromInline let context: Unmanaged<_ThreadContext>

  @inlinable
  init(segment: Unmanaged<_Segment>, context: Unmanaged<_ThreadContext>) {
    self.segment = segment
    self.context = context
  }

  /// Takes a segment and announces a snapshot, for an operation that ends with
  /// `finishReading`. Traps inside a transaction's commit-time code or an in-place update,
  /// where transactional data must not be touched.
  @inlinable
  package static func beginReading(on thread: _CallingThread = .current) -> _SingleOperation {
    _SingleOperation(segment: _EngineEntry.beginSingleOperation(thread.context, reading: true), context: thread.context)
  }

  /// As `beginReading()`, for an operation that ends with `beginUpdate`, which reads under
  /// the cell's lock and needs no snapshot: the announcement only protects the lookup, so it
  /// does not read the commit clock (whose line every commit writes; see
  /// `_Engine.announceForLookup(for:after:)`), and it pins no versions.
  @inlinable
  package static func beginUpdating(on thread: _CallingThread = .current) -> _SingleOperation {
    _SingleOperation(segment: _EngineEntry.beginSingleOperation(thread.context, reading: false), context: thread.context)
  }

  /// The commit number the operation reads at.
  @inlinable
  package var snapshot: UInt64 { segment._withUnsafeGuaranteedRef { $0.snapshot } }

  /// The value of `cell` at the operation's snapshot (begun with `beginReading()`).
  @inlinable
  package func read<Value>(_ cell: _TypedCell<Value>) -> Value {
    segment._withUnsafeGuaranteedRef { segment in
      segment.visibleVersion(of: cell)._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value }
    }
  }

  /// The value of `variable` at the operation's snapshot (begun with `beginReading()`).
  @inlinable
  package func read<Value>(_ variable: TVar<Value>) -> Value {
    read(variable.cell)
  }

  /// Ends an operation begun with `beginReading()`.
  @inlinable
  package func finish() {
    _EngineEntry.endSingleOperation(segment, context)
  }

  /// Ends the operation with the value of `cell` at its snapshot (nil for no cell).
  @inlinable
  package func finishReading<Value>(_ cell: _TypedCell<Value>?) -> Value? {
    let value = cell.map { read($0) }
    finish()
    return value
  }

  /// `finishReading(_:)` for a cell the caller holds unretained (the lookup's announcement
  /// keeps it): passed as a reference, it was retained and released around the read, two
  /// atomic read-modify-writes on every `dict[key]`.
  @inlinable
  package func finishReading<Value, Cell: _TypedCell<Value>>(unretained cell: Unmanaged<Cell>) -> Value {
    let value = segment._withUnsafeGuaranteedRef { segment in
      cell._withUnsafeGuaranteedRef { cell in
        segment.visibleVersion(of: cell)._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value }
      }
    }
    finish()
    return value
  }

  /// Takes `cell`'s commit lock and hands it over as an in-place update, which ends the
  /// operation: end the update with one of `TVar`'s `_endInPlaceUpdate` calls. Returns nil,
  /// with the operation still running and no lock held, when the cell is retired: look the
  /// key up again.
  @inlinable
  package func beginUpdate<Value>(_ cell: _TypedCell<Value>) -> _InPlaceUpdate<Value>? {
    guard let newest = _EngineEntry.lockForInPlaceUpdate(cell, segment, context) else { return nil }
    return _InPlaceUpdate(
      segment: segment, context: context,
      value: newest._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value })
  }
}

extension _EngineEntry {
  /// The untyped half of `_SingleOperation.beginReading()` and `beginUpdating()`.
  @usableFromInline
  static func beginSingleOperation(_ context: Unmanaged<_ThreadContext>, reading: Bool) -> Unmanaged<_Segment> {
    context._withUnsafeGuaranteedRef { context in
      let segment = beginSingleRead(context, readsAtSnapshot: reading)
      #if DEBUG
      context.singleOperationsBegun += 1
      if reading, let hook = _TestHooks.afterSingleReadAnnounced.value { hook() }
      #endif
      return segment
    }
  }

  @usableFromInline
  static func endSingleOperation(_ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>) {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { endSingleRead(segment, $0) }
    }
  }

  /// Locks `cell` for an in-place update by the single operation on `segment`, and withdraws
  /// the operation's lookup announcement (the lock now keeps the cell alive and its newest
  /// version in place). Returns the newest version, or nil, holding no lock and still
  /// announced, if the cell is retired.
  @usableFromInline
  static func lockForInPlaceUpdate(_ cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>)
    -> Unmanaged<_VersionBase>?
  {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { context in
        context.engine._withUnsafeGuaranteedRef { engine in
          #if DEBUG
          if let hook = _TestHooks.beforeInPlaceUpdateLocks.value { hook() }
          #endif
          engine.enterCommit(segment, context: context)
          return engine.lockLookedUp(cell, segment, context)
        }
      }
    }
  }

}

extension _Engine {
  /// The end of `lockForInPlaceUpdate(_:_:_:)` (and of `_QuickUpdate.lock`), with the commit
  /// entered: locks `cell`, and withdraws the lookup's announcement unless the cell is
  /// retired (then it leaves the commit and returns nil, holding no lock).
  @inline(__always)
  func lockLookedUp(_ cell: _Cell, _ segment: _Segment, _ context: _ThreadContext) -> Unmanaged<_VersionBase>? {
    segment.lock(cell, context: context)
    if cell.isRetired {
      cell.unlock()
      leaveCommit(segment)
      return nil
    }
    withdrawLookup(for: segment)
    context.forbiddenAccess = .transactionDuringInPlaceMutation
    return segment.newestVersion(ofLocked: cell)
  }
}
