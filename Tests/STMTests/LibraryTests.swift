import Testing

/// Every suite, engine and collections, is nested here so that the suites run one after another: several of them
/// assert exact statistics or history lengths, which other suites running at the same time
/// would disturb. Each suite's threads still run concurrently with each other.
@Suite(.serialized)
struct LibraryTests {}
