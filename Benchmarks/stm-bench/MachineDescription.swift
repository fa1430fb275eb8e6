import Foundation

/// What a chart's title says about where and when its figures were measured: throughput is
/// only comparable between runs on the same kind of machine.
enum MachineDescription {
  /// "x86_64, Linux 6.8.0, 2 cores".
  static var summary: String {
    var names = utsname()
    let cores = availableCores
    let coreCount = cores == 1 ? "1 core" : "\(cores) cores"
    guard uname(&names) == 0 else { return coreCount }
    let system = "\(string(names.sysname)) \(string(names.release))"
    return "\(string(names.machine)), \(system), \(coreCount)"
  }

  /// The cores this process may run on. On Linux that is its CPU affinity (`taskset`, a
  /// container's cpuset), which `ProcessInfo.activeProcessorCount` does not read: under
  /// `taskset -c 0` on 2 cores it said 2 (found by review). Read from `/proc/self/status`:
  /// Swift's Glibc module leaves out `sched_getaffinity`, a GNU extension.
  static var availableCores: Int {
    #if os(Linux)
    let field = "Cpus_allowed_list:"
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) })
    {
      // "0-3,8,10-11": ranges and single CPUs.
      var count = 0
      for part in line.dropFirst(field.count).split(separator: ",") {
        let bounds = part.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        if bounds.count == 1 { count += 1 }
        if bounds.count == 2, bounds[1] >= bounds[0] { count += bounds[1] - bounds[0] + 1 }
      }
      if count > 0 { return count }
    }
    #endif
    return ProcessInfo.processInfo.activeProcessorCount
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
