import Foundation

/// What a chart's title says about where and when its figures were measured: throughput is
/// only comparable between runs on the same kind of machine.
enum MachineDescription {
  /// "x86_64, Linux 6.8.0, 2 cores".
  static var summary: String {
    var names = utsname()
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let coreCount = cores == 1 ? "1 core" : "\(cores) cores"
    guard uname(&names) == 0 else { return coreCount }
    let system = "\(string(names.sysname)) \(string(names.release))"
    return "\(string(names.machine)), \(system), \(coreCount)"
  }

  /// "2025-06-01 14:03 +02:00": the local time, with its offset so that it is unambiguous.
  static func timestamp(_ date: Date = Date()) -> String {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.dateFormat = "yyyy-MM-dd HH:mm xxx"
    return formatter.string(from: date)
  }

  /// A NUL-terminated `utsname` field (a fixed-size tuple of C characters) as a string.
  private static func string<Field>(_ field: Field) -> String {
    withUnsafeBytes(of: field) { bytes in
      String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
  }
}
