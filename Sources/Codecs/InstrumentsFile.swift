public import CastleCore
public import CastleSupport
import Streams

/// The instruments file: one JSON object a line,
/// `{"symbol":"BTC-USD","tick":"0.01","lot":"0.0001"}`, with optional `price_decimals` and
/// `qty_decimals` (by default the decimals of `tick` and `lot`). Blank lines are skipped.
public enum InstrumentsFile {
    /// Reads the file, interning each symbol in `symbols`. Errors name the file and line (exit 65), or
    /// the path when it cannot be read (exit 66).
    public static func load(path: String, symbols: inout NameTable) throws(CastleError) -> [SymbolID: Instrument] {
        let reader = LineReader(source: try InputSource(path: path), lineBytesMax: 4096)
        var result: [SymbolID: Instrument] = [:]
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
            var problem: String?
            let ok = FlatJSON.scan(line.bytes) { key, value in
                let text = String(decoding: value.bytes, as: UTF8.self)
                if key.equals("symbol") {
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
            result[id] = Instrument(
                priceDecimals: UInt8(pd),
                qtyDecimals: UInt8(qd),
                tick: tickUnits,
                lot: lotUnits
            )
        }
        if result.isEmpty { throw CastleError(.dataError, "\(path): declares no instrument") }
        return result
    }
}
