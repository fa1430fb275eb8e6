import STM

/// The grid game of BENCHMARKS.md (astar), shared by every implementation.
///
/// Choices the table leaves open: 20% of the cells start as walls (xorshift64* of "thread"
/// 4,096 decides, cell by cell, in order); the 16 players stand on distinct free cells drawn
/// next by the same generator and do not move; task i is player i % 16's and draws from
/// generator i, so a rerun of its transaction draws the same numbers. A toggle flips the cell
/// in one of four directions from the player (the opposite one at the edge). A path task draws
/// cells until it finds a free one, twice, and runs A* (4-neighbour moves, Manhattan heuristic)
/// reading the grid as it goes.
enum AStar {
  static let side = 64
  static let cellCount = side * side
  static let playerCount = 16
  static let wallPercent: UInt64 = 20
  static let togglePercent: UInt64 = 5

  /// What one task did, in the order the tasks committed.
  enum Record: Sendable {
    case toggle(task: Int, cell: Int)
    /// `cells` runs from `from` to `to` inclusive; nil when no path exists.
    case path(task: Int, from: Int, to: Int, cells: [Int]?)
    /// Every drawn cell was a wall (64 draws in a row: practically never).
    case noFreeCell(task: Int)

    var task: Int {
      switch self {
      case .toggle(let task, _), .path(let task, _, _, _), .noFreeCell(let task): task
      }
    }
  }

  static let (initialWalls, players): ([Bool], [Int]) = {
    var random = Xorshift64Star(thread: cellCount)
    let walls = (0..<cellCount).map { _ in random.next() % 100 < wallPercent }
    var players: [Int] = []
    while players.count < playerCount {
      let cell = Int(random.next() % UInt64(cellCount))
      if !walls[cell] && !players.contains(cell) { players.append(cell) }
    }
    return (walls, players)
  }()

  // MARK: The task

  /// Runs task `task` against `grid`: a toggle, or a path search.
  static func runTask<Grid: GridAccess>(_ task: Int, on grid: inout Grid) -> Record {
    var random = Xorshift64Star(thread: task)
    let draw = random.next()
    if draw % 100 < togglePercent {
      let cell = neighbour(of: players[task % playerCount], direction: Int((draw >> 8) % 4))
      grid.toggle(cell)
      return .toggle(task: task, cell: cell)
    }
    guard let from = freeCell(&random, grid), let to = freeCell(&random, grid) else {
      return .noFreeCell(task: task)
    }
    return .path(task: task, from: from, to: to, cells: shortestPath(from: from, to: to, on: grid))
  }

  private static func freeCell<Grid: GridAccess>(_ random: inout Xorshift64Star, _ grid: Grid) -> Int? {
    for _ in 0..<64 {
      let cell = Int(random.next() % UInt64(cellCount))
      if !grid.isWall(cell) { return cell }
    }
    return nil
  }

  private static let steps = [(1, 0), (-1, 0), (0, 1), (0, -1)]

  private static func neighbour(of cell: Int, direction: Int) -> Int {
    let (x, y) = (cell % side, cell / side)
    var (dx, dy) = steps[direction]
    if !(0..<side).contains(x + dx) || !(0..<side).contains(y + dy) { (dx, dy) = (-dx, -dy) }
    return (y + dy) * side + x + dx
  }

  @inline(__always)
  private static func forEachNeighbour(of cell: Int, _ body: (Int) -> Void) {
    let (x, y) = (cell % side, cell / side)
    if x + 1 < side { body(cell + 1) }
    if x > 0 { body(cell - 1) }
    if y + 1 < side { body(cell + side) }
    if y > 0 { body(cell - side) }
  }

  private static func distanceEstimate(_ a: Int, _ b: Int) -> Int {
    abs(a % side - b % side) + abs(a / side - b / side)
  }

  /// A* from `from` to `to` over the free cells; the cells of a shortest path, or nil.
  static func shortestPath<Grid: GridAccess>(from: Int, to: Int, on grid: Grid) -> [Int]? {
    var cost = [Int32](repeating: .max, count: cellCount)
    var cameFrom = [Int32](repeating: -1, count: cellCount)
    var open = MinHeap()
    cost[from] = 0
    open.push(priority: distanceEstimate(from, to), cell: from)
    while let (priority, cell) = open.pop() {
      if cell == to { break }
      let reached = Int(cost[cell])
      // A stale entry: the cell was reached more cheaply after this one was queued.
      if priority > reached + distanceEstimate(cell, to) { continue }
      forEachNeighbour(of: cell) { next in
        if reached + 1 < cost[next] && !grid.isWall(next) {
          cost[next] = Int32(reached + 1)
          cameFrom[next] = Int32(cell)
          open.push(priority: reached + 1 + distanceEstimate(next, to), cell: next)
        }
      }
    }
    guard cost[to] != .max else { return nil }
    var path = [to]
    while path.last! != from { path.append(Int(cameFrom[path.last!])) }
    return path.reversed()
  }

  /// A binary min-heap of (priority, cell), packed in one integer so ties break by cell.
  private struct MinHeap {
    private var keys: [Int] = []

    mutating func push(priority: Int, cell: Int) {
      keys.append(priority << 16 | cell)
      var child = keys.count - 1
      while child > 0 {
        let parent = (child - 1) / 2
        if keys[parent] <= keys[child] { break }
        keys.swapAt(parent, child)
        child = parent
      }
    }

    mutating func pop() -> (priority: Int, cell: Int)? {
      guard let top = keys.first else { return nil }
      let last = keys.removeLast()
      if !keys.isEmpty {
        keys[0] = last
        var parent = 0
        while true {
          var smallest = parent
          let left = 2 * parent + 1, right = left + 1
          if left < keys.count && keys[left] < keys[smallest] { smallest = left }
          if right < keys.count && keys[right] < keys[smallest] { smallest = right }
          if smallest == parent { break }
          keys.swapAt(parent, smallest)
          parent = smallest
        }
      }
      return (top >> 16, top & 0xFFFF)
    }
  }

  // MARK: The grid, three ways

  protocol GridAccess {
    func isWall(_ cell: Int) -> Bool
    mutating func toggle(_ cell: Int)
  }

  struct PlainGrid: GridAccess {
    var cells: [Bool]
    func isWall(_ cell: Int) -> Bool { cells[cell] }
    mutating func toggle(_ cell: Int) { cells[cell].toggle() }
  }

  /// The shared grid, read and written cell by cell inside the task's transaction: a path
  /// search conflicts only with a toggle of a cell it looked at.
  struct TransactionalGrid: GridAccess {
    let walls: TArray<Bool>
    func isWall(_ cell: Int) -> Bool { walls[cell] }
    mutating func toggle(_ cell: Int) { walls[cell] = !walls[cell] }
  }

  struct LockedState: Sendable {
    var walls = PlainGrid(cells: AStar.initialWalls)
    var log: [Record] = []
  }

  /// The serial run's results, handed from its thread to the check.
  final class SerialResult: @unchecked Sendable {
    // @unchecked: written by the one worker before it is joined, read after the join.
    var walls: [Bool] = []
    var log: [Record] = []
  }

  // MARK: The check

  /// Replays the log in commit order on a plain grid: every task appears once; every path runs
  /// between its free endpoints through adjacent free cells and is as short as a breadth-first
  /// search finds on the grid as it stood when the task committed (and "no path" means none
  /// existed then); and the toggles replayed give the final grid.
  static func check(log: [Record], finalWalls: [Bool], tasks: Int) -> String? {
    if log.count != tasks { return "the log has \(log.count) records, expected \(tasks)" }
    if Set(log.map(\.task)) != Set(0..<tasks) { return "some task is missing from the log or appears twice" }
    var walls = initialWalls
    for record in log {
      switch record {
      case .toggle(_, let cell):
        walls[cell].toggle()
      case .path(let task, let from, let to, let cells):
        if let problem = pathProblem(from: from, to: to, cells: cells, walls: walls) {
          return "task \(task): \(problem)"
        }
      case .noFreeCell:
        break
      }
    }
    return walls == finalWalls ? nil : "the final grid differs from the replayed toggles"
  }

  private static func pathProblem(from: Int, to: Int, cells: [Int]?, walls: [Bool]) -> String? {
    if walls[from] || walls[to] { return "an endpoint is a wall at its commit" }
    let shortest = breadthFirstDistance(from: from, to: to, walls: walls)
    guard let cells else {
      return shortest == nil ? nil : "reported no path, but one of \(shortest!) steps existed"
    }
    if cells.first != from || cells.last != to { return "the path does not join its endpoints" }
    for (a, b) in zip(cells, cells.dropFirst()) where distanceEstimate(a, b) != 1 || walls[b] {
      return "the path steps from \(a) to \(b), not a free neighbour"
    }
    if cells.count - 1 != shortest {
      return "the path has \(cells.count - 1) steps, the shortest \(shortest.map(String.init) ?? "none")"
    }
    return nil
  }

  private static func breadthFirstDistance(from: Int, to: Int, walls: [Bool]) -> Int? {
    var distance = [Int](repeating: -1, count: cellCount)
    distance[from] = 0
    var frontier = [from], head = 0
    while head < frontier.count {
      let cell = frontier[head]
      head += 1
      if cell == to { return distance[cell] }
      forEachNeighbour(of: cell) { next in
        if distance[next] < 0 && !walls[next] {
          distance[next] = distance[cell] + 1
          frontier.append(next)
        }
      }
    }
    return nil
  }
}
