import Foundation
@testable import STM
import STMTestSupport
import Testing

/// A type whose `Codable` conformance the compiler writes, from its variables'.
private struct Account: Codable, Sendable {
  let owner: String
  let balance: TVar<Int>
  let history: TArray<Int>
}

extension LibraryTests {
  /// Each collection encodes as the standard collection it stands for, and decodes into a new
  /// one from what that collection encodes.
  @Suite struct CodableTests {
    private func json<T: Encodable>(_ value: T) throws -> String {
      let encoder = JSONEncoder()
      encoder.outputFormatting = .sortedKeys
      return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private func decoded<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
      try JSONDecoder().decode(type, from: Data(text.utf8))
    }

    @Test func collectionsEncodeAsTheStandardCollections() throws {
      let plain: [String: [Int]] = ["a": [1, 2], "b": []]
      #expect(try json(TDictionary(plain)) == json(plain))
      // Int keys: a keyed container too; other keys: alternating keys and values.
      #expect(try json(TDictionary([3: "x", 1: "y"])) == json([3: "x", 1: "y"]))
      #expect(try json(TDictionary([1.5: true])) == json([1.5: true]))
      #expect(try json(TArray([3, 1, 2])) == "[3,1,2]")
      #expect(try json(TSet(["only"])) == "[\"only\"]")
      #expect(try json(TCounter(-7)) == "-7")
      #expect(try json(TVar("v")) == "\"v\"")
      #expect(try json(TArray<TDictionary<String, Int>>([["k": 1]])) == "[{\"k\":1}]")
    }

    @Test func collectionsDecodeWhatTheStandardCollectionsEncode() throws {
      #expect(try decoded(TDictionary<String, Int>.self, from: json(["a": 1, "b": 2])).dictionary == ["a": 1, "b": 2])
      #expect(try decoded(TDictionary<Double, Int>.self, from: json([1.5: 1])).dictionary == [1.5: 1])
      #expect(try decoded(TSet<Int>.self, from: "[3,1,3]").elements == [1, 3])
      #expect(try decoded(TArray<Int>.self, from: "[3,1,3]").elements == [3, 1, 3])
      #expect(try decoded(TCounter.self, from: "42").value == 42)
      let variable = try decoded(TVar<[String]>.self, from: "[\"x\"]")
      #expect(variable.value == ["x"])
      // A new array, working as any other does.
      let array = try decoded(TArray<Int>.self, from: "[1]")
      array.append(2)
      atomically { _ in array[0] += 10 }
      #expect(array.elements == [11, 2])
    }

    @Test func decodingErrorsArePassedOn() {
      #expect(throws: DecodingError.self) { try decoded(TArray<Int>.self, from: "[1,\"two\"]") }
      #expect(throws: DecodingError.self) { try decoded(TDictionary<String, Int>.self, from: "[1]") }
      #expect(throws: DecodingError.self) { try decoded(TSet<Int>.self, from: "{}") }
      #expect(throws: DecodingError.self) { try decoded(TCounter.self, from: "1.5") }
      #expect(throws: DecodingError.self) { try decoded(TVar<Int>.self, from: "null") }
    }

    /// Inside a transaction, encoding reads what the transaction sees: its own changes, its
    /// own appends not landed, and every variable at one snapshot.
    @Test func encodingInsideATransactionSeesItsOwnChanges() throws {
      let account = Account(owner: "ann", balance: TVar(10), history: [10])
      let text = try atomically { _ in
        account.balance.value -= 3
        account.history.append(-3)
        return try json(account)
      }
      #expect(text == "{\"balance\":7,\"history\":[10,-3],\"owner\":\"ann\"}")
      let copy = try decoded(Account.self, from: text)
      #expect(copy.balance.value == 7 && copy.history.elements == [10, -3])
      // A copy of its own: changing it leaves the original as it was.
      #expect(copy.balance != account.balance)
      copy.balance.value = 0
      #expect(account.balance.value == 7)
    }

    /// Encoding inside a transaction reads the whole collection, so a write to any key made
    /// meanwhile makes the transaction rerun.
    @Test func encodingInsideATransactionConflictsAsAWholeRead() {
      let dictionary: TDictionary = ["a": 1, "b": 2]
      let written = LockedBox("")
      #expect(abortsOfSecondCommitter(first: {
        written.value = (try? String(decoding: JSONEncoder().encode(dictionary), as: UTF8.self)) ?? "failed"
      }, then: { dictionary["b"] = 20 }) == 1)
      #expect(written.value.contains("\"b\":20"))
    }
  }
}
