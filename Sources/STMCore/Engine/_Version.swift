/// One committed (or pending) value of a cell, stamped with the commit number that wrote it.
///
/// Versions form a chain from newest to oldest. A transaction reads the newest version whose
/// stamp is at most its snapshot, which is what gives every transaction a consistent view
/// (opacity) without ever aborting in the middle of its body.
///
/// Mutation rules, which the whole engine relies on (and which make Swift's dynamic exclusivity
/// checks, switched off for these fields, redundant):
/// - `stamp`, `flags` and `older` are set before the version is published (a release store of
///   the cell's head), so readers that acquire the head see them.
/// - After publication `older` changes only to cut the chain below the newest version that the
///   oldest running snapshot can see. No running reader ever walks past that version, so no
///   reader reads the field while it is cut.
/// - A drop-in update that overwrites the newest version in place changes its value, `flags`,
///   `site`, `overwrites` and perhaps `stamp`, under the cell's commit lock, while no snapshot
///   can see the version and readers that meet the lock wait for it (see
///   `_Engine.overwritableVersions` and `_Engine.unnumberedOverwritePosition(for:)`).
@usableFromInline
class _VersionBase: @unchecked Sendable {
  @exclusivity(unchecked) @usableFromInline final var stamp: UInt64
  @exclusivity(unchecked) @usableFromInline final var older: _VersionBase?
  /// `_VersionFlags` bits.
  @exclusivity(unchecked) @usableFromInline final var flags: UInt8 = 0
  /// How many drop-in updates have overwritten this version in place since it was stamped,
  /// without a commit number of their own: their order among themselves (see
  /// `_Engine.unnumberedOverwritePosition(for:)`). In the padding after `flags`, so it costs
  /// no memory.
  @exclusivity(unchecked) @usableFromInline final var overwrites: UInt16 = 0
  /// The conflict log's number for the `atomically` call that committed this version (0:
  /// unknown, or not recording). It fits in the padding after `flags`: no extra memory.
  @exclusivity(unchecked) @usableFromInline final var site: UInt32 = 0

  @usableFromInline
  init(stamp: UInt64) {
    self.stamp = stamp
    _LiveCounters.versionCreated()
  }

  deinit {
    _LiveCounters.versionDestroyed()
    // Unlink iteratively: a long chain released at once must not recurse once per version.
    var next = older
    older = nil
    while var current = next {
      next = nil
      guard isKnownUniquelyReferenced(&current) else { break }
      next = current.older
      current.older = nil
    }
  }
}

@usableFromInline
enum _VersionFlags {
  /// The version was written by the inevitable transaction (used to classify conflicts).
  @usableFromInline static let byInevitable: UInt8 = 1
  /// A pending version whose value its transaction is mutating, moved out of the version
  /// meanwhile (see `TVar.value`'s `_modify` and `_OwnWrite`): reading or writing the variable
  /// meanwhile traps. Cleared before publication.
  @usableFromInline static let mutatingInPlace: UInt8 = 2
}

/// A version holding a value of a concrete type.
@usableFromInline
final class _Version<Value>: _VersionBase, @unchecked Sendable {
  @exclusivity(unchecked) @usableFromInline var value: Value

  @inlinable
  init(_ value: Value, stamp: UInt64 = _pendingStamp) {
    self.value = value
    super.init(stamp: stamp)
  }
}

/// The stamp of a version that sits in a transaction's redo log and is not committed yet.
@usableFromInline let _pendingStamp: UInt64 = .max

extension _VersionBase {
  /// Traps if the transaction that owns this pending version is mutating its value in place
  /// (`_VersionFlags.mutatingInPlace`).
  @inlinable @inline(__always)
  final func checkNotMutatingInPlace() {
    if flags & _VersionFlags.mutatingInPlace != 0 { _misuse(.accessDuringOwnInPlaceUpdate) }
  }
}

extension _Version where Value == Int {
  /// A pending version holding `base`'s value plus `sum` (`base` is a `_Version<Int>`): the
  /// delayed additions of a transaction, applied at commit or when it reads the variable.
  /// Traps on overflow, as the addition would, with a message that names the counter.
  static func adding(_ sum: Int, to base: _VersionBase) -> _VersionBase {
    let value = _appliedAddition(unsafeDowncast(base, to: _Version<Int>.self).value, sum)
    let context = _ThreadState.current.pointee.context
    if let cached = _ThreadContext.takeCachedVersion(ObjectIdentifier(_Version<Int>.self), from: context) {
      return cached._withUnsafeGuaranteedRef { version in
        unsafeDowncast(version, to: _Version<Int>.self).value = value
        return cached.takeRetainedValue()
      }
    }
    return _Version(value)
  }
}
