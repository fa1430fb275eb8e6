import Synchronization

/// The engine's untyped view of a transactional cell: its version chain and its commit lock.
///
/// The engine works on `_Cell` only; `_TypedCell<Value>` adds the type so that public API can
/// copy values out of versions without dynamic casts.
@usableFromInline
package class _Cell: @unchecked Sendable {
  /// The commit lock, and the cell's state that changes only under it (see `_CellWord` for the
  /// layout). Everything is in this one word, beside `head`, so that a cell is 32 bytes plus
  /// what a subclass adds: a dictionary entry's cell with an `Int` key fits a 48-byte block.
  @usableFromInline let lockWord: Atomic<Int>
  /// The newest committed version. The cell owns one retain on it; each version owns its
  /// `older` link, so the chain lives exactly as long as the cell or until it is cut.
  @usableFromInline let head: Atomic<Unmanaged<_VersionBase>>

  /// `recyclesVersions`: see the property of that name, which reads it back from the lock word.
  /// `replacedValuesHoldNothing`: every value a write of the cell will replace holds nothing
  /// that has to be freed soon (see `leftoverWorthReclaiming`).
  @usableFromInline
  init(initial: _VersionBase, recyclesVersions: Bool = false, replacedValuesHoldNothing: Bool = false) {
    lockWord = Atomic(
      _CellWord.initial | (recyclesVersions ? _CellWord.recyclesVersions : 0)
        | (replacedValuesHoldNothing ? _CellWord.replacedValuesHoldNothing : 0))
    initial.stamp = 0
    head = Atomic(Unmanaged.passRetained(initial))
    _LiveCounters.cellCreated()
  }

  deinit {
    // A listed cell is never freed: the reclamation list retains it (see `_HistoryReclaimer`).
    releaseHistory(head.load(ordering: .relaxed))
    _LiveCounters.cellDestroyed()
  }

  /// Lets go of `newest`, the cell's newest version (and through it of the cell's history), as
  /// the cell goes. A cell whose value may be another cell of its kind (a queue's node, whose
  /// link is the node's own cell) hands it to `_DeferredRelease` instead, so that a long run
  /// of them is not freed recursively.
  func releaseHistory(_ newest: Unmanaged<_VersionBase>) {
    newest.release()
  }

  /// Whether dropped versions are kept for reuse (see `_VersionCache`): only when the value is
  /// trivially copyable, so that a kept version never holds on to an object (or a removed
  /// key's cell) it refers to. (A drop-in update may write into the newest version in place
  /// whatever the value: see `_Engine.overwritableVersions`.) Fixed at creation, in the lock
  /// word.
  final var recyclesVersions: Bool { lockWord.load(ordering: .relaxed) & _CellWord.recyclesVersions != 0 }

  /// How many older versions a commit leaves behind before it asks the reclaimer to come back
  /// for them. One version kept briefly for a running snapshot is the common case under
  /// contention, and noting it on every write costs a shared lock per commit; for a trivially
  /// copyable value it can wait for the cell's next write (memory stays bounded at one extra
  /// version per cell). A version that may hold an object must not linger, so any leftover of
  /// such a cell is noted, unless the cell was made saying that the values its writes replace
  /// hold nothing: a queue node's link, written once, from nil. Noted, such a cell was worse
  /// than a lingering version: the reclamation list retained the node, and through its link
  /// every node and item enqueued after it, items long dequeued included, until the list's
  /// turn came (64 writing commits of a segment later; never, in a program gone quiet).
  final var leftoverWorthReclaiming: Int {
    lockWord.load(ordering: .relaxed) & (_CellWord.recyclesVersions | _CellWord.replacedValuesHoldNothing) != 0 ? 2 : 1
  }

  /// `TVar<Value>`: how the conflict log names a cell that no collection described.
  var variableDescription: String { "TVar" }

  /// A stable number that orders cells for lock acquisition and hashes them into wait stripes.
  @inlinable
  final var address: UInt { UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()) }
}

/// A cell whose versions hold `Value`.
///
/// Not final only so that `_KeyedCell` can carry its key in the same object; its methods are.
@usableFromInline
package class _TypedCell<Value>: _Cell, @unchecked Sendable {
  /// `replacedValuesHoldNothing`: see `_Cell.leftoverWorthReclaiming`.
  @inlinable
  init(_ value: Value, replacedValuesHoldNothing: Bool = false) {
    super.init(
      initial: _Version(value, stamp: 0), recyclesVersions: _isPOD(Value.self),
      replacedValuesHoldNothing: replacedValuesHoldNothing)
  }

  override var variableDescription: String { "TVar<\(Value.self)>" }

  /// A pending version holding `value`, retained once for the caller to hand over to
  /// `publish`: one the thread cached, if any, else a new one. Reusing a cached version
  /// touches no reference count.
  @inlinable
  final func makePendingVersion(_ value: Value) -> Unmanaged<_VersionBase> {
    makePendingVersion(value, cachedBy: _ThreadState.current.pointee.context)
  }

  /// `makePendingVersion(value)` for a caller that has the calling thread's context at hand.
  @inlinable
  final func makePendingVersion(_ value: consuming Value, cachedBy context: Unmanaged<_ThreadContext>) -> Unmanaged<_VersionBase> {
    if _isPOD(Value.self), let cached = _ThreadContext.takeCachedVersion(ObjectIdentifier(_Version<Value>.self), from: context) {
      // Trivially copyable: the copy costs nothing.
      let copied = copy value
      cached._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value = copied }
      return cached
    }
    // Consumed: moved into the version, where a copy retained each object a queue links.
    return Unmanaged.passRetained(_Version(value))
  }

  /// The value that the transaction running on `segment` reads from this cell: its own pending
  /// write, or else the newest committed value at its snapshot, marked as read.
  @inlinable
  final func value(readBy segment: _Segment) -> Value {
    segment.read(self)._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value }
  }

  /// Buffers `value` as the write of the transaction running on `segment`: into the version
  /// it already wrote in the current checkpoint generation, if any, else into a new one.
  @inlinable
  final func write(_ value: Value, by segment: _Segment) {
    if let pending = segment.writableVersion(of: self) {
      unsafeDowncast(pending, to: _Version<Value>.self).value = value
    } else {
      segment.recordWrite(self, makeVersion(value))
    }
  }

  /// What `TVar.value` reads: inside a transaction, the value it reads from this cell (marked
  /// as read); outside one, the newest committed value, read as a transaction of its own. A
  /// method of the cell, so that a collection holding the cell unretained reads it without
  /// making a `TVar` (which retained and released it).
  @inlinable
  package final var currentValue: Value {
    let state = _ThreadState.current
    if let segment = state.pointee.segment {
      // Where the transaction's code may not use transactional data (a key's `==` that an
      // index calls, a commute's transform): outside a transaction the single read checks it.
      if let misuse = state.pointee.forbiddenAccess { _misuse(misuse) }
      return segment._withUnsafeGuaranteedRef { value(readBy: $0) }
    }
    return state.pointee.context._withUnsafeGuaranteedRef { context in
      _EngineEntry.beginSingleRead(context)._withUnsafeGuaranteedRef { segment in
        let value = segment.visibleVersion(of: self)._withUnsafeGuaranteedRef {
          unsafeDowncast($0, to: _Version<Value>.self).value
        }
        _EngineEntry.endSingleRead(segment, context)
        return value
      }
    }
  }

  /// `makePendingVersion(value)`, as a reference for the caller to keep (a redo log entry).
  @inlinable
  final func makeVersion(_ value: Value) -> _Version<Value> {
    unsafeDowncast(makePendingVersion(value).takeRetainedValue(), to: _Version<Value>.self)
  }
}

/// Counts live engine objects so that tests can check that nothing leaks. Compiled only into
/// debug builds: a shared counter on every allocation would cost the release build scalability.
@usableFromInline
enum _LiveCounters {
  #if DEBUG
  static let versions = Atomic<Int>(0)
  static let cells = Atomic<Int>(0)
  #endif

  @usableFromInline static func versionCreated() {
    #if DEBUG
    versions.add(1, ordering: .relaxed)
    #endif
  }
  @usableFromInline static func versionDestroyed() {
    #if DEBUG
    versions.subtract(1, ordering: .relaxed)
    #endif
  }
  @usableFromInline static func cellCreated() {
    #if DEBUG
    cells.add(1, ordering: .relaxed)
    #endif
  }
  @usableFromInline static func cellDestroyed() {
    #if DEBUG
    cells.subtract(1, ordering: .relaxed)
    #endif
  }
}
