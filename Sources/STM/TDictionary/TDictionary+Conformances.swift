extension TDictionary: ExpressibleByDictionaryLiteral {
  /// Creates a dictionary from a literal; a repeated key traps, as for `Dictionary`.
  ///
  /// - Parameter elements: The key-value pairs.
  public convenience init(dictionaryLiteral elements: (Key, Value)...) {
    self.init(Dictionary(uniqueKeysWithValues: elements))
  }
}

extension TDictionary: Sequence {
  /// Iterates over one consistent snapshot of the key-value pairs, taken when iteration starts.
  ///
  /// Outside a transaction the snapshot is taken by one read, which never aborts, so
  /// iterating never starves under concurrent writers. Inside one it joins the transaction.
  ///
  /// Conflicts: as ``dictionary``.
  @inlinable
  public func makeIterator() -> IndexingIterator<[(key: Key, value: Value)]> {
    storage.snapshot(at: .unknown(in: self)).makeIterator()
  }

  /// A lower bound on the number of pairs iteration yields (a hint for `Array(dictionary)` and
  /// `map`): inside a transaction, ``count``, which iteration's snapshot agrees with; outside
  /// one, 0, since iteration then takes a snapshot of its own, later than any count read
  /// before it, and `map` trusts the hint (a key removed in between would make it trap).
  ///
  /// Conflicts: inside a transaction, as ``count``; outside, none.
  public var underestimatedCount: Int { Transaction._currentChecked == nil ? 0 : count }
}

extension TDictionary: CustomStringConvertible {
  /// The contents of one snapshot, written like a `Dictionary`.
  ///
  /// Conflicts: as ``dictionary``; printing the dictionary inside a transaction reads all of it.
  public var description: String { "TDictionary(\(dictionary))" }
}
