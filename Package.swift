// swift-tools-version: 6.0
import PackageDescription

// Two library targets keep the layering honest: `STMCore` is the engine (transactions,
// segments, cells, contention, statistics) and cannot see the collections; `STM` holds the
// collections and re-exports `STMCore`, so users only ever write `import STM`. `_STMThreadLocal`,
// a few lines of C, holds the engine's per-thread state for `STMCore` (Swift has no
// thread-local storage); nothing in it is API.
let package = Package(
  name: "swift-stm",
  platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .watchOS(.v11), .visionOS(.v2)],
  products: [
    .library(name: "STM", targets: ["STM"]),
  ],
  targets: [
    .target(name: "_STMThreadLocal", path: "Sources/_STMThreadLocal"),
    .target(name: "STMCore", dependencies: ["_STMThreadLocal"], path: "Sources/STMCore"),
    .target(name: "STM", dependencies: ["STMCore"], path: "Sources/STM"),
    .executableTarget(name: "stm-bench", dependencies: ["STM"], path: "Benchmarks/stm-bench"),
    .target(name: "STMTestSupport", dependencies: ["STM"], path: "Tests/STMTestSupport"),
    .testTarget(
      name: "STMTests",
      dependencies: ["STM", "STMCore", "STMTestSupport"],
      path: "Tests/STMTests"
    ),
    // The harness's own logic (its verdicts on the targets), tested through the executable.
    .testTarget(name: "BenchmarkHarnessTests", dependencies: ["stm-bench"], path: "Tests/BenchmarkHarnessTests"),
  ],
  swiftLanguageModes: [.v6]
)
