import CastleSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A progress bar on stderr, drawn only when stderr is a terminal, at most ten times a second.
public final class ProgressBar {
    private let label: String
    private let enabled: Bool
    private var lastDrawNs: UInt64 = 0
    private var drawn = false

    public init(label: String, forceDisabled: Bool = false) {
        self.label = label
        enabled = !forceDisabled && isatty(2) == 1
    }

    public var isEnabled: Bool { enabled }

    /// `done` of `total` bytes (total nil: unknown, shows the count only), plus a short status.
    public func update(done: Int, total: Int?, status: String) {
        guard enabled else { return }
        let now = monotonicNanoseconds()
        if now - lastDrawNs < 100_000_000 { return }
        lastDrawNs = now
        var line = "\r\u{1B}[2K\(label) "
        if let total, total > 0 {
            let fraction = min(1.0, Double(done) / Double(total))
            let width = 30
            let filled = Int(fraction * Double(width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            line += "\(Int(fraction * 100))% "
        }
        line += status
        writeStandardError(line)
        drawn = true
    }

    /// Clears the bar so that the summary line stands alone.
    public func finish() {
        guard enabled, drawn else { return }
        writeStandardError("\r\u{1B}[2K")
        drawn = false
    }
}
