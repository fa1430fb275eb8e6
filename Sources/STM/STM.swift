// The collections live in this module; the engine they are built on is re-exported so that
// `import STM` is all a user writes.
@_exported import STMCore
