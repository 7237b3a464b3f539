public import CastleCore
import HeapModule

/// Realistic synthetic order flow in the contract's NDJSON, the same bytes for the same seed.
///
/// Per symbol the mid price follows a geometric Brownian motion; a limit order's distance from the mid
/// follows a power law (most near the touch, a long tail deep in the book); about 10% of limit orders
/// cross the mid and take liquidity. About 15% of orders are IOC, 2% market, 1% FOK, 5% post-only.
/// Of the orders that rest, about 95% are cancelled after an exponential lifetime and about 20% are
/// amended first (a size-down that keeps priority, or a reprice); the rest are priced to be filled.
/// A few percent of cancels are sent again after the order is dead, as real clients do. Accounts are
/// drawn with Zipf weights, so self-trades happen.
///
/// Doubles drive the random walk only; every emitted price and quantity is an integer count of ticks
/// and lots, written as an exact decimal.
public struct OrderFlow {
    public struct Symbol: Sendable {
        public var name: String
        public var startPrice: Double
        /// Tick and lot as decimals; their scale is the instrument's decimals.
        public var tick: FixedDecimal
        public var lot: FixedDecimal

        public init(name: String, startPrice: Double, tick: String, lot: String) {
            self.name = name
            self.startPrice = startPrice
            self.tick = FixedDecimal.parse(tick)!
            self.lot = FixedDecimal.parse(lot)!
        }

        /// The instruments-file line for this symbol.
        public var instrumentsLine: String {
            "{\"symbol\":\"\(name)\",\"tick\":\"\(formatDecimal(tick.mantissa, decimals: tick.scale))\",\"lot\":\"\(formatDecimal(lot.mantissa, decimals: lot.scale))\"}"
        }
    }

    public struct Config: Sendable {
        public var seed: UInt64 = 1
        /// Number of lines (commands) to produce.
        public var count: Int = 100_000
        public var symbols: [Symbol] = OrderFlow.defaultSymbols
        public var accounts: Int = 100
        public var timestamps = true
        /// 2026-01-02T14:30:00Z.
        public var startNs: Int64 = 1_767_364_200_000_000_000
        /// Mean time between commands.
        public var interArrivalNs: Double = 100_000
        /// Mean lifetime of a resting order before its cancel.
        public var lifetimeNs: Double = 300_000_000
        /// Volatility of the mid per square-root second (0.5 basis points).
        public var volatility: Double = 0.00005
        /// Smallest distance of a passive order from the mid, in basis points of the price; the power
        /// law's scale, so books look alike whatever a symbol's tick.
        public var distanceMinBasisPoints: Double = 0.5

        public init() {}
    }

    public static let defaultSymbols: [Symbol] = [
        Symbol(name: "BTC-USD", startPrice: 30_000, tick: "0.01", lot: "0.0001"),
        Symbol(name: "ETH-USD", startPrice: 2_000, tick: "0.01", lot: "0.001"),
        Symbol(name: "SOL-USD", startPrice: 100, tick: "0.001", lot: "0.01"),
        Symbol(name: "DOGE-USD", startPrice: 0.08, tick: "0.00001", lot: "1"),
    ]
    /// How often each default symbol trades, in order.
    private static let symbolWeights: [Double] = [0.4, 0.3, 0.2, 0.1]

    private struct Pending: Comparable {
        enum Action {
            case cancel
            /// New price in ticks (nil: unchanged) and new quantity in lots (nil: unchanged).
            case amend(priceTicks: Int64?, lots: Int64?)
        }

        var timeNs: Int64
        var order: UInt64
        var id: UInt64
        var symbol: Int
        var action: Action
        /// A cancel sent again after the order is dead.
        var repeatCancel: Bool

        static func < (a: Pending, b: Pending) -> Bool { (a.timeNs, a.order) < (b.timeNs, b.order) }
        static func == (a: Pending, b: Pending) -> Bool { (a.timeNs, a.order) == (b.timeNs, b.order) }
    }

    public let config: Config
    private var random: Xoshiro256
    private var nowNs: Int64
    private var mids: [Double]
    private var nextID: UInt64 = 1
    private var pending = Heap<Pending>()
    private var pendingOrder: UInt64 = 0
    private var emitted = 0
    private let symbolCumulative: [Double]
    private let accountCumulative: [Double]

    public init(_ config: Config) {
        precondition(!config.symbols.isEmpty && config.accounts > 0)
        self.config = config
        random = Xoshiro256(seed: config.seed)
        nowNs = config.startNs
        mids = config.symbols.map { $0.startPrice }
        let weights =
            config.symbols.count == Self.symbolWeights.count
            ? Self.symbolWeights : Array(repeating: 1.0, count: config.symbols.count)
        symbolCumulative = Self.cumulative(weights)
        accountCumulative = Self.cumulative((1...config.accounts).map { 1.0 / Double($0) })
    }

    private static func cumulative(_ weights: [Double]) -> [Double] {
        let total = weights.reduce(0, +)
        var sum = 0.0
        return weights.map {
            sum += $0 / total
            return sum
        }
    }

    private mutating func pick(_ cumulative: [Double]) -> Int {
        let u = random.unit()
        return cumulative.firstIndex(where: { u < $0 }) ?? cumulative.count - 1
    }

    /// The whole stream, line by line; `line` excludes the newline. Returns false when done.
    public mutating func next(into line: inout [UInt8]) -> Bool {
        guard emitted < config.count else { return false }
        emitted += 1
        line.removeAll(keepingCapacity: true)
        let step = Int64(random.exponential(mean: config.interArrivalNs)) + 1
        if let due = pending.min, due.timeNs <= nowNs + step {
            let action = pending.removeMin()
            nowNs = max(nowNs, action.timeNs)
            write(action, into: &line)
        } else {
            advance(by: step)
            writeNewOrder(into: &line)
        }
        return true
    }

    private mutating func advance(by step: Int64) {
        nowNs += step
        let dt = Double(step) / 1e9
        let sigma = config.volatility
        for s in mids.indices {
            mids[s] *= exp(sigma * dt.squareRoot() * random.normal() - 0.5 * sigma * sigma * dt)
        }
    }

    private mutating func schedule(
        _ action: Pending.Action,
        id: UInt64,
        symbol: Int,
        atNs: Int64,
        repeatCancel: Bool = false
    ) {
        pendingOrder += 1
        pending.insert(
            Pending(
                timeNs: atNs,
                order: pendingOrder,
                id: id,
                symbol: symbol,
                action: action,
                repeatCancel: repeatCancel
            )
        )
    }

    private mutating func writeNewOrder(into line: inout [UInt8]) {
        let s = pick(symbolCumulative)
        let symbol = config.symbols[s]
        let id = nextID
        nextID += 1
        let side: Side = random.chance(0.5) ? .buy : .sell
        let tickValue = Double(symbol.tick.mantissa) / Double(powersOfTen[Int(symbol.tick.scale)])
        let midTicks = max(Int64((mids[s] / tickValue).rounded()), 20)

        let roll = random.unit()
        var type = OrderType.limit
        var tif = TimeInForce.gtc
        var aggressive: Bool
        if roll < 0.02 {
            type = .market
            aggressive = true
        } else if roll < 0.17 {
            tif = .ioc
            aggressive = random.chance(0.8)
        } else if roll < 0.18 {
            tif = .fok
            aggressive = true
        } else if roll < 0.23 {
            tif = .postOnly
            aggressive = false
        } else {
            aggressive = random.chance(0.10)
        }
        // Resting orders that their owner will not cancel are priced to be filled.
        let willCancel = tif == .gtc || tif == .postOnly ? random.chance(0.95) : false
        if tif == .gtc && !willCancel { aggressive = true }

        let unitTicks = max(1.0, mids[s] * config.distanceMinBasisPoints / 10_000 / tickValue)
        let priceTicks: Int64
        if aggressive {
            let through = Int64(random.unit() * 2 * unitTicks)
            priceTicks = side == .buy ? midTicks + through : max(1, midTicks - through)
        } else {
            let distance = Int64(min(random.pareto(minimum: unitTicks, alpha: 1.3), 400 * unitTicks))
            priceTicks = side == .buy ? max(1, midTicks - distance) : midTicks + distance
        }
        let lots = max(1, min(1_000, Int64(exp(log(5.0) + random.normal()).rounded())))
        let account = random.chance(0.9) ? pick(accountCumulative) + 1 : 0

        append("{\"op\":\"new\",\"id\":", &line)
        appendNumber(id, &line)
        append(",\"symbol\":\"\(symbol.name)\",\"side\":\"\(side == .buy ? "buy" : "sell")\"", &line)
        if type == .market {
            append(",\"type\":\"market\"", &line)
        } else {
            append(",\"price\":\"", &line)
            appendDecimal(priceTicks * symbol.tick.mantissa, decimals: symbol.tick.scale, to: &line)
            line.append(UInt8(ascii: "\""))
        }
        append(",\"qty\":\"", &line)
        appendDecimal(lots * symbol.lot.mantissa, decimals: symbol.lot.scale, to: &line)
        line.append(UInt8(ascii: "\""))
        if tif != .gtc { append(",\"tif\":\"\(tif.name)\"", &line) }
        if account > 0 { append(",\"account\":\"a\(account)\"", &line) }
        appendTS(&line)
        line.append(UInt8(ascii: "}"))

        guard willCancel else { return }
        let lifetime = Int64(random.exponential(mean: config.lifetimeNs)) + 1
        if random.chance(0.2) {
            let amendAt = nowNs + Int64(Double(lifetime) * (0.2 + 0.6 * random.unit()))
            if random.chance(0.6), lots > 1 {
                schedule(
                    .amend(priceTicks: nil, lots: Int64(random.below(Int(lots - 1))) + 1),
                    id: id,
                    symbol: s,
                    atNs: amendAt
                )
            } else {
                let move = Int64(random.unit() * unitTicks) + 1
                let newTicks = side == .buy ? max(1, priceTicks - move) : priceTicks + move
                schedule(
                    .amend(priceTicks: newTicks, lots: random.chance(0.3) ? lots + 1 : nil),
                    id: id,
                    symbol: s,
                    atNs: amendAt
                )
            }
        }
        schedule(.cancel, id: id, symbol: s, atNs: nowNs + lifetime)
    }

    private mutating func write(_ pending: Pending, into line: inout [UInt8]) {
        let symbol = config.symbols[pending.symbol]
        switch pending.action {
        case .cancel:
            append("{\"op\":\"cancel\",\"id\":", &line)
            appendNumber(pending.id, &line)
            if !pending.repeatCancel, random.chance(0.03) {
                let later = nowNs + Int64(random.exponential(mean: config.lifetimeNs / 4)) + 1
                schedule(.cancel, id: pending.id, symbol: pending.symbol, atNs: later, repeatCancel: true)
            }
        case .amend(let priceTicks, let lots):
            append("{\"op\":\"amend\",\"id\":", &line)
            appendNumber(pending.id, &line)
            if let priceTicks {
                append(",\"price\":\"", &line)
                appendDecimal(priceTicks * symbol.tick.mantissa, decimals: symbol.tick.scale, to: &line)
                line.append(UInt8(ascii: "\""))
            }
            if let lots {
                append(",\"qty\":\"", &line)
                appendDecimal(lots * symbol.lot.mantissa, decimals: symbol.lot.scale, to: &line)
                line.append(UInt8(ascii: "\""))
            }
        }
        appendTS(&line)
        line.append(UInt8(ascii: "}"))
    }

    private func appendTS(_ line: inout [UInt8]) {
        guard config.timestamps else { return }
        append(",\"ts\":", &line)
        appendNumber(UInt64(nowNs), &line)
    }

    private func append(_ text: String, _ line: inout [UInt8]) { line.append(contentsOf: text.utf8) }

    private func appendNumber(_ value: UInt64, _ line: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var v = value
            var n = 0
            repeat {
                buffer[19 - n] = UInt8(v % 10) + 48
                v /= 10
                n += 1
            } while v > 0
            line.append(contentsOf: buffer[(20 - n)...])
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
