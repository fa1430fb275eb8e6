/// A transactional dictionary whose conflicts are per key: a drop-in replacement for a
/// dictionary shared between threads, which also composes with other transactional data.
///
/// Outside a transaction every operation is atomic on its own, like a concurrent map. Inside
/// ``atomically(_:fileID:line:)-88o9x`` operations join the running transaction, so several of them, over
/// several structures, commit together.
///
/// ```swift
/// let hits = TDictionary<String, Int>()
/// hits["/", default: 0] += 1                // atomic on its own, from any thread
/// atomically { _ in                         // several operations as one step
///   if let n = hits.removeValue(forKey: "/old") { hits["/new", default: 0] += n }
/// }
/// ```
///
/// Conflicts: each key has its own cell. Two transactions conflict only if they touch the same
/// key and at least one writes it; inserting and removing *different* keys never conflict, at
/// any size (the index that finds a key's cell grows outside transactions). ``count`` and
/// whole-dictionary reads (iteration, ``keys``, ``values``, ``dictionary``) conflict only with
/// transactions that insert or remove a key, or write a value they read.
///
/// Unlike `Dictionary`, of keys that are equal but distinguishable (equal by `==`, different
/// in some other way), the dictionary reports in ``keys``, ``dictionary`` and iteration the
/// one that first reached the key's cell, which may be a key passed to a lookup or a removal
/// rather than the one inserted (a lookup inside a transaction makes the cell even for an
/// absent key, so that an insert of it conflicts with the lookup). Keep the key in the value
/// when its identity matters.
///
/// A key's `==` and `hash(into:)` must not use transactional data (a ``TVar``, a collection of
/// this library, ``atomically(_:fileID:line:)-88o9x``): the dictionary calls them while it holds what a
/// lookup needs (outside a transaction, one of the engine's segments; to insert or remove, a lock
/// of its index), and code that waited there for another segment or that lock could wait
/// forever. Such a use there traps, with a message that says so. `Hashable` asks as much:
/// equality and hashing that depend on the key's own stored properties only.
///
/// Keys of the standard integer types (`Int`, `UInt`, `Int64`, `UInt64`, `Int32`, `UInt32`)
/// are placed by a fast mixer of their bits keyed with a random seed of the dictionary's own,
/// not by `hashValue` (SipHash, a seventh of a drop-in update's work); keys of every other
/// type use `hashValue`. The mixer spreads keys as well, but unlike SipHash it makes no
/// cryptographic promise against an attacker who can time lookups and adapt the keys.
///
/// Reads of the whole dictionary (``dictionary``, ``keys``, ``values``, iteration,
/// ``filter(_:)``, ``mapValues(_:)``, ``removeAll(fileID:line:)``) visit every
/// cell of the index, including the empty cells that lookups of absent keys inside
/// transactions leave behind (the Performance article lists the other operations that leave
/// them): *e* in their complexity. Sweeps take such cells once enough are made. Between sweeps,
/// each of the index's 64 stripes keeps two to four times the sum of its keys present and an
/// allowance: 8 while the absent keys asked about are new ones, 64 while lookups keep coming
/// back to the same ones, so that those find their cells. A small dictionary asked about ever
/// new absent keys so holds about 2,000 of them once it has been asked about some 40,000 (up
/// to about 12,000 before that), and one asked again and again about the same few thousand
/// holds those; a read of the whole dictionary then costs what it costs in a dictionary of
/// that size. (The Performance article says what the allowance costs lookups.)
///
/// `TDictionary` is a reference type: copies of a reference share one dictionary.
public final class TDictionary<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  // The single-key operations are inlinable, so that they are specialized for the client's
  // key and value types: generic code called unspecialized spends most of its time looking up
  // type metadata.
  @usableFromInline let storage: _MapStorage<Key, Value>

  /// Creates an empty dictionary.
  ///
  /// - Complexity: O(*s*), for *s* the engine's segment count (the count is spread over them).
  public init() {
    storage = _MapStorage()
  }

  /// Creates an empty dictionary with room for about `minimumCapacity` keys, so that filling it
  /// rarely grows its index: the room is spread evenly over the index's 64 stripes, and a
  /// stripe that receives more than its share of keys grows. Removals do not shrink the index
  /// below that room.
  ///
  /// - Parameter minimumCapacity: The number of keys to make room for.
  /// - Complexity: O(*s* + `minimumCapacity`).
  public init(minimumCapacity: Int) {
    precondition(minimumCapacity >= 0, "TDictionary(minimumCapacity:) needs a capacity of 0 or more, not \(minimumCapacity).")
    storage = _MapStorage(minimumCapacity: minimumCapacity, reserving: true)
  }

  /// Creates a dictionary holding the contents of `dictionary`.
  ///
  /// Like every initializer that takes contents, it makes them without a transaction, as a
  /// ``TVar``'s initial value is made: inside `atomically`, the new dictionary holds them
  /// whatever becomes of the transaction.
  ///
  /// - Parameter dictionary: The keys and values to start with.
  /// - Complexity: O(*n*) for *n* keys.
  @inlinable
  public init(_ dictionary: [Key: Value]) {
    storage = _MapStorage(filledWith: dictionary)
  }

  /// Creates a dictionary from pairs whose keys are all different, as `Dictionary`'s
  /// initializer of that name does; a key that comes twice traps, naming the key.
  ///
  /// - Parameter keysAndValues: The keys and values to start with.
  /// - Complexity: O(*n*) for *n* pairs.
  @inlinable
  public convenience init<S: Sequence>(uniqueKeysWithValues keysAndValues: S) where S.Element == (Key, Value) {
    // Into a dictionary first, so that a repeated key traps as it is read, as `Dictionary`'s
    // does, not after an endless sequence has been read to the end (found by review).
    var pairs: [Key: Value] = [:]
    pairs.reserveCapacity(keysAndValues.underestimatedCount)
    for (key, value) in keysAndValues where pairs.updateValue(value, forKey: key) != nil {
      fatalError("TDictionary(uniqueKeysWithValues:) was given the key \(key) more than once. Use TDictionary(_:uniquingKeysWith:) to combine the values of repeated keys.")
    }
    self.init(pairs)
  }

  /// Creates a dictionary from pairs, using `combine` for the values of a key that comes more
  /// than once, as `Dictionary`'s initializer of that name does.
  ///
  /// - Parameters:
  ///   - keysAndValues: The keys and values to start with.
  ///   - combine: Given the value so far and a later one for the same key, the value to keep.
  /// - Throws: What `combine` throws.
  /// - Complexity: O(*n*) for *n* pairs.
  @inlinable
  public convenience init<S: Sequence, Failure: Error>(
    _ keysAndValues: S, uniquingKeysWith combine: (Value, Value) throws(Failure) -> Value
  ) throws(Failure) where S.Element == (Key, Value) {
    // Combined before the dictionary is made, as `Dictionary`'s initializer combines: once
    // for each repeated key, the value so far first.
    var pairs: [Key: Value] = [:]
    pairs.reserveCapacity(keysAndValues.underestimatedCount)
    for (key, value) in keysAndValues {
      if let index = pairs.index(forKey: key) {
        pairs.values[index] = try combine(pairs.values[index], value)
      } else {
        pairs[key] = value
      }
    }
    self.init(pairs)
  }

  // MARK: Reading and writing one key

  /// The value for `key`, or nil if the key is absent; setting nil removes the key, as
  /// ``removeValue(forKey:fileID:line:)`` does (of an absent key, it only reads it). An
  /// in-place update such as `dict[key]? += 1` is one atomic read-modify-write, even outside a
  /// transaction (it holds the key's cell briefly, as ``subscript(_:default:fileID:line:)``
  /// does); one that leaves an absent key absent writes nothing.
  ///
  /// Such an update works on a copy of the value, while the dictionary keeps the original:
  /// `groups[key]?.append(x)` copies the whole array, every time. To grow an array (or a
  /// string, or any value that holds storage) held in a dictionary, use
  /// ``update(forKey:_:fileID:line:)`` (`groups.update(forKey: key) { $0.append(x) }`, which
  /// leaves an absent key absent), ``subscript(_:default:fileID:line:)``
  /// (`groups[key, default: []].append(x)`) or ``update(forKey:default:_:fileID:line:)``,
  /// which work on the value where it is. Working in place here would cost more than it saves:
  /// the update may set nil, a removal that the count has to show at the same moment, so it
  /// would have to hold the count meanwhile, stalling every transaction that reads ``count``.
  ///
  /// Conflicts: reading conflicts only with transactions that write this key (including
  /// inserting it, if absent); writing also conflicts with transactions that read it, and a
  /// write that inserts or removes the key conflicts with ``count`` and whole-dictionary reads.
  ///
  /// - Parameters:
  ///   - key: The key to look up.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1) on average.
  @inlinable
  public subscript(key: Key, fileID fileID: StaticString = #fileID, line line: UInt = #line) -> Value? {
    get { storage.value(forKey: key, at: _CallSite(fileID: fileID, line: line, owner: self)) }
    set {
      if let newValue {
        storage.store(newValue, forKey: key, returningReplaced: false, at: _CallSite(fileID: fileID, line: line, owner: self))
        return
      }
      // A removal, as `removeValue(forKey:)`: an absent key stays absent and is only read, so
      // `dict[key] = nil` made "sure it is gone" conflicts with nothing but the key's insertion.
      storage.update(forKey: key, at: _CallSite(fileID: fileID, line: line, owner: self)) { value in
        guard value != nil else { return (false, ()) }
        value = nil
        return (true, ())
      }
    }
    // One yield, so that the coroutine can be inlined into the caller.
    @inline(__always) _modify {
      let site = _CallSite(fileID: fileID, line: line, owner: self)
      var modification = storage.beginOptionalModification(forKey: key, at: site)
      var value = modification.value
      defer { storage.endOptionalModification(forKey: key, &modification, publishing: value, at: site) }
      yield &value
    }
  }

  /// The value for `key`, or `defaultValue` if the key is absent; an in-place update such as
  /// `dict[key, default: 0] += 1` is one atomic read-modify-write, even outside a transaction.
  ///
  /// Outside a transaction the in-place update holds the key's cell briefly: it must not touch
  /// other transactional data (that traps; put such code in `atomically`), and must not wait
  /// for a thread that may be using this dictionary. Until it ends, other updates of the key
  /// wait, and so may reads of it, removals and growth in the key's part of the index, and a
  /// transaction becoming inevitable. It works on the value where it is, without copying it,
  /// whenever no running transaction could still read the value it replaces:
  /// `groups[key, default: []].append(x)` costs O(1), not a copy of the array. (A trivially
  /// copyable value is updated on a copy, as ``TVar/value`` says.) Inside a
  /// transaction the first update of a key copies its value (other transactions may be reading
  /// it), and later ones in the same block work on the transaction's own copy in place; using
  /// the key from inside any of these mutations (from a closure that the mutating method
  /// calls) traps, as Swift's exclusivity checks would. A mutation that throws midway keeps
  /// what it changed, as with `Dictionary`. The default is computed only when the key is
  /// absent, before the update holds anything, so it may read other transactional data
  /// (`counts[key, default: base.value] += 1`).
  ///
  /// Conflicts: as ``subscript(_:fileID:line:)``.
  ///
  /// - Parameters:
  ///   - key: The key to look up.
  ///   - defaultValue: The value to use when the key is absent.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(1) on average.
  @inlinable
  public subscript(
    key: Key, default defaultValue: @autoclosure () -> Value, fileID fileID: StaticString = #fileID, line line: UInt = #line
  ) -> Value {
    get { storage.value(forKey: key, at: _CallSite(fileID: fileID, line: line, owner: self)) ?? defaultValue() }
    set {
      storage.update(forKey: key, at: _CallSite(fileID: fileID, line: line, owner: self)) { value in
        value = newValue
        return (true, ())
      }
    }
    // One yield, so that the coroutine can be inlined into the caller: one that stays a call
    // of its own allocates its frame on the heap, a malloc on every `dict[key, default: 0] += 1`.
    @inline(__always) _modify {
      let site = _CallSite(fileID: fileID, line: line, owner: self)
      var modification = storage.beginModification(forKey: key, default: defaultValue, at: site)
      // Moved out, not copied: a second reference would make mutating an array copy it.
      var value = modification.takeValue()
      // Stored even if the mutation throws midway, as `Dictionary` keeps what it did.
      defer { storage.endModification(forKey: key, modification, publishing: value, at: site) }
      yield &value
    }
  }

  /// Stores `value` for `key`, and returns the value it replaced, or nil if the key was absent.
  ///
  /// Conflicts: as a write of ``subscript(_:fileID:line:)``.
  ///
  /// - Parameters:
  ///   - value: The value to store.
  ///   - key: The key to store it under.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The previous value, or nil if the key was inserted.
  /// - Complexity: O(1) on average.
  @inlinable @discardableResult
  public func updateValue(_ value: Value, forKey key: Key, fileID: StaticString = #fileID, line: UInt = #line) -> Value? {
    storage.store(value, forKey: key, at: _CallSite(fileID: fileID, line: line, owner: self))
  }

  /// Removes `key`, and returns the value it had, or nil if it was absent.
  ///
  /// The key's cell leaves the index once the removal has committed, so a dictionary that
  /// churns through keys keeps no memory for removed ones.
  ///
  /// Conflicts: when the key was present, with transactions that read or write it, and with
  /// ``count`` and whole-dictionary reads; when it was absent, it only reads the key, and so
  /// conflicts only with transactions that insert it.
  ///
  /// - Parameters:
  ///   - key: The key to remove.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: The removed value, or nil if the key was absent.
  /// - Complexity: O(1) on average.
  @inlinable @discardableResult
  public func removeValue(forKey key: Key, fileID: StaticString = #fileID, line: UInt = #line) -> Value? {
    storage.update(forKey: key, at: _CallSite(fileID: fileID, line: line, owner: self)) { current in
      guard let old = current else { return (false, nil) }
      current = nil
      return (true, old)
    }
  }

  /// Applies `body` to the value for `key`, if the key is present, as one atomic
  /// read-modify-write, and returns what `body` returns; returns nil, without calling `body`,
  /// if the key is absent, which stays absent.
  ///
  /// The in-place form of `dict[key]?.append(x)`, which works on a copy (see
  /// ``subscript(_:fileID:line:)``): like ``subscript(_:default:fileID:line:)``, this works on
  /// the value where it is whenever no running transaction could still read the value it
  /// replaces, so that appending to an array costs O(1), and it never inserts a key:
  ///
  /// ```swift
  /// groups.update(forKey: "admins") { $0.append("carol") }  // nil if there is no such group
  /// ```
  ///
  /// Outside a transaction `body` runs while the key's cell is held, under the rules that
  /// ``update(forKey:default:_:fileID:line:)`` gives; objects that `body` drops from the value
  /// are freed there, so their deinits must not use transactional data either. Inside a
  /// transaction `body` may use anything but `key` in this dictionary (nor reads of the whole
  /// dictionary, which read `key`: both trap). `body` cannot remove the key, and nothing of
  /// ``count`` is held while it runs.
  ///
  /// Conflicts: of a present key, as a read and a write of ``subscript(_:fileID:line:)`` that
  /// leaves the key present; of an absent key, as a read of it.
  ///
  /// - Parameters:
  ///   - key: The key to update.
  ///   - body: The update.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: What `body` returns, or nil if the key is absent.
  /// - Complexity: O(1) on average, plus `body`.
  @inlinable @discardableResult
  public func update<Result>(
    forKey key: Key, _ body: (inout Value) -> Result, fileID: StaticString = #fileID, line: UInt = #line
  ) -> Result? {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    guard var modification = storage.beginModificationIfPresent(forKey: key, at: site) else { return nil }
    var value = modification.takeValue()
    defer { storage.endModification(forKey: key, modification, publishing: value, at: site) }
    return body(&value)
  }

  /// Applies `body` to the value for `key` (or `defaultValue` when absent, which then inserts
  /// the key) as one atomic read-modify-write, and returns what `body` returns.
  ///
  /// The compound operation a concurrent map needs outside transactions:
  ///
  /// ```swift
  /// let total = balances.update(forKey: "alice", default: 0) { $0 += 10; return $0 }
  /// ```
  ///
  /// Outside a transaction `body` runs while the key's cell is held: it must not touch other
  /// transactional data (that traps), and must not wait for a thread that may be using this
  /// dictionary. Until it returns, other updates of the key wait, and so may reads of it,
  /// removals and growth in the key's part of the index, and a transaction becoming
  /// inevitable. Inside a transaction `body` may use anything but `key` in this dictionary
  /// (that traps, as a `Dictionary` does when its value is accessed during its own mutation).
  /// If `body` throws, nothing changes, inside a transaction not even what `body` wrote
  /// elsewhere before it threw. A `body` that
  /// cannot throw works on the value where it is, as ``subscript(_:default:fileID:line:)``
  /// does (appending to an array costs O(1)); one that can throw works on a copy.
  ///
  /// Conflicts: as a read and a write of ``subscript(_:fileID:line:)``.
  ///
  /// - Parameters:
  ///   - key: The key to update.
  ///   - defaultValue: The value to start from when the key is absent.
  ///   - body: The update.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: What `body` returns.
  /// - Throws: What `body` throws.
  /// - Complexity: O(1) on average, plus `body`.
  @inlinable
  public func update<Result, Failure: Error>(
    forKey key: Key, default defaultValue: @autoclosure () -> Value,
    _ body: (inout Value) throws(Failure) -> Result, fileID: StaticString = #fileID, line: UInt = #line
  ) throws(Failure) -> Result {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    if Failure.self == Never.self {
      // A body that cannot throw works on the value where it is, as `subscript(_:default:)`
      // does (one that can must leave the value untouched when it throws, so it gets a copy).
      var modification = storage.beginModification(forKey: key, default: defaultValue, at: site)
      var value = modification.takeValue()
      defer { storage.endModification(forKey: key, modification, publishing: value, at: site) }
      return try body(&value)
    }
    // Inside a transaction the body may write other data before it throws (other keys, other
    // variables): the update runs as a part of its own, rolled back whole when the body
    // throws, as `merge` does for its `combine`. What the body wrote elsewhere stayed (found
    // by review).
    if Transaction._currentChecked != nil {
      return try _singleOperation(at: site) { (_: Transaction) throws(Failure) in
        try updateCopy(forKey: key, default: defaultValue(), body, at: site)
      }
    }
    return try updateCopy(forKey: key, default: defaultValue(), body, at: site)
  }

  /// `update(forKey:default:_:)` with a `body` that can throw, on a copy of the value; nothing
  /// changes in the key if it throws.
  @inlinable
  func updateCopy<Result, Failure: Error>(
    forKey key: Key, default defaultValue: @autoclosure () -> Value, _ body: (inout Value) throws(Failure) -> Result,
    at site: _CallSite
  ) throws(Failure) -> Result {
    // The default is computed between two passes, with nothing held (see `beginModification`):
    // a first pass that finds the key absent lets go at once.
    var fallback: Value?
    // The body's copy when it throws, let go of once the update has: outside a transaction the
    // closure below runs while the update holds the key's cell, and a deinit of what the body
    // put in the copy ran there, and trapped if it used transactional data (found by review).
    var abandoned: Value?
    defer { _ = abandoned }
    while true {
      let outcome = try storage.update(forKey: key, at: site, runsUsersCode: true) {
        (current: inout Value?) throws(Failure) -> (changed: Bool, result: Result?) in
        guard var value = current ?? fallback else { return (false, nil) }
        let result: Result
        do throws(Failure) {
          result = try body(&value)
        } catch {
          abandoned = consume value
          throw error
        }
        current = value
        return (true, result)
      }
      if let outcome { return outcome }
      fallback = defaultValue()
    }
  }

  /// Inserts `value` for `key` if the key is absent; returns whether it inserted, and the value
  /// now stored (the existing one when it did not).
  ///
  /// Conflicts: reads the key; when it inserts, as a write of ``subscript(_:fileID:line:)``.
  ///
  /// - Parameters:
  ///   - value: The value to insert.
  ///   - key: The key to insert it under.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Returns: `inserted`, and the value stored for `key` afterwards.
  /// - Complexity: O(1) on average.
  @inlinable @discardableResult
  public func insertIfAbsent(
    _ value: Value, forKey key: Key, fileID: StaticString = #fileID, line: UInt = #line
  ) -> (inserted: Bool, value: Value) {
    storage.update(forKey: key, at: _CallSite(fileID: fileID, line: line, owner: self)) { current in
      if let existing = current { return (false, (false, existing)) }
      current = value
      return (true, (true, value))
    }
  }

  // MARK: Whole-dictionary operations

  /// The number of keys.
  ///
  /// Conflicts: with transactions that insert or remove a key; not with updates of values, and
  /// inserts do not conflict with each other through it.
  ///
  /// - Complexity: O(*s*) for *s* engine segments.
  @inlinable
  public var count: Int { storage.count.value(at: .unknown(in: self)) }

  /// Whether the dictionary has no keys.
  ///
  /// Conflicts: inside a transaction, when some key is present, only with transactions that
  /// write that one key (the first it finds), whose removal is all that can make the answer
  /// wrong: inserts and removals of other keys do not conflict with it. When no key is present, with
  /// transactions that insert or remove a key, as ``count``.
  ///
  /// - Complexity: outside a transaction, O(*s*) for *s* engine segments. Inside one, a search
  ///   for a present key: O(1) on average while most of the index holds present keys, up to
  ///   the index's capacity when few are present.
  @inlinable
  public var isEmpty: Bool { storage.isEmpty(at: .unknown(in: self)) }

  /// The contents as a standard `Dictionary`: one consistent snapshot.
  ///
  /// Outside a transaction this is one read at a snapshot, which never aborts, however busy
  /// the writers are.
  ///
  /// Conflicts: with transactions that insert or remove a key, or write a value of this one.
  ///
  /// - Complexity: O(*n* + *e*) for *n* keys and *e* empty cells (see ``TDictionary``).
  @inlinable
  public var dictionary: [Key: Value] {
    let pairs = storage.snapshot(at: .unknown(in: self))
    var result: [Key: Value] = [:]
    result.reserveCapacity(pairs.count)
    for (key, value) in pairs { result[key] = value }
    return result
  }

  /// The keys and values of one consistent snapshot that satisfy `isIncluded`, as a standard
  /// `Dictionary`, as `Dictionary.filter(_:)` returns (the sequence's `filter` returns an
  /// array of pairs; it is still there where the context asks for one).
  ///
  /// Conflicts: as ``dictionary``.
  ///
  /// - Parameter isIncluded: Whether a key and its value go into the result. It runs once the
  ///   snapshot has been read.
  /// - Returns: The pairs that `isIncluded` accepted.
  /// - Throws: What `isIncluded` throws.
  /// - Complexity: O(*n* + *e*) for *n* keys and *e* empty cells (see ``TDictionary``).
  @inlinable
  public func filter(_ isIncluded: ((key: Key, value: Value)) throws -> Bool) rethrows -> [Key: Value] {
    var result: [Key: Value] = [:]
    for pair in storage.snapshot(at: .unknown(in: self)) where try isIncluded(pair) { result[pair.key] = pair.value }
    return result
  }

  /// The keys of one consistent snapshot with their values transformed, as a standard
  /// `Dictionary`, as `Dictionary.mapValues(_:)` returns.
  ///
  /// Conflicts: as ``dictionary``.
  ///
  /// - Parameter transform: Given a value, the value to put in the result. It runs once the
  ///   snapshot has been read.
  /// - Returns: Each key with its transformed value.
  /// - Throws: What `transform` throws.
  /// - Complexity: O(*n* + *e*) for *n* keys and *e* empty cells (see ``TDictionary``).
  @inlinable
  public func mapValues<Transformed, Failure: Error>(
    _ transform: (Value) throws(Failure) -> Transformed
  ) throws(Failure) -> [Key: Transformed] {
    let pairs = storage.snapshot(at: .unknown(in: self))
    var result: [Key: Transformed] = [:]
    result.reserveCapacity(pairs.count)
    for (key, value) in pairs { result[key] = try transform(value) }
    return result
  }

  /// The keys, from one consistent snapshot, in no particular order.
  ///
  /// Conflicts: as ``dictionary``.
  ///
  /// - Complexity: O(*n* + *e*) for *n* keys and *e* empty cells (see ``TDictionary``).
  @inlinable
  public var keys: [Key] { storage.snapshot(at: .unknown(in: self)).map(\.key) }

  /// The values, from one consistent snapshot, in no particular order.
  ///
  /// Conflicts: as ``dictionary``.
  ///
  /// - Complexity: O(*n* + *e*) for *n* keys and *e* empty cells (see ``TDictionary``).
  @inlinable
  public var values: [Value] { storage.snapshot(at: .unknown(in: self)).map(\.value) }

  /// Merges `other` into the dictionary, as one atomic step, using `combine` for keys present
  /// in both. A ``TArray`` of pairs is read in the same step.
  ///
  /// Conflicts: as a write of every key of `other`; with a `TArray` as `other`, also as a
  /// read of the whole of it.
  ///
  /// - Parameters:
  ///   - other: The keys and values to merge in.
  ///   - combine: Given the current and the new value, the value to keep. It must not use the
  ///     key it combines for (that traps).
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: What `combine` throws; then nothing changes.
  /// - Complexity: O(*m*) for *m* keys in `other`.
  @inlinable
  public func merge<S: Sequence, Failure: Error>(
    _ other: S, uniquingKeysWith combine: (Value, Value) throws(Failure) -> Value,
    fileID: StaticString = #fileID, line: UInt = #line
  ) throws(Failure) where S.Element == (Key, Value) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    // A collection of this library (a `TArray` of pairs) is read in the merge's own step (see
    // `_TransactionalSequence`).
    if Transaction._currentChecked == nil, other is any _TransactionalSequence {
      try _singleOperation(at: site) { (_: Transaction) throws(Failure) in
        try merge(other, uniquingKeysWith: combine, fileID: fileID, line: line)
      }
      return
    }
    // Read before the transaction: a rerun would find a single-pass sequence used up.
    let pairs = Array(other)
    try _singleOperation(at: site) { (_: Transaction) throws(Failure) in
      for (key, value) in pairs {
        try storage.update(forKey: key, at: site, runsUsersCode: true) { (current: inout Value?) throws(Failure) -> (changed: Bool, result: Void) in
          current = try current.map { (existing: Value) throws(Failure) in try combine(existing, value) } ?? value
          return (true, ())
        }
      }
    }
  }

  /// Merges `other` into the dictionary, as one atomic step, using `combine` for keys present
  /// in both.
  ///
  /// Conflicts: as a write of every key of `other`.
  ///
  /// - Parameters:
  ///   - other: The dictionary to merge in.
  ///   - combine: Given the current and the new value, the value to keep. It must not use the
  ///     key it combines for (that traps).
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: What `combine` throws; then nothing changes.
  /// - Complexity: O(*m*) for *m* keys in `other`.
  @inlinable
  public func merge<Failure: Error>(
    _ other: [Key: Value], uniquingKeysWith combine: (Value, Value) throws(Failure) -> Value,
    fileID: StaticString = #fileID, line: UInt = #line
  ) throws(Failure) {
    try merge(other.lazy.map { ($0.key, $0.value) }, uniquingKeysWith: combine, fileID: fileID, line: line)
  }

  /// Merges the keys and values of another transactional dictionary into this one, as one
  /// atomic step: `other` is read in the same transaction, so the merge sees it whole, with no
  /// other thread's change in between.
  ///
  /// Conflicts: as a read of the whole of `other` (see ``dictionary``) and a write of every
  /// key of it here.
  ///
  /// - Parameters:
  ///   - other: The dictionary to merge in; it does not change.
  ///   - combine: Given the current and the new value, the value to keep. It must not use the
  ///     key it combines for (that traps).
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: What `combine` throws; then nothing changes.
  /// - Complexity: O(*m*) for *m* keys in `other`.
  @inlinable
  public func merge<Failure: Error>(
    _ other: TDictionary<Key, Value>, uniquingKeysWith combine: (Value, Value) throws(Failure) -> Value,
    fileID: StaticString = #fileID, line: UInt = #line
  ) throws(Failure) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    try _singleOperation(at: site) { (_: Transaction) throws(Failure) in
      let pairs = other.storage.snapshot(at: site).lazy.map { ($0.key, $0.value) }
      try merge(pairs, uniquingKeysWith: combine, fileID: fileID, line: line)
    }
  }

  /// Removes every key, as one atomic step.
  ///
  /// Conflicts: it reads every key first, as ``dictionary`` does, so it conflicts with
  /// transactions that insert or remove any key or write any value; then as a removal of every
  /// key that was present.
  ///
  /// - Parameters:
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Complexity: O(*n* + *e*) for *n* keys and *e* empty cells (see ``TDictionary``).
  @inlinable
  public func removeAll(fileID: StaticString = #fileID, line: UInt = #line) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    _singleOperation(at: site) { transaction in
      var unequalKeys = false
      for (key, _) in storage.snapshot(at: site) {
        // A key that does not equal itself (`Double.nan`) cannot be looked up: removed below.
        guard _KeyHash.equal(key, key) else {
          unequalKeys = true
          continue
        }
        removeValue(forKey: key, fileID: fileID, line: line)
      }
      if unequalKeys { storage.removeKeysUnequalToThemselves(in: transaction, at: site) }
    }
  }

  /// Removes every key whose key-value pair `shouldBeRemoved` accepts, as one atomic step: a
  /// shared cache's eviction, say, with no other thread's change between the test of a key and
  /// its removal.
  ///
  /// Conflicts: it reads every key first, as ``dictionary`` does, so it conflicts with
  /// transactions that insert or remove any key or write any value; then as a removal of each
  /// key it removes.
  ///
  /// - Parameters:
  ///   - shouldBeRemoved: Given a key and its value, whether to remove the key. It runs inside
  ///     the step, once for each key before any is removed (and again if the step reruns), and
  ///     may read transactional data there.
  ///   - fileID: The call's file, for the ``ConflictLog``; leave the default.
  ///   - line: The call's line, for the ``ConflictLog``; leave the default.
  /// - Throws: What `shouldBeRemoved` throws; then nothing is removed.
  /// - Complexity: O(*n* + *e*) for *n* keys and *e* empty cells (see ``TDictionary``).
  @inlinable
  public func removeAll<Failure: Error>(
    where shouldBeRemoved: ((key: Key, value: Value)) throws(Failure) -> Bool,
    fileID: StaticString = #fileID, line: UInt = #line
  ) throws(Failure) {
    let site = _CallSite(fileID: fileID, line: line, owner: self)
    // Throwing, the step rolls back on its own, inside a transaction too (to a checkpoint).
    try _singleOperation(at: site) { (transaction: Transaction) throws(Failure) in
      var doomed: [Key] = [], unequalKeys = false
      for pair in storage.snapshot(at: site) {
        // A key that does not equal itself (`Double.nan`) cannot be looked up: tested and
        // removed through its cell, below.
        guard _KeyHash.equal(pair.key, pair.key) else {
          unequalKeys = true
          continue
        }
        if try shouldBeRemoved(pair) { doomed.append(pair.key) }
      }
      // Tested too before anything is removed, so that every test sees the whole dictionary.
      if unequalKeys {
        try storage.removeKeysUnequalToThemselves(in: transaction, at: site) { (key, value) throws(Failure) in
          try shouldBeRemoved((key, value))
        }
      }
      for key in doomed { removeValue(forKey: key, fileID: fileID, line: line) }
    }
  }
}
