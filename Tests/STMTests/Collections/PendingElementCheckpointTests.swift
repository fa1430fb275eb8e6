import STM
import Testing

/// An element whose in-place mutation runs the caller's code in the middle: `value` goes up by
/// 1, `body` runs, then `value` goes up by 10.
private struct Counted: Sendable, Equatable {
  var value: Int
  var starts = 0

  mutating func mutate(_ body: () throws -> Void) rethrows {
    value += 1
    starts += 1
    try body()
    value += 10
  }
}

private struct Abandoned: Error {}

extension LibraryTests {
  /// Checkpoints (`orElse`, a nested `atomically` that throws) opened and rolled back while
  /// the transaction mutates one of its own pending `TArray` elements in place. The array's
  /// batch lists the elements being mutated; a rollback that trimmed the batch under a listed
  /// element, or restored it without its list, would trap or lose the mutation. (A review
  /// asked whether the list needs trimming on rollback; these cases say it does not.)
  @Suite struct PendingElementCheckpointTests {
    @Test func anOrElseBranchThatAppendsAndPopsRollsBackInsideTheMutation() throws {
      let array = TArray<Counted>()
      try atomically { transaction in
        array.append(Counted(value: 0))
        array.append(Counted(value: 0))
        try array[0].mutate {
          try transaction.orElse({ transaction in
            array.append(Counted(value: 100))
            array[2].value += 5
            array[1].value += 7
            _ = array.popLast()
            array.append(Counted(value: 200))
            try transaction.retry()
          }, { _ in array.append(Counted(value: 300)) })
        }
        #expect(array.elements.map(\.value) == [11, 0, 300])
      }
      #expect(array.elements.map(\.value) == [11, 0, 300])
      #expect(array.elements[0].starts == 1)
    }

    @Test func aThrowingNestedBlockThatPopsPendingElementsRollsBackInsideTheMutation() {
      let array = TArray([Counted(value: 9)])
      atomically { _ in
        array.append(Counted(value: 0))
        array.append(Counted(value: 0))
        array[1].mutate {
          do {
            try atomically { _ in
              array.append(Counted(value: 1))
              array[3].value += 1
              array[2].mutate { array.append(Counted(value: 55)) }
              // Down past the element mutated in the block, to the outer one's neighbour.
              for _ in 0..<3 { _ = array.popLast() }
              throw Abandoned()
            }
          } catch {}
          array.append(Counted(value: 77))
        }
        array[2].value += 1000
        #expect(array.elements.map(\.value) == [9, 11, 1000, 77])
      }
      #expect(array.elements.map(\.value) == [9, 11, 1000, 77])
    }

    @Test func aBranchThatSucceedsThenABlockThatThrowsInsideTheMutation() {
      let array = TArray<Counted>()
      atomically { transaction in
        array.append(Counted(value: 0))
        array.append(Counted(value: 0))
        array[0].mutate {
          transaction.orElse({ _ in
            array[1].value += 3
            array.append(Counted(value: 4))
          }, { _ in })
          do {
            try atomically { _ in
              array.append(Counted(value: 5))
              array[3].mutate { array[2].value += 1 }
              throw Abandoned()
            }
          } catch {}
        }
        #expect(array.elements.map(\.value) == [11, 3, 4])
        #expect(array.popLast()?.value == 4)
        #expect(array.popLast()?.value == 3)
        #expect(array.popLast()?.value == 11)
        #expect(array.popLast() == nil)
        array.append(Counted(value: 8))
        array[0].value += 1
      }
      #expect(array.elements.map(\.value) == [9])
    }

    @Test func manyRollbacksInsideOneMutation() throws {
      let mutated = TArray<Counted>()
      let other = TArray<Int>()
      try atomically { transaction in
        mutated.append(Counted(value: 0))
        try mutated[0].mutate {
          for round in 0..<50 {
            try transaction.orElse({ transaction in
              mutated.append(Counted(value: round))
              mutated[1].value += 1
              other.append(round)
              other[0] += 1
              try transaction.retry()
            }, { _ in })
          }
        }
      }
      #expect(mutated.elements.map(\.value) == [11])
      #expect(other.elements.isEmpty)
    }
  }
}
