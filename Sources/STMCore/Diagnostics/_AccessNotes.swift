/// The public call that accesses a cell, as the conflict log names it: where it is in the
/// caller's source, and which collection it belongs to.
///
/// Built by every public operation (from its `fileID` and `line` arguments) and passed down to
/// where the collection touches its cells. It is only read while the conflict log records:
/// with recording off it is dead code once the operation is inlined.
@usableFromInline
package struct _CallSite {
  @usableFromInline package let fileID: StaticString
  /// 0 for an access whose caller is not known (a property, which cannot take a location).
  @usableFromInline package let line: UInt
  /// The collection (only its type is used); nil for a `TVar` used directly.
  @usableFromInline let owner: Unmanaged<AnyObject>?

  @inlinable
  package init(fileID: StaticString, line: UInt, owner: AnyObject? = nil) {
    self.fileID = fileID
    self.line = line
    self.owner = owner.map { Unmanaged.passUnretained($0) }
  }

  /// An access from a caller whose location is not known (a property, which cannot take
  /// one): the conflict log shows the `atomically` call instead.
  @inlinable
  package static func unknown(in owner: AnyObject? = nil) -> _CallSite {
    _CallSite(fileID: "", line: 0, owner: owner)
  }
}

/// How a public operation uses a cell.
@usableFromInline
package enum _AccessKind {
  case read, write, readWrite

  @usableFromInline var reads: Bool { self != .write }
  @usableFromInline var writes: Bool { self != .read }
}

/// Which part of its collection a cell is, for the conflict log's description of it.
@usableFromInline
package enum _ConflictPart {
  /// The whole object: a `TCounter`, or a `TVar` used directly.
  case whole
  /// The cell of one key or index, described as the key's `debugDescription`.
  case key(Any)
  /// A cell of the collection's own bookkeeping: `count`, a queue's `head`.
  case named(StaticString)
}

/// What the running transaction (or single operation) on a thread did to one cell, as far as
/// the public operations told the conflict log: the object it is, and where it was first read
/// and last written.
struct _AccessNote {
  /// Retained, so that the cell's identity stays its own while the note exists.
  let cell: _Cell
  var owner: Any.Type?
  var part: _ConflictPart = .whole
  /// Location number of the first read (0: none noted).
  var read: UInt32 = 0
  /// Location number of the latest write (0: none noted).
  var write: UInt32 = 0

  /// `TDictionary<String, Int>["alice"]`, `TQueue<Job> head`, `TCounter`, `TVar<Int>`.
  var objectDescription: String {
    guard let owner else { return cell.variableDescription }
    return switch part {
    case .whole: "\(owner)"
    case .key(let key): "\(owner)[\(String(reflecting: key))]"
    case .named(let name): "\(owner) \(name)"
    }
  }
}

/// The conflict log's per-thread state: caches of interned numbers, and the notes of the
/// running transaction or single operation. Only the owning thread touches it; the notes are
/// filled only while the log records and emptied when the transaction or operation ends.
struct _ThreadDiagnostics {
  var locationNumbers: [_SiteKey: UInt32] = [:]
  var siteNumbers: [UInt64: UInt32] = [:]
  /// The location number of the running transaction's `atomically` call (0 outside one).
  var transactionLocation: UInt32 = 0
  var notes: [ObjectIdentifier: _AccessNote] = [:]

  /// Takes out the notes of the transaction or operation that is ending (nil when it noted
  /// nothing, as whenever the log is off), for `_ThreadContext.letGo(ofNotes:)` once the
  /// thread holds no segment and no lock. A note may hold a key's last reference (a key made
  /// for one lookup), whose deinit is the user's code: run while the thread still held the
  /// ended attempt's segment, a transaction it ran joined that attempt, and its writes were
  /// lost (found by review).
  @inline(__always)
  mutating func takeAccesses() -> [ObjectIdentifier: _AccessNote]? {
    guard !notes.isEmpty else { return nil }
    var taken: [ObjectIdentifier: _AccessNote] = [:]
    swap(&taken, &notes)
    return taken
  }

  /// The most notes whose room the table keeps between transactions: enough for a
  /// transaction's usual accesses, about 70 KB. One recorded transaction that touched 200,000
  /// cells left its thread a table of 28 MB for the thread's lifetime (found by review).
  static let notesKeptRoom = 1_024

  /// The location of `cell`'s read (`reading`) or write by the running transaction.
  func accessLocation(of cell: _Cell, reading: Bool) -> UInt32 {
    guard let note = notes[ObjectIdentifier(cell)] else { return 0 }
    return reading ? note.read : note.write
  }

  /// The description of `cell`, as the running transaction's operations named it.
  func objectDescription(of cell: _Cell) -> String {
    notes[ObjectIdentifier(cell)]?.objectDescription ?? cell.variableDescription
  }
}

extension _ThreadContext {
  /// Lets go of the notes `_ThreadDiagnostics.takeAccesses()` took out, once the thread holds
  /// no segment and no lock, and gives their emptied table back to keep its room, if it is
  /// small and the thread's table has less (a transaction a key's deinit ran meanwhile may
  /// have made one).
  @inline(never)
  func letGo(ofNotes taken: consuming [ObjectIdentifier: _AccessNote]) {
    var notes = taken
    let keepsRoom = notes.capacity <= _ThreadDiagnostics.notesKeptRoom
    notes.removeAll(keepingCapacity: keepsRoom)
    if keepsRoom && diagnostics.notes.isEmpty && diagnostics.notes.capacity < notes.capacity { diagnostics.notes = notes }
  }
}

extension TVar {
  /// Tells the conflict log, if it records, that the operation at `site` is about to access
  /// this variable as `part` of its collection.
  ///
  /// Off, this is one relaxed load and a branch: the arguments are not even built.
  @inlinable @inline(__always)
  package func _noteAccess(_ kind: _AccessKind, at site: _CallSite, as part: @autoclosure () -> _ConflictPart = .whole) {
    if _ConflictRecorder.isRecording { _ConflictRecorder.note(kind, of: cell, at: site, as: part()) }
  }

  /// The variable, after ``_noteAccess(_:at:as:)``: for accesses written as one expression.
  @inlinable @inline(__always)
  package func _noted(_ kind: _AccessKind, at site: _CallSite, as part: @autoclosure () -> _ConflictPart = .whole) -> TVar {
    _noteAccess(kind, at: site, as: part())
    return self
  }

  /// The variable's value, after ``_noteAccess(_:at:as:)``: `_noted(kind, at: site).value`
  /// without the copy of the variable that `_noted` hands back, which retained and released
  /// its cell. Those are atomic read-modify-writes on the cell's first line, which every
  /// reader of the cell loads: on a cell that every thread reads (a queue's `closed` flag and
  /// capacity, an array's count, a counter), each read moved that line between the cores.
  @inlinable @inline(__always)
  package func _notedValue(_ kind: _AccessKind, at site: _CallSite, as part: @autoclosure () -> _ConflictPart = .whole) -> Value {
    _noteAccess(kind, at: site, as: part())
    return value
  }
}

extension _TypedCell {
  /// `TVar._noteAccess(_:at:as:)` for a collection that holds the cell unretained: making a
  /// `TVar` of it retained it.
  @inlinable @inline(__always)
  package final func _noteAccess(_ kind: _AccessKind, at site: _CallSite, as part: @autoclosure () -> _ConflictPart) {
    if _ConflictRecorder.isRecording { _ConflictRecorder.note(kind, of: self, at: site, as: part()) }
  }
}

extension _KeyedCell {
  /// The cell, after telling the conflict log (if it records) that the operation at `site` is
  /// about to access it: `TVar._noteAccess` for an index's cell, which names its own key.
  @inlinable @inline(__always)
  package func _noted(_ kind: _AccessKind, at site: _CallSite) -> Self {
    _noteAccess(kind, at: site)
    return self
  }

  /// `_noted(_:at:)` without handing the cell back: a caller that holds the cell unretained
  /// would otherwise retain the returned reference and release it again.
  @inlinable @inline(__always)
  package func _noteAccess(_ kind: _AccessKind, at site: _CallSite) {
    if _ConflictRecorder.isRecording { _ConflictRecorder.note(kind, of: self, at: site, as: .key(key)) }
  }
}

extension _ConflictRecorder {
  /// The slow half of `TVar._noteAccess`, while recording.
  @usableFromInline
  static func note(_ kind: _AccessKind, of cell: _Cell, at site: _CallSite, as part: _ConflictPart) {
    let context = _ThreadContext.current
    let location = _ConflictSites.shared.location(fileID: site.fileID, line: site.line, context: context)
    let key = ObjectIdentifier(cell)
    var note = context.diagnostics.notes[key] ?? _AccessNote(cell: cell)
    if let owner = site.owner {
      note.owner = type(of: owner.takeUnretainedValue())
      note.part = part
    }
    if location != 0 {
      if kind.reads && note.read == 0 { note.read = location }
      if kind.writes { note.write = location }
    }
    context.diagnostics.notes[key] = note
  }
}

extension ConflictLog {
  /// ``isRecording``, for collections that test the switch once before noting many cells.
  @inlinable
  package static var _isRecording: Bool { _ConflictRecorder.isRecording }
}
