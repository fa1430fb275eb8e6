import Foundation
@testable import STM
import STMTestSupport
import Synchronization
import Testing

/// What a `TQueue` holds, read without taking: `count` (the head's and the tail's positions,
/// plus a transaction's own pending items), `elements` and `description`.
extension LibraryTests {
  @Suite struct QueueContentsTests {
    /// Random enqueues and dequeues, on their own and in transactions (which also read, and
    /// take back their own items), against an `Array`: `count` and `elements` match after
    /// every step, inside the transactions too; bounded and unbounded queues.
    @Test(arguments: [nil, 64] as [Int?])
    func countFollowsEnqueuesAndDequeues(capacity: Int?) throws {
      let queue = TQueue<Int>(capacity: capacity)
      var model: [Int] = []
      var random = SeededRandom(seed: 34)
      var next = 0
      for _ in 0..<TestScale.scaled(2_000) {
        switch Int.random(in: 0..<4, using: &random) {
        case 0 where model.count < 60:
          try queue.enqueue(next)
          model.append(next)
          next += 1
        case 1:
          #expect(queue.tryDequeue() == model.first)
          if !model.isEmpty { model.removeFirst() }
        default:
          // One transaction of several steps; the model is kept apart until it commits.
          var inTransaction = model
          let steps = (0..<Int.random(in: 1...6, using: &random)).map { _ in Bool.random(using: &random) }
          let first = next
          try atomically { _ in
            inTransaction = model
            next = first
            for enqueues in steps {
              if enqueues && inTransaction.count < 60 {
                try queue.enqueue(next)
                inTransaction.append(next)
                next += 1
              } else {
                #expect(queue.tryDequeue() == inTransaction.first)
                if !inTransaction.isEmpty { inTransaction.removeFirst() }
              }
              #expect(queue.count == inTransaction.count)
              #expect(queue.elements == inTransaction)
              #expect(queue.isEmpty == inTransaction.isEmpty)
            }
          }
          model = inTransaction
        }
        #expect(queue.count == model.count)
        #expect(queue.elements == model)
      }
      queue.close()
      while queue.tryDequeue() != nil { model.removeFirst() }
      #expect(queue.count == 0 && model.isEmpty)
    }

    /// Items that a transaction enqueues and takes back leave the count where it was, inside
    /// the transaction and after.
    @Test func itemsTakenBackInTheirTransactionLeaveTheCount() throws {
      let queue = TQueue<String>()
      try queue.enqueue("a")
      try atomically { _ in
        try queue.enqueue("b")
        try queue.enqueue("c")
        #expect(queue.count == 3)
        #expect(queue.tryDequeue() == "a")
        #expect(queue.tryDequeue() == "b")
        #expect(queue.count == 1)
      }
      #expect(queue.count == 1)
      #expect(queue.tryDequeue() == "c")
      #expect(queue.count == 0)
    }

    /// `description` lists the items waiting like an `Array`, and says when the queue is closed;
    /// an optional element type keeps its nils.
    @Test func descriptionListsTheItemsAndWhetherClosed() throws {
      let queue = TQueue<Int?>()
      #expect(queue.description == "TQueue([])")
      try queue.enqueue(1)
      try queue.enqueue(nil)
      try atomically { _ in
        try queue.enqueue(3)
        #expect(queue.description == "TQueue([Optional(1), nil, Optional(3)])")
      }
      queue.close()
      #expect(queue.description == "TQueue([Optional(1), nil, Optional(3)], closed)")
      #expect(queue.elements == [1, nil, 3])
    }

    /// Inside a transaction, `count` conflicts with an enqueue and with a dequeue that commit
    /// first, and with nothing that leaves the items as they were (a close).
    @Test func countConflictsWithEnqueuesAndDequeues() throws {
      let queue = TQueue<Int>()
      try queue.enqueue(0)
      #expect(abortsOfSecondCommitter(first: { _ = queue.count }, then: { try! queue.enqueue(1) }) == 1)
      #expect(abortsOfSecondCommitter(first: { _ = queue.count }, then: { _ = queue.tryDequeue() }) == 1)
      #expect(abortsOfSecondCommitter(first: { _ = queue.count }, then: { atomically { _ in try! queue.enqueue(2) } }) == 1)
      #expect(abortsOfSecondCommitter(first: { _ = queue.count }, then: { atomically { _ in _ = queue.tryDequeue() } }) == 1)
      #expect(abortsOfSecondCommitter(first: { _ = queue.count }, then: { queue.close() }) == 0)
      #expect(queue.count == 1)
    }

    /// Inside a transaction, `elements` conflicts with an enqueue (through the last link) and
    /// with a dequeue (through the head) that commit first.
    @Test func elementsConflictWithEnqueuesAndDequeues() throws {
      let queue = TQueue<Int>()
      for item in 0..<3 { try queue.enqueue(item) }
      #expect(abortsOfSecondCommitter(first: { _ = queue.elements }, then: { try! queue.enqueue(3) }) == 1)
      #expect(abortsOfSecondCommitter(first: { _ = queue.elements }, then: { _ = queue.tryDequeue() }) == 1)
      #expect(abortsOfSecondCommitter(first: { _ = queue.elements }, then: { atomically { _ in try! queue.enqueue(4) } }) == 1)
      #expect(queue.elements == [1, 2, 3, 4])
    }

    /// Producers link items in place and in transactions while checkers, in transactions, read
    /// the count and the elements and then drain the queue: each finds as many items as the
    /// count said, and the elements it listed, and every item produced is taken once (more
    /// threads than cores, started together).
    @Test func countMatchesTheItemsAConsistentDrainFinds() {
      let queue = TQueue<Int>()
      let producers = 3, checkers = 2, perProducer = TestScale.scaled(3_000)
      let mismatches = Atomic<Int>(0), drained = Atomic<Int>(0), producing = Atomic<Int>(producers)
      runThreads(producers + checkers) { index in
        if index < producers {
          for item in 0..<perProducer {
            if item % 3 == 0 {
              try! atomically { _ in
                try queue.enqueue(item)
                try queue.enqueue(item)
              }
            } else {
              try! queue.enqueue(item)
            }
          }
          producing.subtract(1, ordering: .releasing)
          return
        }
        while true {
          let done = producing.load(ordering: .acquiring) == 0
          let (counted, listed, found) = atomically { _ in
            let counted = queue.count, listed = queue.elements
            var found: [Int] = []
            while let item = queue.tryDequeue() { found.append(item) }
            return (counted, listed, found)
          }
          if counted != found.count || listed != found { mismatches.add(1, ordering: .relaxed) }
          drained.add(found.count, ordering: .relaxed)
          if done { break }
        }
      }
      let produced = producers * (perProducer + (perProducer + 2) / 3)
      #expect(mismatches.load(ordering: .relaxed) == 0)
      #expect(drained.load(ordering: .relaxed) == produced)
      #expect(queue.count == 0)
    }
  }
}
