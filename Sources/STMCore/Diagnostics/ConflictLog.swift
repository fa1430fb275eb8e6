import Foundation

/// Records every abort and pause with where it came from, so that contention can be found and
/// fixed: the contention kind, the time it cost, what the two sides collided on (a dictionary
/// key, an array index, a variable), and for each side its `atomically` call and the line
/// where it read or wrote that object.
///
/// Turn it on in code, or for a whole program with the `STM_CONFLICT_LOG` environment variable
/// naming a file to write (read when a thread first uses the engine, in a transaction or an
/// operation outside one; a recording the program started itself before then is left
/// running, and the variable ignored, with a note on standard error):
///
/// ```swift
/// try ConflictLog.start(writingTo: "conflicts.log")   // or start() for memory only
/// runTheWorkload()
/// if let report = ConflictLog.stop() { print(report) }
/// ```
///
/// ```sh
/// STM_CONFLICT_LOG=conflicts.log ./my-program
/// swift run -c release stm-bench report conflicts.log
/// ```
///
/// Off (the default), recording costs a few loads and stores per transaction and one relaxed
/// load per collection access, with no lock and no shared write. On, each access of a
/// transaction is noted in a table of its thread, and each abort or pause takes a lock, is
/// added to its conflict's totals in memory and written as one line to the file: cheap next to
/// the abort it records. Memory grows with the distinct conflicts and the objects they were on
/// (the keys, for a dictionary), not with the number of aborts and pauses.
///
/// Locations are `#fileID`:`#line`. The collection operations and `TVar` methods take `fileID`
/// and `line` arguments that default to its caller's, as ``atomically(_:fileID:line:)-88o9x``
/// does: leave the defaults, or pass on the location of your own caller from a helper that takes
/// `fileID` and `line` the same way. A property (``TVar/value``, `count`) cannot see its caller,
/// nor can the whole-collection reads that take a closure (``TDictionary/filter(_:)``,
/// ``TDictionary/mapValues(_:)``, ``TSet/filter(_:)``), so their
/// accesses are placed at the `atomically` call around them; ``TVar/read(fileID:line:)`` and
/// ``TVar/write(_:fileID:line:)`` are the variable's method forms that carry a location. A single
/// operation outside `atomically` (a `TVar` or collection used on its own) has no transaction
/// location; its own call is its access location.
public enum ConflictLog {
  /// The environment variable that starts recording into the file it names.
  public static let environmentVariable = "STM_CONFLICT_LOG"

  /// Starts recording, in memory and, with a path, into that file (emptied if it exists),
  /// written a line at a time, so that a program that crashes leaves every event it recorded.
  /// Starting again ends the previous recording first (its file gets its summary line and is
  /// closed), also when the new file then cannot be opened, and returns its report, as
  /// ``stop()`` would have.
  ///
  /// Give each process a path of its own. Processes that share one (copies of a program that
  /// inherit `STM_CONFLICT_LOG`, such as a test's exit tests) each empty the file as they
  /// start, so it loses what was written before; their later lines land whole, one after
  /// another, and the report sums them.
  ///
  /// - Parameter path: The file to write the events into, or nil to record in memory only.
  /// - Returns: The report of the recording that this call ended, or nil if none was running.
  /// - Throws: ``ConflictLogError/cannotOpen(_:_:)`` when the file cannot be written. A
  ///   recording that was running has ended then too, and its report is lost; call ``stop()``
  ///   first to keep it.
  /// - Complexity: O(1), or O(*c* log *c*) to end a recording of *c* distinct conflicts.
  @discardableResult
  public static func start(writingTo path: String? = nil) throws(ConflictLogError) -> ConflictReport? {
    try _ConflictRecorder.shared.start(writingTo: path)
  }

  /// Stops recording, closes the file (after a last `summary` line with the wall time and the
  /// commits), and returns the report of the recording, or nil if none was running.
  ///
  /// - Complexity: O(*c* log *c*) for the *c* distinct conflicts recorded.
  @discardableResult
  public static func stop() -> ConflictReport? {
    _ConflictRecorder.shared.stop()
  }

  /// Whether a recording is running.
  public static var isRecording: Bool { _ConflictRecorder.isRecording }

  /// The report of the recording so far, or nil if none is running.
  ///
  /// - Complexity: O(*c* log *c*) for the *c* distinct conflicts recorded.
  public static func report() -> ConflictReport? {
    _ConflictRecorder.shared.report()
  }

  /// Starts recording if `environment` names a log file in ``environmentVariable``, as
  /// ``start(writingTo:)`` does: a recording already running ends first. A file that cannot be
  /// opened is reported on standard error instead of thrown.
  ///
  /// The engine reads the process environment by itself when the first thread uses it, and
  /// leaves a recording the program started before then running; call this to apply another
  /// environment, such as a test's.
  ///
  /// - Parameter environment: Variables and their values, such as
  ///   `ProcessInfo.processInfo.environment`.
  /// - Returns: Whether recording started.
  @discardableResult
  public static func start(fromEnvironment environment: [String: String]) -> Bool {
    guard let path = environment[environmentVariable], !path.isEmpty else { return false }
    do {
      try start(writingTo: path)
      return true
    } catch {
      // A diagnostic switch must not stop the program it diagnoses; say why it is off.
      let message = "swift-stm: \(environmentVariable) is set, but \(error); conflicts are not recorded\n"
      FileHandle.standardError.write(Data(message.utf8))
      return false
    }
  }

  /// Reads ``environmentVariable`` from the process environment, when the first thread uses
  /// the engine; a recording the program started before that is left running.
  static func startFromProcessEnvironment() {
    guard let path = ProcessInfo.processInfo.environment[environmentVariable], !path.isEmpty else { return }
    let message: String
    do {
      // Checked as the recording goes in: one the program starts meanwhile is not replaced.
      if try _ConflictRecorder.shared.startUnlessRecording(writingTo: path) { return }
      message = "swift-stm: \(environmentVariable) is set, but the program started a recording itself; that one goes on\n"
    } catch {
      message = "swift-stm: \(environmentVariable) is set, but \(error); conflicts are not recorded\n"
    }
    FileHandle.standardError.write(Data(message.utf8))
  }
}
