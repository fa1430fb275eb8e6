import Foundation
@testable import STM
import STMTestSupport
import Testing

extension LibraryTests {
  /// In-place modifications of dictionary keys inside transactions, which write their values
  /// back into the cells they read, under contention and sweeps.
  @Suite struct ConcurrencyInPlaceModificationTests {
    /// Four threads (more than the cores, started together) run transactions of four in-place
    /// modifications of a dozen keys: removals and inserts through the optional subscript as
    /// an `inout` value, `+= 1` through the default subscript, the optional subscript and
    /// `update(forKey:default:_:)`, some inside an `orElse` whose first branch rolls back and
    /// some in a nested `atomically`. Each transaction keeps a `TVar` equal to the sum of the
    /// values, while another thread keeps making and sweeping empty cells with lookups of
    /// absent keys. At the end the sum and the count agree with the contents.
    @Test func modificationsInsideTransactionsKeepTheSumAndTheCountUnderContention() {
      @Sendable func put(_ value: inout Int?, _ new: Int?) { value = new }
      let dictionary = TDictionary<Int, Int>()
      let sum = TVar(0)
      let stop = LockedBox(false)
      let sweeper = startThread {
        var absent = 10_000_000
        while !stop.value {
          absent += 1
          _ = dictionary[absent]
        }
      }
      let transactions = TestScale.scaled(5_000)
      runThreads(4) { thread in
        var random = SeededRandom(thread: thread)
        for _ in 0..<transactions {
          let picks = (0..<4).map { _ in (key: random.below(12), choice: random.below(4), nesting: random.below(3)) }
          atomically { transaction in
            for pick in picks {
              let modify = {
                if let present = dictionary[pick.key] {
                  switch pick.choice {
                  case 0: put(&dictionary[pick.key], nil); sum.value -= present
                  case 1: dictionary[pick.key, default: 0] += 1; sum.value += 1
                  case 2: dictionary[pick.key]? += 1; sum.value += 1
                  default: dictionary.update(forKey: pick.key, default: 0) { $0 += 1 }; sum.value += 1
                  }
                } else {
                  if pick.choice < 2 { put(&dictionary[pick.key], 1) } else { dictionary[pick.key, default: 0] += 1 }
                  sum.value += 1
                }
              }
              switch pick.nesting {
              case 0: try? transaction.orElse({ _ in modify(); try transaction.retry() }, { _ in modify() })
              case 1: atomically { _ in modify() }
              default: modify()
              }
            }
          }
        }
      }
      stop.value = true
      sweeper.wait()
      let contents = dictionary.dictionary
      #expect(dictionary.count == contents.count)
      #expect(sum.value == contents.values.reduce(0, +))
      #expect(contents.keys.allSatisfy { (0..<12).contains($0) })
    }
  }
}
