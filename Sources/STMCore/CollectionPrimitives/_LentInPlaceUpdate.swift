/// An in-place update of a variable that holds an object, lending the object out instead of
/// copying the reference: what a queue's drop-in enqueue and dequeue update their tail and
/// head with.
///
/// `_InPlaceUpdate.value` is a copy, and copying a reference retains it; on a queue that was
/// a retain and a release of the tail (or head) node on every operation, on a line that the
/// producers and the consumers all write (and the `TVar` made of the node's link, then a
/// separate cell, took another pair). Here the object stays unretained: the variable's
/// newest version holds it, and under the variable's commit lock that version is neither
/// replaced nor freed. Read what is needed from it before the update ends.
///
/// Conflicts: as `_InPlaceUpdate`, which it is, but for how the value is handed out.
@usableFromInline
package struct _LentInPlaceUpdate<Object: AnyObject> {
  // Unretained: segments and thread contexts outlive every update.
  @usableFromInline let segment: Unmanaged<_Segment>
  @usableFromInline let context: Unmanaged<_ThreadContext>
  /// The variable's newest value, valid until the update ends.
  @usableFromInline package let object: Unmanaged<Object>

  @inlinable
  init(segment: Unmanaged<_Segment>, context: Unmanaged<_ThreadContext>, object: Unmanaged<Object>) {
    self.segment = segment
    self.context = context
    self.object = object
  }
}

extension TVar where Value: AnyObject {
  /// `_beginInPlaceUpdate()`, lending the newest value (see `_LentInPlaceUpdate`); nil,
  /// holding nothing, when the variable is retired.
  @inlinable
  package func _beginLentInPlaceUpdate() -> _LentInPlaceUpdate<Value>? {
    guard let (segment, context, newest) = _EngineEntry.beginInPlaceUpdate(of: cell) else { return nil }
    let object = newest._withUnsafeGuaranteedRef {
      Unmanaged.passUnretained(unsafeDowncast($0, to: _Version<Value>.self).value)
    }
    return _LentInPlaceUpdate(segment: segment, context: context, object: object)
  }

  /// As `_endInPlaceUpdate(_:publishing:)` for an update begun with the value lent.
  @inlinable
  package func _endInPlaceUpdate(_ update: _LentInPlaceUpdate<Value>, publishing value: Value?) {
    cell.endInPlaceMutation(update.segment, update.context, publishing: value)
  }

  /// As `_endInPlaceUpdate(_:alongWith:deciding:)` for an update begun with the value lent,
  /// with the companion given as its cell, which the caller keeps alive while it is locked (a
  /// variable made from it would retain it): a queue's last node, its own link's cell, which
  /// the head, or the link of the node before it, holds until a consumer can move past it,
  /// once its link is unlocked.
  @inlinable @discardableResult
  package func _endInPlaceUpdate<Companion>(
    _ update: _LentInPlaceUpdate<Value>, alongWithCell companion: _TypedCell<Companion>,
    deciding decide: (Companion) -> (value: Value, companion: Companion)?
  ) -> Companion? {
    cell.endInPlaceUpdate(update.segment, update.context, alongWith: companion, deciding: decide)
  }

  /// As `_endInPlaceUpdate(_:alongWith:deciding:)` for an update begun with the value lent.
  @inlinable @discardableResult
  package func _endInPlaceUpdate<Companion>(
    _ update: _LentInPlaceUpdate<Value>, alongWith companion: TVar<Companion>,
    deciding decide: (Companion) -> (value: Value, companion: Companion)?
  ) -> Companion? {
    cell.endInPlaceUpdate(update.segment, update.context, alongWith: companion.cell, deciding: decide)
  }

  /// As `_endInPlaceUpdate(_:alongWith:and:deciding:)` for an update begun with the value
  /// lent, with the first companion given as its cell (see
  /// `_endInPlaceUpdate(_:alongWithCell:deciding:)`).
  @inlinable
  package func _endInPlaceUpdate<Companion, Extra>(
    _ update: _LentInPlaceUpdate<Value>, alongWithCell companion: _TypedCell<Companion>, and extra: TVar<Extra>,
    deciding decide: (Companion, Extra) -> (value: Value, companion: Companion, extra: Extra)?
  ) -> Bool {
    cell.endInPlaceUpdate(update.segment, update.context, alongWith: companion, and: extra.cell, deciding: decide)
  }
}

extension TVar {
  /// `_peekNewest(during:)` for an update begun with its value lent.
  @inlinable
  package func _peekNewest<Updated>(during update: _LentInPlaceUpdate<Updated>) -> Value? {
    cell._withNewest(peekedDuring: update.segment) { $0 }
  }
}

extension _TypedCell {
  /// During `update`: calls `body` with this cell's newest value, under its commit lock taken
  /// as `TVar._peekNewest(during:)` takes it; nil, without calling `body`, when someone else
  /// holds that lock. Lets a caller read what it needs of an object value (a queue's next
  /// node) without retaining it: the lock keeps the version that holds it.
  @inlinable
  package final func _withNewest<Updated, Result>(
    peekedDuring update: _LentInPlaceUpdate<Updated>, _ body: (Value) -> Result
  ) -> Result? {
    _withNewest(peekedDuring: update.segment, body)
  }

  /// The peek of `TVar._peekNewest(during:)`, for the update holding `segment`.
  @inlinable
  final func _withNewest<Result>(peekedDuring segment: Unmanaged<_Segment>, _ body: (Value) -> Result) -> Result? {
    guard let newest = _EngineEntry.lockToPeek(self, during: segment) else { return nil }
    let result = newest._withUnsafeGuaranteedRef { body(unsafeDowncast($0, to: _Version<Value>.self).value) }
    unlock()
    return result
  }
}
