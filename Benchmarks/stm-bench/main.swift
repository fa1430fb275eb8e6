// The entry point stays tiny: everything lives in the files named after what they do.
import Foundation

exit(BenchmarkCommand.run(arguments: Array(CommandLine.arguments.dropFirst())))
