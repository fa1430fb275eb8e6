import STM
import Synchronization

extension Workload {
  /// BENCHMARKS.md `astar`, a PyPy-STM seed workload: a 64×64 grid game with 16 players; each
  /// task, on the library's transaction scheduler, is a player either toggling a wall on a cell
  /// next to it (5%) or computing an A* shortest path between two random free cells (95%).
  static let astar = Workload(
    name: "astar",
    summary: "64×64 grid, 16 players: 5% toggle a wall, 95% A* between free cells; check each path on its commit-time grid",
    unit: "tasks"
  ) { size in
    let tasks = size.scaled(4_000)
    return [
      Implementation(name: "TransactionQueue", kind: .library) { threads in
        let grid = TArray(AStar.initialWalls)
        // Each task appends what it did; appends land in commit order, which is what lets the
        // check replay the run serially.
        let log = TArray<AStar.Record>()
        let queue = TransactionQueue()
        for task in 0..<tasks {
          queue.add {
            var access = AStar.TransactionalGrid(walls: grid)
            log.append(AStar.runTask(task, on: &access))
          }
        }
        return Trial(ops: tasks, workerCount: 1) { _ in
          runToCompletion(queue, threads: threads, workload: "astar")
        } verify: {
          AStar.check(log: log.elements, finalWalls: grid.elements, tasks: tasks)
        }
      },
      Implementation(name: "threads + Mutex<grid>", kind: .baseline) { threads in
        let state = Mutex(AStar.LockedState())
        let nextTask = Atomic<Int>(0)
        return Trial(ops: tasks) { _ in
          while case let task = nextTask.add(1, ordering: .relaxed).oldValue, task < tasks {
            // The whole task under the one lock: what keeps a path valid without an STM.
            state.withLock { state in
              state.log.append(AStar.runTask(task, on: &state.walls))
            }
          }
        } verify: {
          state.withLock { AStar.check(log: $0.log, finalWalls: $0.walls.cells, tasks: tasks) }
        }
      },
      Implementation(name: "serial", kind: .serial) { _ in
        let result = AStar.SerialResult()
        return Trial(ops: tasks) { _ in
          var walls = AStar.PlainGrid(cells: AStar.initialWalls)
          var log: [AStar.Record] = []
          log.reserveCapacity(tasks)
          for task in 0..<tasks { log.append(AStar.runTask(task, on: &walls)) }
          result.walls = walls.cells
          result.log = log
        } verify: {
          AStar.check(log: result.log, finalWalls: result.walls, tasks: tasks)
        }
      },
    ]
  }
}
