/// The mistakes the engine traps on, each with what was wrong and what to do instead.
///
/// Trivially copyable (the operation's name is a `StaticString`): every operation outside a
/// transaction reads the thread's `forbiddenAccess`, and copying a `String` payload would cost
/// it reference counting.
@usableFromInline
enum _Misuse {
  case handleOutsideBlock(StaticString)
  /// A handle used in a transaction of the thread that ran its attempt, which has ended.
  case handleOfEndedAttempt(StaticString)
  case retryWithoutReads
  case retryAfterBecomeInevitable
  case transactionDuringInPlaceMutation
  case transactionalAccessInCommute
  case accessDuringOwnInPlaceUpdate
  /// A commutative addition (`TCounter`, `_commuteAdding`) whose result does not fit in `Int`.
  case additionOverflow(value: Int, amount: Int)
  /// An async operation run by a task that a transaction's body started synchronously.
  case asyncFormInsideTransactionBody(StaticString)
  /// Work added to a `TransactionQueue` from a commute's transform.
  case workAddedInCommute
  /// A key's `==` or `hash(into:)`, called by a map's index, used transactional data.
  case transactionalAccessInKeyCode

  var message: String {
    switch self {
    case .handleOutsideBlock(let operation):
      "Transaction.\(operation) was used outside the atomically block that received the handle "
        + "(after it returned, or from another thread). Use the handle only inside its own block, "
        + "on the thread running it."
    case .handleOfEndedAttempt(let operation):
      "Transaction.\(operation) was used with the handle of an attempt that has ended: the body ran "
        + "again (rerun after a conflict or a retry, or in a later atomically block on this thread) and "
        + "received a new handle. Keep no handle beyond the run of the body that received it; use the "
        + "one passed to the run in progress."
    case .retryWithoutReads:
      "retry() was called in a transaction that has read no TVar (reading a TVar it wrote itself does not "
        + "count: that value is its own), so nothing could ever change to wake it and it would wait forever. "
        + "Read the state you are waiting on before calling retry()."
    case .retryAfterBecomeInevitable:
      "retry() was called after becomeInevitable(), by the transaction's code (retry(), or retry(until:) "
        + "before its deadline) or by an operation that waits "
        + "(TQueue.dequeue() on an empty queue, an enqueue on a full bounded queue). An inevitable transaction "
        + "cannot roll back to wait, because its irrevocable effects have happened. Decide to wait before "
        + "becoming inevitable, or use one that does not wait (TQueue.tryDequeue())."
    case .transactionalAccessInCommute:
      "A commute transform used a TVar, a transaction handle or atomically. A transform runs when its "
        + "update is applied (as the commit publishes, or when the transaction reads the variable), when no "
        + "transactional data may be touched; it must be a pure function of the old value. Read what it "
        + "needs in the transaction and capture the value instead."
    case .accessDuringOwnInPlaceUpdate:
      "A TVar, a key of a TDictionary or an element of a TArray was read or written while its own "
        + "value was being mutated in place by the same transaction, for example from a closure that "
        + "a mutating method of that value calls. The value is not whole until the mutation ends. "
        + "Finish the mutation first, or mutate a copy and assign it afterwards."
    case .transactionDuringInPlaceMutation:
      "A TVar, a collection or atomically was used while a value was being mutated in place "
        + "outside a transaction: inside a mutating method called on `tvar.value`, "
        + "`dict[key, default: ...]`, `dict[key]?` or `array[i]`, inside the body of "
        + "`dict.update(forKey:default:_:)` or `dict.update(forKey:_:)`, or in a deinit that such "
        + "a mutation ran (an element that `removeAll()` dropped). The mutation holds its "
        + "variable, so this could deadlock. "
        + "Put both operations in one atomically block, do the other work before or after the "
        + "update, or mutate a copy and assign it (`var copy = tvar.value; copy.removeAll(); "
        + "tvar.value = copy`): an assignment frees the value it replaces after letting go of the "
        + "variable."
    case .asyncFormInsideTransactionBody(let operation):
      "\(operation) ran inside a transaction's body, in a task that the body started synchronously "
        + "(such as Task.immediate). An async form cannot join the transaction there: it could not wait "
        + "or rerun with it, and the task would keep what an attempt that then rolled back did. Do the "
        + "work in the transaction's own body, with the synchronous forms, or start the task once the "
        + "transaction has committed (from afterCommit)."
    case .workAddedInCommute:
      "TransactionQueue.add was called in a commute transform. A transform must be a pure function of "
        + "the old value: in a transaction it runs when its update is applied (as the commit publishes, or "
        + "when the transaction reads the variable), perhaps more than once, so work added there could be "
        + "queued more than once, or for a transaction that then rolls back. Add the work in the transaction "
        + "itself, or outside the transform."
    case .transactionalAccessInKeyCode:
      "A key's == or hash(into:) used a TVar, a collection of swift-stm or atomically, while a "
        + "TDictionary or TSet was looking the key up. The lookup holds what the engine needs for it "
        + "(outside a transaction, one of its segments; to insert or remove, a lock of the index), so such "
        + "code could wait for itself, or for a thread that waits for it. Hashable asks that == and "
        + "hash(into:) depend on the key's own value only: compare and hash its stored properties, and "
        + "keep transactional state out of keys."
    case .additionOverflow(let value, let amount):
      "Adding \(amount) to an Int counter holding \(value) overflows Int: a TCounter's add(_:), "
        + "increment() or decrement(), or a collection's internal count, applied at commit, where the "
        + "transaction read the counter after adding, or at once outside a transaction. A counter "
        + "cannot go past Int.max or below Int.min. Keep the amounts "
        + "in range, or count in a TVar of a type that cannot overflow."
    }
  }
}

/// `value + amount` for a commutative addition being applied to an `Int` variable; traps with
/// a message naming the counter, instead of Swift's bare "arithmetic overflow", when the sum
/// does not fit.
@inlinable @inline(__always)
package func _appliedAddition(_ value: Int, _ amount: Int) -> Int {
  let (sum, overflows) = value.addingReportingOverflow(amount)
  if overflows { _misuse(.additionOverflow(value: value, amount: amount)) }
  return sum
}

/// Traps because `operation`, an async form, ran inside a transaction's body: only a task that
/// the body started synchronously (`Task.immediate`) runs async code there.
@usableFromInline
package func _trapAsyncFormInsideTransactionBody(_ operation: StaticString) -> Never {
  _misuse(.asyncFormInsideTransactionBody(operation))
}

/// Runs `body`, a key's `==` or `hash(into:)` called by a map's index, with transactional data
/// out of bounds: any use of it there traps (`_Misuse.transactionalAccessInKeyCode`) instead of
/// waiting for a segment or a lock that the lookup itself holds. On a thread that has not used
/// the engine (a map made from contents), nothing is held, and nothing is barred: making the
/// thread's state here would start the engine before `TransactionEngine.configure`.
@inlinable
package func _runningKeyCode<Result>(_ body: () -> Result) -> Result {
  guard let state = _ThreadState.currentIfMade else { return body() }
  let barred = state.pointee.forbiddenAccess
  state.pointee.forbiddenAccess = barred ?? .transactionalAccessInKeyCode
  defer { state.pointee.forbiddenAccess = barred }
  return body()
}

/// Traps for a collection's element read or written from inside its own mutation, where the
/// collection guards the element itself (a `TArray`'s element appended by the transaction and
/// not landed, which has no cell of its own).
@usableFromInline
package func _trapAccessDuringOwnInPlaceUpdate() -> Never {
  _misuse(.accessDuringOwnInPlaceUpdate)
}

@usableFromInline
func _misuse(_ misuse: _Misuse, file: StaticString = #file, line: UInt = #line) -> Never {
  fatalError("swift-stm misuse: " + misuse.message, file: file, line: line)
}
