import Synchronization

/// The quick road into the commonest drop-in updates, `dict[key, default: 0] += 1` and
/// `dict[key] = value` on a present key: outside any transaction, with the conflict log off
/// and the thread's own segment free.
///
/// It begins what `_SingleOperation.beginUpdating()` and `beginUpdate(_:)` begin, under the
/// same rules and in the same order (see those for why each step is safe), in two calls that
/// check only what this case needs, and ends as an in-place update without a commit number
/// ends, in one call (or, when it needs a number, as every in-place update ends:
/// `_TypedCell.endInPlaceMutation`):
///
/// 1. `begin(on:markingTheLookup:)` takes the thread's own segment and announces the lookup
///    the caller is about to make, both in one compare-and-swap (`_Segment.occupancy`). Nil,
///    holding nothing, when the conflict log records (the general road notes each access) or
///    when the segment is busy (the general road looks for another one, or waits). For a key
///    whose `==` is the standard library's (`_KeyHash.hasLibraryEquality(of:)`), the same word
///    marks the update as a commit in flight, and the inevitable token is checked right after
///    it (nil when a transaction is inevitable: the general road waits for it).
/// 2. The caller looks its key up, and `lock(_:)` marks the segment committing and showing
///    `numbering` (`_Engine.enterCommitAfterQuickLookup(_:)` after a marked lookup, otherwise
///    `_Engine.tryEnterCommit(_:showing:)`, nil when a transaction is inevitable), takes the
///    cell's commit lock and withdraws the announcement, handing back the newest value; nil
///    also when the cell is retired. It also decides, under the lock, whether the update may
///    overwrite the newest version without a commit number (`_Engine.unnumberedOverwrite(of:
///    by:)`, which takes the update's place in the serial order). From then on the thread
///    must not touch transactional data (it traps). Any other key's `==` runs before the
///    commit is entered, as on the general road: it is the caller's code, which may wait for
///    something of the caller's (a lock, a thread in an inevitable transaction). It may not
///    touch transactional data either: the lookup holds the segment (that traps, see
///    `_runningKeyCode`).
/// 3. `publish(_:in:)` ends the update with a new value: written into the newest version and
///    ended by `_EngineEntry.endQuickOverwrite(of:_:_:)` when `lock` decided so, otherwise
///    numbered and published as every in-place update is. `cancel(_:)` ends it with none,
///    taking back the place `lock` took. A lookup that found no cell hands the segment and
///    its announcement to the general road instead (`continuingOnTheGeneralRoad()`), which
///    inserts the key.
///
/// An update of a key whose `==` is the standard library's (an integer, or a `String` where
/// strings are never bridged) that overwrites its value without a commit number takes two
/// fenced instructions, the segment's compare-and-swap and the cell's, where it took four:
/// the commit mark rides on the first (the inevitable token is checked after it, not after a
/// store of its own), and the fence before the scan of the snapshots on the second
/// (`numbering` is shown before the lock, not exchanged after it). The `Mutex` a plain
/// dictionary would use takes two as well. With 1,024 keys, an update went from 67 ns to 50
/// (the `Mutex` took 27); with 65,536, where the cell's and the version's cache misses
/// dominate, from 88 ns to 85 (a program outside the repository, built with `-Ounchecked`).
/// Other keys take three.
///
/// In a profile of `dict-disjoint` (Callgrind), the general road spent about 700 instructions
/// per update, 150 of them hashing and looking the key up; this one saves about 100 of them,
/// most of it in the misuse and transaction checks made twice, the segment search and its
/// pause accounting, and the conflict log's per-access checks. (At 65,536 keys, where every
/// update misses the second-level cache, fewer instructions show in the time only once an
/// update is short enough, about 200 instructions, for the processor to start on the next
/// update's miss while this one's is outstanding: see the Performance article.)
///
/// Conflicts: as the general road's update of the same cell, which it is (the same lock,
/// commit number or unnumbered overwrite, and versions).
@usableFromInline
package struct _QuickUpdate {
  // Unretained: segments and thread contexts outlive every update.
  @usableFromInline let segment: Unmanaged<_Segment>
  @usableFromInline let context: Unmanaged<_ThreadContext>
  /// Whether the update counts as a commit in flight from before its lookup (see `begin`).
  @usableFromInline let markedTheLookup: Bool

  @usableFromInline
  init(segment: Unmanaged<_Segment>, context: Unmanaged<_ThreadContext>, markedTheLookup: Bool) {
    self.segment = segment
    self.context = context
    self.markedTheLookup = markedTheLookup
  }

  /// Starts a quick update on `thread`, which must run no transaction and may touch
  /// transactional data (what `_CallingThread.current` and `transaction` check); nil, holding
  /// nothing, when the quick road is closed now. `markingTheLookup`: the update counts as a
  /// commit in flight from now on, for a key whose `==` is the standard library's (see
  /// `_KeyHash.hasLibraryEquality(of:)`); then nil when another transaction is inevitable too.
  @inlinable
  package static func begin(on thread: _CallingThread, markingTheLookup: Bool) -> _QuickUpdate? {
    start(thread.context, markingTheLookup: markingTheLookup)
  }

  /// The newest value of `cell` (found by the lookup `begin` announced), with the commit
  /// entered and the cell's commit lock taken; nil, holding no lock, when the cell is retired,
  /// or, after a lookup `begin` did not mark, when another transaction is inevitable (the
  /// update is still under way then: `cancel` it, and take the general road).
  @inlinable
  package func lock<Value>(_ cell: _TypedCell<Value>) -> Value? {
    guard let newest = Self.lock(cell, segment, context, markedTheLookup: markedTheLookup) else { return nil }
    return .some(newest._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value })
  }

  /// Publishes `value` in `cell`, which `lock(_:)` locked, and ends the update: into the
  /// newest version itself, without a commit number, when `lock` found that no snapshot can
  /// see that version (`_EngineEntry.endQuickOverwrite(of:_:_:)`: one call); otherwise as
  /// every in-place update ends, into the newest version or a new one, under a commit number
  /// of its own.
  @inlinable
  package func publish<Value>(_ value: Value, in cell: _TypedCell<Value>) {
    guard segment._withUnsafeGuaranteedRef({ $0.unnumberedPosition != nil }) else {
      cell.endInPlaceMutation(segment, context, publishing: value)
      return
    }
    // Written over in place: the quick road takes only trivially copyable values, so nothing
    // is displaced, and the lock keeps the newest version the one `lock` decided on.
    assert(_isPOD(Value.self), "the quick road overwrites only trivially copyable values")
    cell.head.load(ordering: .relaxed)._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value = value }
    _EngineEntry.endQuickOverwrite(of: cell, segment, context)
  }

  /// Ends the update without publishing anything. `locked` is the cell `lock(_:)` locked; nil
  /// if it locked none (the cell was retired, or the lookup found no cell).
  @inlinable
  package func cancel(_ locked: _Cell?) {
    Self.cancel(locked, segment, context)
  }

  /// For a key whose lookup found no cell, before `lock(_:)`: the general road's operation,
  /// continuing from the segment and the lookup announcement this update took, without the
  /// quick update's mark, if the lookup was marked (the general road may wait for an
  /// inevitable transaction, which would otherwise wait for the mark). `begin` leaves them as
  /// `_SingleOperation.beginUpdating(on:)` leaves its own (the thread's segment held, its
  /// context set, a lookup announced in its occupancy word at a clock the thread has seen),
  /// so the general road goes on from there: an insert took the segment and announced twice,
  /// two fenced instructions and about 190 others.
  @inlinable
  package func continuingOnTheGeneralRoad() -> _SingleOperation {
    if markedTheLookup { Self.dropMark(segment, context) }
    return _SingleOperation(segment: segment, context: context)
  }
}

// The untyped halves, out of line.
extension _QuickUpdate {
  @usableFromInline
  static func start(_ handle: Unmanaged<_ThreadContext>, markingTheLookup: Bool) -> _QuickUpdate? {
    guard !_ConflictRecorder.isRecording else { return nil }
    let segment = handle._withUnsafeGuaranteedRef { context in
      context.engine._withUnsafeGuaranteedRef { $0.tryBeginQuickUpdate(for: context, markingTheLookup: markingTheLookup) }
    }
    return segment.map { _QuickUpdate(segment: $0, context: handle, markedTheLookup: markingTheLookup) }
  }

  /// `_EngineEntry.lockForInPlaceUpdate`, with the commit marked as `start` allows. After a marked
  /// lookup, with no check of the inevitable token: a transaction that took it since then
  /// waits for this update (see `_Engine.enterCommitAfterQuickLookup(_:)`). Otherwise
  /// stepping aside, nil, when another transaction is inevitable.
  @usableFromInline
  static func lock(
    _ cell: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, markedTheLookup: Bool
  ) -> Unmanaged<_VersionBase>? {
    // Unretained all the way, through one closure per reference; the body is a function of
    // its own, which the compiler inlines whole (with the body in the innermost closure, it
    // made the middle closure a function of its own: a call, and twenty instructions more).
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { context in
        context.engine._withUnsafeGuaranteedRef { engine in
          lock(cell, segment, context, engine, markedTheLookup: markedTheLookup)
        }
      }
    }
  }

  @inline(__always)
  private static func lock(
    _ cell: _Cell, _ segment: _Segment, _ context: _ThreadContext, _ engine: _Engine, markedTheLookup: Bool
  ) -> Unmanaged<_VersionBase>? {
    #if DEBUG
    if let hook = _TestHooks.beforeInPlaceUpdateLocks.value { hook() }
    #endif
    if markedTheLookup {
      engine.enterCommitAfterQuickLookup(segment)
    } else {
      guard engine.tryEnterCommit(segment, showing: _CommitNumber.numbering) else { return nil }
    }
    guard let newest = engine.lockLookedUp(cell, segment, context) else { return nil }
    // Whether the update may overwrite without a commit number, decided now rather than after
    // the caller's mutation (it sets `segment.unnumberedPosition`): the lock, held from here
    // to the end, keeps a reader that announces later waiting for the new value either way
    // (see `_Engine.overwritableVersions(of:isAlone:companion:numbered:)`), and the update
    // then ends in one call instead of two (`publish(_:in:)`). `cancel` takes it back.
    _ = engine.unnumberedOverwrite(of: cell, by: segment)
    return newest
  }

  /// `_Engine.dropQuickUpdateMark(of:)`.
  @usableFromInline
  static func dropMark(_ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>) {
    context._withUnsafeGuaranteedRef { context in
      context.engine._withUnsafeGuaranteedRef { engine in
        segment._withUnsafeGuaranteedRef { engine.dropQuickUpdateMark(of: $0) }
      }
    }
  }

  @usableFromInline
  static func cancel(_ locked: _Cell?, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>) {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { context in
        context.engine._withUnsafeGuaranteedRef { engine in
          context.forbiddenAccess = nil
          // The position `lock` may have taken for an overwrite that now does not happen.
          segment.unnumberedPosition = nil
          locked?.unlock()
          engine.withdrawLookup(for: segment)
          engine.leaveCommit(segment)
          segment.context = nil
          engine.releaseSegment(segment)
        }
      }
    }
  }
}
