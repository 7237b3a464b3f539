public import CastleCore
public import CastleSupport
import Streams

/// The instruments file: one JSON object a line,
/// `{"symbol":"BTC-USD","tick":"0.01","lot":"0.0001","base":"BTC","quote":"USD"}`, with optional
/// `price_decimals` and `qty_decimals` (by default the decimals of `tick` and `lot`) and optional `base`
/// and `quote` asset codes (by default the two halves of a `BASE-QUOTE` symbol). Lines of the form
/// `{"asset":"USD","scale":6}` give an asset's scale for the ledger. Blank lines are skipped.
public enum InstrumentsFile {
    /// The assets an instrument trades: the ledger settles a trade in them.
    public struct Market: Sendable, Hashable {
        public var base: String
        public var quote: String

        public init(base: String, quote: String) {
            self.base = base
            self.quote = quote
        }
    }

    /// Everything the file declares: instruments by symbol, the markets of those that name (or imply)
    /// base and quote, and the asset scales of the `asset` lines.
    public struct Catalog: Sendable {
        public var instruments: [SymbolID: Instrument] = [:]
        public var markets: [SymbolID: Market] = [:]
        public var assetScales: [String: UInt8] = [:]
    }

    /// Reads the file, interning each symbol in `symbols`. Errors name the file and line (exit 65), or
    /// the path when it cannot be read (exit 66).
    public static func load(path: String, symbols: inout NameTable) throws(CastleError) -> [SymbolID: Instrument] {
        try loadCatalog(path: path, symbols: &symbols).instruments
    }

    /// ``load(path:symbols:)`` with the markets and asset scales too.
    public static func loadCatalog(path: String, symbols: inout NameTable) throws(CastleError) -> Catalog {
        let reader = LineReader(source: try InputSource(path: path), lineBytesMax: 4096)
        var result: [SymbolID: Instrument] = [:]
        var catalog = Catalog()
        while let line = try reader.next() {
            func fail(_ reason: String) -> CastleError {
                CastleError(.dataError, "\(path):\(line.number): \(reason)")
            }
            if line.tooLong { throw fail("line too long") }
            if line.isBlank { continue }
            var symbol: [UInt8]?
            var tick: FixedDecimal?
            var lot: FixedDecimal?
            var priceDecimals: Int?
            var qtyDecimals: Int?
            var base: String?
            var quote: String?
            var asset: String?
            var scale: Int?
            var problem: String?
            let ok = FlatJSON.scan(line.bytes) { key, value in
                let text = String(decoding: value.bytes, as: UTF8.self)
                if key.equals("base") || key.equals("quote") || key.equals("asset") {
                    let name = key.equals("base") ? "base" : key.equals("quote") ? "quote" : "asset"
                    guard value.kind == .string, isAssetCode(value.bytes) else {
                        problem = "\(name) is not an asset code (1 to 12 of A-Z and 0-9)"
                        return
                    }
                    switch name {
                    case "base": base = text
                    case "quote": quote = text
                    default: asset = text
                    }
                } else if key.equals("scale") {
                    scale = value.kind == .number ? Int(text) : nil
                    if scale == nil { problem = "scale is not an integer" }
                } else if key.equals("symbol") {
                    if value.kind == .string, (1...64).contains(value.bytes.count) {
                        symbol = Array(value.bytes)
                    } else {
                        problem = "symbol is not a string of 1 to 64 bytes"
                    }
                } else if key.equals("tick") {
                    tick = value.isString || value.kind == .number ? FixedDecimal.parse(text) : nil
                    if tick == nil { problem = "tick is not a plain decimal" }
                } else if key.equals("lot") {
                    lot = value.isString || value.kind == .number ? FixedDecimal.parse(text) : nil
                    if lot == nil { problem = "lot is not a plain decimal" }
                } else if key.equals("price_decimals") {
                    priceDecimals = value.kind == .number ? Int(text) : nil
                    if priceDecimals == nil { problem = "price_decimals is not an integer" }
                } else if key.equals("qty_decimals") {
                    qtyDecimals = value.kind == .number ? Int(text) : nil
                    if qtyDecimals == nil { problem = "qty_decimals is not an integer" }
                } else if problem == nil {
                    problem = "unknown field \"\(String(decoding: key.bytes, as: UTF8.self))\""
                }
            }
            if !ok { throw fail("not a JSON object") }
            if let problem { throw fail(problem) }
            if let asset {
                guard symbol == nil, tick == nil, lot == nil, priceDecimals == nil, qtyDecimals == nil, base == nil,
                    quote == nil
                else { throw fail("an asset line has only asset and scale") }
                guard let scale, (0...Int(FixedDecimal.maxScale)).contains(scale) else {
                    throw fail("scale must be an integer between 0 and \(FixedDecimal.maxScale)")
                }
                if catalog.assetScales.updateValue(UInt8(scale), forKey: asset) != nil {
                    throw fail("asset \(asset) declared twice")
                }
                continue
            }
            if scale != nil { throw fail("scale belongs on an asset line") }
            guard let symbol else { throw fail("missing symbol") }
            guard let tick, tick.mantissa > 0 else { throw fail("tick must be a positive decimal") }
            guard let lot, lot.mantissa > 0 else { throw fail("lot must be a positive decimal") }
            let pd = priceDecimals ?? Int(tick.scale)
            let qd = qtyDecimals ?? Int(lot.scale)
            guard (0...Int(FixedDecimal.maxScale)).contains(pd), (0...Int(FixedDecimal.maxScale)).contains(qd) else {
                throw fail("decimals must be between 0 and \(FixedDecimal.maxScale)")
            }
            guard case .success(let tickUnits) = tick.scaled(to: UInt8(pd)) else {
                throw fail("tick has more decimals than price_decimals")
            }
            guard case .success(let lotUnits) = lot.scaled(to: UInt8(qd)) else {
                throw fail("lot has more decimals than qty_decimals")
            }
            guard let id = symbol.withUnsafeBufferPointer({ symbols.intern($0) }) else {
                throw fail("too many symbols")
            }
            if result[id] != nil { throw fail("symbol declared twice") }
            if base != nil || quote != nil {
                guard let base, let quote else { throw fail("base and quote go together") }
                guard base != quote else { throw fail("base and quote are both \(base)") }
                catalog.markets[id] = Market(base: base, quote: quote)
            } else if let implied = impliedMarket(symbol) {
                catalog.markets[id] = implied
            }
            result[id] = Instrument(
                priceDecimals: UInt8(pd),
                qtyDecimals: UInt8(qd),
                tick: tickUnits,
                lot: lotUnits
            )
        }
        if result.isEmpty { throw CastleError(.dataError, "\(path): declares no instrument") }
        catalog.instruments = result
        return catalog
    }

    /// `[A-Z0-9]{1,12}`, the ledger's asset codes.
    static func isAssetCode<C: Collection<UInt8>>(_ bytes: C) -> Bool {
        (1...12).contains(bytes.count) && bytes.allSatisfy { (65...90).contains($0) || (48...57).contains($0) }
    }

    /// `BASE-QUOTE` when the symbol is two asset codes joined by one `-`.
    static func impliedMarket(_ symbol: [UInt8]) -> Market? {
        let parts = symbol.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
        guard parts.count == 2, isAssetCode(parts[0]), isAssetCode(parts[1]), !parts[0].elementsEqual(parts[1])
        else { return nil }
        return Market(base: String(decoding: parts[0], as: UTF8.self), quote: String(decoding: parts[1], as: UTF8.self))
    }
}
