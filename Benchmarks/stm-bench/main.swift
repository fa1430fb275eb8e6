import STM
import Foundation

let counter = TVar(0)
let accounts = (0..<64).map { _ in TVar(100) }
let threads = 8, per = 20000
let group = DispatchGroup()
let bad = TVar(0)
for t in 0..<threads {
  group.enter()
  Thread.detachNewThread {
    var x: UInt64 = 0x9E3779B97F4A7C15 &* UInt64(t + 1)
    for i in 0..<per {
      x ^= x >> 12; x ^= x << 25; x ^= x >> 27
      let r = x &* 0x2545F4914F6CDD1D
      if i % 2 == 0 { counter.value += 1 } else { atomically { _ in counter.value += 1 } }
      let from = Int(r % 64), to = Int((r >> 8) % 64)
      if i % 500 == 0 {
        let total = atomically { _ in accounts.reduce(0) { $0 + $1.value } }
        if total != 6400 { bad.value += 1 }
      } else {
        atomically { _ in
          if from != to && accounts[from].value >= 5 { accounts[from].value -= 5; accounts[to].value += 5 }
        }
      }
    }
    group.leave()
  }
}
group.wait()
print("counter", counter.value, "expected", threads * per)
print("total", accounts.reduce(0) { $0 + $1.value }, "bad audits", bad.value)
print(TransactionEngine.statistics)
