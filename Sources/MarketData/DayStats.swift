import CastleCore

/// Statistics of one replayed day, accumulated event by event, all exact integers.
///
/// The replay calls, per input message:
/// - `count(_ kind: L3Event.Kind)` or `count(_ name: String, by:)` — messages by kind, under any name
///   (`add`/`execute`… for level-3 feeds, `new`/`cancel`/`amend` for order streams);
/// - ``observe(timeNs:line:bestBid:bestAsk:)`` after applying it — time gaps, out-of-order timestamps,
///   crossed books, the spread and the depth at the touch;
/// - ``trade(_:)`` for each trade it produced;
/// - ``anomaly(_:line:)`` for what only the replay can see (unknown order ids, over-executions);
/// - ``halt(_:timeNs:line:)`` for trading-status messages.
///
/// Spreads are kept as a histogram (spread → count), so the median and p99 are exact values that did
/// occur; the day's distinct spreads are few, so the histogram stays small.
public struct DayStats: Sendable {
    /// What the replay found wrong in its input, counted with the line of the first occurrence.
    public enum Anomaly: Int, Sendable, Hashable, CaseIterable {
        /// Best bid at or above best ask (crossed or locked). Recorded by `observe`.
        case crossedBook
        /// A cancel, delete or execution for an order id that is not resting.
        case unknownOrder
        /// A timestamp below the previous event's. Recorded by `observe`.
        case outOfOrder
        /// An execution or cancellation of more than the order's remaining size.
        case overExecution

        /// The snake_case name used in the stats JSON.
        public var name: String {
            switch self {
            case .crossedBook: "crossed_book"
            case .unknownOrder: "unknown_order"
            case .outOfOrder: "out_of_order"
            case .overExecution: "over_execution"
            }
        }
    }

    /// A count and the 1-based source line of the first occurrence (nil while the count is 0).
    public struct Occurrences: Sendable, Hashable {
        public var count: Int
        public var firstLine: Int?

        public init(count: Int = 0, firstLine: Int? = nil) {
            self.count = count
            self.firstLine = firstLine
        }

        mutating func record(line: Int) {
            if count == 0 { firstLine = line }
            count += 1
        }
    }

    /// Trading status as announced by the feed (LOBSTER type 7: price -1, 0, 1).
    public enum HaltState: Sendable, Hashable {
        case halted
        case quotingResumed
        case tradingResumed

        public var name: String {
            switch self {
            case .halted: "halted"
            case .quotingResumed: "quoting_resumed"
            case .tradingResumed: "trading_resumed"
            }
        }
    }

    public struct Halt: Sendable, Hashable {
        public var state: HaltState
        public var timeNs: Int64
        public var line: Int

        public init(state: HaltState, timeNs: Int64, line: Int) {
            self.state = state
            self.timeNs = timeNs
            self.line = line
        }
    }

    /// The longest time between two consecutive observed events, and where it ends.
    public struct Gap: Sendable, Hashable {
        public var ns: Int64
        /// Time of the event that ended the gap.
        public var endTimeNs: Int64
        /// Line of the event that ended the gap.
        public var line: Int

        public init(ns: Int64, endTimeNs: Int64, line: Int) {
            self.ns = ns
            self.endTimeNs = endTimeNs
            self.line = line
        }
    }

    /// Names of the level-3 message kinds, in ``L3Event/Kind`` order; pass them to ``init(messageNames:)``
    /// so every kind appears in the output, even at zero.
    public static let l3MessageNames = ["add", "cancel", "delete", "execute", "execute_hidden", "cross", "halt"]

    /// The name a level-3 kind is counted under.
    public static func messageName(_ kind: L3Event.Kind) -> String { l3MessageNames[Int(kind.rawValue) - 1] }

    // MARK: Messages

    /// Message counts by name, in order of registration (``init(messageNames:)`` first, then first use).
    public private(set) var messages: [(name: String, count: Int)] = []
    private var messageIndex: [String: Int] = [:]
    /// Index into `messages` per level-3 kind (by raw value), so counting a kind does not hash a String.
    private var kindSlots: [Int] = Array(repeating: -1, count: 8)

    // MARK: Events and time

    /// Number of ``observe(timeNs:line:bestBid:bestAsk:)`` calls.
    public private(set) var events = 0
    public private(set) var firstTimeNs: Int64?
    public private(set) var lastTimeNs: Int64?
    public private(set) var longestGap: Gap?

    // MARK: Trades

    public private(set) var trades = 0
    public private(set) var volume: Int128 = 0
    /// Volume of buyer-initiated trades (aggressor buy); the rest was seller-initiated.
    public private(set) var buyVolume: Int128 = 0
    /// Σ price × qty.
    public private(set) var notional: Int128 = 0
    public private(set) var open: Int64?
    public private(set) var high: Int64?
    public private(set) var low: Int64?
    public private(set) var close: Int64?

    // MARK: Book

    /// Spread (ask − bid, in price units) → number of events that saw it; only two-sided, uncrossed books.
    public private(set) var spreadHistogram: [Int64: Int] = [:]
    public private(set) var spreadObservations = 0
    public private(set) var spreadSum: Int128 = 0
    /// Σ best-bid quantity over events with a bid, and how many such events.
    public private(set) var bidDepthSum: Int128 = 0
    public private(set) var bidDepthObservations = 0
    public private(set) var askDepthSum: Int128 = 0
    public private(set) var askDepthObservations = 0

    // MARK: Anomalies and status

    private var anomalyCounts = Array(repeating: Occurrences(), count: Anomaly.allCases.count)
    public private(set) var halts: [Halt] = []

    /// `messageNames` are registered up front, in order, so they appear in the output even when zero.
    public init(messageNames: [String] = []) {
        for name in messageNames { _ = slot(for: name) }
    }

    private mutating func slot(for name: String) -> Int {
        if let index = messageIndex[name] { return index }
        messages.append((name, 0))
        messageIndex[name] = messages.count - 1
        return messages.count - 1
    }

    /// The slot under which `name` is counted (registered when new), for ``count(at:)`` on hot paths.
    public mutating func messageSlot(_ name: String) -> Int { slot(for: name) }

    /// Counts one message in a slot from ``messageSlot(_:)``.
    public mutating func count(at slot: Int) { messages[slot].count += 1 }

    /// Counts `n` messages under `name`.
    public mutating func count(_ name: String, by n: Int = 1) {
        messages[slot(for: name)].count += n
    }

    /// Counts one level-3 message under ``messageName(_:)``.
    public mutating func count(_ kind: L3Event.Kind) {
        var index = kindSlots[Int(kind.rawValue)]
        if index < 0 {
            index = slot(for: Self.messageName(kind))
            kindSlots[Int(kind.rawValue)] = index
        }
        messages[index].count += 1
    }

    /// The count under `name` (0 when never counted).
    public func messageCount(_ name: String) -> Int { messageIndex[name].map { messages[$0].count } ?? 0 }

    /// Records the book after an event: the time gap from the previous event (or an out-of-order
    /// timestamp, which is not a gap), a crossed or locked book (excluded from spread statistics, where
    /// it would be a meaningless negative or zero spread), the spread when both sides exist, and the
    /// quantity at each best level that exists.
    public mutating func observe(timeNs: Int64, line: Int, bestBid: L2Level?, bestAsk: L2Level?) {
        events += 1
        if let last = lastTimeNs {
            if timeNs < last {
                anomalyCounts[Anomaly.outOfOrder.rawValue].record(line: line)
            } else {
                let (gap, overflow) = timeNs.subtractingReportingOverflow(last)
                let ns = overflow ? Int64.max : gap
                if ns > (longestGap?.ns ?? -1) { longestGap = Gap(ns: ns, endTimeNs: timeNs, line: line) }
            }
        } else {
            firstTimeNs = timeNs
        }
        // Consecutive events are compared, so one stray timestamp is one anomaly, not the rest of the day.
        lastTimeNs = timeNs
        if let bestBid {
            bidDepthSum += bestBid.qty
            bidDepthObservations += 1
        }
        if let bestAsk {
            askDepthSum += bestAsk.qty
            askDepthObservations += 1
        }
        if let bestBid, let bestAsk {
            if bestBid.price >= bestAsk.price {
                anomalyCounts[Anomaly.crossedBook.rawValue].record(line: line)
            } else {
                let (spread, overflow) = bestAsk.price.subtractingReportingOverflow(bestBid.price)
                let value = overflow ? Int64.max : spread
                spreadHistogram[value, default: 0] += 1
                spreadObservations += 1
                spreadSum += Int128(value)
            }
        }
    }

    /// Adds one trade to the day's volume, notional and open/high/low/close.
    public mutating func trade(_ trade: TradePrint) {
        trades += 1
        volume += Int128(trade.qty)
        if trade.aggressor == .buy { buyVolume += Int128(trade.qty) }
        notional += Int128(trade.price) * Int128(trade.qty)
        if open == nil { open = trade.price }
        high = max(high ?? trade.price, trade.price)
        low = min(low ?? trade.price, trade.price)
        close = trade.price
    }

    /// Records an anomaly the replay found at `line`.
    public mutating func anomaly(_ kind: Anomaly, line: Int) {
        anomalyCounts[kind.rawValue].record(line: line)
    }

    /// The count and first line of `kind`.
    public func occurrences(_ kind: Anomaly) -> Occurrences { anomalyCounts[kind.rawValue] }

    /// Records a trading-status message.
    public mutating func halt(_ state: HaltState, timeNs: Int64, line: Int) {
        halts.append(Halt(state: state, timeNs: timeNs, line: line))
    }

    // MARK: Derived values

    /// The day's VWAP in units of `10^-extraDecimals` price units, rounded half to even; nil with no volume.
    public func vwap(extraDecimals: UInt8 = 2) -> Int128? {
        roundedQuotient(notional, volume, extraDecimals: extraDecimals)
    }

    /// Mean spread in units of `10^-extraDecimals` price units, rounded half to even.
    public func meanSpread(extraDecimals: UInt8 = 2) -> Int128? {
        roundedQuotient(spreadSum, Int128(spreadObservations), extraDecimals: extraDecimals)
    }

    /// Mean best-bid quantity in units of `10^-extraDecimals` lots, rounded half to even.
    public func meanBidDepth(extraDecimals: UInt8 = 2) -> Int128? {
        roundedQuotient(bidDepthSum, Int128(bidDepthObservations), extraDecimals: extraDecimals)
    }

    /// Mean best-ask quantity in units of `10^-extraDecimals` lots, rounded half to even.
    public func meanAskDepth(extraDecimals: UInt8 = 2) -> Int128? {
        roundedQuotient(askDepthSum, Int128(askDepthObservations), extraDecimals: extraDecimals)
    }

    /// The spread at quantile `numerator / denominator` by the nearest-rank method: the smallest observed
    /// spread such that at least that fraction of observations are at or below it. So the median
    /// (`1, 2`) of an even count is the lower middle value, and every answer is an exact, observed spread.
    /// Nil with no observations.
    public func spreadQuantile(_ numerator: Int, _ denominator: Int) -> Int64? {
        precondition(denominator > 0 && numerator >= 0 && numerator <= denominator, "quantile outside 0...1")
        guard spreadObservations > 0 else { return nil }
        // rank = ceil(q × n), at least 1.
        let product = Int128(numerator) * Int128(spreadObservations)
        let rank = max(1, Int((product + Int128(denominator) - 1) / Int128(denominator)))
        var seen = 0
        for spread in spreadHistogram.keys.sorted() {
            seen += spreadHistogram[spread]!
            if seen >= rank { return spread }
        }
        return nil
    }

    public var medianSpread: Int64? { spreadQuantile(1, 2) }
    public var p99Spread: Int64? { spreadQuantile(99, 100) }
    public var minSpread: Int64? { spreadHistogram.keys.min() }
    public var maxSpread: Int64? { spreadHistogram.keys.max() }
}
