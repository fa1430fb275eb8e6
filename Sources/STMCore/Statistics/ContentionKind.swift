/// Why a transaction lost time: the kind of contention behind an abort or a pause.
///
/// The names follow PyPy-STM's contention kinds. Every abort and every pause the engine counts
/// in ``TransactionStatistics`` carries one of these kinds.
public enum ContentionKind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
  /// Two transactions wrote the same cell.
  ///
  /// As an abort: a cell this transaction wrote (without reading it) was committed by another
  /// transaction after this one's snapshot, or a collection retired it meanwhile (the cell of a
  /// key that was absent, taken out of the map's index; the rerun finds the key's current
  /// cell). As a pause: this transaction's commit waited for another commit that was publishing
  /// a cell both write.
  case writeWrite
  /// Another transaction's commit made a read stale.
  ///
  /// As an abort: a cell this transaction read was committed by another transaction after this
  /// one's snapshot, or a collection retired it meanwhile (as for ``writeWrite``). As a pause: a read waited, briefly, for a commit that was publishing the
  /// version the read must see.
  case writeRead
  /// The inevitable transaction was in the way.
  ///
  /// As an abort: the cell that made this transaction's read stale was written by the
  /// inevitable transaction. As a pause: this transaction waited to commit, or to become
  /// inevitable itself, while another transaction was inevitable.
  case inevitable
  /// Pause only: every segment was busy, so the transaction waited for one to start.
  case freeSegment

  /// The kind's short name, as statistics and conflict reports print it (`write-read`).
  public var description: String {
    switch self {
    case .writeWrite: "write-write"
    case .writeRead: "write-read"
    case .inevitable: "inevitable"
    case .freeSegment: "wait for free segment"
    }
  }
}
