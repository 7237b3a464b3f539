import ArgumentParser
import CastleSupport
import Streams

/// Runs a blocking batch job on a thread of its own (``onOwnThread(_:)``), turning a ``CastleError`` into
/// its message on stderr and its exit code. A closed stdout (`| head`) ends quietly with 0, as Unix tools
/// do.
func runJob<T: Sendable>(_ name: String, _ job: @escaping @Sendable () throws(CastleError) -> T) async throws -> T {
    try await runAsyncJob(name) { () async throws(CastleError) -> T in try await onOwnThread(job) }
}

/// The one input of a command (docs/cli.md): `castle CMD FILE`, `-` or nothing for stdin, and `-i FILE`
/// as a synonym that older scripts use. Giving both is a usage error.
struct InputOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The input file; - or none: stdin.", valueName: "file"))
    var file: String?

    @Option(name: [.short, .long], help: ArgumentHelp("The same as FILE.", valueName: "file"))
    var input: String?

    func validate() throws {
        if let file, let input {
            throw ValidationError("give the input once, as FILE or as -i FILE, not both ('\(file)', '\(input)')")
        }
    }

    /// The input as given (`-` included), or nil when none was.
    var given: String? { file ?? input }

    /// The file to read, nil for stdin.
    var path: String? { given == "-" ? nil : given }
}

/// `-q`: no progress bar and no summary on stderr; errors are still printed.
struct QuietOption: ParsableArguments {
    @Flag(name: [.short, .long], help: "No progress bar and no summary on stderr.")
    var quiet = false
}

func formatCount(_ value: Double) -> String {
    if value >= 1e6 { return String(format2(value / 1e6)) + "M" }
    if value >= 1e3 { return String(format2(value / 1e3)) + "k" }
    return format2(value)
}

/// Two decimals, without Foundation.
func format2(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}
