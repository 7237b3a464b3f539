public import CastleCore
public import CastleSupport
public import Streams

/// Writes engine events as the contract's NDJSON: one object a line, `seq` dense from 1, prices and
/// quantities as canonical decimals in the units of each symbol's instrument. Contract 1.1: the fields
/// 1.1 adds come after the 1.0 fields of each event (and before `ts`), so a 1.0 line is a prefix of its
/// 1.1 line up to `ts`.
public final class EventWriter {
    public let sink: OutputSink
    public private(set) var seq: UInt64 = 0
    /// Names as JSON string literals, quotes included, escaped once when first seen.
    private var symbolNames: [[UInt8]] = []
    private var accountNames: [[UInt8]] = []
    private var instruments: [Instrument?]

    /// - Parameter seq: the `seq` of the last event already written (a resumed log goes on from it).
    public init(sink: OutputSink, instruments: [SymbolID: Instrument], after seq: UInt64 = 0) {
        self.sink = sink
        self.seq = seq
        let size = Int(instruments.keys.max().map { $0 + 1 } ?? 0)
        self.instruments = Array(repeating: nil, count: size)
        for (symbol, instrument) in instruments { self.instruments[Int(symbol)] = instrument }
    }

    /// How many names the writer knows: ``syncNames(symbols:accounts:)`` is due when the tables have more.
    public var symbolCount: Int { symbolNames.count }
    public var accountCount: Int { accountNames.count }

    /// Keeps the writer's copy of the names in step with the decoder's tables (names are only added).
    public func syncNames(symbols: NameTable, accounts: NameTable) {
        for name in symbols.names[symbolNames.count...] { symbolNames.append(jsonStringLiteral(name)) }
        for name in accounts.names[accountNames.count...] { accountNames.append(jsonStringLiteral(name)) }
    }

    @inline(__always)
    private func instrument(_ symbol: SymbolID) -> Instrument {
        Int(symbol) < instruments.count ? instruments[Int(symbol)] ?? .unrestricted : .unrestricted
    }

    /// Room for the longest line: fixed fields plus two 64-byte names escaped six times over.
    private static let lineBytesMax = 1024

    public func write(_ event: Event) throws(CastleError) {
        try sink.reserve(Self.lineBytesMax)
        seq += 1
        let out = sink
        out.append("{\"seq\":")
        out.appendUnsigned(seq)
        switch event {
        case .accepted(let id, let symbol, let side, let type, let tif, let price, let qty, let account, let ts):
            let instrument = instrument(symbol)
            out.append(",\"event\":\"accepted\",\"id\":")
            out.appendUnsigned(id)
            out.append(",\"symbol\":")
            out.append(symbolNames[Int(symbol)])
            out.append(",\"side\":\"")
            out.append(side.name)
            out.append("\",\"type\":\"")
            out.append(type == .market ? "market" : "limit")
            out.append("\",\"tif\":\"")
            out.append(tif.name)
            if let price {
                out.append("\",\"price\":\"")
                out.appendDecimal(price, decimals: instrument.priceDecimals)
            }
            out.append("\",\"qty\":\"")
            out.appendDecimal(qty, decimals: instrument.qtyDecimals)
            out.append(UInt8(ascii: "\""))
            if account != .none {
                out.append(",\"account\":")
                out.append(accountNames[Int(account) - 1])
            }
            appendTS(ts)
        case .trade(let trade, let ts):
            let instrument = instrument(trade.symbol)
            out.append(",\"event\":\"trade\",\"symbol\":")
            out.append(symbolNames[Int(trade.symbol)])
            out.append(",\"price\":\"")
            out.appendDecimal(trade.price, decimals: instrument.priceDecimals)
            out.append("\",\"qty\":\"")
            out.appendDecimal(trade.qty, decimals: instrument.qtyDecimals)
            out.append("\",\"maker\":")
            out.appendUnsigned(trade.maker)
            out.append(",\"taker\":")
            out.appendUnsigned(trade.taker)
            out.append(",\"side\":\"")
            out.append(trade.side.name)
            out.append(UInt8(ascii: "\""))
            if trade.makerAccount != .none {
                out.append(",\"maker_account\":")
                out.append(accountNames[Int(trade.makerAccount) - 1])
            }
            if trade.takerAccount != .none {
                out.append(",\"taker_account\":")
                out.append(accountNames[Int(trade.takerAccount) - 1])
            }
            appendTS(ts)
        case .canceled(let id, let symbol, let side, let price, let qty, let reason, let ts):
            let instrument = instrument(symbol)
            out.append(",\"event\":\"canceled\",\"id\":")
            out.appendUnsigned(id)
            out.append(",\"qty\":\"")
            out.appendDecimal(qty, decimals: instrument.qtyDecimals)
            out.append("\",\"reason\":\"")
            out.append(reason.name)
            out.append("\",\"symbol\":")
            out.append(symbolNames[Int(symbol)])
            out.append(",\"side\":\"")
            out.append(side.name)
            out.append(UInt8(ascii: "\""))
            if let price {
                out.append(",\"price\":\"")
                out.appendDecimal(price, decimals: instrument.priceDecimals)
                out.append(UInt8(ascii: "\""))
            }
            appendTS(ts)
        case .amended(let id, let symbol, let side, let price, let qty, let prevPrice, let prevQty, let kept, let ts):
            let instrument = instrument(symbol)
            out.append(",\"event\":\"amended\",\"id\":")
            out.appendUnsigned(id)
            out.append(",\"price\":\"")
            out.appendDecimal(price, decimals: instrument.priceDecimals)
            out.append("\",\"qty\":\"")
            out.appendDecimal(qty, decimals: instrument.qtyDecimals)
            out.append("\",\"symbol\":")
            out.append(symbolNames[Int(symbol)])
            out.append(",\"side\":\"")
            out.append(side.name)
            out.append("\",\"prev_price\":\"")
            out.appendDecimal(prevPrice, decimals: instrument.priceDecimals)
            out.append("\",\"prev_qty\":\"")
            out.appendDecimal(prevQty, decimals: instrument.qtyDecimals)
            out.append(kept ? "\",\"priority\":\"kept\"" : "\",\"priority\":\"lost\"")
            appendTS(ts)
        case .rejected(let op, let id, let reason, _, let line, let ts):
            out.append(",\"event\":\"rejected\"")
            if let op {
                out.append(",\"op\":\"")
                out.append(op.name)
                out.append(UInt8(ascii: "\""))
            }
            if let id {
                out.append(",\"id\":")
                out.appendUnsigned(id)
            }
            out.append(",\"reason\":\"")
            out.append(reason.name)
            out.append("\",\"line\":")
            out.appendUnsigned(UInt64(line))
            appendTS(ts)
        }
        out.append("}\n")
    }

    @inline(__always)
    private func appendTS(_ ts: Timestamp?) {
        guard let ts else { return }
        sink.append(",\"ts\":")
        sink.appendUnsigned(UInt64(ts))
    }
}
