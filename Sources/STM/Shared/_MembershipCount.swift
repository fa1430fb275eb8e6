/// A collection's element count, spread over one cell per engine segment.
///
/// Inserting or removing adds ±1 to the cell of the segment running the transaction, as a
/// commutative update: inserts never conflict with each other through the count, and inserts
/// on different segments write different cells. (The cells are made one after another, so
/// neighbouring segments' cells may share a cache line; spacing them apart made no measurable
/// difference to two threads inserting.) Reading the count reads every cell, so it conflicts
/// exactly with the membership changes it could observe.
@usableFromInline
final class _MembershipCount: Sendable {
  @usableFromInline let cells: [TVar<Int>]
  /// The cells of `cells`, which keep them: a drop-in insert or removal takes its segment's
  /// from here without a retain and a release (two atomic instructions).
  @usableFromInline let unretainedCells: [Unmanaged<_TypedCell<Int>>]

  @usableFromInline
  init(initial: Int = 0) {
    let count = TransactionEngine.segmentCount
    cells = (0..<count).map { $0 == 0 ? TVar(initial) : TVar(0) }
    unretainedCells = cells.map(\._unretainedCell)
  }

  /// Inside a transaction: records an insert or a removal by the operation at `site`.
  @inlinable
  func add(_ delta: Int, in transaction: Transaction, at site: _CallSite) {
    // Through the buffer, borrowed: the array's subscript copied the variable out, a retain and
    // a release of its cell on every insert and removal.
    cells.withUnsafeBufferPointer { $0[transaction._segmentIndex]._commuteAdding(delta, at: site, as: .named("count")) }
  }

  /// The count, as one atomic read by the operation at `site` (joins the running
  /// transaction, if any).
  @usableFromInline
  func value(at site: _CallSite) -> Int {
    _singleOperation(at: site) { _ in
      cells.reduce(0) { $0 + $1._notedValue(.read, at: site, as: .named("count")) }
    }
  }

  /// Calls `body` with the cell to pair with a single-operation update running on segment
  /// `segment`.
  @inlinable
  func withCell<Result>(forSegment segment: Int, _ body: (_TypedCell<Int>) -> Result) -> Result {
    unretainedCells[segment]._withUnsafeGuaranteedRef(body)
  }
}
