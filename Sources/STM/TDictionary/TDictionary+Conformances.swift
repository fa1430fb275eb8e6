extension TDictionary: ExpressibleByDictionaryLiteral {
  /// Creates a dictionary from a literal; a repeated key traps, as for `Dictionary`.
  public convenience init(dictionaryLiteral elements: (Key, Value)...) {
    self.init(Dictionary(uniqueKeysWithValues: elements))
  }
}

extension TDictionary: Sequence {
  /// Iterates over one consistent snapshot of the key-value pairs, taken when iteration starts.
  ///
  /// Outside a transaction the snapshot is a read-only transaction, which never aborts, so
  /// iterating never starves under concurrent writers. Inside one it joins the transaction.
  ///
  /// Conflicts: as ``dictionary``.
  public func makeIterator() -> IndexingIterator<[(key: Key, value: Value)]> {
    storage.snapshot(at: .unknown(in: self)).makeIterator()
  }

  /// The number of keys (a hint for `Array(dictionary)`): as ``count``.
  public var underestimatedCount: Int { count }
}

extension TDictionary: CustomStringConvertible {
  /// The contents of one snapshot, written like a `Dictionary`.
  public var description: String { "TDictionary(\(dictionary))" }
}
