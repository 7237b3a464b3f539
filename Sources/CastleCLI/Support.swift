import ArgumentParser
import CastleCore
import Formats

/// Runs a blocking batch job on a thread of its own (``onOwnThread(_:)``), turning a ``CastleError`` into
/// its message on stderr and its exit code. A closed stdout (`| head`) ends quietly with 0, as Unix tools
/// do.
func runJob<T: Sendable>(_ name: String, _ job: @escaping @Sendable () throws(CastleError) -> T) async throws -> T {
    try await runAsyncJob(name) { () async throws(CastleError) -> T in try await onOwnThread(job) }
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
