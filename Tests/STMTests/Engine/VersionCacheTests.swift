@testable import STMCore
import Testing

extension LibraryTests {
  /// The per-thread cache of dropped versions that writes reuse instead of allocating.
  @Suite struct VersionCacheTests {
    /// A chain of `count` committed versions of `Int`, newest first, each link unique.
    private func chain(of count: Int, from first: Int = 0) -> _VersionBase {
      var head: _VersionBase?
      for value in (first..<(first + count)).reversed() {
        let version = _Version(value, stamp: UInt64(value + 1))
        version.older = head
        head = version
      }
      return head!
    }

    @Test func keepsAtMostTheLimitPerTypeAndFreesTheRest() {
      #if DEBUG
      let cache = _VersionCache()
      let before = _LiveCounters.versions.load(ordering: .relaxed)
      cache.offer(.passRetained(chain(of: _VersionCache.perTypeLimit + 3)))
      #expect(_LiveCounters.versions.load(ordering: .relaxed) - before == _VersionCache.perTypeLimit)
      var taken: [_VersionBase] = []
      while let version = cache.take(ObjectIdentifier(_Version<Int>.self)) { taken.append(version.takeRetainedValue()) }
      #expect(taken.count == _VersionCache.perTypeLimit)
      // Ready to be written again: pending, unlinked, no flags.
      #expect(taken.allSatisfy { $0.stamp == _pendingStamp && $0.older == nil && $0.flags == 0 })
      #expect(cache.take(ObjectIdentifier(_Version<Int>.self)) == nil)
      taken.removeAll()
      #expect(_LiveCounters.versions.load(ordering: .relaxed) == before)
      #endif
    }

    @Test func aThreadsCacheFreesWhatItKeptWhenItGoes() {
      #if DEBUG
      let before = _LiveCounters.versions.load(ordering: .relaxed)
      do {
        let cache = _VersionCache()
        cache.offer(.passRetained(chain(of: 3)))
        cache.offer(.passRetained(_Version(1.5, stamp: 1)))
        #expect(_LiveCounters.versions.load(ordering: .relaxed) - before == 4)
      }
      #expect(_LiveCounters.versions.load(ordering: .relaxed) == before)
      #endif
    }

    @Test func aSharedLinkEndsWhatIsKept() {
      let cache = _VersionCache()
      let versions = chain(of: 4)
      let shared = versions.older!.older!   // a reader still holds the third version
      cache.offer(.passRetained(versions))
      var count = 0
      while let version = cache.take(ObjectIdentifier(_Version<Int>.self)) {
        version.release()
        count += 1
      }
      #expect(count == 2)
      #expect(shared.stamp == 3)
    }

    @Test func versionsAreReusedOnlyForTheirOwnType() {
      let cache = _VersionCache()
      cache.offer(.passRetained(_Version(1.5, stamp: 1)))
      #expect(cache.take(ObjectIdentifier(_Version<Int>.self)) == nil)
      let reused = cache.take(ObjectIdentifier(_Version<Double>.self))?.takeRetainedValue()
      #expect(reused is _Version<Double>)
    }

    @Test func aFifthTypeTakesTheShelfOfTheFullest() {
      let cache = _VersionCache()
      // A lone version waits in the spare and moves to a shelf when the next one comes.
      cache.offer(.passRetained(chain(of: 3)))                  // shelf: Int 3
      cache.offer(.passRetained(_Version(1.5, stamp: 1)))       // spare: Double
      cache.offer(.passRetained(_Version(UInt8(1), stamp: 1)))  // shelf: Double 1; spare: UInt8
      cache.offer(.passRetained(_Version(Int32(1), stamp: 1)))  // shelf: UInt8 1; spare: Int32
      cache.offer(.passRetained(_Version(Int16(1), stamp: 1)))  // shelf: Int32 1 (all four taken)
      #if DEBUG
      let before = _LiveCounters.versions.load(ordering: .relaxed)
      #endif
      cache.offer(.passRetained(_Version(Float(1), stamp: 1)))  // Int16 to a shelf: evicts Int's
      #if DEBUG
      // Int's three versions are freed, and the new Float one is kept.
      #expect(_LiveCounters.versions.load(ordering: .relaxed) - before == -3 + 1)
      #endif
      #expect(cache.take(ObjectIdentifier(_Version<Int>.self)) == nil)
      for type in [_Version<Float>.self, _Version<Int16>.self, _Version<Int32>.self, _Version<UInt8>.self, _Version<Double>.self]
        as [_VersionBase.Type]
      {
        let taken = cache.take(ObjectIdentifier(type))?.takeRetainedValue()
        #expect(taken.map { ObjectIdentifier(Swift.type(of: $0)) } == ObjectIdentifier(type))
      }
    }

    @Test func theSpareKeepsTheLastLoneVersionAndShelvesTheOneBefore() {
      let cache = _VersionCache()
      let first = _Version(1, stamp: 1), second = _Version(2, stamp: 2), other = _Version(2.5, stamp: 3)
      cache.offer(.passRetained(first))
      cache.offer(.passRetained(second))   // same type: `first` moves to the shelf
      cache.offer(.passRetained(other))    // another type: `second` moves to the shelf too
      let int = ObjectIdentifier(_Version<Int>.self)
      #expect(cache.take(ObjectIdentifier(_Version<Double>.self))?.takeRetainedValue() === other)
      #expect(cache.take(int)?.takeRetainedValue() === second)
      #expect(cache.take(int)?.takeRetainedValue() === first)
      #expect(cache.take(int) == nil)
      // Ready to be written again: pending and without flags, though offered committed.
      #expect([first, second, other].allSatisfy { $0.stamp == _pendingStamp && $0.flags == 0 })
    }

    @Test func removeAllFreesTheSpareToo() {
      #if DEBUG
      let cache = _VersionCache()
      let before = _LiveCounters.versions.load(ordering: .relaxed)
      cache.offer(.passRetained(_Version(1, stamp: 1)))
      #expect(_LiveCounters.versions.load(ordering: .relaxed) - before == 1)
      cache.removeAll()
      #expect(_LiveCounters.versions.load(ordering: .relaxed) == before)
      #expect(cache.take(ObjectIdentifier(_Version<Int>.self)) == nil)
      #endif
    }

    /// A thread's next write of the same type reuses the version its last commit dropped.
    /// (In transactions: a drop-in write of a value like this one overwrites the version in
    /// place and drops nothing; see `ReclamationTests`.)
    @Test func aWriteReusesTheVersionTheLastCommitDropped() {
      let cell = TVar(0)
      _ThreadContext.current.versionCache.removeAll()
      // Drops the initial version into this thread's cache (nothing pins it).
      atomically { _ in cell.value = 1 }
      let dropped = ObjectIdentifier(_ThreadContext.current.versionCache.peekForTests(ObjectIdentifier(_Version<Int>.self))!)
      atomically { _ in cell.value = 2 }
      let head = cell.cell.head.load(ordering: .acquiring).takeUnretainedValue()
      #expect(ObjectIdentifier(head) == dropped)
      #expect(cell.value == 2)
    }
  }
}
