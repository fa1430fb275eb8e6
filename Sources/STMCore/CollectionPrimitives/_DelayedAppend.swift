/// A batch of items that a transaction appends to a collection without reading where they go:
/// the primitive behind `TArray.append` and `TQueue.enqueue`.
///
/// The batch hangs off an *anchor* variable (an array's count, a queue's tail). At commit, with
/// the anchor's commit lock held, `land(onto:into:)` receives the anchor's newest value and
/// says what the anchor becomes and which other cells (array slots, the old tail's link)
/// receive the items. The engine locks those cells too, before it takes its commit number, and
/// publishes everything under that one number. Nothing was read at snapshot time, so a batch
/// validates nothing: two transactions that append to the same collection never conflict.
///
/// A transaction that *reads* the anchor after appending (an array's `count`) sees its
/// snapshot value; the collection adds its pending items itself. The read then counts like
/// any other, so a concurrent append makes that transaction conflict, as it should.
///
/// `land` runs while the commit holds locks: it must not touch transactional data (that traps),
/// block, or have side effects besides building the values it returns and the writes it adds.
/// It may run more than once for one commit.
///
/// A batch is a value, kept inside the engine's box (`_DelayedAppendBox`): one allocation per
/// transaction that appends, where a batch object in a box was two. After a checkpoint (`orElse`,
/// a nested `atomically`), appends go on into the same box, and rolling back removes the items
/// appended since (`_removeItems(downTo:)`); any other change to the batch copies the box first,
/// so that rolling back restores the box as it was. Copying it for appends too made a loop
/// of nested blocks that each append take quadratic time (found by review).
@usableFromInline
package protocol _DelayedAppend<Anchor> {
  associatedtype Anchor: Sendable
  /// What the anchor becomes; the other writes that make the items visible go into `writes`
  /// (after what it holds: an array the commit reuses, so that landing allocates none).
  func land(onto anchor: Anchor, into writes: inout [_DelayedWrite]) -> Anchor
  /// `land(onto:into:)` of the batch at `batch` on the anchor's newest version, returning the
  /// anchor's new version: what the engine's untyped commit code calls. A requirement, so that
  /// a conformance can compile it for its own types; otherwise reading and making the anchor's
  /// versions looks up `_Version<Anchor>`'s metadata at run time on every commit (see the
  /// default below). The batch is passed by address: the engine's generic code, given it as a
  /// value, copied and destroyed it around the call through its value witnesses. Versions pass
  /// as `AnyObject`: `_VersionBase` is not visible to conforming modules.
  static func _land(
    _ batch: UnsafePointer<Self>, onto anchor: AnyObject, of cell: _Cell, into writes: inout [_DelayedWrite]
  ) -> AnyObject
  /// How many items the batch holds.
  var _itemCount: Int { get }
  /// Removes the items past the first `count`, the newest: what a rollback to a checkpoint
  /// taken when the batch held `count` items does, when only appends changed it since.
  /// Returns them, for the engine to let go of once the transaction has ended: their deinits
  /// are the user's code, which must not run inside it (see `_Segment.rollback(to:)`).
  mutating func _removeItems(downTo count: Int) -> Any
}

extension _DelayedAppend {
  /// The default `_land(_:onto:of:into:)`. A conformance generic over other parameters (a batch of
  /// any element type) gets this generic body as its witness, which looks its types up at run
  /// time. One whose `Anchor` is concrete can write `_land` out with `_anchorValue` and
  /// `_anchorVersion`, which are then compiled for that type (as `TArray`'s batch does); one
  /// whose `Anchor` depends on its parameters can call a closure captured where they are
  /// known (as `TQueue`'s batch does).
  @inlinable
  package static func _land(
    _ batch: UnsafePointer<Self>, onto anchor: AnyObject, of cell: _Cell, into writes: inout [_DelayedWrite]
  ) -> AnyObject {
    _anchorVersion(batch.pointee.land(onto: _anchorValue(of: anchor, as: Anchor.self), into: &writes), of: cell)
  }
}

/// The value of an anchor's version, handed to `_DelayedAppend._land(_:onto:of:into:)`.
@inlinable
package func _anchorValue<Anchor>(of version: AnyObject, as type: Anchor.Type) -> Anchor {
  unsafeDowncast(version, to: _Version<Anchor>.self).value
}

/// A new version of the anchor `cell` holding `value`, for `_DelayedAppend._land(_:onto:of:into:)`
/// to return.
@inlinable
package func _anchorVersion<Anchor>(_ value: Anchor, of cell: _Cell) -> AnyObject {
  unsafeDowncast(cell, to: _TypedCell<Anchor>.self).makeVersion(value)
}

/// A write that a delayed append makes at commit, to a cell it did not write in its body.
@usableFromInline
package struct _DelayedWrite {
  @usableFromInline let cell: _Cell
  /// `cell` again, unretained, for the commit's loops (see `_WriteEntry.target`).
  @usableFromInline let target: Unmanaged<_Cell>
  /// The value to publish; nil once the commit has handed it to the cell (moved, so that
  /// publishing it costs no retain here and no release when the landing goes).
  @usableFromInline var version: _VersionBase?
  /// Set by the commit that locked `cell` for this write (and not already for another), so
  /// that it knows which locks to drop; kept here rather than in an array of its own, which
  /// cost an allocation per commit.
  @usableFromInline var isLockedByLanding = false
  /// The site the commit publishes the write under: its transaction's, with the access the
  /// transaction noted on the batch's anchor (the operation that appended), so that the
  /// conflict log names that call for a conflict over this cell. Set by the commit as it lands
  /// the batch (see `_Segment.lockAll`).
  @usableFromInline var site: UInt32 = 0

  /// A write of `value` into `variable`.
  @inlinable
  package init<Value>(_ variable: TVar<Value>, _ value: Value) {
    cell = variable.cell
    target = Unmanaged.passUnretained(variable.cell)
    version = variable.cell.makeVersion(value)
  }
}

/// The engine's untyped handle on a transaction's `_DelayedAppend`.
@usableFromInline
class _AnyDelayedAppend {
  /// The log generation in which the batch's item count was last saved for the open
  /// checkpoints, or in which the box was made (see `_TransactionLog.prepareToGrowBatch(at:)`).
  final var countSavedGeneration: UInt32 = 0

  @usableFromInline init() {}
  func copy() -> _AnyDelayedAppend { fatalError("abstract") }
  var itemCount: Int { fatalError("abstract") }
  func removeItems(downTo count: Int) -> Any { fatalError("abstract") }
  func land(onto anchor: _VersionBase, of cell: _Cell, into writes: inout [_DelayedWrite]) -> _VersionBase {
    fatalError("abstract")
  }
}

/// The box that holds a transaction's batch. Made by inlinable code (`TVar._withDelayedAppend`),
/// so that a collection's specialized code names its concrete type: made in the engine's
/// generic code, each new box looked up its class's metadata at run time.
@usableFromInline
final class _DelayedAppendBox<Batch: _DelayedAppend>: _AnyDelayedAppend {
  /// Changed only by the transaction's own thread, through `TVar._withDelayedAppend`, and read
  /// by its commit: Swift's dynamic exclusivity check on every append is not needed.
  @exclusivity(unchecked) @usableFromInline var batch: Batch

  @inlinable init(_ batch: Batch) { self.batch = batch }

  override func copy() -> _AnyDelayedAppend { _DelayedAppendBox(batch) }
  override var itemCount: Int { batch._itemCount }
  override func removeItems(downTo count: Int) -> Any { batch._removeItems(downTo: count) }

  override func land(onto anchor: _VersionBase, of cell: _Cell, into writes: inout [_DelayedWrite]) -> _VersionBase {
    withUnsafeMutablePointer(to: &batch) { batch in
      unsafeDowncast(Batch._land(batch, onto: anchor, of: cell, into: &writes), to: _VersionBase.self)
    }
  }
}

extension _Segment {
  /// Takes the batch on `cell` out of the log, and the entry with it if it holds nothing else
  /// (see `TVar._dropEmptyDelayedAppend(in:)`). The log's undo list keeps the entry, with
  /// its batch, for a checkpoint that rolls back.
  @usableFromInline
  func dropDelayedAppend(on cell: _Cell) {
    guard let position = log.find(cell), log.entries[position].batch != nil else { return }
    log.prepareToChange(at: position)
    log.entries[position].batch = nil
    if log.entries[position].version == nil && log.entries[position].commutes.isEmpty && log.entries[position].sum == nil {
      log.remove(at: position)
    }
  }

  /// The box of this transaction's batch on `cell`, a new one from `makeBox` if it has none. A
  /// box from before the innermost checkpoint is copied first (the log's undo list keeps the
  /// old one), so rolling back restores it untouched,
  /// unless the caller only appends (`appendingOnly`): rolling back then removes what it
  /// appended (see `_DelayedAppend`). Untyped: see `_DelayedAppendBox`. Returned unretained:
  /// the log holds it until the transaction ends.
  @usableFromInline
  func delayedAppend(on cell: _Cell, appendingOnly: Bool, makeBox: () -> _AnyDelayedAppend) -> Unmanaged<_AnyDelayedAppend> {
    if let position = log.find(cell) {
      // Read in place (a bound `existing` was a retained copy): every append of a transaction
      // after its first comes here.
      if log.entries[position].batch != nil {
        if !appendingOnly && log.entries[position].batchGeneration != log.generation {
          log.prepareToChange(at: position)
          let copy = log.entries[position].batch.unsafelyUnwrapped.copy()
          copy.countSavedGeneration = log.generation
          log.entries[position].batch = consume copy
          log.entries[position].batchGeneration = log.generation
        } else if appendingOnly {
          log.prepareToGrowBatch(at: position)
        }
        return Unmanaged.passUnretained(log.entries[position].batch.unsafelyUnwrapped)
      }
      let box = makeBox()
      box.countSavedGeneration = log.generation
      let handle = Unmanaged.passUnretained(box)
      log.prepareToChange(at: position)
      log.entries[position].batch = consume box
      log.entries[position].batchGeneration = log.generation
      return handle
    }
    let box = makeBox()
    box.countSavedGeneration = log.generation
    let handle = Unmanaged.passUnretained(box)
    // Built whole and moved in: setting the batch on a built entry copied the entry.
    log.append(
      _WriteEntry(
        cell: cell, target: Unmanaged.passUnretained(cell), version: nil, commutes: [], sum: nil, generation: log.generation,
        batch: consume box, batchGeneration: log.generation))
    return handle
  }

  /// The box of this transaction's batch on `cell`, if it has one; unretained, like
  /// `delayedAppend(on:makeBox:)`'s.
  @usableFromInline
  func existingDelayedAppend(on cell: _Cell) -> Unmanaged<_AnyDelayedAppend>? {
    guard !log.isEmpty, let position = log.find(cell), log.entries[position].batch != nil else { return nil }
    return Unmanaged.passUnretained(log.entries[position].batch.unsafelyUnwrapped)
  }
}
