/// One OHLCV bar: the trades whose time falls in `[startNs, startNs + interval)`.
///
/// Prices are in the feed's integer price units, quantities in its lot units; `notional` is Σ price × qty
/// in price units × lot units, so the VWAP is exact: `notional / volume` (see ``vwap(extraDecimals:)``).
public struct Bar: Sendable, Hashable {
    /// A multiple of the interval, in the same units and origin as the trades' `timeNs`.
    public var startNs: Int64
    public var open: Int64
    public var high: Int64
    public var low: Int64
    public var close: Int64
    /// Σ qty; Int128 because a day of Int64 quantities can sum past Int64.
    public var volume: Int128
    /// Σ price × qty, exact.
    public var notional: Int128
    public var trades: Int

    public init(
        startNs: Int64,
        open: Int64,
        high: Int64,
        low: Int64,
        close: Int64,
        volume: Int128,
        notional: Int128,
        trades: Int
    ) {
        self.startNs = startNs
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.notional = notional
        self.trades = trades
    }

    /// The volume-weighted average price in units of `10^-extraDecimals` price units (so with the default 2
    /// it has `priceDecimals + 2` decimals), rounded half to even; nil when the volume is zero.
    public func vwap(extraDecimals: UInt8 = 2) -> Int128? {
        roundedQuotient(notional, volume, extraDecimals: extraDecimals)
    }
}

/// Cuts a time-ordered stream of trades into bars of a fixed interval.
///
/// Bars are aligned to multiples of the interval counted from time zero of `timeNs` (midnight for
/// LOBSTER-style times, the epoch for epoch times), so the same trades always give the same bars whatever
/// the first trade's time. An interval with no trades produces no bar: the bar stream has holes rather than
/// flat bars with a made-up price. A trade stamped earlier than the open bar's start (out-of-order input)
/// is folded into the open bar, so bars never go backward in time; ``DayStats`` reports such timestamps.
public struct BarBuilder: Sendable {
    public let intervalNs: Int64
    private var current: Bar?

    /// `intervalNs` must be positive.
    public init(intervalNs: Int64) {
        precondition(intervalNs > 0, "bar interval must be positive")
        self.intervalNs = intervalNs
    }

    /// Adds a trade; returns the previous bar when this trade is the first of a later interval.
    public mutating func add(_ trade: TradePrint) -> Bar? {
        let notional = Int128(trade.price) * Int128(trade.qty)
        // An earlier trade (out of order) is below the end too, so it joins the open bar.
        if var bar = current, bar.startNs > Int64.max - intervalNs || trade.timeNs < bar.startNs + intervalNs {
            bar.high = max(bar.high, trade.price)
            bar.low = min(bar.low, trade.price)
            bar.close = trade.price
            bar.volume += Int128(trade.qty)
            bar.notional += notional
            bar.trades += 1
            current = bar
            return nil
        }
        let finished = current
        current = Bar(
            startNs: barStart(trade.timeNs),
            open: trade.price,
            high: trade.price,
            low: trade.price,
            close: trade.price,
            volume: Int128(trade.qty),
            notional: notional,
            trades: 1
        )
        return finished
    }

    /// Returns the open bar, if any, and starts over.
    public mutating func finish() -> Bar? {
        defer { current = nil }
        return current
    }

    /// The largest multiple of the interval not above `timeNs` (floor, also for negative times).
    private func barStart(_ timeNs: Int64) -> Int64 {
        var quotient = timeNs / intervalNs
        if timeNs % intervalNs < 0 { quotient -= 1 }
        let (start, overflow) = quotient.multipliedReportingOverflow(by: intervalNs)
        return overflow ? Int64.min : start
    }

    /// Parses an interval such as `1s`, `500ms`, `1m`, `5m`, `1h` into nanoseconds: a positive decimal
    /// integer followed by one of `ns`, `us`, `ms`, `s`, `m`, `h`, `d`, nothing else (no sign, spaces or
    /// fraction). Returns nil for anything else, for zero, and when the result does not fit an Int64.
    public static func parseInterval(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        var index = 0
        var value: Int64 = 0
        while index < bytes.count, bytes[index] &- 48 < 10 {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(bytes[index] &- 48))
            if o1 || o2 { return nil }
            value = s
            index += 1
        }
        if index == 0 || value == 0 { return nil }
        let unit: Int64
        switch String(decoding: bytes[index...], as: UTF8.self) {
        case "ns": unit = 1
        case "us": unit = 1_000
        case "ms": unit = 1_000_000
        case "s": unit = 1_000_000_000
        case "m": unit = 60_000_000_000
        case "h": unit = 3_600_000_000_000
        case "d": unit = 86_400_000_000_000
        default: return nil
        }
        let (ns, overflow) = value.multipliedReportingOverflow(by: unit)
        return overflow ? nil : ns
    }
}

/// `numerator / denominator` as an integer count of `10^-extraDecimals` units of the numerator's unit,
/// rounded half to even — exact, with no binary float. Nil when the denominator is zero or the result
/// does not fit an Int128.
///
/// Long division one decimal digit at a time, so the remainder never needs more than ten times the
/// denominator's magnitude.
public func roundedQuotient(_ numerator: Int128, _ denominator: Int128, extraDecimals: UInt8) -> Int128? {
    guard denominator != 0 else { return nil }
    let negative = (numerator < 0) != (denominator < 0)
    let n = numerator.magnitude
    let d = denominator.magnitude
    var result = n / d
    var remainder = n % d
    for _ in 0..<extraDecimals {
        let (scaled, o1) = result.multipliedReportingOverflow(by: 10)
        if o1 { return nil }
        // remainder < d ≤ 2^127, so remainder × 10 can overflow only for denominators near 2^127.
        let (wide, o2) = remainder.multipliedReportingOverflow(by: 10)
        if o2 { return nil }
        result = scaled + wide / d
        remainder = wide % d
    }
    // Half to even: compare 2 × remainder with d without overflowing (remainder < d).
    let half = d - remainder
    if remainder > half || (remainder == half && result & 1 == 1) {
        result += 1
    }
    guard result <= UInt128(Int128.max) else { return nil }
    return negative ? -Int128(result) : Int128(result)
}
