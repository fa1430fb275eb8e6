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
  @usableFromInline let index: _KeyIndex<Key, Value>
  @usableFromInline let count: _MembershipCount

  init(minimumCapacity: Int = 0) {
    index = _KeyIndex(minimumCapacity: minimumCapacity)
    count = _MembershipCount()
  }

  // MARK: Reads

  @inlinable
  func value(forKey key: Key) -> Value? {
    if let transaction = Transaction._currentChecked {
      // Even an absent key gets a cell, so that a later insert of it conflicts with this read.
      let (current, retired) = index.slots(for: key, seenFrom: transaction._snapshot)
      return Self.read(current, retired)
    }
    return index.existingSlot(for: key)?.value
  }

  // MARK: Updates

  /// Applies `body` to the key's value (nil when absent) as one atomic step; `body` returns
  /// whether it changed the value. Keeps the count and the index in step with membership.
  @inlinable
  func update<Result, Failure: Error>(
    forKey key: Key, _ body: (inout Value?) throws(Failure) -> (changed: Bool, result: Result)
  ) throws(Failure) -> Result {
    if let transaction = Transaction._currentChecked {
      return try update(forKey: key, in: transaction, body)
    }
    while true {
      let slot = index.slot(for: key)
      guard let update = slot._beginInPlaceUpdate() else {
        continue  // Retired since the lookup: the key has a fresh cell now.
      }
      var value = update.value
      let changed: Bool, result: Result
      do {
        (changed, result) = try body(&value)
      } catch {
        slot._endInPlaceUpdate(update, publishing: nil)
        throw error
      }
      guard changed else {
        slot._endInPlaceUpdate(update, publishing: nil)
        return result
      }
      let delta = Self.membershipDelta(from: update.value, to: value)
      publish(value, of: slot, update, membershipDelta: delta)
      if delta < 0 { index.detach(key, slot) }
      return result
    }
  }

  /// An outside-transaction update split in two, for `_modify` accessors that must `yield`.
  @usableFromInline
  struct PendingUpdate {
    @usableFromInline let slot: _KeyIndex<Key, Value>.Slot
    @usableFromInline let update: _InPlaceUpdate<Value?>
    @inlinable var value: Value? { update.value }

    @inlinable
    init(slot: _KeyIndex<Key, Value>.Slot, update: _InPlaceUpdate<Value?>) {
      self.slot = slot
      self.update = update
    }
  }

  /// Outside a transaction: takes the key's cell for an update.
  @inlinable
  func beginUpdate(forKey key: Key) -> PendingUpdate {
    while true {
      let slot = index.slot(for: key)
      if let update = slot._beginInPlaceUpdate() {
        return PendingUpdate(slot: slot, update: update)
      }
    }
  }

  /// Publishes `value` (nothing when nil: the update was abandoned) and releases the cell.
  @inlinable
  func endUpdate(forKey key: Key, _ pending: PendingUpdate, publishing value: Value?) {
    guard let value else {
      pending.slot._endInPlaceUpdate(pending.update, publishing: nil)
      return
    }
    publish(value, of: pending.slot, pending.update, membershipDelta: pending.update.value == nil ? 1 : 0)
  }

  /// A read-modify-write of one key for a `_modify` accessor, inside or outside a transaction.
  @usableFromInline
  struct Modification {
    /// Outside a transaction: the update holding the key's cell. Nil inside one.
    @usableFromInline let pending: PendingUpdate?
    /// The key's value when the modification began.
    @usableFromInline let value: Value?

    @inlinable
    init(pending: PendingUpdate?, value: Value?) {
      self.pending = pending
      self.value = value
    }
  }

  /// Begins a modification of `key`: inside a transaction a read, outside one an in-place
  /// update holding the key's cell until `endModification`.
  @inlinable
  func beginModification(forKey key: Key) -> Modification {
    if Transaction._currentChecked != nil { return Modification(pending: nil, value: value(forKey: key)) }
    let pending = beginUpdate(forKey: key)
    return Modification(pending: pending, value: pending.value)
  }

  /// Ends a modification by storing `value` (nothing when nil: it was abandoned).
  @inlinable
  func endModification(forKey key: Key, _ modification: Modification, publishing value: Value?) {
    if let pending = modification.pending {
      endUpdate(forKey: key, pending, publishing: value)
    } else if let value {
      update(forKey: key) { current in
        current = value
        return (true, ())
      }
    }
  }

  /// Ends an outside-transaction update by publishing `value`, together with the count of the
  /// update's segment when the key came or went.
  @inlinable
  func publish(_ value: Value?, of slot: _KeyIndex<Key, Value>.Slot, _ update: _InPlaceUpdate<Value?>, membershipDelta delta: Int) {
    if delta == 0 {
      slot._endInPlaceUpdate(update, publishing: .some(value))
    } else {
      slot._endInPlaceUpdate(update, publishing: value, alongWith: count.cell(forSegment: update.segmentIndex)) { $0 + delta }
    }
  }

  @inlinable
  func update<Result, Failure: Error>(
    forKey key: Key, in transaction: Transaction,
    _ body: (inout Value?) throws(Failure) -> (changed: Bool, result: Result)
  ) throws(Failure) -> Result {
    let (slot, retired) = index.slots(for: key, seenFrom: transaction._snapshot)
    let old = Self.read(slot, retired)
    var value = old
    let (changed, result) = try body(&value)
    guard changed else { return result }
    slot.value = value
    let delta = Self.membershipDelta(from: old, to: value)
    if delta != 0 { count.add(delta, in: transaction) }
    if delta < 0 {
      let index = self.index
      transaction.afterCommit { index.detach(key, slot) }
    }
    return result
  }

  /// The key's value at the running transaction's snapshot: in its cell, or, if it was removed
  /// after the snapshot, in the retired cell that held it then (a read that will make a
  /// writing transaction rerun, since the key has changed).
  @inlinable
  static func read(_ current: _KeyIndex<Key, Value>.Slot, _ retired: [_KeyIndex<Key, Value>.Slot]) -> Value? {
    if let value = current.value { return value }
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

  /// Every present key with its value, as one consistent snapshot (joins the running
  /// transaction, if any; outside, a read-only transaction, which never aborts).
  func snapshot() -> [(key: Key, value: Value)] {
    atomically { transaction in
      // Reading every count cell first makes a concurrent insert of a key this enumeration
      // misses conflict with it (the insert's commutative update is a write of one of them).
      _ = count.value
      var pairs: [(key: Key, value: Value)] = []
      for (key, slot) in index.allSlots(seenFrom: transaction._snapshot) {
        if let value = slot.value { pairs.append((key, value)) }
      }
      return pairs
    }
  }
}
