import STM
import Testing

private func standardError(of result: ExitTest.Result?) -> String {
  String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}

/// Each mistake traps with a message that names it and says what to do.
extension LibraryTests {
  @Suite struct MisuseTests {
    @Test func retryInATransactionThatReadNothingTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        _ = try? atomically { tx in try tx.retry() }
      }
      #expect(standardError(of: result).contains("has read no TVar"))
    }

    @Test func retryAfterBecomingInevitableTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let cell = TVar(0)
        _ = try? atomically { tx in
          _ = cell.value
          try tx.becomeInevitable()
          try tx.retry()
        }
      }
      #expect(standardError(of: result).contains("after becomeInevitable()"))
    }

    @Test func aHandleUsedAfterItsBlockTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        var escaped: Transaction?
        atomically { tx in escaped = tx }
        escaped?.afterCommit {}
      }
      #expect(standardError(of: result).contains("Transaction.afterCommit(_:) was called outside the atomically block"))
    }

    @Test func aCommuteTransformThatTouchesATVarTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let counter = TVar(0), config = TVar(5)
        atomically { _ in counter.commute { $0 + config.value } }
      }
      #expect(standardError(of: result).contains("commute transform used a TVar"))
    }

    @Test func touchingATVarDuringAnInPlaceMutationTraps() async {
      let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let first = TVar(0), second = TVar(0)
        func bump(_ value: inout Int) { value += second.value }
        bump(&first.value)
      }
      #expect(standardError(of: result).contains("mutated in place"))
    }
  }
}
