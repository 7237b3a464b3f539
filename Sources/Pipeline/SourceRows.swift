import CastleCore
import CastleSupport
import Codecs
import MarketData
import Streams

/// CSV with a header naming the contract's fields (`op,id,symbol,side,type,price,qty,tif,account,stp,ts`,
/// any order, any subset; `op` and `id` required). Fields may be quoted RFC 4180 style; empty fields are
/// left out. Each row becomes the contract's NDJSON, then is validated like any NDJSON line.
struct CSVRows: RowReader {
    static let fields: Set<String> = [
        "op", "id", "symbol", "side", "type", "price", "qty", "tif", "account", "stp", "ts",
    ]
    static let integerFields: Set<String> = ["id", "ts"]

    let lines: LineReader
    var header: [String]?
    var source: InputSource { lines.source }

    init(path: String?) throws(CastleError) {
        lines = LineReader(source: try InputSource(path: path))
    }

    mutating func next() throws(CastleError) -> RowItem? {
        while let line = try lines.next() {
            if line.isBlank { continue }
            let text = String(decoding: line.bytes, as: UTF8.self)
            guard let cells = Self.split(text) else {
                return .bad(line: line.number, reason: "unbalanced quotes", text: text)
            }
            guard let header else {
                let names = cells.map { $0.trimmingSpaces.lowercased() }
                if let unknown = names.first(where: { !Self.fields.contains($0) }) {
                    throw CastleError(
                        .dataError,
                        "\(source.name):\(line.number): unknown column '\(unknown)' in the header; "
                            + "columns are \(Self.fields.sorted().joined(separator: ","))"
                    )
                }
                guard names.contains("op"), names.contains("id") else {
                    throw CastleError(.dataError, "\(source.name):\(line.number): the header needs columns op and id")
                }
                header = names
                continue
            }
            guard cells.count == header.count else {
                return .bad(
                    line: line.number,
                    reason: "\(cells.count) fields, the header has \(header.count)",
                    text: text
                )
            }
            var json = "{"
            for (name, cell) in zip(header, cells) where !cell.isEmpty {
                if json.count > 1 { json += "," }
                json += "\"\(name)\":"
                if Self.integerFields.contains(name), cell.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
                    json += cell
                } else {
                    json += String(decoding: jsonStringLiteral(Array(cell.utf8)), as: UTF8.self)
                }
            }
            return .row(line: line.number, body: json + "}")
        }
        return nil
    }

    /// Splits one CSV record; nil when a quote is left open.
    static func split(_ line: String) -> [String]? {
        var cells: [String] = []
        var cell: [UInt8] = []
        var quoted = false
        var bytes = Array(line.utf8)
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\"") {
                        cell.append(byte)
                        index += 1
                    } else {
                        quoted = false
                    }
                } else {
                    cell.append(byte)
                }
            } else if byte == UInt8(ascii: "\"") {
                quoted = true
            } else if byte == UInt8(ascii: ",") {
                cells.append(String(decoding: cell, as: UTF8.self))
                cell = []
            } else {
                cell.append(byte)
            }
            index += 1
        }
        if quoted { return nil }
        cells.append(String(decoding: cell, as: UTF8.self))
        return cells
    }
}

extension String {
    var trimmingSpaces: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

/// A LOBSTER message file as an order stream: submissions (type 1) become `new` limit orders, partial
/// cancels (2) become amends to the remaining size, deletions (3) cancels, and visible executions (4)
/// an IOC order from the other side at the execution price (id: `SyntheticOrderID.lobsterTaker(line:)`), which
/// re-matching turns back into the trade. Hidden executions (5), cross trades (6) and halts (7) carry no
/// order and are skipped, as are messages about orders that rested before the file began.
struct LobsterRows: RowReader {
    let reader: LobsterMessageReader
    let symbolLiteral: String
    let midnightNs: Int64
    /// Visible size left of each order submitted in the file.
    var remaining: [UInt64: Int64] = [:]
    var source: InputSource { reader.source }

    init(path: String?, symbol: String?, date: String?) throws(CastleError) {
        guard let symbol, !symbol.isEmpty else {
            throw CastleError(.usage, "a LOBSTER message file needs --symbol (LOBSTER files do not name it)")
        }
        guard let date, let midnight = Self.epochSeconds(ofDate: date) else {
            throw CastleError(
                .usage,
                "a LOBSTER message file needs --date YYYY-MM-DD (LOBSTER times are seconds after midnight)"
            )
        }
        reader = try LobsterMessageReader(path: path)
        symbolLiteral = String(decoding: jsonStringLiteral(Array(symbol.utf8)), as: UTF8.self)
        midnightNs = midnight * 1_000_000_000
    }

    mutating func next() throws(CastleError) -> RowItem? {
        guard let event = try reader.next() else { return nil }
        let ts = midnightNs + event.timeNs
        let price = String(
            decoding: decimalBytes(event.price, decimals: LobsterMessageReader.priceDecimals),
            as: UTF8.self
        )
        switch event.kind {
        case .add:
            remaining[event.orderID] = event.size
            return .row(
                line: event.line,
                body:
                    #"{"op":"new","id":\#(event.orderID),"symbol":\#(symbolLiteral),"side":"\#(event.side.name)","price":"\#(price)","qty":"\#(event.size)","ts":\#(ts)}"#
            )
        case .cancel:
            guard let left = remaining[event.orderID] else { return .skipped }
            let after = max(left - event.size, 0)
            remaining[event.orderID] = after == 0 ? nil : after
            return .row(line: event.line, body: #"{"op":"amend","id":\#(event.orderID),"qty":"\#(after)","ts":\#(ts)}"#)
        case .delete:
            guard remaining.removeValue(forKey: event.orderID) != nil else { return .skipped }
            return .row(line: event.line, body: #"{"op":"cancel","id":\#(event.orderID),"ts":\#(ts)}"#)
        case .execute:
            guard let left = remaining[event.orderID] else { return .skipped }
            let after = left - event.size
            remaining[event.orderID] = after <= 0 ? nil : after
            let taker = SyntheticOrderID.lobsterTaker(line: event.line)
            return .row(
                line: event.line,
                body:
                    #"{"op":"new","id":\#(taker),"symbol":\#(symbolLiteral),"side":"\#(event.side.opposite.name)","price":"\#(price)","qty":"\#(event.size)","tif":"ioc","ts":\#(ts)}"#
            )
        case .executeHidden, .cross, .halt:
            return .skipped
        }
    }

    /// Seconds since the epoch of `YYYY-MM-DD` at 00:00 UTC (days-from-civil, proleptic Gregorian).
    static func epochSeconds(ofDate text: String) -> Int64? {
        let parts = text.split(separator: "-")
        guard parts.count == 3, let y = Int64(parts[0]), let m = Int64(parts[1]), let d = Int64(parts[2]),
            parts[0].count == 4, (1...12).contains(m), (1...31).contains(d)
        else { return nil }
        let year = m <= 2 ? y - 1 : y
        let era = (year >= 0 ? year : year - 399) / 400
        let yearOfEra = year - era * 400
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return (era * 146_097 + dayOfEra - 719_468) * 86_400
    }
}

/// `value / 10^decimals` as a canonical decimal.
func decimalBytes(_ value: Int64, decimals: UInt8) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: 48) { buffer, count in
        count = writeDecimal(value, decimals: decimals, to: buffer.baseAddress!)
    }
}
