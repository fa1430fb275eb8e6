/// The engine's entry points that inlinable code calls: the untyped halves of single
/// operations and in-place updates outside transactions.
///
/// Static functions of a caseless enumeration, not of `_Engine`: a static function of a class
/// takes the class's metatype, which code inlined into a client module gets by calling the
/// class's metadata accessor before each call. Moved here, a drop-in
/// `dict[key, default: 0] += 1` went from 481 instructions to 471, `dict[key] = value` from
/// 439 to 431, and an enqueue with a dequeue from 2,490 to 2,465 (Callgrind); an
/// enumeration's metatype is nothing at run time.
@usableFromInline
enum _EngineEntry {}
