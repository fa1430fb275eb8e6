extension _MapStorage {
  /// Tells the conflict log (if it records) that the operation at `site` is about to access
  /// the cells that may hold `key` at the running transaction's snapshot.
  @inlinable @inline(__always)
  static func note(
    _ kind: _AccessKind, _ current: _KeyIndex<Key, Value>.Slot, _ retired: [_KeyIndex<Key, Value>.Slot],
    at site: _CallSite, key: Key
  ) {
    current._noteAccess(kind, at: site, as: .key(key))
    // A retired cell is only read: the key's writes go to the current one.
    guard !retired.isEmpty, ConflictLog._isRecording else { return }
    for slot in retired { slot._noteAccess(.read, at: site, as: .key(key)) }
  }
}
