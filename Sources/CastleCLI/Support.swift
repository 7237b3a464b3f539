import ArgumentParser
import CastleCore
import CastleSupport
import Streams

/// Runs a job, turning a ``CastleError`` into its message on stderr and its exit code. A closed stdout
/// (`| head`) ends quietly with 0, as Unix tools do.
func runJob<T>(_ name: String, _ job: () throws(CastleError) -> T) throws -> T {
    do {
        return try job()
    } catch {
        if OutputSink.isBrokenPipe(error) { throw ExitCode.success }
        writeStandardError("castle \(name): \(error.message)\n")
        throw ExitCode(error.exitCode)
    }
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

/// Parses `--stp`, listing the valid modes when the value is not one.
func parseSTPMode(_ text: String) throws -> STPMode {
    guard let mode = STPMode(name: text) else {
        let names = STPMode.allCases.map { $0.name.description }.joined(separator: ", ")
        throw ValidationError("--stp must be one of \(names); got '\(text)'")
    }
    return mode
}
