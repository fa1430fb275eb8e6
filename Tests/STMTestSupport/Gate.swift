import Foundation

/// A one-shot signal between threads of a deterministic interleaving test.
public final class Gate: Sendable {
  private let semaphore = DispatchSemaphore(value: 0)

  public init() {}

  public func open() { semaphore.signal() }

  /// Waits until `open()`; fails loudly rather than hanging the test run forever.
  public func wait(seconds: Double = 60, fileID: String = #fileID, line: Int = #line) {
    if semaphore.wait(timeout: .now() + seconds) == .timedOut {
      fatalError("Gate not opened within \(seconds)s (\(fileID):\(line)): the interleaving is stuck")
    }
  }

  /// Whether the gate opened within `seconds`.
  public func wait(timeout seconds: Double) -> Bool {
    semaphore.wait(timeout: .now() + seconds) == .success
  }
}

/// Scales stress tests: `STM_LONG_TESTS=1` runs the long variants (10x more work).
public enum TestScale {
  public static var isLong: Bool {
    ProcessInfo.processInfo.environment["STM_LONG_TESTS"] == "1"
  }

  /// `quick`, or ten times it under `STM_LONG_TESTS=1`.
  public static func scaled(_ quick: Int) -> Int { isLong ? quick * 10 : quick }
}

/// What the test process runs under.
public enum TestProcess {
  /// Whether Address Sanitizer instruments the process (its runtime's entry point is there):
  /// its quarantine keeps freed memory resident for a while, so a test that measures resident
  /// memory measures the quarantine there, not the library.
  public static let runsUnderAddressSanitizer = dlsym(nil, "__asan_init") != nil
}
