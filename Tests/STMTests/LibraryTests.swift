import Testing

// The tests read what only debug builds keep (live-object counts, the engine's test hooks and
// per-thread counters): a build without them would have to fake those results.
#if !DEBUG
#error("The tests need a debug build: run them with `swift test`, which builds one.")
#endif

/// Every suite, engine and collections, is nested here so that the suites run one after another: several of them
/// assert exact statistics or history lengths, which other suites running at the same time
/// would disturb. Each suite's threads still run concurrently with each other.
@Suite(.serialized)
struct LibraryTests {}
