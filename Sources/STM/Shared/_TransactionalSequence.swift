/// A collection of this library: its iteration reads it at one snapshot (inside a
/// transaction, as part of the transaction) and can be repeated. A bulk operation given one
/// reads it inside its own atomic step, so that the step sees it whole; any other sequence is
/// gathered before the step, since a rerun would find a single-pass sequence used up.
@usableFromInline
protocol _TransactionalSequence {}

extension TArray: _TransactionalSequence {}
extension TSet: _TransactionalSequence {}
extension TDictionary: _TransactionalSequence {}
