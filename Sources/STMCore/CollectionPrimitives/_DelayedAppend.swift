/// A batch of items that a transaction appends to a collection without reading where they go:
/// the primitive behind `TArray.append` and `TQueue.enqueue`.
///
/// The batch hangs off an *anchor* variable (an array's count, a queue's tail). At commit, with
/// the anchor's commit lock held, `land(onto:)` receives the anchor's newest value and says
/// what the anchor becomes and which other cells (array slots, the old tail's link) receive
/// the items. The engine locks those cells too, before it takes its commit number, and
/// publishes everything under that one number. Nothing was read at snapshot time, so a batch
/// validates nothing: two transactions that append to the same collection never conflict.
///
/// A transaction that *reads* the anchor after appending (an array's `count`) sees its
/// snapshot value; the collection adds its pending items itself. The read then counts like
/// any other, so a concurrent append makes that transaction conflict, as it should.
///
/// `land` runs while the commit holds locks: it must not touch transactional data (that traps),
/// block, or have side effects besides building the values it returns. It may run more than
/// once for one commit.
@usableFromInline
package protocol _DelayedAppend<Anchor>: AnyObject {
  associatedtype Anchor: Sendable
  /// An independent copy, taken when an `orElse` branch or nested block may roll back.
  func copy() -> Self
  /// What the anchor becomes, and the other writes that make the items visible.
  func land(onto anchor: Anchor) -> (anchor: Anchor, writes: [_DelayedWrite])
}

/// A write that a delayed append makes at commit, to a cell it did not write in its body.
@usableFromInline
package struct _DelayedWrite {
  @usableFromInline let cell: _Cell
  @usableFromInline let version: _VersionBase

  /// A write of `value` into `variable`.
  @inlinable
  package init<Value>(_ variable: TVar<Value>, _ value: Value) {
    cell = variable.cell
    version = variable.cell.makeVersion(value)
  }
}

/// The engine's untyped handle on a `_DelayedAppend`.
class _AnyDelayedAppend {
  func copy() -> _AnyDelayedAppend { fatalError("abstract") }
  func land(onto anchor: _VersionBase, of cell: _Cell) -> (_VersionBase, [_DelayedWrite]) { fatalError("abstract") }
  var payload: AnyObject { fatalError("abstract") }
}

final class _DelayedAppendBox<Batch: _DelayedAppend>: _AnyDelayedAppend {
  let batch: Batch

  init(_ batch: Batch) { self.batch = batch }

  override func copy() -> _AnyDelayedAppend { _DelayedAppendBox(batch.copy()) }

  override func land(onto anchor: _VersionBase, of cell: _Cell) -> (_VersionBase, [_DelayedWrite]) {
    let old = unsafeDowncast(anchor, to: _Version<Batch.Anchor>.self).value
    let (new, writes) = batch.land(onto: old)
    return (unsafeDowncast(cell, to: _TypedCell<Batch.Anchor>.self).makeVersion(new), writes)
  }

  override var payload: AnyObject { batch }
}

extension _Segment {
  /// This transaction's batch on `cell`, made with `make` if it has none; a batch that a
  /// checkpoint still holds is copied first, so rolling back restores it untouched.
  func delayedAppend<Batch: _DelayedAppend>(on cell: _Cell, make: () -> Batch) -> Batch {
    if let position = log.find(cell) {
      if let existing = log.entries[position].batch {
        if log.entries[position].batchGeneration != log.generation {
          log.entries[position].batch = existing.copy()
          log.entries[position].batchGeneration = log.generation
        }
        return unsafeDowncast(log.entries[position].batch!.payload, to: Batch.self)
      }
      let batch = make()
      log.entries[position].batch = _DelayedAppendBox(batch)
      log.entries[position].batchGeneration = log.generation
      return batch
    }
    let batch = make()
    var entry = _WriteEntry(cell: cell, version: nil, commutes: [], generation: log.generation)
    entry.batch = _DelayedAppendBox(batch)
    entry.batchGeneration = log.generation
    log.append(entry)
    return batch
  }

  /// This transaction's batch on `cell`, if it has one.
  func existingDelayedAppend<Batch: _DelayedAppend>(on cell: _Cell, as type: Batch.Type) -> Batch? {
    guard !log.isEmpty, let position = log.find(cell), let box = log.entries[position].batch else { return nil }
    return unsafeDowncast(box.payload, to: Batch.self)
  }
}
