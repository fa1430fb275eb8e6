import Synchronization

/// An atomic update, outside any transaction, of a variable together with a per-segment
/// companion (a dictionary's key cell and its segment's count): what lets a drop-in
/// `dict[key, default: 0] += 1` run as one atomic step without starting a transaction.
///
/// `TVar._beginPairedUpdate` takes a segment and the commit locks of both cells, in address
/// order like any commit, and hands out their newest values; `_endPairedUpdate` publishes
/// whichever changed under one commit number and releases everything. In between, the thread
/// must not touch transactional data (that traps): the locks are held.
@usableFromInline
package struct _PairedUpdate<Value: Sendable, Companion: Sendable> {
  @usableFromInline let locks: _PairedLocks
  /// The variable's newest value when the locks were taken.
  @usableFromInline package let value: Value
  /// The companion's newest value when the locks were taken.
  @usableFromInline package let companion: Companion

  @inlinable
  init(locks: _PairedLocks, value: Value, companion: Companion) {
    self.locks = locks
    self.value = value
    self.companion = companion
  }
}

/// What a paired update holds: the segment it runs on and the two locked cells. Untyped, so
/// that the engine side of a paired update is compiled once, not per value type.
@usableFromInline
struct _PairedLocks {
  @usableFromInline let segment: _Segment
  @usableFromInline let context: _ThreadContext
  @usableFromInline let cell: _Cell
  @usableFromInline let partner: _Cell
}

// The typed halves are inlinable, so that a collection's generic code specialized in a client
// module reaches the untyped engine calls below without looking up generic metadata.
extension TVar {
  /// Starts a paired update of this variable and `companion(segmentIndex)`; returns nil,
  /// holding nothing, when this variable is retired (see `_retire(if:)`).
  @inlinable
  package func _beginPairedUpdate<Companion>(
    companion: (Int) -> TVar<Companion>
  ) -> _PairedUpdate<Value, Companion>? {
    guard let locks = _Engine.beginPairedUpdate(of: cell, companion: { companion($0).cell }) else { return nil }
    return _PairedUpdate(
      locks: locks,
      value: locks.cell.head.load(ordering: .acquiring)._withUnsafeGuaranteedRef {
        unsafeDowncast($0, to: _Version<Value>.self).value
      },
      companion: locks.partner.head.load(ordering: .acquiring)._withUnsafeGuaranteedRef {
        unsafeDowncast($0, to: _Version<Companion>.self).value
      })
  }

  /// Publishes `value` and `companion` (each only if not nil) under one commit number, and
  /// releases what `_beginPairedUpdate` took.
  @inlinable
  package func _endPairedUpdate<Companion>(
    _ update: _PairedUpdate<Value, Companion>, value: Value?, companion: Companion?
  ) {
    let partner = unsafeDowncast(update.locks.partner, to: _TypedCell<Companion>.self)
    _Engine.endPairedUpdate(
      update.locks,
      publishing: value.map { cell.makeVersion($0) },
      companion: companion.map { partner.makeVersion($0) })
  }
}

extension _Engine {
  /// The untyped half of `TVar._beginPairedUpdate`: takes a segment and both commit locks.
  @usableFromInline
  static func beginPairedUpdate(of cell: _Cell, companion: (Int) -> _Cell) -> _PairedLocks? {
    let context = _ThreadState.current.pointee.context.takeUnretainedValue()
    if let misuse = context.forbiddenAccess { _misuse(misuse) }
    let engine = _Engine.shared
    let segment = engine.acquireSegment(for: context)
    segment.context = context
    let partner = companion(segment.index)
    let locks = _PairedLocks(segment: segment, context: context, cell: cell, partner: partner)
    engine.enterCommit(segment, context: context)
    if cell.address < partner.address {
      segment.lock(cell, context: context)
      segment.lock(partner, context: context)
    } else {
      segment.lock(partner, context: context)
      segment.lock(cell, context: context)
    }
    if cell.retired.load(ordering: .relaxed) {
      release(locks)
      return nil
    }
    context.forbiddenAccess = .transactionDuringInPlaceMutation
    return locks
  }

  /// The untyped half of `TVar._endPairedUpdate`: publishes the versions given (pending
  /// versions of the two cells) under one commit number and releases everything.
  @usableFromInline
  static func endPairedUpdate(_ locks: _PairedLocks, publishing version: _VersionBase?, companion companionVersion: _VersionBase?) {
    let engine = _Engine.shared
    let context = locks.context, cell = locks.cell, partner = locks.partner
    context.forbiddenAccess = nil
    let published = version != nil || companionVersion != nil
    if published {
      let number = _CommitNumber.take(for: locks.segment, from: engine)
      if let version {
        engine.publish(version, in: cell, replacing: cell.head.load(ordering: .acquiring), number: number, flags: 0)
      }
      if let companionVersion {
        engine.publish(companionVersion, in: partner, replacing: partner.head.load(ordering: .acquiring), number: number, flags: 0)
      }
      context.lastCommit = _SerialPosition(number: number, isReadOnly: false)
    }
    release(locks)
    if published {
      atomicMemoryFence(ordering: .sequentiallyConsistent)
      if version != nil { engine.retryWaiters.wakeWaiters(of: cell) }
      if companionVersion != nil { engine.retryWaiters.wakeWaiters(of: partner) }
      context.statistics.recordCommit()
    }
  }

  private static func release(_ locks: _PairedLocks) {
    let engine = _Engine.shared
    locks.cell.owner.store(0, ordering: .releasing)
    locks.partner.owner.store(0, ordering: .releasing)
    engine.leaveCommit(locks.segment)
    engine.reclaimer.reclaimNow(ifDueFor: locks.context, using: locks.segment)
    locks.segment.context = nil
    engine.releaseSegment(locks.segment)
  }
}

extension Transaction {
  /// The transaction running on the calling thread, or nil outside `atomically`; traps where
  /// transactional data must not be touched (inside a commute transform or a paired update).
  @inlinable
  package static var _currentChecked: Transaction? {
    let state = _ThreadState.current
    if let misuse = state.pointee.forbiddenAccess { _misuse(misuse) }
    guard let segment = state.pointee.segment else { return nil }
    return Transaction(segment.takeUnretainedValue())
  }
}
