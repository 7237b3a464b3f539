import CastleCore
import MarketData
import Reports

/// Parsing of the replay controls: times of day, snapshot specs, speeds.
public enum ReplaySpec {
    /// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.fffffffff` → nanoseconds since midnight; a bare integer is
    /// taken as epoch nanoseconds. Returns nil for anything else.
    public static func time(_ text: String) -> TimeBound? {
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return Int64(text).map(TimeBound.epochNs)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3,
            let hours = Int64(parts[0]), (0...24).contains(hours), parts[0].count <= 2,
            let minutes = Int64(parts[1]), (0...59).contains(minutes), parts[1].count == 2
        else { return nil }
        var nanoseconds: Int64 = 0
        if parts.count == 3 {
            let seconds = parts[2].split(separator: ".", omittingEmptySubsequences: false)
            guard seconds.count <= 2, seconds[0].count == 2, let whole = Int64(seconds[0]), (0...59).contains(whole)
            else { return nil }
            nanoseconds = whole * 1_000_000_000
            if seconds.count == 2 {
                let fraction = seconds[1]
                guard (1...9).contains(fraction.count), let digits = Int64(fraction) else { return nil }
                nanoseconds += digits * powersOfTen[9 - fraction.count]
            }
        }
        let total = (hours * 3600 + minutes * 60) * 1_000_000_000 + nanoseconds
        guard total <= 86_400_000_000_000 else { return nil }
        return .timeOfDayNs(total)
    }

    public enum TimeBound: Sendable, Equatable {
        case timeOfDayNs(Int64)
        case epochNs(Int64)

        /// Does an event at `timeNs` (epoch ns when `isEpoch`, else ns since midnight) lie at or after it?
        public func isReached(by timeNs: Int64, isEpoch: Bool) -> Bool {
            switch self {
            case .timeOfDayNs(let bound):
                return (isEpoch ? ExchangeClock.timeOfDayNs(timeNs) : timeNs) >= bound
            case .epochNs(let bound):
                return timeNs >= bound
            }
        }
    }

    /// `LEVELS@INTERVAL`: `10@1s`, `5@100ms`, or `10@event` for a snapshot after every event.
    public struct Snapshots: Sendable, Equatable {
        public var levels: Int
        /// nil: after every event.
        public var intervalNs: Int64?

        public init(levels: Int, intervalNs: Int64?) {
            self.levels = levels
            self.intervalNs = intervalNs
        }
    }

    public static func snapshots(_ text: String) -> Snapshots? {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, let levels = Int(parts[0]), (1...1000).contains(levels) else { return nil }
        if parts[1] == "event" { return Snapshots(levels: levels, intervalNs: nil) }
        guard let interval = duration(String(parts[1])) else { return nil }
        return Snapshots(levels: levels, intervalNs: interval)
    }

    /// `250ms`, `1s`, `5m`, `1h`, `100us`, `10ns`, `1d` → nanoseconds (positive), as bars parse them.
    public static func duration(_ text: String) -> Int64? { BarBuilder.parseInterval(text) }

    /// `max` (nil) or a positive speed-up factor with up to 3 decimals, as thousandths.
    public static func speed(_ text: String) -> Speed? {
        if text == "max" { return .max }
        guard let decimal = FixedDecimal.parse(text), case .success(let milli) = decimal.scaled(to: 3), milli > 0
        else { return nil }
        return .times(thousandths: milli)
    }

    public enum Speed: Sendable, Equatable {
        case max
        /// N times real time, N = thousandths / 1000.
        case times(thousandths: Int64)
    }
}

/// Paces a replay against the recorded times: event time `t` is released at wall time
/// `start + (t - first) / speed`. The clock and the sleep are injected, so tests need no waiting.
public struct Pacer {
    public let thousandths: Int64
    private let now: () -> UInt64
    private let sleep: (UInt64) -> Void
    private var firstEventNs: Int64?
    private var startWallNs: UInt64 = 0

    public init(thousandths: Int64, now: @escaping () -> UInt64, sleep: @escaping (UInt64) -> Void) {
        precondition(thousandths > 0)
        self.thousandths = thousandths
        self.now = now
        self.sleep = sleep
    }

    /// Waits until the event at `eventNs` is due. Events out of order are released at once.
    public mutating func wait(for eventNs: Int64) {
        guard let first = firstEventNs else {
            firstEventNs = eventNs
            startWallNs = now()
            return
        }
        let elapsedEvent = eventNs - first
        if elapsedEvent <= 0 { return }
        // Int128: a day of nanoseconds times 1000 passes Int64 comfortably.
        let dueOffset = Int128(elapsedEvent) * 1000 / Int128(thousandths)
        let due = Int128(startWallNs) + dueOffset
        let current = Int128(now())
        if due > current { sleep(UInt64(due - current)) }
    }
}
