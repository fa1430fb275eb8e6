/// A cell that holds an optional value and the key it belongs to: what a keyed collection's
/// index stores, one object per key.
///
/// The key lives in the cell itself, so that a lookup that finds the cell in the index has
/// already found the key to compare (one object to touch per key, not an index entry and a
/// cell), and so that a lookup can read the key without any lock: it never changes.
@usableFromInline
package final class _KeyedCell<Key: Hashable & Sendable, Value: Sendable>: _TypedCell<Value?>, @unchecked Sendable {
  @usableFromInline package let key: Key

  /// A cell for `key`, holding nil (the key is absent).
  @inlinable
  package init(key: Key) {
    self.key = key
    super.init(nil)
  }

  /// A cell for `key` holding `value` from the start, as the first version of a `TVar` holds
  /// its initial value: for a map being made from contents, which no other thread can reach
  /// yet, so that no transaction writes it (see `_MapStorage.init(filledWith:)`).
  @inlinable
  package init(key: Key, value: Value) {
    self.key = key
    super.init(value)
  }

  /// The cell as a transactional variable.
  @inlinable
  package var variable: TVar<Value?> { TVar(_cell: self) }

  /// Inside the transaction running on `thread`: the value it reads from this cell, as
  /// `variable.value` would, for a lookup that holds the cell unretained (making the `TVar`
  /// retained it, and a lookup inside a transaction is mostly this). The segment is reached
  /// through the thread's unretained handle: through a `Transaction`'s reference it was
  /// retained and released.
  ///
  /// Only for a cell the transaction found in its index: the read marker holds no retain on
  /// it (`_Segment.read(_:retaining:)`), since the index keeps the cell alive as long as the
  /// transaction's snapshot is announced, even once the cell has left it, and even once the
  /// index itself has gone (see `_releaseAfterRunningSnapshots(_:)`).
  @inlinable
  package func _value(in thread: _CallingThread) -> Value? {
    thread.state.pointee.segment.unsafelyUnwrapped._withUnsafeGuaranteedRef { segment in
      segment.read(self, retaining: false)._withUnsafeGuaranteedRef { unsafeDowncast($0, to: _Version<Value?>.self).value }
    }
  }
}

extension TVar {
  /// The variable whose cell is `cell`.
  @inlinable
  package init(_cell cell: _TypedCell<Value>) {
    self.cell = cell
  }

  /// The variable's cell, retained once for the caller: for a collection that keeps its
  /// variables' cells in atomic words, and makes a variable from one with `init(_cell:)`.
  /// (Retained here, while the variable holds the cell: retaining an unretained handle after
  /// the variable's last use could find the cell already freed.)
  @inlinable
  package var _retainedCell: Unmanaged<_TypedCell<Value>> { .passRetained(cell) }
}

extension TVar {
  /// The variable's cell as the `_KeyedCell` it must be (an index's slot); unchecked.
  @inlinable
  package func _unsafeKeyedCell<Key, Wrapped>(as type: _KeyedCell<Key, Wrapped>.Type) -> _KeyedCell<Key, Wrapped> {
    unsafeDowncast(cell, to: type)
  }
}
