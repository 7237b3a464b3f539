#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Temporary output files that an interrupted run must not leave behind. A signal handler can only
/// reach global state and only call async-signal-safe functions, so the paths live in a fixed table
/// of C strings that the handler walks, unlinking each; then it exits 128 + the signal, as shells do.
public enum TemporaryFiles {
    private static let capacity = 32
    /// Written only on the thread that creates and finishes outputs; read by the handler.
    nonisolated(unsafe) private static let table: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let table = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: capacity)
        table.initialize(repeating: nil, count: capacity)
        return table
    }()

    /// Removes the registered files on SIGINT, SIGTERM and SIGHUP. Call once, at start.
    public static func removeOnSignals() {
        _ = table
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(signal) { number in
                for slot in 0..<TemporaryFiles.capacity {
                    if let path = TemporaryFiles.table[slot] { unlink(path) }
                }
                _exit(128 + number)
            }
        }
    }

    /// Registers `path`; returns its slot for ``unregister(_:)``, or nil when the table is full (the
    /// file is then only removed by the normal error paths).
    public static func register(_ path: String) -> Int? {
        for slot in 0..<capacity where table[slot] == nil {
            table[slot] = strdup(path)
            return slot
        }
        return nil
    }

    public static func unregister(_ slot: Int?) {
        guard let slot, let path = table[slot] else { return }
        table[slot] = nil
        free(path)
    }
}
