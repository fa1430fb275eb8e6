import Synchronization

/// An atomic update, outside any transaction, of a variable together with a per-segment
/// companion (a dictionary's key cell and its segment's count): what lets a drop-in
/// `dict[key, default: 0] += 1` run as one atomic step without starting a transaction.
///
/// `TVar._beginPairedUpdate` takes a segment and the commit locks of both cells, in address
/// order like any commit, and hands out their newest values; `_endPairedUpdate` publishes
/// whichever changed under one commit number and releases everything. In between, the thread
/// must not touch transactional data (that traps): the locks are held.
package struct _PairedUpdate<Value: Sendable, Companion: Sendable> {
  let segment: _Segment
  let context: _ThreadContext
  let companionVariable: TVar<Companion>
  /// The variable's newest value when the locks were taken.
  package let value: Value
  /// The companion's newest value when the locks were taken.
  package let companion: Companion
}

extension TVar {
  /// Starts a paired update of this variable and `companion(segmentIndex)`; returns nil,
  /// holding nothing, when this variable is retired (see `_retire(if:)`).
  package func _beginPairedUpdate<Companion>(
    companion: (Int) -> TVar<Companion>
  ) -> _PairedUpdate<Value, Companion>? {
    let context = _ThreadState.current.pointee.context.takeUnretainedValue()
    if let misuse = context.forbiddenAccess { _misuse(misuse) }
    let engine = _Engine.shared
    let segment = engine.acquireSegment(for: context)
    segment.context = context
    let partner = companion(segment.index)
    engine.enterCommit(segment, context: context)
    if cell.address < partner.cell.address {
      segment.lock(cell, context: context)
      segment.lock(partner.cell, context: context)
    } else {
      segment.lock(partner.cell, context: context)
      segment.lock(cell, context: context)
    }
    if cell.retired.load(ordering: .relaxed) {
      release(segment, context, partner.cell)
      return nil
    }
    context.forbiddenAccess = .transactionDuringInPlaceMutation
    return _PairedUpdate(
      segment: segment, context: context, companionVariable: partner,
      value: cell.head.load(ordering: .acquiring)._withUnsafeGuaranteedRef {
        unsafeDowncast($0, to: _Version<Value>.self).value
      },
      companion: partner.cell.head.load(ordering: .acquiring)._withUnsafeGuaranteedRef {
        unsafeDowncast($0, to: _Version<Companion>.self).value
      })
  }

  /// Publishes `value` and `companion` (each only if not nil) under one commit number, and
  /// releases what `_beginPairedUpdate` took.
  package func _endPairedUpdate<Companion>(
    _ update: _PairedUpdate<Value, Companion>, value: Value?, companion: Companion?
  ) {
    let engine = _Engine.shared
    let segment = update.segment, context = update.context, partner = update.companionVariable
    context.forbiddenAccess = nil
    let published = value != nil || companion != nil
    if published {
      let number = _CommitNumber.take(for: segment, from: engine)
      if let value {
        engine.publish(cell.makeVersion(value), in: cell, replacing: cell.head.load(ordering: .acquiring), number: number, flags: 0)
      }
      if let companion {
        let target = partner.cell
        engine.publish(target.makeVersion(companion), in: target, replacing: target.head.load(ordering: .acquiring), number: number, flags: 0)
      }
      context.lastCommit = _SerialPosition(number: number, isReadOnly: false)
    }
    release(segment, context, partner.cell)
    if published {
      atomicMemoryFence(ordering: .sequentiallyConsistent)
      if value != nil { engine.retryWaiters.wakeWaiters(of: cell) }
      if companion != nil { engine.retryWaiters.wakeWaiters(of: partner.cell) }
      context.statistics.recordCommit()
    }
  }

  private func release(_ segment: _Segment, _ context: _ThreadContext, _ partner: _Cell) {
    let engine = _Engine.shared
    cell.owner.store(0, ordering: .releasing)
    partner.owner.store(0, ordering: .releasing)
    engine.leaveCommit(segment)
    engine.reclaimer.reclaimNow(ifDueFor: context, using: segment)
    segment.context = nil
    engine.releaseSegment(segment)
  }
}

extension Transaction {
  /// The transaction running on the calling thread, or nil outside `atomically`; traps where
  /// transactional data must not be touched (inside a commute transform or a paired update).
  package static var _currentChecked: Transaction? {
    let state = _ThreadState.current
    if let misuse = state.pointee.forbiddenAccess { _misuse(misuse) }
    guard let segment = state.pointee.segment else { return nil }
    return Transaction(segment.takeUnretainedValue())
  }
}
