extension ConflictReport {
  /// One kind of conflict between two places in the code: every abort and pause of that kind
  /// that a transaction started at ``location``, accessing an object at ``accessLocation``,
  /// suffered because of one started at ``conflictingLocation``, accessing it at
  /// ``conflictingAccessLocation``; with the objects involved.
  public struct Conflict: Sendable, Hashable {
    /// The kind and the four locations, which make events part of this conflict.
    let key: ConflictKey
    /// The contention kind of every event in this conflict.
    public var kind: ContentionKind { key.kind }
    /// The `atomically` call of the transaction that lost time; nil for a single operation
    /// outside `atomically`.
    public var location: CodeLocation? { key.location }
    /// The `atomically` call of the transaction on the other side; nil for a single operation
    /// outside `atomically`, or when unknown.
    public var conflictingLocation: CodeLocation? { key.conflictingLocation }
    /// Where the transaction that lost time accessed the object (see
    /// ``ConflictEvent/accessLocation``).
    public var accessLocation: CodeLocation? { key.accessLocation }
    /// Where the other side accessed the object (see ``ConflictEvent/conflictingAccessLocation``).
    public var conflictingAccessLocation: CodeLocation? { key.conflictingAccessLocation }
    /// How many times the transaction rolled back and reran.
    public internal(set) var aborts = 0
    /// How many times the transaction waited.
    public internal(set) var pauses = 0
    /// The time the aborted attempts had run, summed over threads.
    public internal(set) var secondsLostInAborts = 0.0
    /// The time spent waiting, summed over threads.
    public internal(set) var secondsPaused = 0.0
    /// How many of the aborts and pauses were on each object, by its description
    /// (see ``ConflictEvent/object``). Empty for conflicts over no object.
    public internal(set) var objects: [String: Int] = [:]

    init(_ key: ConflictKey) {
      self.key = key
    }

    mutating func add(_ event: ConflictEvent) {
      if event.outcome == .abort {
        aborts += 1
        secondsLostInAborts += event.seconds
      } else {
        pauses += 1
        secondsPaused += event.seconds
      }
      if let object = event.object { objects[object, default: 0] += 1 }
    }

    /// Time lost in aborts and pauses together: what the ranking sorts by.
    public var secondsLost: Double { secondsLostInAborts + secondsPaused }

    /// The objects, most conflicts first (ties by description).
    public var objectsByCount: [(object: String, count: Int)] {
      objects.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The usual fix for this kind of conflict.
    public var hint: String { Self.hint(for: kind, aborted: aborts > 0) }

    /// The usual fix for conflicts of `kind` that caused aborts (`aborted`) or only pauses.
    ///
    /// - Parameters:
    ///   - kind: The contention kind.
    ///   - aborted: Whether the conflicts made transactions abort, or only pause.
    /// - Returns: One or two sentences of advice.
    public static func hint(for kind: ContentionKind, aborted: Bool) -> String {
      if kind == .writeWrite && !aborted {
        return "Commits of the same cell waited for each other: one hot cell publishes one commit at a time, even for commutative updates. Spread the updates over cells (per-thread or per-key counters summed when read, a TDictionary keyed by what varies)."
      }
      // A read that only waited was made stale by nothing: the abort's advice did not fit it
      // (found by review).
      if kind == .writeRead && !aborted {
        return "Reads waited for commits of the cell they read to finish: the cell is written often while others read it. Spread the writes over cells (a TCounter, or a TDictionary keyed by what varies), or read the hot value less often."
      }
      return switch kind {
      case .writeRead:
        "Another transaction changed something this one had read. If both update a count or a total, make it a TCounter or use TVar.commute (commutative updates never conflict); if they touch different parts of one shared value, keep them in a TDictionary or TArray, whose conflicts are per key and per index; keep long read-only scans out of transactions that write."
      case .writeWrite:
        "Both transactions wrote the same cell. For a counter use TCounter or TVar.commute; for a list or a queue use TArray.append or an unbounded TQueue's enqueue, delayed appends that never conflict; otherwise give each transaction its own key."
      case .inevitable:
        "The inevitable transaction was in the way: while one is inevitable, every writer waits for it. Avoid becomeInevitable(); put I/O in Transaction.afterCommit, which keeps the transaction parallel. Frequent escalations mean a transaction keeps losing the same conflict: fix that conflict first."
      case .freeSegment:
        "More threads ran transactions at once than the engine has segments. Raise TransactionEngine.configure(segmentCount:), or run fewer threads."
      }
    }
  }
}
