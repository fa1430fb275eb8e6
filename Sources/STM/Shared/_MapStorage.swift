/// The state shared by `TDictionary` and `TSet`: a cell per key, found through a
/// non-transactional index, and a count spread over segments.
///
/// Every operation has two paths. Inside `atomically` it joins the transaction: it reads and
/// writes the key's cell (so it conflicts only with transactions that touch the same key) and
/// records membership changes in its segment's count cell as commutative updates. Outside, it
/// is one atomic step of its own: an in-place update locks the key's cell (and, when the key
/// comes or goes, the count cell of its segment) and publishes under one commit number,
/// without a transaction's overhead.
///
/// The single-key operations are inlinable (see `_KeyIndex`).
@usableFromInline
final class _MapStorage<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  @usableFromInline typealias Cell = _KeyedCell<Key, Value>
  @usableFromInline let index: _KeyIndex<Key, Value>
  @usableFromInline let count: _MembershipCount

  init(minimumCapacity: Int = 0, reserving: Bool = false) {
    index = _KeyIndex(minimumCapacity: minimumCapacity, reserving: reserving)
    count = _MembershipCount()
  }

  /// A map holding `contents` (keys all different) from the start, each value its key's
  /// cell's first version, as a `TVar` holds its initial value: written by no transaction, so
  /// that a map made inside `atomically` keeps its contents whatever becomes of the
  /// transaction (made through one, a set or dictionary made in a transaction that rolled
  /// back came out empty, and one made in a drop-in update's body or a commute's transform
  /// trapped; found by review).
  @inlinable
  init<Contents: Collection>(filledWith contents: Contents) where Contents.Element == (key: Key, value: Value) {
    index = _KeyIndex(minimumCapacity: contents.count)
    for (key, value) in contents { index.insertUnshared(key, value: value) }
    count = _MembershipCount(initial: contents.count)
  }

  // MARK: Reads

  @inlinable
  func value(forKey key: Key, at site: _CallSite) -> Value? {
    let thread = _CallingThread.current
    if let transaction = thread.transaction {
      return value(forKey: key, in: transaction, on: thread, at: site).value
    }
    let hash = index.hash(of: key)
    let operation = _SingleOperation.beginReading(on: thread)
    let current = index.find(key, hash: hash)
    // A key removed since the snapshot may have its value at the snapshot in a retired cell.
    if index.mayHaveRetired(hash: hash, after: operation.snapshot) {
      let retired = index.retiredSlots(for: key, hash: hash, seenFrom: operation.snapshot)
      var value = current?._withUnsafeGuaranteedRef { operation.read($0._noted(.read, at: site)) } ?? nil
      for slot in retired where value == nil {
        value = operation.read(slot._unsafeKeyedCell(as: Cell.self)._noted(.read, at: site))
      }
      operation.finish()
      return value
    }
    guard let cell = current else { return operation.finishReading(nil as Cell?) ?? nil }
    // Noted apart, and read unretained: `_noted` hands the cell back retained, and a reference
    // passed on is retained around the read, each a retain and a release (atomic
    // read-modify-writes) of a cell the announcement already keeps.
    cell._withUnsafeGuaranteedRef { $0._noteAccess(.read, at: site) }
    return operation.finishReading(unretained: cell)
  }

  /// Inside `transaction` (running on `thread`): the key's value at its snapshot, and the
  /// key's current cell, which the read marked (it stays in the index at least as long as the
  /// transaction's snapshot is announced, and its read marker then retains it). `inCell` says
  /// whether the value is the current cell's own: no cell of the key was retired after the
  /// snapshot, so no retired cell had a say.
  @inlinable
  func value(forKey key: Key, in transaction: Transaction, on thread: _CallingThread, at site: _CallSite)
    -> (value: Value?, cell: Unmanaged<Cell>, inCell: Bool)
  {
    let hash = index.hash(of: key)
    // Even an absent key gets a cell, so that a later insert of it conflicts with this read.
    let cell = index.cell(for: key, hash: hash)
    // Asked first, after the lookup as `retiredSlots` asks it: the common case then makes no
    // array, and releases none (a call into the runtime on every lookup).
    if index.mayHaveRetired(hash: hash, after: transaction._snapshot) {
      let retired = index.retiredSlots(for: key, hash: hash, seenFrom: transaction._snapshot)
      if !retired.isEmpty {
        let current = cell._withUnsafeGuaranteedRef { $0.variable }
        Self.note(.read, current, retired, at: site, key: key)
        let value = Self.read(current, retired, in: transaction)
        if value == nil { cell._withUnsafeGuaranteedRef { index.noteEmptyCellRead($0, hash: hash, at: transaction._snapshot) } }
        return (value, cell, false)
      }
    }
    // The common case, read in place.
    let value = cell._withUnsafeGuaranteedRef { cell in
      cell._noteAccess(.read, at: site)
      return cell._value(in: thread)
    }
    if value == nil { cell._withUnsafeGuaranteedRef { index.noteEmptyCellRead($0, hash: hash, at: transaction._snapshot) } }
    return (value, cell, true)
  }

  // MARK: Updates

  /// Applies `body` to the key's value (nil when absent) as one atomic step; `body` returns
  /// whether it changed the value. Keeps the count and the index in step with membership.
  /// `runsUsersCode`: `body` calls the caller's closure, which may use transactional data
  /// (see `update(forKey:in:at:runsUsersCode:_:)`).
  @inlinable
  func update<Result, Failure: Error>(
    forKey key: Key, at site: _CallSite, runsUsersCode: Bool = false,
    _ body: (inout Value?) throws(Failure) -> (changed: Bool, result: Result)
  ) throws(Failure) -> Result {
    let thread = _CallingThread.current
    if let transaction = thread.transaction {
      return try update(forKey: key, in: transaction, at: site, runsUsersCode: runsUsersCode, body)
    }
    let pending = beginUpdate(forKey: key, on: thread, at: site)
    var value = pending.value
    let changed: Bool, result: Result
    do {
      (changed, result) = try body(&value)
    } catch {
      endUpdate(forKey: key, consume pending, publishing: nil)
      throw error
    }
    endUpdate(forKey: key, consume pending, publishing: changed ? .some(value) : nil)
    return result
  }

  /// An outside-transaction update that holds the key's cell, split in two so that `_modify`
  /// accessors can `yield` in between.
  @usableFromInline
  struct PendingUpdate {
    /// Unretained: while its commit lock is held the cell stays in the index, which keeps it.
    @usableFromInline let cell: Unmanaged<Cell>
    @usableFromInline let update: _InPlaceUpdate<Value?>
    /// Whether this update made the cell (the key had none): if it leaves the key absent, the
    /// empty cell must be counted toward a sweep.
    @usableFromInline let madeCell: Bool
    @inlinable var value: Value? { update.value }

    @inlinable
    init(cell: Unmanaged<Cell>, update: _InPlaceUpdate<Value?>, madeCell: Bool) {
      self.cell = cell
      self.update = update
      self.madeCell = madeCell
    }
  }

  /// Outside a transaction: finds the key's cell (made if absent) and takes its commit lock.
  @inlinable
  func beginUpdate(forKey key: Key, on thread: _CallingThread, at site: _CallSite) -> PendingUpdate {
    beginUpdate(forKey: key, hash: index.hash(of: key), on: thread, at: site)
  }

  /// `beginUpdate(forKey:on:at:)` for a caller that has hashed the key already, and that may
  /// have begun the operation (`handedOver`: the quick road's, for a key it did not find).
  @inlinable
  func beginUpdate(
    forKey key: Key, hash: Int, on thread: _CallingThread, at site: _CallSite, continuing handedOver: _SingleOperation? = nil
  ) -> PendingUpdate {
    let operation = handedOver ?? _SingleOperation.beginUpdating(on: thread)
    while true {
      let (cell, made) = index.cellForUpdate(for: key, hash: hash)
      // Nil when the cell was retired since the lookup: the key has a fresh cell now.
      if let update = cell._withUnsafeGuaranteedRef({ operation.beginUpdate($0._noted(.readWrite, at: site)) }) {
        return PendingUpdate(cell: cell, update: update, madeCell: made)
      }
    }
  }

  /// Publishes `value` (nothing when the outer optional is nil: the update was abandoned or
  /// changed nothing) and releases the cell. Keeps the count and the index in step with
  /// membership.
  ///
  /// Hand the update over (`consume pending`): its copy of the value it began from may be the
  /// last reference to the value written over, and goes as the engine releases such values
  /// (see `_CallingThread.releaseWrittenOver(_:)`).
  @inlinable @inline(__always)
  func endUpdate(forKey key: Key, _ pending: consuming PendingUpdate, publishing value: Value??) {
    let thread = pending.update.callingThread
    let delta = value.map { Self.membershipDelta(from: pending.value, to: $0) } ?? 0
    guard delta != 0, let value else {
      // Nothing published, or a value that leaves membership alone: only the key's cell.
      pending.cell._withUnsafeGuaranteedRef { $0.endInPlaceUpdate(pending.update, publishing: value) }
      // The key was absent and stays so: a cell this update made is left empty.
      if pending.madeCell && pending.value == nil { index.noteEmptyCell(hash: index.hash(of: key)) }
      if !_isPOD(Value.self) { thread.releaseWrittenOver(Optional(consume pending)) }
      return
    }
    endMembershipChange(forKey: key, pending, publishing: value, delta: delta)
    if !_isPOD(Value.self) { thread.releaseWrittenOver(Optional(consume pending)) }
  }

  /// The end of an update that inserts (`delta` 1) or removes (-1) its key: publishes the
  /// value and the count of the update's segment under one commit number. Kept apart from
  /// `endUpdate` so that the common update, which leaves membership alone, stays small enough
  /// to be inlined into its caller.
  @inlinable
  func endMembershipChange(forKey key: Key, _ pending: PendingUpdate, publishing value: Value?, delta: Int) {
    if delta > 0 {
      // Like an update that leaves membership alone: nothing touches the cell after its lock goes.
      count.withCell(forSegment: pending.update.segmentIndex) { companion in
        pending.cell._withUnsafeGuaranteedRef {
          $0.endInPlaceUpdate(pending.update, publishing: value, alongWith: companion) { $0 + delta }
        }
      }
      return
    }
    // Retained before the lock goes: a removed key's cell leaves the index at `detach`.
    let slot = pending.cell.takeUnretainedValue().variable
    count.withCell(forSegment: pending.update.segmentIndex) { companion in
      slot._unsafeKeyedCell(as: Cell.self).endInPlaceUpdate(pending.update, publishing: value, alongWith: companion) { $0 + delta }
    }
    index.detach(key, slot)
  }

  /// A read-modify-write of one key for a `_modify` accessor, inside or outside a transaction.
  @usableFromInline
  struct Modification {
    /// How the modification began, and so how it ends. An enumeration, not one optional per
    /// case: a drop-in update builds and reads only its own case's fields.
    @usableFromInline
    enum Road {
      /// Outside a transaction (off the quick road): the update holding the key's cell.
      case update(PendingUpdate)
      /// Outside a transaction, for a present key whose value may hold an object: the update,
      /// numbered before the mutation, which moves the value out of its version and back when
      /// the engine allows it (see `TVar._numberMutation(_:)`).
      case numbered(PendingUpdate, _NumberedMutation<Value?>)
      /// Inside a transaction that wrote the present key in its current block: that write,
      /// which the value was moved out of, to go back into.
      case ownWrite(_OwnWrite<Value?>)
      /// Inside a transaction otherwise: the key's cell, listed as being mutated on a copy
      /// (see `TVar._beginMutatingCopy(in:)`) until the copy is written back. Unretained: the
      /// transaction's read of it retains it. With the transaction when the copy goes back
      /// into the cell directly (see `WriteBack`), nil when it goes back through
      /// `update(forKey:in:at:)`, which looks the key up again.
      case copied(Unmanaged<Cell>, WriteBack?)
    }

    /// Outside a transaction, on the quick road (see `beginQuickModification`): the update
    /// holding a present key's cell; nil on every other road.
    ///
    /// Apart from `road`, which the other roads fill out of line: as one more case of it, the
    /// quick road wrote its three words into the block of memory where the out-of-line call
    /// returns the others, and the end read them back with wider loads that straddled those
    /// stores (a stall each). With the caller's `+= 1` checking for overflow (any build but
    /// `-Ounchecked`), that was a quarter of an update's time.
    @usableFromInline let quick: (update: _QuickUpdate, cell: Unmanaged<Cell>)?
    /// How the modification began off the quick road, and so how it ends; nil on it.
    @usableFromInline let road: Road?
    /// The value the modification starts from (the key's, or the default when it is absent),
    /// until `takeValue()`.
    @usableFromInline var value: Value?

    @inlinable
    init(_ road: Road, value: Value?) {
      quick = nil
      self.road = road
      self.value = value
    }

    @inlinable
    init(quick update: _QuickUpdate, holding cell: Unmanaged<Cell>, value: Value) {
      quick = (update, cell)
      road = nil
      self.value = value
    }

    /// The value the modification starts from (the key's, or the default), moved out: a copy
    /// left here would make a mutation of an array copy the whole array.
    @inlinable
    mutating func takeValue() -> Value { value.take().unsafelyUnwrapped }
  }

  /// Begins a modification of `key` by the operation at `site`, starting from the key's value
  /// or, if it is absent, from `defaultValue()`: inside a transaction a read, outside one an
  /// in-place update holding the key's cell until `endModification`. A present key's value
  /// that may hold an object is moved out of its version, when the engine allows, so that
  /// mutating it does not copy it.
  ///
  /// The default is computed with nothing held: it may read transactional data (a `TVar`
  /// holding the default), which code run while an update holds a cell must not.
  ///
  /// Always inlined, down to the quick road (see `beginQuickModification`), with the other
  /// roads out of line: called, the whole of it (too large for the compiler to inline) built
  /// its 80-byte `Modification` in memory for the caller to read back. With
  /// `endModification` split the same way, a drop-in `dict[key, default: 0] += 1` went from
  /// 536 instructions to 482.
  @inlinable @inline(__always)
  func beginModification(forKey key: Key, default defaultValue: () -> Value, at site: _CallSite) -> Modification {
    let thread = _CallingThread.current
    guard _isPOD(Value.self), !thread.isInTransaction else {
      let (road, value) = beginModificationOffTheQuickRoad(
        forKey: key, default: defaultValue, on: thread, handingOver: nil, at: site)
      return Modification(road, value: value)
    }
    var handedOver: _SingleOperation?
    if let quick = beginQuickModification(forKey: key, hash: index.hash(of: key), on: thread, handingOver: &handedOver) {
      return quick
    }
    let (road, value) = beginModificationOffTheQuickRoad(
      forKey: key, default: defaultValue, on: thread, handingOver: handedOver, at: site)
    return Modification(road, value: value)
  }

  /// The rest of `beginModification(forKey:default:at:)`, on `thread`: inside a transaction,
  /// or outside one where the quick road did not go, continuing from what it hands over.
  @inlinable
  func beginModificationOffTheQuickRoad(
    forKey key: Key, default defaultValue: () -> Value, on thread: _CallingThread, handingOver handedOver: _SingleOperation?,
    at site: _CallSite
  ) -> (road: Modification.Road, value: Value?) {
    if let transaction = thread.transaction {
      if let ownWrite = ownWriteRoad(forKey: key, in: transaction, at: site) { return ownWrite }
      // The first update of the key in the block works on a copy; using the key meanwhile
      // traps, as above, instead of being overwritten by the copy.
      let (value, cell, inCell) = value(forKey: key, in: transaction, on: thread, at: site)
      let start = value ?? defaultValue()
      cell._withUnsafeGuaranteedRef { $0._beginMutatingCopy(in: transaction) }
      // An absent key's default is the caller's code, which may have used the key: its
      // value is read again at the end.
      let writeBack = value != nil ? WriteBack(transaction, ifValueWasIn: inCell) : nil
      return (.copied(cell, writeBack), start)
    }
    let hash = index.hash(of: key)
    var pending = beginUpdate(forKey: key, hash: hash, on: thread, at: site, continuing: handedOver)
    var fallback: Value?
    if pending.value == nil {
      // Absent: let go, compute the default, and take the cell again. (Present by then, the
      // key's value wins, and the default goes unused, as it would have a moment later.)
      endUpdate(forKey: key, consume pending, publishing: nil)
      fallback = defaultValue()
      pending = beginUpdate(forKey: key, on: thread, at: site)
    }
    guard !_isPOD(Value.self), pending.update.value != nil else {
      return (.update(pending), pending.value ?? fallback ?? defaultValue())
    }
    return roadInPlace(holding: pending)
  }

  /// Inside `transaction`: the road of a modification of a present key that the transaction
  /// wrote already, with its value moved out of the pending version; nil for any other key.
  @inlinable
  func ownWriteRoad(forKey key: Key, in transaction: Transaction, at site: _CallSite) -> (road: Modification.Road, value: Value?)? {
    guard !_isPOD(Value.self), let cell = index.find(key, hash: index.hash(of: key)) else { return nil }
    let variable = cell._withUnsafeGuaranteedRef { $0.variable }
    // A key this transaction removed goes the usual way, which inserts it.
    guard let ownWrite = variable._ownWrite(in: transaction), let moved = ownWrite.withValue({ $0.take() }) else { return nil }
    variable._noteAccess(.readWrite, at: site, as: .key(key))
    // Until the value is back, using the key from inside the mutation traps: it would find
    // the key absent.
    ownWrite.beginMutation()
    return (.ownWrite(ownWrite), moved)
  }

  /// Outside a transaction: the road of a modification of a present key's value that is not
  /// trivially copyable, from `pending`, which holds its cell. The mutation is numbered before
  /// it runs, and the value moved out of its version when the engine allows.
  @inlinable
  func roadInPlace(holding pending: PendingUpdate) -> (road: Modification.Road, value: Value?) {
    let numbered = pending.cell._withUnsafeGuaranteedRef { $0.variable._numberMutation(pending.update) }
    // The update's own copy of the value goes, so that the moved value is its only reference.
    let unreferenced = PendingUpdate(cell: pending.cell, update: pending.update.replacingValue(with: nil), madeCell: pending.madeCell)
    let value = numbered.mutatesInPlace ? numbered.withValueInPlace { $0.take() } : pending.value
    return (.numbered(unreferenced, numbered), value)
  }

  /// Begins a modification of `key` if it is present, as `beginModification(forKey:default:at:)`
  /// begins one of a present key; nil, having only read the key (and written nothing), if it
  /// is absent. The modification never inserts or removes the key, so nothing of the count is
  /// held while it runs.
  @inlinable
  func beginModificationIfPresent(forKey key: Key, at site: _CallSite) -> Modification? {
    let thread = _CallingThread.current
    if let transaction = thread.transaction {
      if let (road, moved) = ownWriteRoad(forKey: key, in: transaction, at: site) { return Modification(road, value: moved) }
      let (value, cell, inCell) = value(forKey: key, in: transaction, on: thread, at: site)
      guard let value else { return nil }
      cell._withUnsafeGuaranteedRef { $0._beginMutatingCopy(in: transaction) }
      return Modification(.copied(cell, WriteBack(transaction, ifValueWasIn: inCell)), value: value)
    }
    let pending = beginUpdate(forKey: key, on: thread, at: site)
    guard pending.value != nil else {
      endUpdate(forKey: key, consume pending, publishing: nil)
      return nil
    }
    guard !_isPOD(Value.self) else { return Modification(.update(pending), value: pending.value) }
    let (road, value) = roadInPlace(holding: pending)
    return Modification(road, value: value)
  }

  /// Outside a transaction, the quick road of `beginModification` (see `_QuickUpdate`): for a
  /// trivially copyable value of a present key, whose cell it locks. Nil where the general
  /// road must go: the key is absent (its default and the count need it), its cell was
  /// retired meanwhile, or the quick road is closed now. When the index has no cell for the
  /// key at all, the quick road's segment and lookup announcement go on in `handedOver`, for
  /// the general road to continue from (see `_QuickUpdate.continuingOnTheGeneralRoad()`);
  /// otherwise nothing is held.
  @inlinable @inline(__always)
  func beginQuickModification(
    forKey key: Key, hash: Int, on thread: _CallingThread, handingOver handedOver: inout _SingleOperation?
  ) -> Modification? {
    guard let quick = _QuickUpdate.begin(on: thread, markingTheLookup: _KeyHash.hasLibraryEquality(of: key)) else { return nil }
    guard let cell = index.find(key, hash: hash) else {
      handedOver = quick.continuingOnTheGeneralRoad()
      return nil
    }
    // Nil: retired, not locked. Some(nil): locked, but the key is absent.
    let locked = cell._withUnsafeGuaranteedRef { quick.lock($0) }
    guard let current = locked, let value = current else {
      cell._withUnsafeGuaranteedRef { quick.cancel(locked == nil ? nil : $0) }
      return nil
    }
    return Modification(quick: quick, holding: cell, value: value)
  }

  /// Stores `value` for `key` as one atomic step (`dict[key] = value`, `updateValue`), and
  /// returns the value it replaced.
  ///
  /// Outside a transaction, a present key with a trivially copyable value takes the quick
  /// road of the in-place update (`beginQuickModification`): the same update as the general
  /// road's (the same lock, number or unnumbered overwrite), without its segment search, pause
  /// accounting and per-access checks. An absent key, whose insert changes the count, goes
  /// the general road, with the hash already computed, and, when the index has no cell for
  /// it, from the segment and the lookup announcement the quick road took.
  ///
  /// Always inlined down to the quick road, the rest out of line, as
  /// `beginModification(forKey:default:at:)` is: a drop-in `dict[key] = value` of a present
  /// key went from 451 instructions to 418.
  ///
  /// `returningReplaced` false, for a caller that drops it (`dict[key] = value`): the replaced
  /// value goes as the engine releases what an update writes over, and the result is nil.
  @inlinable @inline(__always) @discardableResult
  func store(_ value: Value, forKey key: Key, returningReplaced: Bool = true, at site: _CallSite) -> Value? {
    let thread = _CallingThread.current
    guard _isPOD(Value.self), !thread.isInTransaction else {
      return storeOffTheQuickRoad(value, forKey: key, on: thread, handingOver: nil, returningReplaced: returningReplaced, at: site)
    }
    var handedOver: _SingleOperation?
    if let modification = beginQuickModification(forKey: key, hash: index.hash(of: key), on: thread, handingOver: &handedOver),
      let (update, cell) = modification.quick
    {
      cell._withUnsafeGuaranteedRef { update.publish(Optional(value), in: $0) }
      return modification.value
    }
    return storeOffTheQuickRoad(value, forKey: key, on: thread, handingOver: handedOver, at: site)
  }

  /// The rest of `store(_:forKey:at:)`, on `thread`: inside a transaction, or outside one where
  /// the quick road did not go, continuing from what it hands over. (It hashes the key again:
  /// passed in, the hash made the compiler lay out both halves worse.)
  @inlinable
  func storeOffTheQuickRoad(
    _ value: Value, forKey key: Key, on thread: _CallingThread, handingOver handedOver: _SingleOperation?,
    returningReplaced: Bool = true, at site: _CallSite
  ) -> Value? {
    if let transaction = thread.transaction {
      return update(forKey: key, in: transaction, at: site) { current in
        defer { current = value }
        return (true, current)
      }
    }
    let hash = index.hash(of: key)
    let pending = beginUpdate(forKey: key, hash: hash, on: thread, at: site, continuing: handedOver)
    let replaced = pending.value
    endUpdate(forKey: key, consume pending, publishing: .some(value))
    guard returningReplaced else {
      if !_isPOD(Value.self) { thread.releaseWrittenOver(consume replaced) }
      return nil
    }
    return replaced
  }

  /// A read-modify-write of one key's optional value (which may insert or remove the key),
  /// for a `_modify` accessor, inside or outside a transaction.
  @usableFromInline
  struct OptionalModification {
    /// Outside a transaction: the update holding the key's cell. Nil inside one.
    @usableFromInline var pending: PendingUpdate?
    /// Inside a transaction: the key's cell, listed as being mutated on a copy until the copy
    /// is written back (see `Modification.copied`).
    @usableFromInline let copied: Unmanaged<Cell>?
    /// Inside a transaction, when the copy goes back into `copied` directly (see `WriteBack`).
    @usableFromInline let writeBack: WriteBack?
    /// The key's value when the modification began.
    @usableFromInline var value: Value?

    @inlinable
    init(pending: PendingUpdate?, copied: Unmanaged<Cell>?, writeBack: WriteBack? = nil, value: Value?) {
      self.pending = pending
      self.copied = copied
      self.writeBack = writeBack
      self.value = value
    }
  }

  /// How a modification inside a transaction ends when its value goes back into the key's
  /// cell directly, without looking the key up again: the transaction to count a membership
  /// change in.
  ///
  /// Only where the end would find what the beginning found: the value read was the current
  /// cell's own (no retired cell of the key had a say), and the transaction is not inevitable
  /// when the modification ends (one that is must pin the cell it writes, which
  /// `update(forKey:in:at:)` does; the mutation may have made it inevitable, and
  /// `becomeInevitable()` pins only the cells written so far: checked at the end, found by a
  /// review). Meanwhile the transaction cannot change the key: using it traps while the copy
  /// is out. The second lookup cost a transactional upsert about 650 instructions (hashing the
  /// key, the index, the retired cells, another read) of about 2,800.
  @usableFromInline
  struct WriteBack {
    @usableFromInline let transaction: Transaction

    /// The write-back for a modification in `transaction` that read its value from the
    /// current cell (`inCell`), or nil where it must go through `update(forKey:in:at:)`.
    @inlinable
    init?(_ transaction: Transaction, ifValueWasIn inCell: Bool) {
      guard inCell else { return nil }
      self.transaction = transaction
    }

    /// Whether the modification, now ending, may write back directly: not once the
    /// transaction is inevitable.
    @inlinable
    var applies: Bool { !transaction._isInevitable }
  }

  /// Ends a modification inside a transaction by writing `new` into `cell`, the key's cell,
  /// where it held `old` when the modification began, as `update(forKey:in:at:)` would write
  /// it (see `WriteBack`): an absent key left absent writes nothing; an insert or a removal
  /// counts, and a removal detaches the cell once committed.
  @inlinable
  func writeBack(_ new: Value?, over old: Value?, forKey key: Key, in cell: Unmanaged<Cell>, _ writeBack: WriteBack, at site: _CallSite) {
    cell._withUnsafeGuaranteedRef { cell in
      cell._noteAccess(.readWrite, at: site)
      if old == nil && new == nil {
        cell._endMutatingCopy()
      } else {
        cell._endMutatingCopy(writingBack: new)
      }
    }
    noteMembershipChange(
      of: key, from: old, to: new, in: cell._withUnsafeGuaranteedRef { $0.variable }, writeBack.transaction, at: site)
  }

  /// Inside `transaction`, after it wrote `key` from `old` to `new` in `slot`: counts an insert
  /// or a removal, and detaches a removed key's cell once the transaction commits. `slot` is
  /// made only for a removal.
  @inlinable
  func noteMembershipChange(
    of key: Key, from old: Value?, to new: Value?, in slot: @autoclosure () -> _KeyIndex<Key, Value>.Slot,
    _ transaction: Transaction, at site: _CallSite
  ) {
    let delta = Self.membershipDelta(from: old, to: new)
    guard delta != 0 else { return }
    count.add(delta, in: transaction, at: site)
    if delta < 0 {
      let index = self.index
      let slot = slot()
      transaction.afterCommit { index.detach(key, slot) }
    }
  }

  /// Inside `transaction`: removes, through their cells, the present keys that do not equal
  /// themselves (such as `Double.nan`), which no lookup by key can find: what `removeAll`
  /// does for the keys that a removal by key leaves.
  @inlinable
  func removeKeysUnequalToThemselves(in transaction: Transaction, at site: _CallSite) {
    removeKeysUnequalToThemselves(in: transaction, at: site, where: { _, _ in true })
  }

  /// `removeKeysUnequalToThemselves(in:at:)` for the keys, and their values, for which
  /// `shouldGo` holds: what `removeAll(where:)` does for the keys that a removal by key leaves.
  /// Every key is tested before any is removed, so that a test that reads the collection sees
  /// it whole (tested one by one as they went, the later ones saw the earlier ones gone; found
  /// by review).
  @inlinable
  func removeKeysUnequalToThemselves<Failure: Error>(
    in transaction: Transaction, at site: _CallSite, where shouldGo: (Key, Value) throws(Failure) -> Bool
  ) throws(Failure) {
    var doomed: [(key: Key, slot: _KeyIndex<Key, Value>.Slot, old: Value)] = []
    for (key, slot) in index.allSlots(in: transaction).current where !_KeyHash.equal(key, key) {
      guard let old = slot._notedValue(.readWrite, at: site, as: .key(key)), try shouldGo(key, old) else { continue }
      doomed.append((key, slot, old))
    }
    for (key, slot, old) in doomed {
      slot.value = nil
      noteMembershipChange(of: key, from: old, to: nil, in: slot, transaction, at: site)
    }
  }

  /// Begins a modification of the optional value of `key`: outside a transaction an in-place
  /// update holding the key's cell until `endOptionalModification`; inside one a read, with
  /// the key listed as being mutated on a copy.
  @inlinable
  func beginOptionalModification(forKey key: Key, at site: _CallSite) -> OptionalModification {
    let thread = _CallingThread.current
    guard let transaction = thread.transaction else {
      let pending = beginUpdate(forKey: key, on: thread, at: site)
      return OptionalModification(pending: pending, copied: nil, value: pending.value)
    }
    let (value, cell, inCell) = value(forKey: key, in: transaction, on: thread, at: site)
    cell._withUnsafeGuaranteedRef { $0._beginMutatingCopy(in: transaction) }
    return OptionalModification(pending: nil, copied: cell, writeBack: WriteBack(transaction, ifValueWasIn: inCell), value: value)
  }

  /// Ends what `beginOptionalModification` began by storing `value`; an absent key left
  /// absent writes nothing.
  ///
  /// Takes the modification's update and old value out of it: outside a transaction, either
  /// may hold the last reference to the value written over, which goes as the engine releases
  /// such values (see `_CallingThread.releaseWrittenOver(_:)`). Left in it, that reference went as the
  /// accessor's frame did, one group of stack frames deeper per link of a chain of values
  /// whose deinits each did `dict[key]? = value` (found by review).
  @inlinable
  func endOptionalModification(forKey key: Key, _ modification: inout OptionalModification, publishing value: Value?, at site: _CallSite) {
    let old = modification.value.take()
    guard let pending = modification.pending.take() else {
      if let copied = modification.copied, let writeBack = modification.writeBack, writeBack.applies {
        self.writeBack(value, over: old, forKey: key, in: copied, writeBack, at: site)
        return
      }
      if let copied = modification.copied { copied._withUnsafeGuaranteedRef { $0._endMutatingCopy() } }
      update(forKey: key, at: site) { current in
        guard current != nil || value != nil else { return (false, ()) }
        current = value
        return (true, ())
      }
      return
    }
    let publishing: Value?? = pending.value == nil && value == nil ? nil : .some(value)
    let thread = pending.update.callingThread
    endUpdate(forKey: key, consume pending, publishing: publishing)
    if !_isPOD(Value.self) { thread.releaseWrittenOver(consume old) }
  }

  /// Ends a modification by storing `value`. Always inlined for the quick road, like
  /// `beginModification(forKey:default:at:)`; the other roads end out of line.
  @inlinable @inline(__always)
  func endModification(forKey key: Key, _ modification: Modification, publishing value: Value, at site: _CallSite) {
    if let (update, cell) = modification.quick {
      cell._withUnsafeGuaranteedRef { update.publish(Optional(value), in: $0) }
      return
    }
    endModificationOffTheQuickRoad(forKey: key, modification.road.unsafelyUnwrapped, publishing: value, at: site)
  }

  /// `endModification(forKey:_:publishing:at:)` for a modification that began off the quick
  /// road, on `road`.
  @inlinable
  func endModificationOffTheQuickRoad(forKey key: Key, _ road: Modification.Road, publishing value: Value, at site: _CallSite) {
    switch road {
    case .numbered(let pending, let numbered):
      pending.cell._withUnsafeGuaranteedRef { $0.variable._endNumberedMutation(numbered, publishing: value) }
      return
    case .update(let pending):
      endUpdate(forKey: key, pending, publishing: .some(value))
      return
    case .ownWrite(let ownWrite):
      // An own write that a nested block superseded is written the usual way, below.
      if ownWrite.endMutation(storing: value) { return }
    case .copied(let cell, let writeBack):
      if let writeBack, writeBack.applies {
        self.writeBack(value, over: .some(value), forKey: key, in: cell, writeBack, at: site)
        return
      }
      cell._withUnsafeGuaranteedRef { $0._endMutatingCopy() }
    }
    update(forKey: key, at: site) { current in
      current = value
      return (true, ())
    }
  }

  /// Inside `transaction`: what `update(forKey:at:runsUsersCode:_:)` does, joining it.
  ///
  /// `runsUsersCode`: `body` calls the caller's closure (`merge`'s `combine`, the body of an
  /// `update(forKey:default:_:)` that can throw), which runs between the read and the write.
  /// Using the key from inside it then traps, as in the other in-place updates, instead of
  /// having what it wrote overwritten here; and if it made the transaction inevitable, the
  /// write goes through the key's cell pinned, as any write of an inevitable transaction does:
  /// the lookup pinned nothing, and a sweep could retire the empty cell before the commit,
  /// which an inevitable transaction cannot rerun to recover from (both found by review).
  @inlinable
  func update<Result, Failure: Error>(
    forKey key: Key, in transaction: Transaction, at site: _CallSite, runsUsersCode: Bool = false,
    _ body: (inout Value?) throws(Failure) -> (changed: Bool, result: Result)
  ) throws(Failure) -> Result {
    let hash = index.hash(of: key)
    let (slot, retired) = index.slots(for: key, hash: hash, in: transaction)
    Self.note(.readWrite, slot, retired, at: site, key: key)
    let old = Self.read(slot, retired, in: transaction)
    if old == nil { index.noteEmptyCellRead(slot._unsafeKeyedCell(as: Cell.self), hash: hash, at: transaction._snapshot) }
    var value = old
    let wasInevitable = runsUsersCode && transaction._isInevitable
    if runsUsersCode { slot._beginMutatingCopy(in: transaction) }
    let changed: Bool, result: Result
    do throws(Failure) {
      (changed, result) = try body(&value)
    } catch {
      if runsUsersCode { slot._endMutatingCopy(in: transaction) }
      throw error
    }
    if runsUsersCode {
      slot._endMutatingCopy(in: transaction)
      if changed && !wasInevitable && transaction._isInevitable {
        return update(forKey: key, in: transaction, at: site) { current in
          current = value
          return (true, result)
        }
      }
    }
    guard changed else { return result }
    slot.value = value
    noteMembershipChange(of: key, from: old, to: value, in: slot, transaction, at: site)
    return result
  }

  /// The key's value as `transaction` sees it, given the key's current cell (if the index has
  /// one) and the cells retired after its snapshot that held the key, newest first.
  ///
  /// The transaction's own write wins: in the current cell, or else in a retired one (the
  /// newest), which a sweep may have retired under a pending insert. Otherwise the value at
  /// the snapshot, in whichever cell holds one (at most one does): the current cell, or one
  /// retired since by a removal (a read that will make a writing transaction rerun, since the
  /// key has changed). Reading a retired cell first made a key the transaction had removed
  /// itself read as present still.
  @inlinable
  static func read(
    _ current: _KeyIndex<Key, Value>.Slot?, _ retired: [_KeyIndex<Key, Value>.Slot], in transaction: Transaction
  ) -> Value? {
    // No retired cell, the common case: the current cell's read gives the transaction's own
    // write if it has one.
    if retired.isEmpty { return current?.value }
    if let current, current._isWritten(in: transaction) { return current.value }
    for slot in retired where slot._isWritten(in: transaction) { return slot.value }
    if let value = current?.value { return value }
    for slot in retired {
      if let value = slot.value { return value }
    }
    return nil
  }

  @inlinable @inline(__always)
  static func membershipDelta(from old: Value?, to new: Value?) -> Int {
    switch (old == nil, new == nil) {
    case (true, false): 1
    case (false, true): -1
    default: 0
    }
  }

  // MARK: Whole-collection reads

  /// Whether no key is present, as one atomic read by the operation at `site` (joins the
  /// running transaction, if any).
  ///
  /// Inside a transaction, a present key is proof enough: the answer reads that key's cell
  /// only, so it conflicts with that key's removal and with nothing else, where reading the
  /// count would make every insert and removal conflict with it (none of them but the last
  /// removal can change the answer). With no key present it reads the count, which every
  /// insert then conflicts with. Outside a transaction it reads the count at one snapshot:
  /// a read that never conflicts, and costs one read per segment instead of a search.
  @inlinable
  func isEmpty(at site: _CallSite) -> Bool {
    let thread = _CallingThread.current
    guard let transaction = thread.transaction else { return count.value(at: site) == 0 }
    // Found by peeking, which marks nothing: only the read of the key found counts.
    let present = index.firstCell { cell in
      guard let value = cell.variable._peek(in: transaction) else { return false }
      return value != nil
    }
    guard let present else { return count.value(at: site) == 0 }
    let value = present._withUnsafeGuaranteedRef { cell in
      cell._noteAccess(.read, at: site)
      return cell._value(in: thread)
    }
    return value == nil
  }

  /// Whether `slot` holds no key at `transaction`'s snapshot, and the transaction has not
  /// written it: enumeration leaves such a cell unread. The count cells it reads first make a
  /// commit that inserts the key conflict with it already, and a read of the empty cell made
  /// the enumeration rerun when a sweep retired the cell, though no one had written its key:
  /// while other threads looked up other absent keys, 100 transactions enumerating a map of
  /// 500 keys reran 594 times (found by review).
  @inlinable
  static func isEmptyAndUnwritten(_ slot: _KeyIndex<Key, Value>.Slot, in transaction: Transaction) -> Bool {
    guard case .some(.none) = slot._peek(in: transaction) else { return false }
    return !slot._isWritten(in: transaction)
  }

  /// Every present key with its value, as one consistent snapshot (joins the running
  /// transaction, if any; outside, a read at one snapshot, which never aborts). Inlinable,
  /// with `allSlots`: compiled generically, it looked up the metadata of the key's optional
  /// value type at run time for every key.
  @inlinable
  func snapshot(at site: _CallSite) -> [(key: Key, value: Value)] {
    let thread = _CallingThread.current
    guard thread.isInTransaction else { return snapshotOutsideTransactions(on: thread, at: site) }
    return _singleOperation(at: site) { transaction in
      // Reading every count cell first makes a concurrent insert of a key this enumeration
      // misses conflict with it (the insert's commutative update is a write of one of them).
      _ = count.value(at: site)
      let (current, retired) = index.allSlots(in: transaction)
      var pairs: [(key: Key, value: Value)] = []
      pairs.reserveCapacity(current.count)
      guard !retired.isEmpty else {
        for (key, slot) in current where !Self.isEmptyAndUnwritten(slot, in: transaction) {
          if let value = slot._notedValue(.read, at: site, as: .key(key)) { pairs.append((key, value)) }
        }
        return pairs
      }
      // A key with retired cells is read as a lookup reads it, once.
      var retiredByKey: [_BarredKey<Key>: [_KeyIndex<Key, Value>.Slot]] = [:]
      for (key, slot) in retired.reversed() where !Self.isEmptyAndUnwritten(slot, in: transaction) {
        retiredByKey[_BarredKey(key), default: []].append(slot._noted(.read, at: site, as: .key(key)))
      }
      for (key, slot) in current {
        if retiredByKey[_BarredKey(key)] == nil && Self.isEmptyAndUnwritten(slot, in: transaction) { continue }
        let noted = slot._noted(.read, at: site, as: .key(key))
        let value = Self.read(noted, retiredByKey.removeValue(forKey: _BarredKey(key)) ?? [], in: transaction)
        if let value { pairs.append((key, value)) }
      }
      for (key, slots) in retiredByKey {
        if let value = Self.read(nil, slots, in: transaction) { pairs.append((key.key, value)) }
      }
      return pairs
    }
  }

  /// `snapshot(at:)` outside a transaction: every cell read at one snapshot by a single
  /// operation, as `value(forKey:at:)` reads one key, which marks no read. It used to run as
  /// a read-only transaction, which marked every cell it read, in a list and a table of
  /// positions that only validation and `retry` use, and neither comes to a transaction that
  /// writes nothing and cannot wait: a third of the instructions of a whole read of 8,192
  /// keys. Nor does it read the count first, which only makes a later insert conflict with
  /// a transaction.
  @inlinable
  func snapshotOutsideTransactions(on thread: _CallingThread, at site: _CallSite) -> [(key: Key, value: Value)] {
    let operation = _SingleOperation.beginReading(on: thread)
    let (current, retired) = index.allSlots(seenFrom: operation.snapshot)
    func value(of slot: _KeyIndex<Key, Value>.Slot) -> Value? {
      operation.read(slot._unsafeKeyedCell(as: Cell.self)._noted(.read, at: site))
    }
    func firstValue(in slots: [_KeyIndex<Key, Value>.Slot]) -> Value? {
      slots.lazy.compactMap(value(of:)).first
    }
    var pairs: [(key: Key, value: Value)] = []
    pairs.reserveCapacity(current.count)
    guard !retired.isEmpty else {
      for (key, slot) in current {
        if let value = value(of: slot) { pairs.append((key, value)) }
      }
      operation.finish()
      return pairs
    }
    // A key removed since the snapshot may have its value at the snapshot in a retired cell:
    // at most one of a key's cells holds a value at any snapshot.
    var retiredByKey: [_BarredKey<Key>: [_KeyIndex<Key, Value>.Slot]] = [:]
    for (key, slot) in retired.reversed() { retiredByKey[_BarredKey(key), default: []].append(slot) }
    for (key, slot) in current {
      let retiredSlots = retiredByKey.removeValue(forKey: _BarredKey(key)) ?? []
      if let value = value(of: slot) ?? firstValue(in: retiredSlots) {
        pairs.append((key, value))
      }
    }
    for (key, slots) in retiredByKey {
      if let value = firstValue(in: slots) { pairs.append((key.key, value)) }
    }
    operation.finish()
    return pairs
  }
}
