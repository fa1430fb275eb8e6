@testable import STMCore
import Testing

/// Checks the serial positions of the committed writers a replay oracle orders: each writing
/// commit has a place of its own, except drop-in updates that overwrote their cell without
/// taking a commit number. Those may share a place, but only with others of their kind that
/// wrote other cells: they commute, and no snapshot saw one without the other (see
/// `_SerialPosition`). `target` names what a writer wrote when it ran outside a transaction
/// (nil inside one, which always takes a number).
func expectWritersOrderedSerially(
  _ writers: [(position: _SerialPosition, target: String?)], sourceLocation: SourceLocation = #_sourceLocation
) {
  let numbered = writers.filter { $0.position.overwrite == 0 }
  #expect(
    Set(numbered.map(\.position.number)).count == numbered.count, "commit numbers are unique",
    sourceLocation: sourceLocation)
  var reported = 0
  for (position, sharing) in Dictionary(grouping: writers, by: \.position) where sharing.count > 1 {
    let targets = sharing.map(\.target)
    let commuting = position.overwrite > 0 && !targets.contains(nil) && Set(targets).count == targets.count
    if !commuting && reported < 5 {
      reported += 1
      Issue.record("Writers share the position \(position) but do not commute: \(targets)", sourceLocation: sourceLocation)
    }
  }
}
