import STMCore

// Operations anywhere in the array, as `Array` has them. Each is made of the array's own reads
// and writes of indices, in one atomic step, so they need no support of their own from the
// engine; moving elements makes `insert`, `remove(at:)` and `removeAll(where:)` O(n) and as
// conflicting as the reads and writes they are made of. `swapAt` touches its two indices only.

extension TArray {
  /// Inserts `element` at `index`, moving the element there and every one after it up by
  /// one, as `Array.insert(_:at:)` does. Inserting at ``count`` appends.
  ///
  /// One atomic step: outside a transaction, a transaction of its own (a rerun if another
  /// thread changes what it moves meanwhile); inside one, part of it.
  ///
  /// Conflicts: it reads ``count``, so it conflicts with transactions that append or remove,
  /// and it writes every index from `index` to the new end, so it conflicts with readers and
  /// writers of those indices. Indices below `index` are not touched. Where the end of the
  /// array is all that changes, use ``append(_:fileID:line:)``, which conflicts with nothing.
  ///
  /// - Parameters:
  ///   - element: The element to insert.
  ///   - index: Where to insert it: `0 ... count`. Any other index traps with a message that
  ///     names the index and the count; nothing is changed.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* − `index`) for *n* elements.
  @inlinable
  public func insert(_ element: Element, at index: Int, fileID: StaticString = #fileID, line: UInt = #line) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    let countIfOutOfRange: Int? = _singleOperation(at: site) { _ in
      let total = count(at: site)
      guard index >= 0 && index <= total else { return total }
      guard index < total else {
        append(element, fileID: fileID, line: line)
        return nil
      }
      // The last element moves past the end first, as a delayed append; then each one up.
      append(self.element(total - 1, at: site), fileID: fileID, line: line)
      for position in stride(from: total - 1, to: index, by: -1) {
        setElement(position, self.element(position - 1, at: site), at: site)
      }
      setElement(index, element, at: site)
      return nil
    }
    if let total = countIfOutOfRange {
      trapOutOfRange(index, count: total, in: "insert(_:at:)", upToCount: true, at: site)
    }
  }

  /// Removes and returns the element at `index`, moving every element after it down by one,
  /// as `Array.remove(at:)` does.
  ///
  /// One atomic step: outside a transaction, a transaction of its own (a rerun if another
  /// thread changes what it moves meanwhile); inside one, part of it.
  ///
  /// Conflicts: it reads ``count``, so it conflicts with transactions that append or remove,
  /// and it reads and writes every index from `index` to the old end, so it conflicts with
  /// readers and writers of those indices. Indices below `index` are not touched. To take the
  /// last element, ``popLast(fileID:line:)`` does the same with one index.
  ///
  /// - Parameters:
  ///   - index: A valid index: `0 ..< count`. Any other index traps with a message that names
  ///     the index and the count; nothing is changed.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The element that was at `index`.
  /// - Complexity: O(*n* − `index`) for *n* elements.
  @inlinable @discardableResult
  public func remove(at index: Int, fileID: StaticString = #fileID, line: UInt = #line) -> Element {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    let outcome: (removed: Element?, count: Int) = _singleOperation(at: site) { _ in
      let total = count(at: site)
      guard index >= 0 && index < total else { return (nil, total) }
      let removed = element(index, at: site)
      for position in index..<(total - 1) {
        setElement(position, element(position + 1, at: site), at: site)
      }
      // The last element, now one index lower too, goes from the end.
      _ = popLast(fileID: fileID, line: line)
      return (removed, total)
    }
    guard let removed = outcome.removed else {
      trapOutOfRange(index, count: outcome.count, in: "remove(at:)", at: site)
    }
    return removed
  }

  /// Removes and returns the first element, moving every other element down by one; traps if
  /// the array is empty. For first-in first-out work between threads, a ``TQueue`` takes
  /// items from its front in O(1), and its consumers do not conflict with its producers.
  ///
  /// Conflicts: as ``remove(at:fileID:line:)`` at index 0: with transactions that append or
  /// remove, and with readers and writers of any index.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The element that was first.
  /// - Complexity: O(*n*) for *n* elements.
  @inlinable @discardableResult
  public func removeFirst(fileID: StaticString = #fileID, line: UInt = #line) -> Element {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    let first: Element? = _singleOperation(at: site) { _ in
      count(at: site) == 0 ? nil : remove(at: 0, fileID: fileID, line: line)
    }
    guard let first else {
      let advice =
        Transaction._currentChecked == nil
        ? "Outside atomically, the last element may go between a check of isEmpty and the call: make both in one atomically block."
        : "Check isEmpty in the same transaction first."
      _trap("TArray.removeFirst() was called on an empty array. \(advice)", at: site)
    }
    return first
  }

  /// Removes every element that `shouldBeRemoved` accepts, keeping the order of the others,
  /// as `Array.removeAll(where:)` does, in one atomic step.
  ///
  /// Conflicts: it reads ``count`` and every element, so it conflicts with transactions that
  /// append, remove or write any index; then as a write of each index from the first element
  /// it removes to the end.
  ///
  /// - Parameters:
  ///   - shouldBeRemoved: Given an element, whether to remove it. It runs inside the step, on
  ///     every element before any moves (and again if the step reruns), and may read other
  ///     transactional data there. It must not change this array: the removal writes over that.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: What `shouldBeRemoved` throws; then nothing is removed.
  /// - Complexity: O(*n*) for *n* elements.
  @inlinable
  public func removeAll<Failure: Error>(
    where shouldBeRemoved: (Element) throws(Failure) -> Bool, fileID: StaticString = #fileID, line: UInt = #line
  ) throws(Failure) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    // Throwing, the step rolls back on its own, inside a transaction too (to a checkpoint).
    try _singleOperation(at: site) { (_: Transaction) throws(Failure) in
      let total = count(at: site)
      var kept: [Element] = []
      var firstRemoved: Int?
      for index in 0..<total {
        let element = element(index, at: site)
        if try shouldBeRemoved(element) {
          if firstRemoved == nil { firstRemoved = index }
        } else if firstRemoved != nil {
          kept.append(element)
        }
      }
      guard let firstRemoved else { return }
      // The elements kept after the first removed one move down over the gaps; the end goes.
      for (offset, element) in kept.enumerated() { setElement(firstRemoved + offset, element, at: site) }
      for _ in (firstRemoved + kept.count)..<total { _ = popLast(fileID: fileID, line: line) }
    }
  }

  /// Exchanges the elements at indices `i` and `j`, as `MutableCollection.swapAt(_:_:)` does;
  /// equal indices change nothing, and are not checked, as `Array`'s are not.
  ///
  /// One atomic step: outside a transaction, a transaction of its own; inside one, part of it.
  ///
  /// Conflicts: as a read and a write of each of the two indices (see
  /// ``subscript(_:fileID:line:)``): only with transactions that read, write or remove one of
  /// them. Not with appends, nor with any other index, except as for the subscript: an index
  /// among the transaction's own appends that have not landed is read through ``count``, so
  /// it conflicts with other appends and removals. Equal indices conflict with nothing.
  ///
  /// - Parameters:
  ///   - i: A valid index: `0 ..< count`. Any other index traps with a message that names the
  ///     index and the count; nothing is changed.
  ///   - j: Another valid index; or `i`, which makes the call change nothing.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1).
  @inlinable
  public func swapAt(_ i: Int, _ j: Int, fileID: StaticString = #fileID, line: UInt = #line) {
    guard i != j else { return }
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    // Read without the count, so that a swap does not conflict with appends; the count is
    // read only to name it in the message, for an index out of range.
    let outOfRange: (index: Int, count: Int)? = _singleOperation(at: site) { _ in
      guard let first = element(ifInBounds: i, at: site) else { return (i, count(at: site)) }
      guard let second = element(ifInBounds: j, at: site) else { return (j, count(at: site)) }
      setElement(i, second, at: site)
      setElement(j, first, at: site)
      return nil
    }
    if let (index, total) = outOfRange {
      trapOutOfRange(index, count: total, in: "swapAt(_:_:)", at: site)
    }
  }

  /// Traps for `index`, given to `operation`, when the array held `count` elements; the
  /// operation takes an index up to `count` if `upToCount`, else below it. Called after the
  /// operation's atomic step, so that the advice fits where the caller is: outside a
  /// transaction, the step has ended, having changed nothing.
  @usableFromInline
  func trapOutOfRange(_ index: Int, count: Int, in operation: String, upToCount: Bool = false, at site: _CallSite) -> Never {
    let accepted = upToCount ? "an index in 0...\(count)" : count == 0 ? "no index" : "an index in 0..<\(count)"
    _trap(
      "TArray.\(operation) was given index \(index), out of range: the array has \(Self.describe(count)), so it takes \(accepted). \(Self.indexAdvice("the call"))",
      at: site)
  }
}
