import CastleCore
public import CastleSupport
public import MarketData
public import Streams

// Writers for `castle replay`'s analytics outputs. Every number is written from integers (prices and
// quantities as canonical decimals in the feed's units, means and VWAPs rounded half to even by integer
// division), so the same replay writes the same bytes on every machine.

/// Line format of a row-per-record output.
public enum ReplayFormat: Sendable, Hashable {
    /// One JSON object a line; decimals as strings, as in the event contract.
    case ndjson
    /// A header line, then comma-separated rows; decimals bare.
    case csv
}

// MARK: - Int128 decimals

/// Writes the canonical decimal text of `value × 10^-decimals` (no exponent, no trailing zeros after the
/// point, no point for whole numbers — as ``writeDecimal(_:decimals:to:)``) to `out`, which must have room
/// for 48 bytes; returns the length. `decimals` may be up to 38, beyond ``FixedDecimal/maxScale``, because
/// volumes, notionals and VWAPs carry more decimals than a price.
public func writeDecimal128(_ value: Int128, decimals: UInt8, to out: UnsafeMutablePointer<UInt8>) -> Int {
    precondition(decimals <= 38, "more than 38 decimals")
    if decimals <= FixedDecimal.maxScale, let small = Int64(exactly: value) {
        return writeDecimal(small, decimals: decimals, to: out)
    }
    // All the digits of the magnitude, 19 at a time (10^19 is the largest power of ten in a UInt64).
    let chunk: UInt128 = 10_000_000_000_000_000_000
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { digits in
        let base = digits.baseAddress!
        var magnitude = value.magnitude
        var start = 40
        repeat {
            let low = UInt64(magnitude % chunk)
            magnitude /= chunk
            let written = writeDigitsBackward(low, endingAt: base + start)
            start -= written
            if magnitude > 0 {
                // Inner chunks keep their leading zeros.
                for _ in written..<19 {
                    start -= 1
                    base[start] = 48
                }
            }
        } while magnitude > 0
        let count = 40 - start
        let d = Int(decimals)
        var length = 0
        if value < 0 {
            out[0] = UInt8(ascii: "-")
            length = 1
        }
        if count > d {
            (out + length).update(from: base + start, count: count - d)
            length += count - d
        } else {
            out[length] = 48
            length += 1
        }
        // The fraction: d digits, left-padded with zeros when the number is shorter, trailing zeros cut.
        var fraction: [UInt8] = Array(repeating: 48, count: max(0, d - count))
        fraction.append(contentsOf: UnsafeBufferPointer(start: base + start + max(0, count - d), count: min(d, count)))
        while fraction.last == 48 { fraction.removeLast() }
        if !fraction.isEmpty {
            out[length] = UInt8(ascii: ".")
            length += 1
            for byte in fraction {
                out[length] = byte
                length += 1
            }
        }
        return length
    }
}

/// ``writeDecimal128(_:decimals:to:)`` as a String.
public func formatDecimal128(_ value: Int128, decimals: UInt8) -> String {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48) { buffer in
        let length = writeDecimal128(value, decimals: decimals, to: buffer.baseAddress!)
        return String(decoding: UnsafeBufferPointer(start: buffer.baseAddress!, count: length), as: UTF8.self)
    }
}

extension OutputSink {
    /// Appends the canonical decimal of an Int128 (see ``writeDecimal128(_:decimals:to:)``); needs 48 bytes
    /// reserved.
    @inline(__always)
    public func appendDecimal128(_ value: Int128, decimals: UInt8) {
        count += writeDecimal128(value, decimals: decimals, to: buffer + count)
    }
}

// MARK: - Exchange time

/// Time of day of a feed timestamp, for labels and summaries.
///
/// A timestamp below two days is taken as nanoseconds since midnight (LOBSTER's time column) and shown as
/// is; a larger one as nanoseconds since the Unix epoch, shown as the UTC time of day.
public enum ExchangeClock {
    public static let dayNs: Int64 = 86_400_000_000_000

    /// Nanoseconds since midnight: as is for times since midnight, modulo one day for epoch times.
    public static func timeOfDayNs(_ timeNs: Int64) -> Int64 {
        if timeNs >= 0 && timeNs < 2 * dayNs { return timeNs }
        let r = timeNs % dayNs
        return r < 0 ? r + dayNs : r
    }

    /// `HH:MM`, `HH:MM:SS` (with `seconds`), plus `.` and `fractionDigits` digits of the second (truncated).
    /// Hours past 24 (times since midnight beyond one day) are printed as they are.
    public static func format(_ timeNs: Int64, seconds: Bool = true, fractionDigits: Int = 0) -> String {
        let t = timeOfDayNs(timeNs)
        let totalSeconds = t / 1_000_000_000
        var text = pad2(totalSeconds / 3600) + ":" + pad2(totalSeconds / 60 % 60)
        guard seconds else { return text }
        text += ":" + pad2(totalSeconds % 60)
        if fractionDigits > 0 {
            let digits = min(fractionDigits, 9)
            let fraction = (t % 1_000_000_000) / powersOfTen[9 - digits]
            let body = String(fraction)
            text += "." + String(repeating: "0", count: digits - body.count) + body
        }
        return text
    }

    private static func pad2(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
}

// MARK: - Trades

/// Writes trades: NDJSON `{"time_ns":…,"price":"…","qty":"…","side":"buy"}` (side: the aggressor's) or
/// CSV `time_ns,price,qty,side` with a header line.
public final class TradeWriter {
    public let sink: OutputSink
    public let format: ReplayFormat
    public let priceDecimals: UInt8
    public let qtyDecimals: UInt8

    /// Writes the CSV header at once, so an empty day still gives a file with its header.
    public init(sink: OutputSink, format: ReplayFormat, priceDecimals: UInt8, qtyDecimals: UInt8) throws(CastleError) {
        self.sink = sink
        self.format = format
        self.priceDecimals = priceDecimals
        self.qtyDecimals = qtyDecimals
        if format == .csv { try sink.write("time_ns,price,qty,side\n") }
    }

    public func write(_ trade: TradePrint) throws(CastleError) {
        try sink.reserve(256)
        let out = sink
        switch format {
        case .ndjson:
            out.append("{\"time_ns\":")
            appendSigned(trade.timeNs, out)
            out.append(",\"price\":\"")
            out.appendDecimal(trade.price, decimals: priceDecimals)
            out.append("\",\"qty\":\"")
            out.appendDecimal(trade.qty, decimals: qtyDecimals)
            out.append("\",\"side\":\"")
            out.append(trade.aggressor.name)
            out.append("\"}\n")
        case .csv:
            appendSigned(trade.timeNs, out)
            out.append(UInt8(ascii: ","))
            out.appendDecimal(trade.price, decimals: priceDecimals)
            out.append(UInt8(ascii: ","))
            out.appendDecimal(trade.qty, decimals: qtyDecimals)
            out.append(UInt8(ascii: ","))
            out.append(trade.aggressor.name)
            out.append(UInt8(ascii: "\n"))
        }
    }
}

/// Times are written as plain integers; they are negative only for odd inputs, but must stay exact then.
@inline(__always)
private func appendSigned(_ value: Int64, _ out: OutputSink) {
    out.appendDecimal(value, decimals: 0)
}

// MARK: - Bars

/// Writes bars: NDJSON `{"start_ns":…,"open":"…","high":"…","low":"…","close":"…","volume":"…",`
/// `"vwap":"…","trades":…}` (one line) or CSV `start_ns,open,high,low,close,volume,vwap,trades` with a
/// header line. The VWAP is rounded half to even
/// to `priceDecimals + 2` decimals and written canonically (trailing zeros dropped, as every decimal in
/// castle's outputs); a bar of zero volume (only zero-quantity prints) has VWAP `null` / an empty field.
public final class BarWriter {
    public let sink: OutputSink
    public let format: ReplayFormat
    public let priceDecimals: UInt8
    public let qtyDecimals: UInt8

    public init(sink: OutputSink, format: ReplayFormat, priceDecimals: UInt8, qtyDecimals: UInt8) throws(CastleError) {
        self.sink = sink
        self.format = format
        self.priceDecimals = priceDecimals
        self.qtyDecimals = qtyDecimals
        if format == .csv { try sink.write("start_ns,open,high,low,close,volume,vwap,trades\n") }
    }

    public func write(_ bar: Bar) throws(CastleError) {
        try sink.reserve(512)
        let out = sink
        let vwap = bar.vwap(extraDecimals: 2)
        switch format {
        case .ndjson:
            out.append("{\"start_ns\":")
            appendSigned(bar.startNs, out)
            out.append(",\"open\":\"")
            out.appendDecimal(bar.open, decimals: priceDecimals)
            out.append("\",\"high\":\"")
            out.appendDecimal(bar.high, decimals: priceDecimals)
            out.append("\",\"low\":\"")
            out.appendDecimal(bar.low, decimals: priceDecimals)
            out.append("\",\"close\":\"")
            out.appendDecimal(bar.close, decimals: priceDecimals)
            out.append("\",\"volume\":\"")
            out.appendDecimal128(bar.volume, decimals: qtyDecimals)
            if let vwap {
                out.append("\",\"vwap\":\"")
                out.appendDecimal128(vwap, decimals: priceDecimals + 2)
                out.append("\",\"trades\":")
            } else {
                out.append("\",\"vwap\":null,\"trades\":")
            }
            out.appendUnsigned(UInt64(bar.trades))
            out.append("}\n")
        case .csv:
            appendSigned(bar.startNs, out)
            out.append(UInt8(ascii: ","))
            out.appendDecimal(bar.open, decimals: priceDecimals)
            out.append(UInt8(ascii: ","))
            out.appendDecimal(bar.high, decimals: priceDecimals)
            out.append(UInt8(ascii: ","))
            out.appendDecimal(bar.low, decimals: priceDecimals)
            out.append(UInt8(ascii: ","))
            out.appendDecimal(bar.close, decimals: priceDecimals)
            out.append(UInt8(ascii: ","))
            out.appendDecimal128(bar.volume, decimals: qtyDecimals)
            out.append(UInt8(ascii: ","))
            if let vwap { out.appendDecimal128(vwap, decimals: priceDecimals + 2) }
            out.append(UInt8(ascii: ","))
            out.appendUnsigned(UInt64(bar.trades))
            out.append(UInt8(ascii: "\n"))
        }
    }
}

// MARK: - Book snapshots

/// Writes level-2 snapshots.
///
/// CSV follows LOBSTER's orderbook file, prefixed by a `time_ns` column and preceded by a header line:
/// `time_ns,ask_price_1,ask_size_1,bid_price_1,bid_size_1,ask_price_2,…` for a fixed number of `levels`;
/// deeper levels of a snapshot are left out. A missing level is written in one of two ways (see
/// ``EmptyLevels``): LOBSTER's dummies, or empty fields. NDJSON writes every level of the snapshot:
/// `{"time_ns":…,"bids":[["price","qty"],…],"asks":[…]}`, best first.
public final class SnapshotWriter {
    /// How the CSV writes a level the book does not have.
    public enum EmptyLevels: Sendable, Hashable {
        /// LOBSTER's dummies, verbatim as in LOBSTER files: ask price `9999999999`, bid price `-9999999999`,
        /// size `0`. They are not rescaled to the price decimals: tools test for these literal values.
        case lobster
        /// Empty fields (`,,`), which CSV readers load as missing values.
        case blank
    }

    public let sink: OutputSink
    public let format: ReplayFormat
    public let priceDecimals: UInt8
    public let qtyDecimals: UInt8
    public let levels: Int
    public let emptyLevels: EmptyLevels

    /// `levels` (CSV only) is the number of levels per side in each row; `emptyLevels` defaults to
    /// ``EmptyLevels/lobster`` when `priceDecimals` is 4 (LOBSTER's price unit) and ``EmptyLevels/blank``
    /// otherwise.
    public init(
        sink: OutputSink,
        format: ReplayFormat,
        priceDecimals: UInt8,
        qtyDecimals: UInt8,
        levels: Int = 10,
        emptyLevels: EmptyLevels? = nil
    ) throws(CastleError) {
        precondition(levels >= 1, "at least one level")
        self.sink = sink
        self.format = format
        self.priceDecimals = priceDecimals
        self.qtyDecimals = qtyDecimals
        self.levels = levels
        self.emptyLevels = emptyLevels ?? (priceDecimals == 4 ? .lobster : .blank)
        if format == .csv {
            var header = "time_ns"
            for level in 1...levels {
                header += ",ask_price_\(level),ask_size_\(level),bid_price_\(level),bid_size_\(level)"
            }
            try sink.write(header + "\n")
        }
    }

    public func write(_ snapshot: L2Snapshot) throws(CastleError) {
        switch format {
        case .ndjson:
            try sink.reserve(64)
            sink.append("{\"time_ns\":")
            appendSigned(snapshot.timeNs, sink)
            sink.append(",\"bids\":")
            try writeSide(snapshot.bids)
            try sink.reserve(16)
            sink.append(",\"asks\":")
            try writeSide(snapshot.asks)
            try sink.reserve(4)
            sink.append("}\n")
        case .csv:
            try sink.reserve(32)
            appendSigned(snapshot.timeNs, sink)
            for index in 0..<levels {
                try sink.reserve(2 * Self.columnBytesMax)
                appendCachedLevel(2 * index, index < snapshot.asks.count ? snapshot.asks[index] : nil, "9999999999")
                appendCachedLevel(
                    2 * index + 1,
                    index < snapshot.bids.count ? snapshot.bids[index] : nil,
                    "-9999999999"
                )
            }
            sink.append(UInt8(ascii: "\n"))
        }
    }

    /// Room for `,price,qty`: a sign and 19 digits and a point, then an Int128 with sign and point.
    private static let columnBytesMax = 80
    /// Consecutive snapshots differ in a level or two, so each column keeps its last text and copies
    /// it while the level is unchanged: formatting 4 × `levels` numbers per event would dominate.
    private var cachedLevels: [L2Level?] = []
    private var cachedLengths: [Int] = []
    private var cachedText: UnsafeMutablePointer<UInt8>?

    deinit { cachedText?.deallocate() }

    @inline(__always)
    private func appendCachedLevel(_ column: Int, _ level: L2Level?, _ dummyPrice: StaticString) {
        if cachedText == nil {
            cachedText = .allocate(capacity: 2 * levels * Self.columnBytesMax)
            cachedLevels = Array(repeating: nil, count: 2 * levels)
            cachedLengths = Array(repeating: -1, count: 2 * levels)
        }
        let text = cachedText! + column * Self.columnBytesMax
        if cachedLengths[column] >= 0 && cachedLevels[column] == level {
            sink.append(UnsafeBufferPointer(start: text, count: cachedLengths[column]))
            return
        }
        let start = sink.count
        appendLevel(level, dummyPrice: dummyPrice)
        let length = sink.count - start
        text.update(from: sink.buffer + start, count: length)
        cachedLengths[column] = length
        cachedLevels[column] = level
    }

    private func writeSide(_ side: [L2Level]) throws(CastleError) {
        try sink.reserve(4)
        sink.append(UInt8(ascii: "["))
        for (n, level) in side.enumerated() {
            try sink.reserve(128)
            if n > 0 { sink.append(UInt8(ascii: ",")) }
            sink.append("[\"")
            sink.appendDecimal(level.price, decimals: priceDecimals)
            sink.append("\",\"")
            sink.appendDecimal128(level.qty, decimals: qtyDecimals)
            sink.append("\"]")
        }
        try sink.reserve(4)
        sink.append(UInt8(ascii: "]"))
    }

    @inline(__always)
    private func appendLevel(_ level: L2Level?, dummyPrice: StaticString) {
        sink.append(UInt8(ascii: ","))
        if let level {
            sink.appendDecimal(level.price, decimals: priceDecimals)
            sink.append(UInt8(ascii: ","))
            sink.appendDecimal128(level.qty, decimals: qtyDecimals)
        } else if emptyLevels == .lobster {
            sink.append(dummyPrice)
            sink.append(",0")
        } else {
            sink.append(UInt8(ascii: ","))
        }
    }
}

// MARK: - Day statistics

/// Writes ``DayStats`` as one pretty JSON object with a fixed key order, and as a short summary for a
/// human (stderr).
///
/// Prices and spreads are decimals in the price units, quantities in the lot units; means and VWAPs carry
/// two more decimals than their unit, rounded half to even; a value that does not exist (no trades, no
/// two-sided book) is `null`. Messages are listed in ``DayStats/messages`` order; anomalies in
/// ``DayStats/Anomaly`` order, each with its count and first line.
public enum StatsWriter {
    public static func writeJSON(
        _ stats: DayStats,
        to sink: OutputSink,
        priceDecimals: UInt8,
        qtyDecimals: UInt8,
        symbol: String? = nil
    ) throws(CastleError) {
        try sink.write(json(stats, priceDecimals: priceDecimals, qtyDecimals: qtyDecimals, symbol: symbol))
    }

    /// The JSON text, newline-terminated.
    public static func json(
        _ stats: DayStats,
        priceDecimals: UInt8,
        qtyDecimals: UInt8,
        symbol: String? = nil
    )
        -> String
    {
        let p = priceDecimals
        let q = qtyDecimals
        func price(_ value: Int64?) -> String { value.map { "\"\(formatDecimal($0, decimals: p))\"" } ?? "null" }
        func decimal(_ value: Int128?, _ decimals: UInt8) -> String {
            value.map { "\"\(formatDecimal128($0, decimals: decimals))\"" } ?? "null"
        }
        func integer(_ value: Int64?) -> String { value.map { String($0) } ?? "null" }
        func string(_ text: String) -> String { String(decoding: jsonStringLiteral(Array(text.utf8)), as: UTF8.self) }
        /// `"key": value` lines at `indent`, comma-separated, in the order given.
        func members(_ pairs: [(String, String)], indent: String) -> String {
            pairs.map { "\(indent)\(string($0.0)): \($0.1)" }.joined(separator: ",\n")
        }
        func object(_ pairs: [(String, String)], indent: String) -> String {
            pairs.isEmpty ? "{}" : "{\n" + members(pairs, indent: indent + "  ") + "\n" + indent + "}"
        }

        let messages = stats.messages.map { ($0.name, String($0.count)) }
        let trades: [(String, String)] = [
            ("count", String(stats.trades)),
            ("volume", decimal(stats.volume, q)),
            ("buy_volume", decimal(stats.buyVolume, q)),
            ("sell_volume", decimal(stats.volume - stats.buyVolume, q)),
            ("notional", decimal(stats.notional, p + q)),
            ("vwap", decimal(stats.vwap(extraDecimals: 2), p + 2)),
            ("open", price(stats.open)),
            ("high", price(stats.high)),
            ("low", price(stats.low)),
            ("close", price(stats.close)),
        ]
        let spread: [(String, String)] = [
            ("observations", String(stats.spreadObservations)),
            ("mean", decimal(stats.meanSpread(extraDecimals: 2), p + 2)),
            ("median", price(stats.medianSpread)),
            ("p99", price(stats.p99Spread)),
            ("min", price(stats.minSpread)),
            ("max", price(stats.maxSpread)),
        ]
        let depth: [(String, String)] = [
            ("bid_observations", String(stats.bidDepthObservations)),
            ("mean_bid_qty", decimal(stats.meanBidDepth(extraDecimals: 2), q + 2)),
            ("ask_observations", String(stats.askDepthObservations)),
            ("mean_ask_qty", decimal(stats.meanAskDepth(extraDecimals: 2), q + 2)),
        ]
        let gap = stats.longestGap.map { "{\"ns\": \($0.ns), \"end_time_ns\": \($0.endTimeNs), \"line\": \($0.line)}" }
        let anomalies = DayStats.Anomaly.allCases.map { kind in
            let seen = stats.occurrences(kind)
            return (kind.name, "{\"count\": \(seen.count), \"first_line\": \(integer(seen.firstLine.map(Int64.init)))}")
        }
        let halts =
            stats.halts.isEmpty
            ? "[]"
            : "[\n"
                + stats.halts.map {
                    "    {\"state\": \"\($0.state.name)\", \"time_ns\": \($0.timeNs), \"line\": \($0.line)}"
                }.joined(separator: ",\n") + "\n  ]"

        var top: [(String, String)] = []
        if let symbol { top.append(("symbol", string(symbol))) }
        top += [
            ("events", String(stats.events)),
            ("first_time_ns", integer(stats.firstTimeNs)),
            ("last_time_ns", integer(stats.lastTimeNs)),
            ("messages", object(messages, indent: "  ")),
            ("trades", object(trades, indent: "  ")),
            ("spread", object(spread, indent: "  ")),
            ("touch_depth", object(depth, indent: "  ")),
            ("longest_gap", gap ?? "null"),
            ("anomalies", object(anomalies, indent: "  ")),
            ("halts", halts),
        ]
        return object(top, indent: "") + "\n"
    }

    /// A few lines for stderr: what was replayed, the trading, the book, and what looked wrong.
    public static func summary(_ stats: DayStats, priceDecimals: UInt8, qtyDecimals: UInt8) -> String {
        let p = priceDecimals
        let q = qtyDecimals
        func price(_ value: Int64?) -> String { value.map { formatDecimal($0, decimals: p) } ?? "-" }
        func decimal(_ value: Int128?, _ decimals: UInt8) -> String {
            value.map { formatDecimal128($0, decimals: decimals) } ?? "-"
        }
        var lines: [String] = []
        var events = "events: \(stats.events)"
        if let first = stats.firstTimeNs, let last = stats.lastTimeNs {
            events += ", \(ExchangeClock.format(first, fractionDigits: 3))"
            events += " to \(ExchangeClock.format(last, fractionDigits: 3))"
        }
        lines.append(events)
        if !stats.messages.isEmpty {
            lines.append("messages: " + stats.messages.map { "\($0.name) \($0.count)" }.joined(separator: ", "))
        }
        if stats.trades > 0 {
            lines.append(
                "trades: \(stats.trades), volume \(decimal(stats.volume, q)), VWAP \(decimal(stats.vwap(), p + 2))"
                    + " (open \(price(stats.open)), high \(price(stats.high)), low \(price(stats.low)),"
                    + " close \(price(stats.close)))"
            )
        } else {
            lines.append("trades: none")
        }
        if stats.spreadObservations > 0 {
            lines.append(
                "spread: mean \(decimal(stats.meanSpread(), p + 2)), median \(price(stats.medianSpread)),"
                    + " p99 \(price(stats.p99Spread)) over \(stats.spreadObservations) events"
            )
        }
        if stats.bidDepthObservations > 0 || stats.askDepthObservations > 0 {
            lines.append(
                "touch depth: mean bid \(decimal(stats.meanBidDepth(), q + 2)),"
                    + " mean ask \(decimal(stats.meanAskDepth(), q + 2))"
            )
        }
        if let gap = stats.longestGap {
            lines.append(
                "longest gap: \(formatDecimal(gap.ns, decimals: 9)) s, ending at line \(gap.line)"
                    + " (\(ExchangeClock.format(gap.endTimeNs, fractionDigits: 3)))"
            )
        }
        let anomalies = DayStats.Anomaly.allCases.compactMap { kind -> String? in
            let seen = stats.occurrences(kind)
            guard seen.count > 0, let line = seen.firstLine else { return nil }
            return "\(kind.name.replacing("_", with: " ")) \(seen.count) (first at line \(line))"
        }
        lines.append("anomalies: " + (anomalies.isEmpty ? "none" : anomalies.joined(separator: ", ")))
        if !stats.halts.isEmpty {
            lines.append(
                "status: "
                    + stats.halts.map {
                        let state = $0.state.name.replacing("_", with: " ")
                        return "\(state) at \(ExchangeClock.format($0.timeNs)) (line \($0.line))"
                    }.joined(separator: ", ")
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
