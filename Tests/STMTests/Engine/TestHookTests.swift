import Foundation
import STM
@testable import STMCore
import STMTestSupport
import Testing

/// 30,000 drop-in reads of a dictionary key with a hook installed that every one of them
/// calls, on a thread with a 1 MiB stack; exits with 0 if the hook ran each time.
private func readThirtyThousandTimesWithAHook() -> Never {
  let calls = _Lock(0)
  _TestHooks.afterSingleReadAnnounced.withLock { $0 = { calls.withLock { $0 += 1 } } }
  let dict: TDictionary = [1: 1]
  startThread {
    for _ in 0..<30_000 { _ = dict[1] }
  }.wait()
  exit(calls.value == 30_000 ? 0 : 1)
}

extension LibraryTests {
  /// The seams that tests use to stage interleavings (debug builds only).
  @Suite struct TestHookTests {
    /// A hook stays as it was installed however often the engine reads it. Each read went
    /// through `withLock { $0 }`, which stored the closure back wrapped in two more thunks,
    /// so a stress test that kept a hook installed crashed: 30,000 reads made a closure 60,000
    /// thunks deep, whose call overflowed the thread's stack (found by review).
    @Test func aHookReadManyTimesStaysAsItWasInstalled() async {
      await #expect(processExitsWith: .success) { readThirtyThousandTimesWithAHook() }
    }
  }
}
