import STMCore

// Reordering in place, as `Array` does it, in one atomic step made of the array's own reads
// and writes of indices (as in `TArray+InsertingAndRemoving.swift`): the elements are read,
// reordered as a standard `Array`, and written back.

extension TArray {
  /// Sorts the elements in place, in one atomic step, as `Array.sort(by:)` sorts them.
  ///
  /// Conflicts: it reads ``count`` and every element, so it conflicts with transactions that
  /// append, remove or write any index; then as a write of each index whose element changes
  /// place (none, for an array already in order).
  ///
  /// - Parameters:
  ///   - areInIncreasingOrder: Whether its first argument belongs before its second: a strict
  ///     weak ordering, as `Array.sort(by:)` asks. It runs inside the step, on a copy of the
  ///     elements (and again if the step reruns), and must not change this array: the sorted
  ///     elements are written over such a change.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: What `areInIncreasingOrder` throws; then nothing changes.
  /// - Complexity: O(*n* log *n*) for *n* elements.
  @inlinable
  public func sort<Failure: Error>(
    by areInIncreasingOrder: (Element, Element) throws(Failure) -> Bool, fileID: StaticString = #fileID, line: UInt = #line
  ) throws(Failure) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    // Throwing, the step rolls back on its own, inside a transaction too (to a checkpoint).
    try _singleOperation(at: site) { (_: Transaction) throws(Failure) in
      let unsorted = elements
      // The indices are sorted, by their elements, so that only the indices whose element
      // changes place are written: sorting an array already in order writes nothing, and
      // conflicts with no reader of an index. (The same comparisons, in the same algorithm,
      // give the order that sorting the elements gives.)
      var order = Array(unsorted.indices)
      // `Array.sort(by:)` rethrows untyped errors: the first one is kept, typed, and thrown
      // once the sort has stopped asking.
      var failure: Failure?
      order.sort { first, second in
        guard failure == nil else { return false }
        do throws(Failure) {
          return try areInIncreasingOrder(unsorted[first], unsorted[second])
        } catch {
          failure = error
          return false
        }
      }
      if let failure { throw failure }
      for (index, source) in order.enumerated() where source != index { setElement(index, unsorted[source], at: site) }
    }
  }

  /// Reverses the order of the elements in place, in one atomic step.
  ///
  /// Conflicts: it reads ``count``, and reads and writes every index but the middle one of an
  /// odd count (even where the two elements swapped are equal), so it conflicts with
  /// transactions that append, remove, or read or write those indices.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n*) for *n* elements.
  @inlinable
  public func reverse(fileID: StaticString = #fileID, line: UInt = #line) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    _singleOperation(at: site) { _ in
      let total = count(at: site)
      for low in 0..<(total / 2) {
        let high = total - 1 - low
        let (first, last) = (element(low, at: site), element(high, at: site))
        setElement(low, last, at: site)
        setElement(high, first, at: site)
      }
    }
  }
}

extension TArray where Element: Comparable {
  /// Sorts the elements in increasing order, in one atomic step, as `Array.sort()` does.
  ///
  /// Conflicts: as ``sort(by:fileID:line:)``.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* log *n*) for *n* elements.
  @inlinable
  public func sort(fileID: StaticString = #fileID, line: UInt = #line) {
    sort(by: <, fileID: fileID, line: line)
  }
}
