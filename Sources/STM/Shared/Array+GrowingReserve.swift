extension Array {
  /// Makes room for `count` more elements, at least doubling the storage when it must grow.
  ///
  /// `reserveCapacity(self.count + count)`, called once per step of a loop that appends,
  /// grows the storage to the exact size asked for each time, so every step copies the whole
  /// array: reading a `TDictionary` of 8,192 keys whole spent a third of its instructions
  /// copying the array of cells it gathers, one reservation per stripe of the index.
  @inlinable
  mutating func reserveCapacity(forAppending count: Int) {
    let needed = self.count + count
    if needed > capacity { reserveCapacity(Swift.max(needed, 2 * capacity)) }
  }
}
