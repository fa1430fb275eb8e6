extension TransactionQueue {
  /// Adds one callback per element of `elements`, each to run `body` on its element in a
  /// transaction of its own: the "loop over the items, mostly independent work" pattern.
  ///
  /// The elements are read once, when `add` is called: for a ``TSet`` or ``TArray`` that is a
  /// snapshot of its contents at that moment (inside a transaction, as the transaction sees
  /// them). Changes made later, by the callbacks or anyone else, do not add or remove
  /// callbacks.
  ///
  /// ```swift
  /// let queue = TransactionQueue()
  /// queue.add(forEachOf: accounts) { id in
  ///   balances[id, default: 0] += interest(for: id)
  /// }
  /// try queue.run()
  /// ```
  ///
  /// The callbacks are queued at once, held until the transaction commits, or refused with a
  /// trap, where and as ``add(_:fileID:line:)``'s are.
  ///
  /// Conflicts: taking the snapshot of a transactional collection inside a transaction reads
  /// its whole contents (see the collection's iteration); the callbacks then conflict only
  /// through what they read and write.
  ///
  /// - Parameters:
  ///   - elements: The elements, one callback each, started in the sequence's order.
  ///   - body: The work for one element; it runs as the body of `atomically`, perhaps more than
  ///     once. Throwing makes the run fail (see ``run(threads:)-7mj5``).
  ///   - fileID: The call's file, which the ``ConflictLog`` shows as the callbacks'
  ///     transaction; leave the default.
  ///   - line: The call's line, likewise; leave the default.
  /// - Complexity: O(*n*) for *n* elements, plus reading the sequence.
  public func add<Elements: Sequence>(
    forEachOf elements: Elements, _ body: @escaping @Sendable (Elements.Element) throws -> Void,
    fileID: StaticString = #fileID, line: UInt = #line
  ) where Elements.Element: Sendable {
    let work = elements.map { element in _Work(body: { try body(element) }, fileID: fileID, line: line) }
    if let transaction = Transaction._currentForWorkOutsideTransactionalData {
      addWhenCommitted(work, transaction)
    } else if scheduler.withLock({ $0.add(contentsOf: work) }) {
      scheduler.wakeAll()
    }
  }

  /// Adds one callback per key of a snapshot of `dictionary`, each to run `body` on that key
  /// and the value it had in the snapshot, in a transaction of its own.
  ///
  /// The snapshot is taken when `add` is called (inside a transaction, as the transaction sees
  /// the dictionary). The value passed is the snapshot's; a callback that must act on the
  /// current value reads `dictionary[key]` itself, in its transaction.
  ///
  /// ```swift
  /// queue.add(forEachOf: inventory) { item, quantity in
  ///   if quantity == 0 { reorders.insert(item) }
  /// }
  /// try queue.run()
  /// ```
  ///
  /// Conflicts: as ``add(forEachOf:_:fileID:line:)-(Elements,_,_,_)``: taking the snapshot
  /// inside a transaction reads every key.
  ///
  /// - Parameters:
  ///   - dictionary: The dictionary whose keys to visit.
  ///   - body: The work for one key and its snapshot value.
  ///   - fileID: The call's file, which the ``ConflictLog`` shows as the callbacks'
  ///     transaction; leave the default.
  ///   - line: The call's line, likewise; leave the default.
  /// - Complexity: O(*n*) for *n* keys.
  public func add<Key, Value>(
    forEachOf dictionary: TDictionary<Key, Value>, _ body: @escaping @Sendable (Key, Value) throws -> Void,
    fileID: StaticString = #fileID, line: UInt = #line
  ) {
    add(forEachOf: Array(dictionary), { entry in try body(entry.key, entry.value) }, fileID: fileID, line: line)
  }
}
