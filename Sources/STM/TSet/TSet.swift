/// A transactional set whose conflicts are per element.
///
/// Outside a transaction every operation is atomic on its own; inside
/// ``atomically(_:fileID:line:)-88o9x`` operations join the running transaction.
///
/// ```swift
/// let seen = TSet<String>()
/// if seen.insert(url).inserted { crawl(url) }     // atomic test-and-insert, from any thread
/// ```
///
/// Conflicts: each element has its own cell. Two transactions conflict only if they touch the
/// same element and at least one changes it: inserts it, removes it, or replaces the member
/// with ``update(with:fileID:line:)``. Operations on different elements never conflict, at any
/// size. ``count`` conflicts only with transactions that insert or remove an element; whole-set
/// reads (iteration, ``elements``), which hand out the members, also with a replacement of one.
///
/// Like `Set`, the set keeps the member that was inserted: of elements that are equal but
/// distinguishable, ``insert(_:fileID:line:)`` keeps the one already there and returns it,
/// ``update(with:fileID:line:)`` replaces it, and ``remove(_:fileID:line:)`` returns it.
/// Unlike `Set`, the set also keeps, while the element is present, the instance that first
/// reached its cell: the first insert's, or an argument of a lookup inside a transaction or
/// of a removal (either of which makes the cell even for an absent element). So a member that
/// ``update(with:fileID:line:)`` replaced, or such an argument, is freed only once the element
/// is removed, not when it is replaced.
///
/// Set algebra with another `TSet` or a `TArray` as its argument reads the argument in the
/// same atomic step, at the same snapshot. The operations that change the set read any other
/// sequence once, before that step, since a rerun would find a single-pass sequence used up;
/// one whose elements come from transactional data is then read at another moment. Pass a
/// `TSet`, or call the operation inside ``atomically(_:fileID:line:)-88o9x``, to have both read
/// at once.
///
/// Elements of the standard integer types are placed by a seeded mixer of their bits rather
/// than by `hashValue`, as ``TDictionary``'s keys are (see there). As for those keys, an
/// element's `==` and `hash(into:)` must not use transactional data: such a use traps.
///
/// Reads of the whole set (``elements``, iteration, the set algebra that reads the set)
/// visit every cell of the index, including the empty cells that lookups of absent elements
/// inside transactions leave behind (the Performance article lists the other operations that
/// leave them): *e* in their complexity. Sweeps take such cells once enough are made. Between
/// sweeps, each of the index's 64 stripes keeps two to four times the sum of its elements
/// present and an allowance: 8 while the absent elements asked about are new ones, 64 while
/// lookups keep coming back to the same ones, so that those find their cells. A small set
/// asked about ever new absent elements so holds about 2,000 of them once it has been asked
/// about some 40,000 (up to about 12,000 before that), and one asked again and again about the
/// same few thousand holds those; a read of the whole set then costs what it costs in a set of
/// that size. (The Performance article says what the allowance costs lookups.)
///
/// `TSet` is a reference type: copies of a reference share one set.
public final class TSet<Element: Hashable & Sendable>: Sendable {
  // Single-element operations are inlinable, as on `TDictionary`. Each element's cell holds
  // the member itself: the cell's key is whichever equal element made the cell, perhaps a
  // lookup's, and `Set` hands back the member that was inserted.
  @usableFromInline let storage: _MapStorage<Element, Element>

  /// Creates an empty set.
  ///
  /// - Complexity: O(*s*), for *s* the engine's segment count.
  public init() {
    storage = _MapStorage()
  }

  /// Creates an empty set with room for about `minimumCapacity` elements, so that filling it
  /// rarely grows its index: the room is spread evenly over the index's 64 stripes, and a
  /// stripe that receives more than its share of elements grows. Removals do not shrink the index
  /// below that room.
  ///
  /// - Parameter minimumCapacity: The number of elements to make room for.
  /// - Complexity: O(*s* + `minimumCapacity`).
  public init(minimumCapacity: Int) {
    precondition(minimumCapacity >= 0, "TSet(minimumCapacity:) needs a capacity of 0 or more, not \(minimumCapacity).")
    storage = _MapStorage(minimumCapacity: minimumCapacity, reserving: true)
  }

  /// Creates a set holding the elements of `sequence`.
  ///
  /// It makes them without a transaction, as a ``TVar``'s initial value is made: inside
  /// `atomically`, the new set holds them whatever becomes of the transaction.
  ///
  /// - Parameter sequence: The elements to start with.
  /// - Complexity: O(*n*) for *n* elements.
  @inlinable
  public convenience init<S: Sequence>(_ sequence: S) where S.Element == Element {
    // Into a `Set` first, which keeps the first of equal elements, as `Set(_:)` does: the
    // table is then sized for the distinct ones, not for every element read.
    self.init(contentsOf: Set(sequence))
  }

  /// A set holding `elements`, each the value of its own key's cell.
  @inlinable
  init(contentsOf elements: Set<Element>) {
    storage = _MapStorage(filledWith: elements.lazy.map { (key: $0, value: $0) })
  }

  /// Whether `element` is in the set.
  ///
  /// Conflicts: with transactions that change `element` (insert, remove or replace it).
  ///
  /// - Parameters:
  ///   - element: The element to look for.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1) on average.
  @inlinable
  public func contains(_ element: Element, fileID: StaticString = #fileID, line: UInt = #line) -> Bool {
    storage.value(forKey: element, at: _CallSite(fileID: fileID, line: line, owner: self)) != nil
  }

  /// Inserts `element` if it is absent; returns whether it did, and the member now in the set.
  ///
  /// Conflicts: when it inserts, with transactions that read or change `element`, and
  /// with ``count`` and whole-set reads; when `element` is already there, it only reads it, and
  /// so conflicts only with transactions that remove or replace it.
  ///
  /// - Parameters:
  ///   - element: The element to insert.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: Whether `element` was inserted, and the member equal to it now in the set.
  /// - Complexity: O(1) on average.
  @inlinable @discardableResult
  public func insert(
    _ element: Element, fileID: StaticString = #fileID, line: UInt = #line
  ) -> (inserted: Bool, memberAfterInsert: Element) {
    storage.update(forKey: element, at: _CallSite(fileID: fileID, line: line, owner: self)) { member in
      if let existing = member { return (false, (false, existing)) }
      member = element
      return (true, (true, element))
    }
  }

  /// Removes `element`; returns it, or nil if it was absent.
  ///
  /// Conflicts: when it removes, with transactions that read or change `element`, and
  /// with ``count`` and whole-set reads; when `element` is absent, it only reads it, and so
  /// conflicts only with transactions that insert it.
  ///
  /// - Parameters:
  ///   - element: The element to remove.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The member that was removed (the one inserted, equal to `element`), or nil if
  ///   it was absent.
  /// - Complexity: O(1) on average.
  @inlinable @discardableResult
  public func remove(_ element: Element, fileID: StaticString = #fileID, line: UInt = #line) -> Element? {
    storage.update(forKey: element, at: _CallSite(fileID: fileID, line: line, owner: self)) { member in
      guard let existing = member else { return (false, nil) }
      member = nil
      return (true, existing)
    }
  }

  /// Inserts `element`, replacing an equal member if there is one, and returns that member.
  ///
  /// Conflicts: with transactions that read or change `element`, and with whole-set
  /// reads (iteration, ``elements``): it writes the element's cell even when a member is there,
  /// since it replaces that member. When it inserts, also with ``count``.
  ///
  /// - Parameters:
  ///   - element: The element to insert.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The equal member that was replaced, or nil if `element` was inserted.
  /// - Complexity: O(1) on average.
  @inlinable @discardableResult
  public func update(with element: Element, fileID: StaticString = #fileID, line: UInt = #line) -> Element? {
    storage.update(forKey: element, at: _CallSite(fileID: fileID, line: line, owner: self)) { member in
      let replaced = member
      member = element
      return (true, replaced)
    }
  }

  /// The number of elements.
  ///
  /// Conflicts: with transactions that insert or remove an element; inserts do not conflict
  /// with each other through it.
  ///
  /// - Complexity: O(*s*) for *s* engine segments.
  @inlinable
  public var count: Int { storage.count.value(at: .unknown(in: self)) }

  /// Whether the set is empty.
  ///
  /// Conflicts: inside a transaction, when some element is present, only with transactions that
  /// write that one element (the first it finds), whose removal is all that can make the answer
  /// wrong: inserts and removals of other elements do not conflict with it. When no element is present, with
  /// transactions that insert or remove an element, as ``count``.
  ///
  /// - Complexity: outside a transaction, O(*s*) for *s* engine segments. Inside one, a search
  ///   for a present element: O(1) on average while most of the index holds present elements, up to
  ///   the index's capacity when few are present.
  @inlinable
  public var isEmpty: Bool { storage.isEmpty(at: .unknown(in: self)) }

  /// The elements as a standard `Set`: one consistent snapshot (outside a transaction, one
  /// read at a snapshot, which never aborts).
  ///
  /// Conflicts: with transactions that insert or remove an element, or replace a member with
  /// ``update(with:fileID:line:)``.
  ///
  /// - Complexity: O(*n* + *e*) for *n* elements and *e* empty cells (see ``TSet``).
  @inlinable
  public var elements: Set<Element> { elements(at: .unknown(in: self)) }

  /// The elements of one consistent snapshot that satisfy `isIncluded`, as a standard `Set`, as
  /// `Set.filter(_:)` returns (the sequence's `filter` returns an array; it is still there where
  /// the context asks for one).
  ///
  /// Conflicts: as ``elements``.
  ///
  /// - Parameter isIncluded: Whether an element goes into the result. It runs once the
  ///   snapshot has been read.
  /// - Returns: The elements that `isIncluded` accepted.
  /// - Throws: What `isIncluded` throws.
  /// - Complexity: O(*n* + *e*) for *n* elements and *e* empty cells (see ``TSet``).
  @inlinable
  public func filter(_ isIncluded: (Element) throws -> Bool) rethrows -> Set<Element> {
    try elements.filter(isIncluded)
  }

  @inlinable
  func elements(at site: _CallSite) -> Set<Element> { Set(storage.snapshot(at: site).lazy.map(\.value)) }

  /// Inserts every element of `other`, as one atomic step.
  ///
  /// Conflicts: as ``insert(_:fileID:line:)`` of each element.
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to insert.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*m*) for *m* elements in `other`.
  @inlinable
  public func formUnion<S: Sequence>(_ other: S, fileID: StaticString = #fileID, line: UInt = #line) where S.Element == Element {
    withElements(of: other, as: { Array($0) }, at: _CallSite(fileID: fileID, line: line, owner: self)) { elements in
      for element in elements { insert(element, fileID: fileID, line: line) }
    }
  }

  /// Removes every element of `other`, as one atomic step.
  ///
  /// Conflicts: as ``remove(_:fileID:line:)`` of each element.
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to remove.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*m*) for *m* elements in `other`.
  @inlinable
  public func subtract<S: Sequence>(_ other: S, fileID: StaticString = #fileID, line: UInt = #line) where S.Element == Element {
    withElements(of: other, as: { Array($0) }, at: _CallSite(fileID: fileID, line: line, owner: self)) { elements in
      for element in elements { remove(element, fileID: fileID, line: line) }
    }
  }

  /// Keeps only the elements that are also in `other`, as one atomic step.
  ///
  /// Conflicts: with every transaction that changes an element (it reads them all).
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to keep.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* + *m* + *e*) for *n* elements, *m* in `other` and *e* empty cells
  ///   (see ``TSet``).
  @inlinable
  public func formIntersection<S: Sequence>(_ other: S, fileID: StaticString = #fileID, line: UInt = #line) where S.Element == Element {
    withElements(of: other, as: { Set($0) }, at: _CallSite(fileID: fileID, line: line, owner: self)) { keep in
      removeElements(where: { !keep.contains($0) }, fileID: fileID, line: line)
    }
  }

  /// Whether every element of the set is in `other` (one snapshot).
  ///
  /// Conflicts: as ``elements``.
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to compare with.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* + *m* + *e*) for *n* elements, *m* in `other` and *e* empty cells
  ///   (see ``TSet``); O(*m*) when the set has more elements than `other` has distinct ones.
  @inlinable
  public func isSubset<S: Sequence>(of other: S, fileID: StaticString = #fileID, line: UInt = #line) -> Bool where S.Element == Element {
    // `other` is read in the same read-only step, which never reruns, so a single-pass
    // sequence is safe, and a `TSet` or `TArray` is read at the same snapshot (read after it,
    // a set kept equal to this one looked different; found by review).
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    return _singleOperation(at: site) { _ in
      let others = Set(other)
      // A set larger than `other` is no subset of it, which the count tells without reading
      // every element (a large set against a few elements took a whole read; noted by a
      // review). The count conflicts with what `elements` does: every insert and removal.
      guard storage.count.value(at: site) <= others.count else { return false }
      return elements(at: site).isSubset(of: others)
    }
  }

  /// Whether every element of the set is in `other`, and `other` has at least one more (one
  /// snapshot).
  ///
  /// Conflicts: as ``elements``.
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to compare with.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* + *m* + *e*) for *n* elements, *m* in `other` and *e* empty cells
  ///   (see ``TSet``); O(*m*) when the set has at least as many elements as `other` has
  ///   distinct ones.
  @inlinable
  public func isStrictSubset<S: Sequence>(of other: S, fileID: StaticString = #fileID, line: UInt = #line) -> Bool
  where S.Element == Element {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    return _singleOperation(at: site) { _ in
      let others = Set(other)
      // As in `isSubset(of:)`: a set at least as large as `other` is no strict subset of it.
      guard storage.count.value(at: site) < others.count else { return false }
      return elements(at: site).isStrictSubset(of: others)
    }
  }

  /// Whether every element of `other` is in the set, looked up one by one in one atomic step.
  ///
  /// Conflicts: only with transactions that change an element of `other` (insert, remove or
  /// replace it).
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to look for.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*m*) for *m* elements in `other`.
  @inlinable
  public func isSuperset<S: Sequence>(of other: S, fileID: StaticString = #fileID, line: UInt = #line) -> Bool
  where S.Element == Element {
    _singleOperation(at: _CallSite(fileID: fileID, line: line, owner: self)) { _ in
      other.allSatisfy { contains($0, fileID: fileID, line: line) }
    }
  }

  /// Whether every element of `other` is in the set, and the set has at least one more.
  ///
  /// Conflicts: with transactions that change an element of `other` (insert, remove or replace
  /// it), and, through ``count``, with every transaction that inserts or removes an element.
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to look for.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*m* + *s*) for *m* elements in `other` and *s* engine segments.
  @inlinable
  public func isStrictSuperset<S: Sequence>(of other: S, fileID: StaticString = #fileID, line: UInt = #line) -> Bool
  where S.Element == Element {
    return _singleOperation(at: _CallSite(fileID: fileID, line: line, owner: self)) { _ in
      let distinct = Set(other)
      return isSuperset(of: distinct, fileID: fileID, line: line) && count > distinct.count
    }
  }

  /// Whether the set has no element in common with `other`, looked up one by one in one
  /// atomic step.
  ///
  /// Conflicts: only with transactions that change an element of `other` (insert, remove or
  /// replace it).
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to look for.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*m*) for *m* elements in `other`.
  @inlinable
  public func isDisjoint<S: Sequence>(with other: S, fileID: StaticString = #fileID, line: UInt = #line) -> Bool
  where S.Element == Element {
    _singleOperation(at: _CallSite(fileID: fileID, line: line, owner: self)) { _ in
      !other.contains { contains($0, fileID: fileID, line: line) }
    }
  }

  // MARK: Set algebra into a standard set

  /// The set's elements together with those of `other`, as a standard `Set` (from one
  /// snapshot).
  ///
  /// Conflicts: as ``elements``.
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to add.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* + *m* + *e*) for *n* elements, *m* in `other` and *e* empty cells
  ///   (see ``TSet``).
  @inlinable
  public func union<S: Sequence>(_ other: S, fileID: StaticString = #fileID, line: UInt = #line) -> Set<Element>
  where S.Element == Element {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    return _singleOperation(at: site) { _ in elements(at: site).union(other) }
  }

  /// The elements of `other` that are in the set, as a standard `Set`, looked up one by one in
  /// one atomic step.
  ///
  /// Conflicts: only with transactions that change an element of `other` (insert, remove or
  /// replace it).
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to look for.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*m*) for *m* elements in `other`.
  @inlinable
  public func intersection<S: Sequence>(_ other: S, fileID: StaticString = #fileID, line: UInt = #line) -> Set<Element>
  where S.Element == Element {
    _singleOperation(at: _CallSite(fileID: fileID, line: line, owner: self)) { _ in
      var found = Set<Element>()
      // The members the set holds, as `Set` returns them, not the argument's equal elements.
      let site = _CallSite(fileID: fileID, line: line, owner: self)
      for element in other {
        if let member = storage.value(forKey: element, at: site) { found.insert(member) }
      }
      return found
    }
  }

  /// The set's elements that are not in `other`, as a standard `Set` (from one snapshot).
  ///
  /// Conflicts: as ``elements``.
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to leave out.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* + *m* + *e*) for *n* elements, *m* in `other` and *e* empty cells
  ///   (see ``TSet``).
  @inlinable
  public func subtracting<S: Sequence>(_ other: S, fileID: StaticString = #fileID, line: UInt = #line) -> Set<Element>
  where S.Element == Element {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    return _singleOperation(at: site) { _ in elements(at: site).subtracting(other) }
  }

  /// The elements in either the set or `other` but not both, as a standard `Set` (from one
  /// snapshot).
  ///
  /// Conflicts: as ``elements``.
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to compare with.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* + *m* + *e*) for *n* elements, *m* in `other` and *e* empty cells
  ///   (see ``TSet``).
  @inlinable
  public func symmetricDifference<S: Sequence>(_ other: S, fileID: StaticString = #fileID, line: UInt = #line) -> Set<Element>
  where S.Element == Element {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    return _singleOperation(at: site) { _ in elements(at: site).symmetricDifference(other) }
  }

  /// Removes the elements of `other` that are in the set and inserts those that are not, as
  /// one atomic step.
  ///
  /// Conflicts: as ``insert(_:fileID:line:)`` or ``remove(_:fileID:line:)`` of each element of
  /// `other`.
  /// With a `TSet` or `TArray` as `other`, also with every transaction that changes it: the
  /// step reads all of it.
  ///
  /// - Parameters:
  ///   - other: The elements to toggle; one that appears more than once counts once.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*m*) for *m* elements in `other`.
  @inlinable
  public func formSymmetricDifference<S: Sequence>(_ other: S, fileID: StaticString = #fileID, line: UInt = #line)
  where S.Element == Element {
    withElements(of: other, as: { Set($0) }, at: _CallSite(fileID: fileID, line: line, owner: self)) { distinct in
      for element in distinct where remove(element, fileID: fileID, line: line) == nil {
        insert(element, fileID: fileID, line: line)
      }
    }
  }

  /// Removes every element, as one atomic step.
  ///
  /// Conflicts: it reads every element first, as ``elements`` does, so it conflicts with
  /// transactions that insert, remove or replace (``update(with:fileID:line:)``) any
  /// element; then as a removal of every element that was present.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* + *e*) for *n* elements and *e* empty cells (see ``TSet``).
  @inlinable
  public func removeAll(fileID: StaticString = #fileID, line: UInt = #line) {
    removeElements(where: { _ in true }, fileID: fileID, line: line)
  }

  /// Removes every element that `shouldBeRemoved` accepts, as one atomic step, with no other
  /// thread's change between the test of an element and its removal.
  ///
  /// Conflicts: it reads every element first, as ``elements`` does, so it conflicts with
  /// transactions that insert, remove or replace (``update(with:fileID:line:)``) any element;
  /// then as a removal of each element it removes.
  ///
  /// - Parameters:
  ///   - shouldBeRemoved: Given a member, whether to remove it. It runs inside the step, once
  ///     for each member before any is removed (and again if the step reruns), and may read
  ///     transactional data there.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: What `shouldBeRemoved` throws; then nothing is removed.
  /// - Complexity: O(*n* + *e*) for *n* elements and *e* empty cells (see ``TSet``).
  @inlinable
  public func removeAll<Failure: Error>(
    where shouldBeRemoved: (Element) throws(Failure) -> Bool, fileID: StaticString = #fileID, line: UInt = #line
  ) throws(Failure) {
    try removeElements(where: shouldBeRemoved, fileID: fileID, line: line)
  }

  /// Runs `body` as one atomic step with the elements of `other`, read by `read`: inside that
  /// step when `other` is a `TSet` or a `TArray`, so that they come from the step's own
  /// snapshot (read before it, they came from another moment, and `a.formIntersection(b)` of
  /// two sets kept equal by every commit lost elements; found by review); before it for any
  /// other sequence, which a rerun would find used up if it is single-pass.
  @inlinable
  func withElements<S: Sequence, Elements>(
    of other: S, as read: (S) -> Elements, at site: _CallSite, _ body: (Elements) -> Void
  ) where S.Element == Element {
    // A collection of this library is read in the operation's own step (see
    // `_TransactionalSequence`).
    if other is any _TransactionalSequence {
      _singleOperation(at: site) { _ in body(read(other)) }
    } else {
      let elements = read(other)
      _singleOperation(at: site) { _ in body(elements) }
    }
  }

  /// Removes, as one atomic step, the elements for which `shouldGo` holds, every one tested
  /// before any is removed. An element that does not equal itself (such as `Double.nan`)
  /// cannot be looked up: those go through their cells instead (by lookup, they stayed; found
  /// by review). A throw rolls the step back.
  @inlinable
  func removeElements<Failure: Error>(
    where shouldGo: (Element) throws(Failure) -> Bool, fileID: StaticString, line: UInt
  ) throws(Failure) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    try _singleOperation(at: site) { (transaction: Transaction) throws(Failure) in
      var doomed: [Element] = [], unequalElements = false
      for (_, element) in storage.snapshot(at: site) {
        guard _KeyHash.equal(element, element) else {
          unequalElements = true
          continue
        }
        if try shouldGo(element) { doomed.append(element) }
      }
      if unequalElements {
        try storage.removeKeysUnequalToThemselves(in: transaction, at: site) { (_, element) throws(Failure) in
          try shouldGo(element)
        }
      }
      for element in doomed { remove(element, fileID: fileID, line: line) }
    }
  }
}

extension TSet: ExpressibleByArrayLiteral {
  /// Creates a set from a literal; repeated elements are kept once.
  ///
  /// - Parameter elements: The elements.
  @inlinable
  public convenience init(arrayLiteral elements: Element...) {
    self.init(elements)
  }
}

extension TSet: Sequence {
  /// Iterates over one consistent snapshot of the elements, taken when iteration starts.
  ///
  /// Conflicts: as ``elements``.
  @inlinable
  public func makeIterator() -> Set<Element>.Iterator { elements.makeIterator() }
}

extension TSet: CustomStringConvertible {
  /// The elements of one snapshot, written like a `Set`.
  ///
  /// Conflicts: as ``elements``; printing the set inside a transaction reads all of it.
  public var description: String { "TSet(\(elements.sorted { "\($0)" < "\($1)" }))" }
}
