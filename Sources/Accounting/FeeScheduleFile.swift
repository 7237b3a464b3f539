public import CastleSupport
import Codecs
public import Ledger
import Streams

/// The fee schedule `castle ledger settle --fees FILE` reads: one JSON object a line, rates in parts per
/// million of what each side receives (100 ppm = 1 basis point = 0.01 %):
///
/// ```
/// {"maker_ppm":100,"taker_ppm":250}
/// {"symbol":"BTC-USD","maker_ppm":0,"taker_ppm":200}
/// ```
///
/// A line without `symbol` is the default for every symbol that has no line of its own; without a
/// default, such symbols trade free. Rates are integers 0 to 999,999. Blank lines are skipped; anything
/// else (an unknown member, a symbol twice, two defaults, a rate out of range) is `FILE:LINE: reason`.
public struct FeeTable: Sendable, Hashable {
    public var defaultSchedule: FeeSchedule
    public var bySymbol: [String: FeeSchedule]

    public init(defaultSchedule: FeeSchedule = .free, bySymbol: [String: FeeSchedule] = [:]) {
        self.defaultSchedule = defaultSchedule
        self.bySymbol = bySymbol
    }

    public func schedule(for symbol: String) -> FeeSchedule { bySymbol[symbol] ?? defaultSchedule }

    public static func load(path: String) throws(CastleError) -> FeeTable {
        let source = try InputSource(path: path)
        let reader = LineReader(source: source, lineBytesMax: 4096)
        var table = FeeTable()
        var sawDefault = false
        while let line = try reader.next() {
            func fail(_ reason: String) -> CastleError {
                CastleError(.dataError, "\(source.name):\(line.number): \(reason)")
            }
            if line.tooLong { throw fail("line too long") }
            if line.isBlank { continue }
            var symbol: String?
            var maker: Int64?
            var taker: Int64?
            var problem: String?
            let ok = FlatJSON.scan(line.bytes) { key, value in
                let text = String(decoding: value.bytes, as: UTF8.self)
                if key.equals("symbol") {
                    if value.kind == .string, (1...64).contains(value.bytes.count) {
                        symbol = text
                    } else {
                        problem = "symbol is not a string of 1 to 64 bytes"
                    }
                } else if key.equals("maker_ppm") || key.equals("taker_ppm") {
                    let name = key.equals("maker_ppm") ? "maker_ppm" : "taker_ppm"
                    guard value.kind == .number, let rate = Int64(text), (0...FeeSchedule.rate_ppm_max).contains(rate)
                    else {
                        problem = "\(name) is not an integer from 0 to \(FeeSchedule.rate_ppm_max)"
                        return
                    }
                    if name == "maker_ppm" { maker = rate } else { taker = rate }
                } else if problem == nil {
                    problem = "unknown field \"\(String(decoding: key.bytes, as: UTF8.self))\""
                }
            }
            if !ok { throw fail("not a JSON object") }
            if let problem { throw fail(problem) }
            guard let maker, let taker else { throw fail("maker_ppm and taker_ppm are both required") }
            let schedule = FeeSchedule(makerRate_ppm: maker, takerRate_ppm: taker)
            if let symbol {
                if table.bySymbol.updateValue(schedule, forKey: symbol) != nil {
                    throw fail("symbol \(symbol) has a line already")
                }
            } else {
                if sawDefault { throw fail("a second default line (without symbol)") }
                sawDefault = true
                table.defaultSchedule = schedule
            }
        }
        return table
    }
}
