// Each collection encodes one consistent snapshot of its contents, in the form the standard
// collection it stands for encodes, so that data written by either decodes as the other; and
// decodes into a new collection, made as its `init(_:)` makes one. Encoding a live collection
// reads it as its snapshot property does: outside a transaction, one read at a snapshot;
// inside one, as part of it. Collections and variables nested in it are encoded after that
// read, each by a read of its own outside a transaction: encoding inside one `atomically`
// block reads them all at one snapshot (found by review).

extension TDictionary: Encodable where Key: Encodable, Value: Encodable {
  /// Encodes one consistent snapshot of the key-value pairs, as `Dictionary` encodes them (in
  /// a keyed container for `String` and `Int` keys, else as alternating keys and values).
  /// Values that are collections or variables of this library are encoded from a read of
  /// their own, after that snapshot, unless the encoding runs inside
  /// ``atomically(_:fileID:line:)-88o9x``, where everything is read at the transaction's
  /// snapshot.
  ///
  /// Conflicts: as ``dictionary``.
  ///
  /// - Parameter encoder: The encoder to write to.
  /// - Throws: What `encoder` throws.
  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(dictionary)
  }
}

extension TDictionary: Decodable where Key: Decodable, Value: Decodable {
  /// Creates a dictionary holding the pairs that a `Dictionary` decodes from `decoder`, made
  /// without a transaction, as ``init(_:)`` makes one.
  ///
  /// - Parameter decoder: The decoder to read from.
  /// - Throws: What decoding a `Dictionary` throws; then no dictionary is made.
  public convenience init(from decoder: any Decoder) throws {
    self.init(try decoder.singleValueContainer().decode([Key: Value].self))
  }
}

extension TSet: Encodable where Element: Encodable {
  /// Encodes one consistent snapshot of the elements, as `Set` encodes them (in an unkeyed
  /// container, in no particular order). Inside ``atomically(_:fileID:line:)-88o9x`` the
  /// snapshot is the transaction's.
  ///
  /// Conflicts: as ``elements``.
  ///
  /// - Parameter encoder: The encoder to write to.
  /// - Throws: What `encoder` throws.
  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(elements)
  }
}

extension TSet: Decodable where Element: Decodable {
  /// Creates a set holding the elements that a `Set` decodes from `decoder`, made without a
  /// transaction, as ``init(_:)`` makes one.
  ///
  /// - Parameter decoder: The decoder to read from.
  /// - Throws: What decoding a `Set` throws; then no set is made.
  public convenience init(from decoder: any Decoder) throws {
    self.init(try decoder.singleValueContainer().decode(Set<Element>.self))
  }
}

extension TArray: Encodable where Element: Encodable {
  /// Encodes one consistent snapshot of the elements, in order, as `Array` encodes them.
  /// Elements that are collections or variables of this library are encoded from a read of
  /// their own, after that snapshot, unless the encoding runs inside
  /// ``atomically(_:fileID:line:)-88o9x``, where everything is read at the transaction's
  /// snapshot.
  ///
  /// Conflicts: as ``elements``.
  ///
  /// - Parameter encoder: The encoder to write to.
  /// - Throws: What `encoder` throws.
  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(elements)
  }
}

extension TArray: Decodable where Element: Decodable {
  /// Creates an array holding the elements that an `Array` decodes from `decoder`, made
  /// without a transaction, as ``init(_:)`` makes one.
  ///
  /// - Parameter decoder: The decoder to read from.
  /// - Throws: What decoding an `Array` throws; then no array is made.
  public convenience init(from decoder: any Decoder) throws {
    self.init(try decoder.singleValueContainer().decode([Element].self))
  }
}

extension TCounter: Codable {
  /// Encodes the counter's value, as an `Int` encodes.
  ///
  /// Conflicts: as ``value``.
  ///
  /// - Parameter encoder: The encoder to write to.
  /// - Throws: What `encoder` throws.
  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(value)
  }

  /// Creates a counter holding the `Int` that `decoder` holds.
  ///
  /// - Parameter decoder: The decoder to read from.
  /// - Throws: What decoding an `Int` throws; then no counter is made.
  public convenience init(from decoder: any Decoder) throws {
    self.init(try decoder.singleValueContainer().decode(Int.self))
  }
}
