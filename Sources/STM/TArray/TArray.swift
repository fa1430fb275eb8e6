/// A transactional array whose conflicts are per index, with appends that never conflict.
///
/// Outside a transaction every operation is atomic on its own; inside
/// ``atomically(_:fileID:line:)-88o9x`` operations join the running transaction.
///
/// ```swift
/// let log = TArray<String>()
/// log.append("started")                       // from any thread; appenders never conflict
/// atomically { _ in
///   log.append("a"); log.append("b")          // land together, in order, at commit
/// }
/// print(log.elements)
/// ```
///
/// Conflicts: each index has its own cell. Reading or writing an in-bounds index conflicts only
/// with transactions that write that index (or remove it); it does not conflict with appends.
/// Appends are *delayed*: they are recorded, and land at commit just past the newest end of
/// the array, so two transactions that append never conflict, and their elements land in
/// commit order. Reading ``count`` (or ``elements``) conflicts with transactions that append or
/// remove; a transaction that appended and then reads ``count`` or its new elements sees them
/// (and from then on conflicts with other appenders, since it observed the end of the array).
/// As in an `Array`, ``insert(_:at:fileID:line:)`` and ``remove(at:fileID:line:)`` move every
/// element after their index: they conflict as reads of ``count`` and writes of each index they
/// move. ``removeAll(where:fileID:line:)`` and ``sort(by:fileID:line:)`` read every element,
/// ``reverse(fileID:line:)`` every one but the middle of an odd count, and
/// ``swapAt(_:_:fileID:line:)`` only its two indices.
///
/// Memory: an index's cell, once made, stays for the array's life, for the appends that come
/// back to it. Removing elements (``popLast(fileID:line:)``, ``remove(at:fileID:line:)``,
/// ``removeAll(fileID:line:)``) frees the elements but not their cells, so an array takes the
/// memory of the most elements it ever held, not of those it holds.
///
/// `TArray` is a reference type: copies of a reference share one array.
public final class TArray<Element: Sendable>: Sendable {
  @usableFromInline let countCell: TVar<Int>
  @usableFromInline let slots = _SlotDirectory<Element>()

  /// Creates an empty array.
  ///
  /// - Complexity: O(1).
  public init() {
    countCell = TVar(0)
  }

  /// Creates an array holding the elements of `sequence`, in order.
  ///
  /// It makes them without a transaction, as a ``TVar``'s initial value is made: inside
  /// `atomically`, the new array holds them whatever becomes of the transaction.
  ///
  /// - Parameter sequence: The elements, read once.
  /// - Complexity: O(*n*).
  @inlinable
  public init<S: Sequence>(_ sequence: S) where S.Element == Element {
    // No other thread can see the array yet: its cells are made holding their elements, with
    // no transaction, which would start the engine before `TransactionEngine.configure` could
    // run (an append did; found by review).
    let elements = Array(sequence)
    countCell = TVar(elements.count)
    slots.fill(with: elements)
  }

  /// Creates an array holding `count` copies of `repeatedValue`, as `Array(repeating:count:)`
  /// does (and traps, as it does, for a negative count).
  ///
  /// - Parameters:
  ///   - repeatedValue: The element to repeat.
  ///   - count: How many times, 0 or more.
  /// - Complexity: O(*count*).
  @inlinable
  public convenience init(repeating repeatedValue: Element, count: Int) {
    self.init(Array(repeating: repeatedValue, count: count))
  }

  // MARK: Indices

  /// The element at `index`; an in-place update such as `array[i] += 1` or
  /// `array[i].append(x)` is one atomic read-modify-write, even outside a transaction.
  ///
  /// Outside a transaction the in-place update holds the index's cell briefly: it must not
  /// touch other transactional data (that traps; put such code in `atomically`). It works on
  /// the element where it is, without copying it, whenever no running transaction could still
  /// read the element it replaces; inside a transaction, once the transaction has written the
  /// element. (A trivially copyable element is updated on a copy, as ``TVar/value`` says.)
  /// Using the element from inside its own mutation traps, inside a transaction as outside. A
  /// mutation that throws midway keeps what it changed.
  ///
  /// One exception, inside a transaction: an element that the transaction itself appended, and
  /// that has not landed yet, is updated on a copy each time (an array held there is copied
  /// by each update of it). Reading, writing or taking it back (``popLast(fileID:line:)``,
  /// ``removeLast(fileID:line:)``, ``removeAll(fileID:line:)``) from inside its own mutation
  /// traps, as for any element. Assign such an element whole, or append it in its final form,
  /// to spare the copies.
  ///
  /// Conflicts: reading conflicts only with transactions that write or remove this index;
  /// writing also conflicts with transactions that read it. Neither conflicts with appends,
  /// except for an element the transaction appended itself that has not landed: reading or
  /// writing it reads ``count``, so it conflicts with other appends and removals.
  ///
  /// - Parameters:
  ///   - index: A valid index: `0 ..< count`. Any other index traps with a message naming the
  ///     index and the count; nothing is changed.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1).
  @inlinable
  public subscript(index: Int, fileID fileID: StaticString = #fileID, line line: UInt = #line) -> Element {
    get { element(index, at: _CallSite(fileID: fileID, line: line, owner: self)) }
    set { setElement(index, newValue, at: _CallSite(fileID: fileID, line: line, owner: self)) }
    // One yield, so that the coroutine can be inlined into the caller (see `TDictionary`).
    @inline(__always) _modify {
      let site = _CallSite(fileID: fileID, line: line, owner: self)
      var modification = beginModification(index, at: site)
      var element = modification.takeElement()
      defer { endModification(index, modification, publishing: element, at: site) }
      yield &element
    }
  }

  /// Stores `newValue` at `index` for the operation at `site`.
  @inlinable
  func setElement(_ index: Int, _ newValue: Element, at site: _CallSite) {
    guard index >= 0 else { outOfRange(index, at: site) }
    if let transaction = Transaction._currentChecked {
      if let slot = slots.existingSlot(index)?._noted(.readWrite, at: site, as: .key(index)), slot.value != nil {
        slot.value = newValue
        return
      }
      let pending = index - countCell._notedValue(.read, at: site, as: .named("count"))
      let pendingCount = countCell._existingDelayedAppend(in: transaction, as: _AppendBatch<Element>.self) {
        $0.items.count
      }
      guard pending >= 0 && pending < pendingCount ?? 0 else { outOfRange(index, at: site) }
      // The replaced element is let go of after the batch's change, not inside it: its deinit
      // may append to this array, and the body must not touch transactional data.
      let replaced = countCell._withDelayedAppend(in: transaction, { _AppendBatch(slots: slots) }) { batch in
        if batch.itemsBeingMutated.contains(pending) { _trapAccessDuringOwnInPlaceUpdate() }
        let replaced = batch.items[pending]
        batch.items[pending] = newValue
        return replaced
      }
      _ = consume replaced
      return
    }
    // Unretained, as in `element(_:at:)`.
    guard let cell = slots.existingCell(index),
      cell._withUnsafeGuaranteedRef({ cell in
        cell._noteAccess(.readWrite, at: site, as: .key(index))
        guard let update = cell.beginInPlaceUpdate() else { return false }
        // Past the end: changes nothing.
        guard update.value != nil else {
          cell.endInPlaceUpdate(handingOver: consume update, publishing: nil)
          return false
        }
        cell.endInPlaceUpdate(handingOver: consume update, publishing: newValue)
        return true
      })
    else { outOfRange(index, at: site) }
  }

  /// A read-modify-write of one element for the subscript's `_modify`.
  @usableFromInline
  struct Modification {
    /// Outside a transaction: the in-place update holding the index's cell (numbered before
    /// the mutation, for an element that may hold an object). Nil inside a transaction.
    @usableFromInline let update: _InPlaceUpdate<Element?>?
    @usableFromInline let numbered: _NumberedMutation<Element?>?
    /// Inside a transaction that wrote the element in its current block: that write, which
    /// the element was moved out of, to go back into.
    @usableFromInline let ownWrite: _OwnWrite<Element?>?
    /// Inside a transaction otherwise: whether the index's cell is listed as being mutated on a
    /// copy (see `TVar._beginMutatingCopy(in:)`) until the copy is written back.
    @usableFromInline let copied: Bool
    /// Inside a transaction, for one of its own appends not landed: the element's offset in
    /// the batch, listed as being mutated (`_AppendBatch.itemsBeingMutated`) until then.
    @usableFromInline let copiedPending: Int?
    /// The element when the modification began, until `takeElement()`.
    @usableFromInline var element: Element?

    @inlinable
    init(
      update: _InPlaceUpdate<Element?>?, numbered: _NumberedMutation<Element?>?, ownWrite: _OwnWrite<Element?>? = nil,
      copied: Bool = false, copiedPending: Int? = nil, element: Element
    ) {
      self.update = update
      self.numbered = numbered
      self.ownWrite = ownWrite
      self.copied = copied
      self.copiedPending = copiedPending
      self.element = element
    }

    /// The element, moved out: a copy left here would make a mutation of an array copy it.
    @inlinable
    mutating func takeElement() -> Element { element.take().unsafelyUnwrapped }
  }

  /// Begins a modification of the element at `index`: inside a transaction a read; outside
  /// one an in-place update of the index's cell, which holds it until `endModification`, and
  /// which traps (holding nothing) when the index is out of range.
  @inlinable
  func beginModification(_ index: Int, at site: _CallSite) -> Modification {
    if let transaction = Transaction._currentChecked {
      // An element this transaction wrote: moved out of its pending version, and back at the
      // end, so that mutating an array there does not copy it. Using the element from inside
      // the mutation traps meanwhile.
      if !_isPOD(Element.self), index >= 0, let slot = slots.existingSlot(index),
        let ownWrite = slot._ownWrite(in: transaction), let moved = ownWrite.withValue({ $0.take() })
      {
        slot._noteAccess(.readWrite, at: site, as: .key(index))
        ownWrite.beginMutation()
        return Modification(update: nil, numbered: nil, ownWrite: ownWrite, element: moved)
      }
      // The first update of the element in the block works on a copy; using the element
      // meanwhile traps, as above, instead of being overwritten by the copy (a pop of one of
      // the transaction's own appends too: see `popLast`).
      let (element, pending) = elementAndPendingOffset(index, at: site)
      // One of the transaction's own appends is guarded too (a read there saw the old element,
      // and a write was lost; found by review), in its batch: it may have no cell yet.
      if let pending {
        countCell._withDelayedAppend(in: transaction, { _AppendBatch(slots: slots) }) { $0.itemsBeingMutated.append(pending) }
        return Modification(update: nil, numbered: nil, copiedPending: pending, element: element)
      }
      slots.existingSlot(index).unsafelyUnwrapped._beginMutatingCopy(in: transaction)
      return Modification(update: nil, numbered: nil, copied: true, element: element)
    }
    // Unretained, as in `element(_:at:)`.
    guard index >= 0, let cell = slots.existingCell(index),
      let update = cell._withUnsafeGuaranteedRef({ cell in
        cell._noteAccess(.readWrite, at: site, as: .key(index))
        return cell.beginInPlaceUpdate()
      })
    else { outOfRange(index, at: site) }
    guard update.value != nil else {
      // Let go first: the message reads the count.
      cell._withUnsafeGuaranteedRef { $0.endInPlaceUpdate(update, publishing: nil) }
      outOfRange(index, at: site)
    }
    guard !_isPOD(Element.self) else { return Modification(update: update, numbered: nil, element: update.value!) }
    let numbered = TVar(_cell: cell.takeUnretainedValue())._numberMutation(update)
    // The update's own copy of the element goes, so that the moved one is its only reference.
    let element = numbered.mutatesInPlace ? numbered.withValueInPlace { $0.take() } : update.value
    return Modification(update: update.replacingValue(with: nil), numbered: numbered, element: element.unsafelyUnwrapped)
  }

  /// Ends a modification by storing `element`.
  @inlinable
  func endModification(_ index: Int, _ modification: Modification, publishing element: Element, at site: _CallSite) {
    if let ownWrite = modification.ownWrite, ownWrite.endMutation(storing: element) { return }
    guard let update = modification.update else {
      if modification.copied, let transaction = Transaction._currentChecked {
        slots.existingSlot(index).unsafelyUnwrapped._endMutatingCopy(in: transaction)
      }
      if let pending = modification.copiedPending, let transaction = Transaction._currentChecked {
        countCell._withDelayedAppend(in: transaction, { _AppendBatch(slots: slots) }) { batch in
          if let position = batch.itemsBeingMutated.lastIndex(of: pending) { batch.itemsBeingMutated.remove(at: position) }
        }
      }
      setElement(index, element, at: site)
      return
    }
    let cell = slots.existingCell(index).unsafelyUnwrapped
    if let numbered = modification.numbered {
      TVar(_cell: cell.takeUnretainedValue())._endNumberedMutation(numbered, publishing: element)
    } else {
      cell._withUnsafeGuaranteedRef { $0.endInPlaceUpdate(update, publishing: element) }
    }
  }

  /// The element at `index`, read by the operation at `site`.
  @inlinable
  func element(_ index: Int, at site: _CallSite) -> Element {
    elementAndPendingOffset(index, at: site).element
  }

  /// The element at `index`, read by the operation at `site`, and, for one of the running
  /// transaction's own appends not landed, its offset in the transaction's batch.
  @inlinable
  func elementAndPendingOffset(_ index: Int, at site: _CallSite) -> (element: Element, pending: Int?) {
    guard let found = elementAndPendingOffset(ifInBounds: index, at: site) else { outOfRange(index, at: site) }
    return found
  }

  /// The element at `index`, read by the operation at `site`, or nil if `index` is out of
  /// range (for an operation that names itself in the message, as `swapAt` does).
  @inlinable
  func element(ifInBounds index: Int, at site: _CallSite) -> Element? {
    elementAndPendingOffset(ifInBounds: index, at: site)?.element
  }

  /// `elementAndPendingOffset(_:at:)`, or nil if `index` is out of range.
  @inlinable
  func elementAndPendingOffset(ifInBounds index: Int, at site: _CallSite) -> (element: Element, pending: Int?)? {
    guard index >= 0 else { return nil }
    // Unretained: every reference counted on the way (the chunk, the cell) was an atomic
    // read-modify-write, and the chunk's a line shared by every thread reading the array.
    let found = slots.existingCell(index)?._withUnsafeGuaranteedRef { cell in
      cell._noteAccess(.read, at: site, as: .key(index))
      return cell.currentValue
    }
    if let element = found ?? nil { return (element, nil) }
    // Past the end at the snapshot: maybe one of this transaction's own appends.
    if let transaction = Transaction._currentChecked,
      let (items, beingMutated) = countCell._existingDelayedAppend(
        in: transaction, as: _AppendBatch<Element>.self, { ($0.items, $0.itemsBeingMutated) })
    {
      let pending = index - countCell._notedValue(.read, at: site, as: .named("count"))
      if pending >= 0 && pending < items.count {
        if beingMutated.contains(pending) { _trapAccessDuringOwnInPlaceUpdate() }
        return (items[pending], pending)
      }
    }
    return nil
  }

  @usableFromInline
  func outOfRange(_ index: Int, at site: _CallSite) -> Never {
    let count = count
    _trap("TArray index \(index) is out of range: the array has \(Self.describe(count)). \(Self.indexAdvice("the access"))", at: site)
  }

  /// `count` elements, in words.
  static func describe(_ count: Int) -> String { count == 1 ? "1 element" : "\(count) elements" }

  /// What a message about an index out of range advises, where the caller is: outside a
  /// transaction, a check of `count` and `use` are two atomic steps, and another thread may
  /// remove elements between them.
  static func indexAdvice(_ use: String) -> String {
    Transaction._currentChecked == nil
      ? "Outside atomically, elements may go between a check of count and \(use): make both in one atomically block."
      : "Check the index against count in the same transaction."
  }

  // MARK: Appending and removing

  /// Appends `element` as a delayed append.
  ///
  /// Outside a transaction it runs none: it holds the count's commit lock for the few
  /// instructions it takes to fill the next slot, so appenders take turns there.
  ///
  /// Conflicts: none with other appends, or with reads and writes of in-bounds indices. Once
  /// committed it moves the end of the array, so writing transactions that read ``count``,
  /// ``isEmpty`` or ``elements`` (or iterated) before then rerun, as does a concurrent
  /// ``popLast(fileID:line:)`` (a read-only transaction commits at its snapshot and does not).
  ///
  /// - Parameters:
  ///   - element: The element to append.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1) now, amortized; the element lands at commit.
  @inlinable
  public func append(_ element: Element, fileID: StaticString = #fileID, line: UInt = #line) {
    guard let transaction = Transaction._currentChecked else {
      let site = _CallSite(fileID: fileID, line: line, owner: self)
      if appendInPlace(element, at: site) { return }
      _singleOperation(at: site) { _ in append(element, fileID: fileID, line: line) }
      return
    }
    countCell._noteAccess(.write, at: _CallSite(fileID: fileID, line: line, owner: self), as: .named("count"))
    let pending = countCell._withDelayedAppend(in: transaction, appendingOnly: true, { _AppendBatch(slots: slots) }) { batch in
      batch.items.append(element)
      return batch.items.count
    }
    // For all the transaction's appends so far, as `append(contentsOf:)` does: made for one,
    // the cells of a transaction's many single appends were nearly all made by its commit,
    // while it held the count's lock that drop-in appenders wait for (found by review).
    slots.prepareForAppends(pending)
  }

  /// Outside a transaction: puts `element` in the slot just past the newest count with an
  /// in-place update of the count, which holds its commit lock (and the slot's) instead of
  /// running a transaction. Returns false, having changed nothing, only if the count cannot
  /// be updated in place (it never is retired); the caller then appends in a transaction.
  ///
  /// Appenders that get here at the same time take turns at the count's lock; a commit that
  /// lands a transaction's appends waits for it too, as for another such commit. When someone
  /// else holds the slot's lock (a commit of a transaction that wrote that index while it was
  /// in bounds, which may want the count next, or the reclaimer), the append lets go of the
  /// count, waits a moment and starts over: it never waits for the slot while holding the
  /// count, and never falls back on a transaction that could rerun.
  @inlinable
  func appendInPlace(_ element: Element, at site: _CallSite) -> Bool {
    slots.prepareForAppends(1)
    // Noted apart: the copy of the variable that `_noted` hands back costs a retain.
    countCell._noteAccess(.write, at: site, as: .named("count"))
    var backoff = _Backoff()
    while true {
      guard let update = countCell._beginInPlaceUpdate() else { return false }
      let count = update.value
      // Its cell was made ahead of time (above), except after a burst of appends.
      let slot = slots.slot(count)
      if countCell._endInPlaceUpdate(update, publishing: count + 1, alongWith: slot, setTo: element, unless: { false }) != nil {
        slots.noteLanded(upTo: count + 1)
        return true
      }
      backoff.pause()
    }
  }

  /// Appends the elements of `sequence`, in order, as one delayed append.
  ///
  /// A `TArray` (this one included), a ``TSet`` of this array's element type, or a
  /// ``TDictionary`` whose key-value pairs are its elements, is read in the same atomic step
  /// as the append, so that the append sees it whole, with no other thread's change to it in
  /// between; any other sequence is read before it.
  ///
  /// Conflicts: as ``append(_:fileID:line:)``; an empty sequence appends nothing and
  /// conflicts with nothing. With a `TArray`, a `TSet` or a `TDictionary` as `sequence`, also
  /// as a read of the whole of it.
  ///
  /// - Parameters:
  ///   - sequence: The elements to append.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*m*) for *m* elements.
  @inlinable
  public func append<S: Sequence>(contentsOf sequence: S, fileID: StaticString = #fileID, line: UInt = #line)
  where S.Element == Element {
    let transaction = Transaction._currentChecked
    // A collection of this library is read in the append's own step (see
    // `_TransactionalSequence`).
    if transaction == nil, sequence is any _TransactionalSequence {
      _singleOperation(at: _CallSite(fileID: fileID, line: line, owner: self)) { _ in
        append(contentsOf: sequence, fileID: fileID, line: line)
      }
      return
    }
    // Gathered first: iterating a sequence runs code of the caller's, which must not run
    // while the batch is being changed (it might read this array).
    let elements = Array(sequence)
    // Nothing to append: no batch, so no new count at commit for readers of it to conflict with.
    guard !elements.isEmpty else { return }
    guard let transaction else {
      _singleOperation(at: _CallSite(fileID: fileID, line: line, owner: self)) { _ in append(contentsOf: elements, fileID: fileID, line: line) }
      return
    }
    countCell._noteAccess(.write, at: _CallSite(fileID: fileID, line: line, owner: self), as: .named("count"))
    let pending = countCell._withDelayedAppend(in: transaction, appendingOnly: true, { _AppendBatch(slots: slots) }) { batch in
      batch.items.append(contentsOf: elements)
      return batch.items.count
    }
    slots.prepareForAppends(pending)
  }

  /// Removes and returns the last element, or returns nil if the array is empty.
  ///
  /// Outside a transaction it runs none: it holds the count's commit lock while it takes the
  /// last element, so it takes turns with appends and other removals there.
  ///
  /// Conflicts: reads the end of the array, so it conflicts with transactions that append or
  /// remove, and with readers and writers of the last index. (It takes back this transaction's
  /// own pending appends first, without reading anything.)
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The last element, or nil if the array is empty.
  /// - Complexity: O(1).
  @inlinable @discardableResult
  public func popLast(fileID: StaticString = #fileID, line: UInt = #line) -> Element? {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    guard let transaction = Transaction._currentChecked else {
      if let last = popLastInPlace(at: site) { return last }
      return _singleOperation(at: site) { _ in popLast(fileID: fileID, line: line) }
    }
    if countCell._existingDelayedAppend(in: transaction, as: _AppendBatch<Element>.self, { !$0.items.isEmpty }) == true {
      let (last, emptied) = countCell._withDelayedAppend(in: transaction, { _AppendBatch(slots: slots) }) { batch in
        // Popped from inside its own mutation, the element would come back as the mutation
        // ends, over whatever was appended since (found by review).
        if batch.itemsBeingMutated.contains(batch.items.count - 1) { _trapAccessDuringOwnInPlaceUpdate() }
        return (batch.items.popLast(), batch.items.isEmpty)
      }
      // All taken back: nothing lands, and the count does not change (see the primitive).
      if emptied { countCell._dropEmptyDelayedAppend(in: transaction) }
      return last
    }
    // Noted apart: the copy of the variable that `_noted` hands back costs a retain.
    countCell._noteAccess(.readWrite, at: site, as: .named("count"))
    let count = countCell.value
    guard count > 0 else { return nil }
    let slot = slots.slot(count - 1)
    slot._noteAccess(.readWrite, at: site, as: .key(count - 1))
    let last = slot.value
    slot.value = nil
    countCell.value = count - 1
    return last
  }

  /// Outside a transaction: takes the last element (nil if there is none) with an in-place
  /// update of the count, which holds its commit lock (and the last slot's) instead of
  /// running a transaction. The outer optional is nil, having changed nothing, only if the
  /// count cannot be updated in place (it never is retired); the caller then pops in a
  /// transaction. A busy slot makes it let go and start over, as in `appendInPlace`.
  @inlinable
  func popLastInPlace(at site: _CallSite) -> Element?? {
    countCell._noteAccess(.readWrite, at: site, as: .named("count"))
    var backoff = _Backoff()
    while true {
      guard let update = countCell._beginInPlaceUpdate() else { return nil }
      let count = update.value
      guard count > 0 else {
        countCell._endInPlaceUpdate(update, publishing: nil)
        return .some(nil)
      }
      let slot = slots.slot(count - 1)
      slot._noteAccess(.readWrite, at: site, as: .key(count - 1))
      if let last = countCell._endInPlaceUpdate(update, publishing: count - 1, alongWith: slot, setTo: nil, unless: { false }) {
        return .some(last)
      }
      backoff.pause()
    }
  }

  /// Removes and returns the last element; traps if the array is empty.
  ///
  /// Conflicts: as ``popLast(fileID:line:)``.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The last element.
  /// - Complexity: O(1).
  @discardableResult
  public func removeLast(fileID: StaticString = #fileID, line: UInt = #line) -> Element {
    guard let last = popLast(fileID: fileID, line: line) else {
      _trap(
        "TArray.removeLast() was called on an empty array. Use popLast(), which returns nil when empty.",
        at: _CallSite(fileID: fileID, line: line))
    }
    return last
  }

  /// Removes every element, as one atomic step. Like ``popLast(fileID:line:)``, it leaves
  /// the cells of the indices it empties made, for the appends that come to them next.
  ///
  /// Conflicts: as ``popLast(fileID:line:)`` once for each element: with transactions that
  /// append or remove, and with readers and writers of any index it empties.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n*) for *n* elements.
  @inlinable
  public func removeAll(fileID: StaticString = #fileID, line: UInt = #line) {
    _singleOperation(at: _CallSite(fileID: fileID, line: line, owner: self)) { _ in
      while popLast(fileID: fileID, line: line) != nil {}
    }
  }

  // MARK: Whole-array reads

  /// The number of elements, including this transaction's own appends.
  ///
  /// Conflicts: with transactions that append or remove.
  ///
  /// - Complexity: O(1).
  @inlinable
  public var count: Int { count(at: .unknown(in: self)) }

  /// ``count``, read by the operation at `site`.
  @inlinable
  func count(at site: _CallSite) -> Int {
    let committed = countCell._notedValue(.read, at: site, as: .named("count"))
    guard let transaction = Transaction._currentChecked,
      let pending = countCell._existingDelayedAppend(in: transaction, as: _AppendBatch<Element>.self, { $0.items.count })
    else { return committed }
    return committed + pending
  }

  /// Whether the array is empty.
  ///
  /// Conflicts: as ``count``; inside a transaction that has appended elements it has not taken
  /// back, with nothing: the answer is `false` whatever others commit.
  ///
  /// - Complexity: O(1).
  @inlinable
  public var isEmpty: Bool {
    // The transaction's own pending appends answer without reading the count, so that asking
    // does not make it conflict with every other appender and remover (noted by review).
    if let transaction = Transaction._currentChecked,
      countCell._existingDelayedAppend(in: transaction, as: _AppendBatch<Element>.self, { !$0.items.isEmpty }) == true
    {
      return false
    }
    return count == 0
  }

  /// The first element, or nil if the array is empty: read with the count, in one consistent
  /// snapshot (outside a transaction, a read-only transaction, which never aborts).
  ///
  /// Conflicts: as ``isEmpty``, and as a read of index 0 (see ``subscript(_:fileID:line:)``).
  ///
  /// - Complexity: O(1).
  @inlinable
  public var first: Element? {
    let site = _CallSite.unknown(in: self)
    return _singleOperation(at: site) { _ in isEmpty ? nil : element(0, at: site) }
  }

  /// The last element, or nil if the array is empty: read with the count, in one consistent
  /// snapshot (outside a transaction, a read-only transaction, which never aborts).
  ///
  /// Conflicts: as ``count`` (with transactions that append or remove), and as a read of the
  /// last index (see ``subscript(_:fileID:line:)``). Inside a transaction that has appended
  /// elements it has not taken back, with nothing: the last of those is the answer whatever
  /// others commit.
  ///
  /// - Complexity: O(1).
  @inlinable
  public var last: Element? {
    // The transaction's own pending appends answer without reading the count, as for
    // `isEmpty`: reading it made the transaction conflict with every other appender.
    if let transaction = Transaction._currentChecked,
      let ownLast = countCell._existingDelayedAppend(in: transaction, as: _AppendBatch<Element>.self, { batch -> Element? in
        guard let last = batch.items.last else { return nil }
        if batch.itemsBeingMutated.contains(batch.items.count - 1) { _trapAccessDuringOwnInPlaceUpdate() }
        return last
      }) ?? nil
    {
      return ownLast
    }
    let site = _CallSite.unknown(in: self)
    return _singleOperation(at: site) { _ in
      let total = count
      return total == 0 ? nil : element(total - 1, at: site)
    }
  }

  /// The elements as a standard `Array`: one consistent snapshot (outside a transaction, one
  /// read at a snapshot, which never aborts).
  ///
  /// Conflicts: with transactions that append, remove, or write an index.
  ///
  /// - Complexity: O(*n*).
  @inlinable
  public var elements: [Element] {
    // Inlinable, so that the loop is compiled for `Element`: generically, each element's read
    // looked up the metadata of its slot's types at run time.
    let site = _CallSite.unknown(in: self)
    let thread = _CallingThread.current
    guard thread.isInTransaction else { return elementsOutsideTransactions(on: thread, at: site) }
    return _singleOperation(at: site) { _ in
      let total = count
      var result: [Element] = []
      result.reserveCapacity(total)
      for index in 0..<total { result.append(element(index, at: site)) }
      return result
    }
  }

  /// `elements` outside a transaction: the count and every element read at one snapshot by a
  /// single operation, which marks no read (see `_MapStorage.snapshotOutsideTransactions` for
  /// why; here the marks were three fifths of the instructions of a read of 8,192 elements).
  @inlinable
  func elementsOutsideTransactions(on thread: _CallingThread, at site: _CallSite) -> [Element] {
    let operation = _SingleOperation.beginReading(on: thread)
    let total = operation.read(countCell._noted(.read, at: site, as: .named("count")))
    var result: [Element] = []
    result.reserveCapacity(total)
    for index in 0..<total {
      // Unretained, as in `elementAndPendingOffset`: the announced snapshot keeps the cell.
      let element = slots.existingCell(index)?._withUnsafeGuaranteedRef { cell in
        cell._noteAccess(.read, at: site, as: .key(index))
        return operation.read(cell)
      }
      // Every index below the count at a snapshot holds an element at that snapshot: the
      // count and the element change in one commit.
      guard let element = element ?? nil else {
        preconditionFailure("TArray: index \(index) holds no element below the count \(total) at one snapshot (a bug in swift-stm)")
      }
      result.append(element)
    }
    operation.finish()
    return result
  }
}

extension TArray: ExpressibleByArrayLiteral {
  /// Creates an array from a literal.
  ///
  /// - Parameter elements: The elements, in order.
  @inlinable
  public convenience init(arrayLiteral elements: Element...) {
    self.init(elements)
  }
}

extension TArray: Sequence {
  /// Iterates over one consistent snapshot of the elements, taken when iteration starts.
  ///
  /// Conflicts: as ``elements``.
  @inlinable
  public func makeIterator() -> IndexingIterator<[Element]> { elements.makeIterator() }
}

extension TArray: CustomStringConvertible {
  /// The elements of one snapshot, written like an `Array`.
  ///
  /// Conflicts: as ``elements``; printing the array inside a transaction reads all of it.
  public var description: String { "TArray(\(elements))" }
}
