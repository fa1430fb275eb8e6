
extension LibraryTests.ReviewTimedParkingProbe {
  /// Repro: a deadline far enough off (here ~634 years) spins a core instead of blocking.
  @Test func farDeadlineSpins() throws {
    let queue = TQueue<Int>()
    let far = ContinuousClock.now + .seconds(20_000_000_000)
    let consumer = startThread { _ = try? queue.dequeue(until: far) }
    #expect(waitForParkedConsumers(on: queue))
    let cpu0 = cpuSeconds()
    usleep(500_000)
    let cpu = cpuSeconds() - cpu0
    #expect(cpu < 0.1, "CPU over 0.5 s while one consumer waits: \(cpu) s")
    try queue.enqueue(1)
    #expect(consumer.wait(timeout: .now() + 10) == .success)
  }

  /// Candidate fix: DispatchTime raw values must stay below 2^63 (above is wall-clock encoding).
  @Test(arguments: [UInt64(Int64.max) - 1, UInt64(Int64.max), UInt64(Int64.max) + 1, UInt64.max - 1])
  func semaphoreWaitWithHugeUptime(raw: UInt64) {
    let sem = DispatchSemaphore(value: 0)
    let result = _Lock<DispatchTimeoutResult?>(nil)
    let t = startThread { let r = sem.wait(timeout: DispatchTime(uptimeNanoseconds: raw)); result.withLock { $0 = r } }
    usleep(300_000)
    print("PROBE raw \(raw): after 0.3 s: \(String(describing: result.withLock { $0 }))")
    sem.signal()
    #expect(t.wait(timeout: .now() + 10) == .success)
  }
}
