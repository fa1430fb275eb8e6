import Synchronization

/// An atomic update of one variable outside any transaction, which may also change a
/// per-segment companion under the same commit number: what lets a drop-in
/// `dict[key, default: 0] += 1` run as one atomic step without starting a transaction, and
/// keep the dictionary's count (a cell per segment) in step when the key comes or goes.
///
/// `TVar._beginInPlaceUpdate` takes a segment and the variable's commit lock and hands out its
/// newest value. One of the `_endInPlaceUpdate` calls then publishes the new value (and, only
/// when asked, the companion's), and releases everything. In between, the thread must not
/// touch transactional data (that traps): the lock is held.
///
/// The companion is locked only when it changes, after the variable: an update that leaves
/// membership alone (the common case) costs one lock. Taking it second does not break the
/// address order that keeps commits from deadlocking, because a segment's companion is written
/// only by transactions running on that segment, which is held by this update. Any other
/// companion (a queue's last link, a bounded queue's budget: at most two) is only tried,
/// never waited for, and the update publishes nothing when one is busy.
@usableFromInline
package struct _InPlaceUpdate<Value: Sendable> {
  // Unretained: segments and thread contexts outlive every update.
  @usableFromInline let segment: Unmanaged<_Segment>
  @usableFromInline let context: Unmanaged<_ThreadContext>
  /// The variable's newest value when the lock was taken.
  @usableFromInline package let value: Value

  @inlinable
  init(segment: Unmanaged<_Segment>, context: Unmanaged<_ThreadContext>, value: Value) {
    self.segment = segment
    self.context = context
    self.value = value
  }

  /// The index of the segment the update runs on: the one whose companion it may change.
  @inlinable
  package var segmentIndex: Int { segment._withUnsafeGuaranteedRef { $0.index } }
}

// The typed halves are inlinable, so that a collection's generic code specialized in a client
// module reaches the untyped engine calls below without looking up generic metadata.
extension TVar {
  /// Starts an in-place update of this variable; returns nil, holding nothing, when the
  /// variable is retired (see `_retire(if:)`).
  @inlinable
  package func _beginInPlaceUpdate() -> _InPlaceUpdate<Value>? { cell.beginInPlaceUpdate() }

  /// Publishes `value` (nothing when nil: the update was abandoned or changed nothing) and
  /// releases what `_beginInPlaceUpdate` took.
  @inlinable
  package func _endInPlaceUpdate(_ update: _InPlaceUpdate<Value>, publishing value: Value?) {
    cell.endInPlaceUpdate(update, publishing: value)
  }

  /// Publishes `value`, and `companionValue` in `companion`, under one commit number, unless
  /// `refuses`, asked once that number is taken, returns true. Publishes nothing, too, when
  /// someone else holds `companion`'s commit lock: it is locked after this variable, out of the
  /// address order that keeps commits from deadlocking, so it is only tried, never waited for
  /// (the caller then goes another way, as a commit that lands a delayed append starts over).
  /// Releases what the update took either way; returns the value `companion` held before (read
  /// under its lock) if it published, nil if not.
  ///
  /// `refuses` may peek at other variables (`_peekNewest(during:)`): what it reads there was
  /// published before the number was taken, and anything published there later is numbered
  /// after it.
  @inlinable @discardableResult
  package func _endInPlaceUpdate<Companion>(
    _ update: _InPlaceUpdate<Value>, publishing value: Value, alongWith companion: TVar<Companion>,
    setTo companionValue: Companion, unless refuses: () -> Bool
  ) -> Companion? {
    cell.endInPlaceUpdate(update, alongWith: companion.cell) { _ in refuses() ? nil : (value, companionValue) }
  }

  /// As `_endInPlaceUpdate(_:publishing:alongWith:setTo:unless:)`, for values that depend on
  /// the companion's: `decide`, given the companion's newest value (read under its lock, once
  /// the commit number is taken), returns this variable's new value and the companion's, or
  /// nil to publish nothing. Returns the companion's value that `decide` was given if it
  /// published, nil if not (`decide` refused, or the companion was busy and `decide` was not
  /// asked).
  @inlinable @discardableResult
  package func _endInPlaceUpdate<Companion>(
    _ update: _InPlaceUpdate<Value>, alongWith companion: TVar<Companion>,
    deciding decide: (Companion) -> (value: Value, companion: Companion)?
  ) -> Companion? {
    cell.endInPlaceUpdate(update, alongWith: companion.cell, deciding: decide)
  }

  /// As `_endInPlaceUpdate(_:alongWith:deciding:)`, with a second companion, `extra`, locked
  /// (only tried, like the first) after the first and published under the same number:
  /// `decide` gets both companions' newest values and returns the three new values, or nil to
  /// publish nothing. Returns whether it published.
  @inlinable
  package func _endInPlaceUpdate<Companion, Extra>(
    _ update: _InPlaceUpdate<Value>, alongWith companion: TVar<Companion>, and extra: TVar<Extra>,
    deciding decide: (Companion, Extra) -> (value: Value, companion: Companion, extra: Extra)?
  ) -> Bool {
    cell.endInPlaceUpdate(update, alongWith: companion.cell, and: extra.cell, deciding: decide)
  }
}

/// An in-place update whose commit number was taken before its mutation runs, so that a value
/// that may hold an object (an array, a string) is mutated where it is, in the newest version,
/// when the engine allows that version to be overwritten: given a copy, the mutation would copy
/// the whole array every time (see `TVar._numberMutation(_:)`).
@usableFromInline
package struct _NumberedMutation<Value: Sendable> {
  @usableFromInline let segment: Unmanaged<_Segment>
  @usableFromInline let context: Unmanaged<_ThreadContext>
  @usableFromInline let number: UInt64
  /// The newest version, when the value is mutated in it.
  @usableFromInline let overwritable: Unmanaged<_VersionBase>?

  @inlinable
  init(segment: Unmanaged<_Segment>, context: Unmanaged<_ThreadContext>, number: UInt64, overwritable: Unmanaged<_VersionBase>?) {
    self.segment = segment
    self.context = context
    self.number = number
    self.overwritable = overwritable
  }

  /// Whether the value is mutated in the newest version (see `withValueInPlace(_:)`); if not,
  /// the mutation ends by publishing a new version.
  @inlinable
  package var mutatesInPlace: Bool { overwritable != nil }

  /// Calls `body` with the value in the newest version; only when `mutatesInPlace`.
  @inlinable
  package func withValueInPlace<Result>(_ body: (inout Value) -> Result) -> Result {
    overwritable.unsafelyUnwrapped._withUnsafeGuaranteedRef { body(&unsafeDowncast($0, to: _Version<Value>.self).value) }
  }
}

extension _InPlaceUpdate {
  /// The same update, beginning from `value` instead: for a caller that moves the value out of
  /// its version, which must not keep a second reference to it.
  @inlinable
  package func replacingValue(with value: Value) -> _InPlaceUpdate {
    _InPlaceUpdate(segment: segment, context: context, value: value)
  }
}

extension TVar {
  /// During `update` (which holds this variable): takes the commit number before the mutation
  /// runs (or, when no snapshot can see the variable, goes without one and hands back its
  /// version's stamp; see `_Engine.unnumberedOverwritePosition(for:)`), and says whether the
  /// value may be mutated in its version. Readers that meet the lock meanwhile wait for it,
  /// and none that could see the version being mutated exists then. End with
  /// `_endNumberedMutation(_:publishing:)`.
  @inlinable
  package func _numberMutation(_ update: _InPlaceUpdate<Value>) -> _NumberedMutation<Value> {
    let (number, overwritable) = _EngineEntry.numberMutation(of: cell, update.segment, update.context)
    return _NumberedMutation(segment: update.segment, context: update.context, number: number, overwritable: overwritable)
  }

  /// Ends `mutation`: publishes `value`, in the newest version when the mutation is in place
  /// (the value is moved there), in a new version otherwise; releases what the update took.
  @inlinable
  package func _endNumberedMutation(_ mutation: _NumberedMutation<Value>, publishing value: Value) {
    let version: Unmanaged<_VersionBase>
    if let overwritable = mutation.overwritable {
      overwritable._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value = value }
      version = overwritable
    } else {
      version = cell.makePendingVersion(value, cachedBy: mutation.context)
    }
    _EngineEntry.endNumberedMutation(of: cell, mutation.segment, mutation.context, numbered: mutation.number, publishing: version)
  }
}

extension TVar {
  /// During `update`, an in-place update of another variable: this variable's newest
  /// committed value, or nil, having done nothing, when someone else holds its commit lock
  /// right now (the caller then gives up the update and goes another way).
  ///
  /// Read under this variable's commit lock, taken and given back here: while it is held no
  /// commit replaces the newest version and the reclaimer frees none, which an update that
  /// announces no snapshot could not otherwise rule out. The lock is only tried, never
  /// waited for, so two updates that each peek at the other's cell cannot deadlock. It is
  /// taken as housekeeping (`_retireTag`), which publishes nothing: readers that meet it do not
  /// wait, and transactions that read the variable do not take it for a conflicting commit
  /// (with the update's own tag, a peek made after the update took its number, as a queue's
  /// check for a close is, made any transaction validating a read of that flag meanwhile rerun).
  ///
  /// The value was published before the update takes its commit number, so publishing
  /// something that depends on it (a queue's head moved past the item it found) orders the
  /// update after the commit that wrote it. A value that an update wrote without a commit
  /// number makes this update take one (see `_EngineEntry.lockToPeek(_:during:)`).
  @inlinable
  package func _peekNewest<Updated>(during update: _InPlaceUpdate<Updated>) -> Value? {
    cell._withNewest(peekedDuring: update.segment) { $0 }
  }
}

extension _TypedCell where Value: Sendable {
  /// `TVar._beginInPlaceUpdate()`, for a collection that holds the cell unretained (making a
  /// `TVar` of it retained it).
  @inlinable
  package final func beginInPlaceUpdate() -> _InPlaceUpdate<Value>? {
    guard let (segment, context, newest) = _EngineEntry.beginInPlaceUpdate(of: self) else { return nil }
    return _InPlaceUpdate(
      segment: segment, context: context,
      value: newest._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value>.self).value })
  }

  /// Publishes `value` (nothing when nil: the update was abandoned or changed nothing) and
  /// releases what the update took.
  @inlinable
  package final func endInPlaceUpdate(_ update: _InPlaceUpdate<Value>, publishing value: Value?) {
    endInPlaceMutation(update.segment, update.context, publishing: value)
  }

  /// `endInPlaceUpdate(_:publishing:)` for a caller that keeps no copy of the update (`consume
  /// update`): the update's copy of the value it began from, which may be the last reference
  /// to the value written over, goes as that value does (see
  /// `_ThreadState.release(writtenOver:by:)`).
  @inlinable
  package final func endInPlaceUpdate(handingOver update: consuming _InPlaceUpdate<Value>, publishing value: Value?) {
    let thread = update.callingThread
    endInPlaceUpdate(update, publishing: value)
    if !_isPOD(Value.self) { thread.releaseWrittenOver(Optional(consume update)) }
  }

  /// Publishes `value` and `transform` applied to `companion`'s newest value under one commit
  /// number, or under none when no snapshot can see either (see
  /// `_Engine.unnumberedOverwrite(of:commutingWith:by:)`), and releases what the update took.
  /// `companion` must be written only by transactions on the update's segment
  /// (`update.segmentIndex`), and `transform` must commute with itself (an addition to a
  /// count): nothing records the order of two updates that share a position.
  @inlinable
  package final func endInPlaceUpdate<Companion>(
    _ update: _InPlaceUpdate<Value>, publishing value: Value,
    alongWith companion: _TypedCell<Companion>, _ transform: (Companion) -> Companion
  ) {
    let newest = _EngineEntry.lockCompanion(companion, update.segment, update.context)
    let companionValue = transform(newest._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Companion>.self).value })
    let numbered = _EngineEntry.numberInPlaceMutation(of: self, update.segment, update.context, commutingWith: companion)
    publish(value, alongWith: companion, companionValue, numbered: numbered, update.segment, update.context)
  }

  /// The body of `TVar._endInPlaceUpdate(_:alongWith:deciding:)`.
  @inlinable
  final func endInPlaceUpdate<Companion>(
    _ update: _InPlaceUpdate<Value>, alongWith companion: _TypedCell<Companion>,
    deciding decide: (Companion) -> (value: Value, companion: Companion)?
  ) -> Companion? {
    endInPlaceUpdate(update.segment, update.context, alongWith: companion, deciding: decide)
  }

  /// `endInPlaceUpdate(_:alongWith:deciding:)` for the update holding `segment` on the thread
  /// of `context`: what every form of in-place update has (see `_LentInPlaceUpdate`).
  @inlinable
  final func endInPlaceUpdate<Companion>(
    _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, alongWith companion: _TypedCell<Companion>,
    deciding decide: (Companion) -> (value: Value, companion: Companion)?
  ) -> Companion? {
    guard let companionNewest = _EngineEntry.tryLockCompanion(companion, segment) else {
      _EngineEntry.abandonInPlaceMutation(of: self, segment, context)
      return nil
    }
    // Read now: the overwrite below hands back the old value only when it may hold an object.
    let previous = companionNewest._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Companion>.self).value }
    let numbered = _EngineEntry.numberInPlaceMutation(of: self, segment, context, companion: companion)
    guard let (value, companionValue) = decide(previous) else {
      _EngineEntry.abandonNumberedInPlaceMutation(of: self, segment, context, companion: companion)
      return nil
    }
    publish(value, alongWith: companion, companionValue, numbered: numbered, segment, context)
    return .some(previous)
  }

  /// The body of `TVar._endInPlaceUpdate(_:alongWith:and:deciding:)`.
  @inlinable
  final func endInPlaceUpdate<Companion, Extra>(
    _ update: _InPlaceUpdate<Value>, alongWith companion: _TypedCell<Companion>, and extra: _TypedCell<Extra>,
    deciding decide: (Companion, Extra) -> (value: Value, companion: Companion, extra: Extra)?
  ) -> Bool {
    endInPlaceUpdate(update.segment, update.context, alongWith: companion, and: extra, deciding: decide)
  }

  /// `endInPlaceUpdate(_:alongWith:and:deciding:)` for the update holding `segment` on the
  /// thread of `context`.
  @inlinable
  final func endInPlaceUpdate<Companion, Extra>(
    _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, alongWith companion: _TypedCell<Companion>,
    and extra: _TypedCell<Extra>, deciding decide: (Companion, Extra) -> (value: Value, companion: Companion, extra: Extra)?
  ) -> Bool {
    guard let companionNewest = _EngineEntry.tryLockCompanion(companion, segment) else {
      _EngineEntry.abandonInPlaceMutation(of: self, segment, context)
      return false
    }
    guard let extraNewest = _EngineEntry.tryLockCompanion(extra, segment) else {
      // Nothing numbered yet: readers that met the companion's lock did not wait for it.
      companion.unlock()
      _EngineEntry.abandonInPlaceMutation(of: self, segment, context)
      return false
    }
    let previous = companionNewest._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Companion>.self).value }
    let extraPrevious = extraNewest._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Extra>.self).value }
    let numbered = _EngineEntry.numberInPlaceMutation(of: self, segment, context, companion: companion)
    guard let (value, companionValue, extraValue) = decide(previous, extraPrevious) else {
      _EngineEntry.abandonNumberedInPlaceMutation(of: self, segment, context, companion: companion, extra: extra)
      return false
    }
    // Always a new version: the extra companion is rarely written this way, and is not
    // among those `numberInPlaceMutation` looked at for an overwrite.
    let extraVersion = extra.makePendingVersion(extraValue, cachedBy: context)
    publish(value, alongWith: companion, companionValue, numbered: numbered, segment, context, extra: extra, extraVersion)
    return true
  }

  /// The last step of an update with a companion, both locked and numbered (`numbered` is what
  /// `_EngineEntry.numberInPlaceMutation(of:_:_:companion:)` returned): puts the two values into
  /// versions, overwriting where that allowed, publishes them, and releases what the update
  /// took. The values overwritten go once the locks are let go (see
  /// `version(holding:overwriting:cachedBy:)`). A second companion, `extra`, locked too, gets
  /// `extraVersion` (a pending version) under the same number.
  @inlinable
  final func publish<Companion>(
    _ value: consuming Value, alongWith companion: _TypedCell<Companion>, _ companionValue: consuming Companion,
    numbered: (number: UInt64, overwritable: Unmanaged<_VersionBase>?, companion: Unmanaged<_VersionBase>?),
    _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, extra: _Cell? = nil,
    _ extraVersion: Unmanaged<_VersionBase>? = nil
  ) {
    let (published, displaced) = version(holding: value, overwriting: numbered.overwritable, cachedBy: context)
    let (companionPublished, companionDisplaced) = companion.version(
      holding: companionValue, overwriting: numbered.companion, cachedBy: context)
    _EngineEntry.endInPlaceMutation(
      of: self, segment, context, numbered: numbered.number, publishing: published,
      companion: companion, companionPublished, extra: extra, extraVersion)
    // Trivially copyable values are never displaced: no call (not inlined, it was one per update).
    if !_isPOD(Value.self) { _ThreadState.release(writtenOver: consume displaced, by: context) }
    if !_isPOD(Companion.self) { _ThreadState.release(writtenOver: consume companionDisplaced, by: context) }
  }
}

extension _TypedCell {
  /// Publishes `value` (nothing when nil: the mutation was abandoned or changed nothing) at the
  /// end of an in-place mutation outside a transaction, and releases what it took. The value
  /// goes into the cell's newest version itself when the engine allows it (see
  /// `_Engine.overwritableVersions(of:isAlone:companion:numbered:)`), and into a new version
  /// otherwise.
  @inlinable
  final func endInPlaceMutation(_ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>, publishing value: Value?) {
    guard let value else {
      _EngineEntry.abandonInPlaceMutation(of: self, segment, context)
      return
    }
    let (number, overwritable) = _EngineEntry.numberInPlaceMutation(of: self, segment, context)
    let (published, displaced) = version(holding: value, overwriting: overwritable, cachedBy: context)
    _EngineEntry.endInPlaceMutation(of: self, segment, context, numbered: number, publishing: published)
    if !_isPOD(Value.self) { _ThreadState.release(writtenOver: consume displaced, by: context) }
  }

  /// `overwritable` (from `_EngineEntry.numberInPlaceMutation`) given `value`, or, when there is
  /// none, a pending version holding it.
  ///
  /// A value that is not trivially copyable comes back out of the overwritten version as
  /// `displaced`, for the caller to keep until it has let go of its locks: releasing it may
  /// run deinits that free a great deal (a queue's consumed nodes, each through the next) or
  /// run a client's code, which should not hold up the commits waiting for those locks. The
  /// caller then releases it with `_ThreadState.release(writtenOver:by:)`.
  @inlinable
  final func version(
    holding value: consuming Value, overwriting overwritable: Unmanaged<_VersionBase>?, cachedBy context: Unmanaged<_ThreadContext>
  ) -> (version: Unmanaged<_VersionBase>, displaced: Value?) {
    guard let overwritable else { return (makePendingVersion(value, cachedBy: context), nil) }
    // Moved, not copied, into the version (through an optional, since a closure cannot consume
    // a parameter): a copy was a retain and a release of each object a queue links.
    var incoming = Optional(value)
    return overwritable._withUnsafeGuaranteedRef { base in
      let version = unsafeDowncast(base, to: _Version<Value>.self)
      var displaced = incoming.take().unsafelyUnwrapped
      swap(&version.value, &displaced)
      return (overwritable, _isPOD(Value.self) ? nil : displaced)
    }
  }
}

extension _EngineEntry {
  /// The untyped half of `TVar._beginInPlaceUpdate`: takes a segment and the commit lock.
  @usableFromInline
  static func beginInPlaceUpdate(of cell: _Cell)
    -> (Unmanaged<_Segment>, Unmanaged<_ThreadContext>, Unmanaged<_VersionBase>)?
  {
    let context = _ThreadState.current.pointee.context
    let (segment, newest) = beginInPlaceMutation(of: cell, context)
    if cell.isRetired {
      abandonInPlaceMutation(of: cell, segment, context)
      return nil
    }
    return (segment, context, newest)
  }

  /// The untyped half of `TVar._peekNewest(during:)`: tries `cell`'s commit lock as
  /// housekeeping; returns its newest version if it took it.
  ///
  /// If an update wrote that version's value without a commit number, the update on `segment`
  /// will take one: it depends on the value, and two updates without numbers may stand at
  /// one place in the order, where only those of one cell are ordered among themselves (see
  /// `_Engine.unnumberedOverwritePosition(for:)`). A value a numbered commit wrote needs
  /// nothing: that number is at or below the clock this update reads after the peek.
  @usableFromInline
  static func lockToPeek(_ cell: _Cell, during segment: Unmanaged<_Segment>) -> Unmanaged<_VersionBase>? {
    guard cell.tryLock(as: _retireTag).locked else { return nil }
    // Not `segment.newestVersion(ofLocked:)`: that notes what the update's own cell may overwrite.
    let newest = cell.head.load(ordering: .acquiring)
    if newest._withUnsafeGuaranteedRef({ $0.overwrites }) > 0 {
      segment._withUnsafeGuaranteedRef { $0.peekedUnnumberedWrite = true }
    }
    return newest
  }

  /// Tries the commit lock of an in-place update's companion for the update on `segment`;
  /// returns its newest version if it took it.
  @usableFromInline
  static func tryLockCompanion(_ companion: _Cell, _ segment: Unmanaged<_Segment>) -> Unmanaged<_VersionBase>? {
    segment._withUnsafeGuaranteedRef { companion.tryLock(as: $0.tag).locked ? companion.head.load(ordering: .acquiring) : nil }
  }

  /// Takes the commit lock of an in-place update's companion; returns its newest version.
  @usableFromInline
  static func lockCompanion(_ companion: _Cell, _ segment: Unmanaged<_Segment>, _ context: Unmanaged<_ThreadContext>)
    -> Unmanaged<_VersionBase>
  {
    segment._withUnsafeGuaranteedRef { segment in
      context._withUnsafeGuaranteedRef { segment.lock(companion, context: $0) }
    }
    return companion.head.load(ordering: .acquiring)
  }
}

extension Transaction {
  /// The transaction running on the calling thread, or nil outside `atomically`; traps where
  /// transactional data must not be touched (inside a commute transform or an in-place update).
  @inlinable
  package static var _currentChecked: Transaction? { _CallingThread.current.transaction }

  /// The transaction running on the calling thread, or nil outside `atomically`, for an
  /// operation that touches no transactional data and holds nothing another thread's commit
  /// waits for (`TransactionQueue.add`): unlike `_currentChecked`, it does not trap inside a
  /// drop-in update's mutation or a deinit that one runs, which hold a cell's lock but run no
  /// transaction (it trapped there, with a message about deadlocks that did not apply; found
  /// by review). It still traps in a commute's transform, which may run more than once, with a
  /// message of its own. It does not start the engine on a thread that has not used it yet (no
  /// transaction runs there): such an operation may come before `TransactionEngine.configure`.
  @inlinable
  package static var _currentForWorkOutsideTransactionalData: Transaction? {
    guard let state = _ThreadState.currentIfMade else { return nil }
    if let misuse = state.pointee.forbiddenAccess, case .transactionalAccessInCommute = misuse { _misuse(.workAddedInCommute) }
    guard let segment = state.pointee.segment else { return nil }
    // Made as `_CallingThread.transaction` makes it, touching no reference count.
    return Transaction(segment, runningOn: state.pointee.context)
  }
}

/// The calling thread as a collection operation starts: the transaction it joins, if any,
/// and otherwise what a single operation begins from. Found with one read of the thread's
/// state (`_ThreadState.current`), so that a drop-in update that first asks whether a
/// transaction is running does not look again.
@usableFromInline
package struct _CallingThread {
  @usableFromInline let state: UnsafeMutablePointer<_ThreadState>

  @inlinable
  init(state: UnsafeMutablePointer<_ThreadState>) {
    self.state = state
  }

  /// The calling thread; traps where transactional data must not be touched (inside a
  /// commute transform or an in-place update).
  @inlinable
  package static var current: _CallingThread {
    let state = _ThreadState.current
    if let misuse = state.pointee.forbiddenAccess { _misuse(misuse) }
    return _CallingThread(state: state)
  }

  /// The transaction running on the thread, or nil outside `atomically`.
  @inlinable
  package var transaction: Transaction? {
    guard let segment = state.pointee.segment else { return nil }
    // The running segment's thread context is this thread's, read from its state: made from
    // the segment's own field, the handle cost a retain and a release of the segment and of
    // the context on every operation inside a transaction (two of each per lookup).
    return Transaction(segment, runningOn: state.pointee.context)
  }

  /// Whether a transaction is running on the thread (`transaction != nil`, without making one).
  @inlinable
  package var isInTransaction: Bool { state.pointee.segment != nil }

  /// The thread's context, for a single operation to begin from.
  @inlinable
  var context: Unmanaged<_ThreadContext> { state.pointee.context }
}

extension _ThreadState {
  /// Releases `value` (if any), which a drop-in update of this thread wrote over, now, as
  /// plain Swift would, up to `_ThreadContext.maximumReleaseNesting` such releases deep (a
  /// deinit one ran made a drop-in update of its own, and so on); deeper, once the release at
  /// that depth is done, one after another. Released where it stood at every depth, a chain
  /// of values whose deinits each let go of the next with a drop-in update went one group of
  /// stack frames deeper per link, and 2,000 links overflowed a thread's stack (found by
  /// review). Put off at every depth, they made a deinit that a drop-in update freed keep
  /// every value its own drop-in writes replaced until it returned, and one that waited for
  /// the deinit of a value it let go of waited for good (found by the review of that fix).
  @inlinable
  static func release<Held>(writtenOver value: consuming Held?, by context: Unmanaged<_ThreadContext>) {
    guard value != nil else { return }
    let state = context._withUnsafeGuaranteedRef { $0.state }
    let depth = state.pointee.writtenOverReleaseDepth
    guard depth < _ThreadContext.maximumReleaseNesting else {
      state.pointee.writtenOverWaiting.append(value as Any)
      return
    }
    state.pointee.writtenOverReleaseDepth = depth + 1
    _ = consume value
    if depth + 1 == _ThreadContext.maximumReleaseNesting && !state.pointee.writtenOverWaiting.isEmpty {
      releaseWrittenOverWaiting(state)
    }
    state.pointee.writtenOverReleaseDepth = depth
  }

  /// Releases what releases past the deepest left waiting, and what their deinits leave in
  /// turn (they find the depth still at its limit, and add to the list).
  @usableFromInline
  static func releaseWrittenOverWaiting(_ state: UnsafeMutablePointer<_ThreadState>) {
    while !state.pointee.writtenOverWaiting.isEmpty {
      _ = state.pointee.writtenOverWaiting.removeLast()
    }
    // A long chain's room is not kept for the thread's lifetime.
    if state.pointee.writtenOverWaiting.capacity > 64 { state.pointee.writtenOverWaiting = [] }
  }
}

extension _CallingThread {
  /// Releases, for a collection's drop-in operation on this thread, a value that its in-place
  /// update wrote over (or a copy of one) and that it still holds once the update has ended,
  /// as the engine releases what an update writes over (see
  /// `_ThreadState.release(writtenOver:by:)`).
  @inlinable
  package func releaseWrittenOver<Held>(_ value: consuming Held?) {
    _ThreadState.release(writtenOver: value, by: context)
  }
}

extension _InPlaceUpdate {
  /// The thread the update runs on, for releasing after its end what it wrote over and its
  /// caller still holds (`_CallingThread.releaseWrittenOver(_:)`).
  @inlinable
  package var callingThread: _CallingThread { _CallingThread(state: context._withUnsafeGuaranteedRef { $0.state }) }
}
