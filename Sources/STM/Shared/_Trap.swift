import STMCore

/// Stops the program with `message`, a mistake in the caller's use of a collection, reported
/// at `site`, the caller's line (where the public operation took it), instead of at this
/// library's line; at this line when the caller's is not known (a property, which takes no
/// location).
@usableFromInline
func _trap(_ message: String, at site: _CallSite) -> Never {
  guard site.line != 0 else { fatalError(message) }
  fatalError(message, file: site.fileID, line: site.line)
}
