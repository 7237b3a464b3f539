import CastleCore
import Codecs

/// One line of the event log (spec/match.md, contract 1.1) as serve reads it: the members serve uses,
/// typed, in one pass over the line. Every event the view applies and the market data fans out is read
/// through this once (an external matcher's million orders are about a million lines), so it keeps no
/// dictionary and makes a `String` only of the members that are text (most short enough for Swift's
/// inline small strings). Other members are skipped; of a member given twice, the last counts.
struct LoggedEvent {
    enum Kind: String {
        case accepted, trade, canceled, amended, rejected
    }

    var seq: Int64?
    /// nil when missing or of a kind serve does not know.
    var kind: Kind?
    var id: UInt64?
    var maker: UInt64?
    var taker: UInt64?
    var ts: Int64?
    var symbol: String?
    var side: Side?
    var type: OrderType?
    var tif: TimeInForce?
    var account: String?
    var makerAccount: String?
    var takerAccount: String?
    var reason: String?
    var op: String?
    var priority: String?
    var price: FixedDecimal?
    var qty: FixedDecimal?
    var prevPrice: FixedDecimal?
    var prevQty: FixedDecimal?

    /// nil when `line` is not one JSON object.
    init?(_ line: String) {
        var line = line
        guard let event = line.withUTF8({ LoggedEvent(bytes: $0) }) else { return nil }
        self = event
    }

    init?(bytes line: UnsafeBufferPointer<UInt8>) {
        var scratch: [UInt8] = []
        var event = LoggedEvent()
        let valid = FlatJSON.scan(line) { key, value in
            guard key.kind == .string, value.kind != .other else { return }
            // An escaped value is read as its decoded text; the rest as written.
            let escaped = value.kind == .escapedString
            if escaped && !value.decodedString(into: &scratch) { return }
            func withBytes<T>(_ body: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
                escaped ? scratch.withUnsafeBufferPointer(body) : body(value.bytes)
            }
            func text() -> String? { withBytes { String(decoding: $0, as: UTF8.self) } }
            func decimal() -> FixedDecimal? { withBytes(FixedDecimal.parse) }
            func unsigned() -> UInt64? { withBytes(FlatJSON.unsigned) }
            func signed() -> Int64? { withBytes(Self.signed) }
            // By length first: one or two comparisons per member rather than one per known key.
            switch key.bytes.count {
            case 2:
                if key.equals("id") {
                    event.id = unsigned()
                } else if key.equals("ts") {
                    event.ts = signed()
                } else if key.equals("op") {
                    event.op = text()
                }
            case 3:
                if key.equals("seq") {
                    event.seq = signed()
                } else if key.equals("qty") {
                    event.qty = decimal()
                } else if key.equals("tif") {
                    event.tif = text().flatMap(TimeInForce.init(name:))
                }
            case 4:
                if key.equals("side") {
                    event.side = text().flatMap(Side.init(name:))
                } else if key.equals("type") {
                    event.type = text().flatMap(OrderType.init(name:))
                }
            case 5:
                if key.equals("event") {
                    event.kind = withBytes { Kind(rawValue: String(decoding: $0, as: UTF8.self)) }
                } else if key.equals("price") {
                    event.price = decimal()
                } else if key.equals("maker") {
                    event.maker = unsigned()
                } else if key.equals("taker") {
                    event.taker = unsigned()
                }
            case 6:
                if key.equals("symbol") {
                    event.symbol = text()
                } else if key.equals("reason") {
                    event.reason = text()
                }
            case 7:
                if key.equals("account") { event.account = text() }
            case 8:
                if key.equals("priority") {
                    event.priority = text()
                } else if key.equals("prev_qty") {
                    event.prevQty = decimal()
                }
            case 10:
                if key.equals("prev_price") { event.prevPrice = decimal() }
            case 13:
                if key.equals("maker_account") {
                    event.makerAccount = text()
                } else if key.equals("taker_account") {
                    event.takerAccount = text()
                }
            default:
                break
            }
        }
        guard valid else { return nil }
        self = event
    }

    private init() {}

    /// An optional `-` and digits, within an Int64; nil otherwise.
    private static func signed(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        let negative = bytes.first == UInt8(ascii: "-")
        guard let magnitude = FlatJSON.unsigned(UnsafeBufferPointer(rebasing: bytes.dropFirst(negative ? 1 : 0))) else {
            return nil
        }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }
}

/// Lines of the event log as read from the store, each read once: its text, for the replies that quote
/// it, and what it says. Two arrays side by side, so that the events can be applied where they lie
/// (``ExchangeView/apply(_:)``).
struct LoggedLines {
    private(set) var texts: [String] = []
    private(set) var events: [LoggedEvent] = []

    var count: Int { events.count }

    /// The lines of NDJSON `body`; a line that is not one JSON object is left out.
    init(ndjson body: [UInt8]) {
        body.withUnsafeBufferPointer { bytes in
            var start = 0
            while start < bytes.count {
                let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
                let line = UnsafeBufferPointer(rebasing: bytes[start..<end])
                if !line.isEmpty, let event = LoggedEvent(bytes: line) {
                    events.append(event)
                    texts.append(String(decoding: line, as: UTF8.self))
                }
                start = end + 1
            }
        }
    }
}

/// One command's events, for its request's reply: their lines, to quote, and what they say, to read.
/// A range of lines read once with the rest of their batch, and shared with it rather than copied.
struct CommandEvents: Sendable {
    let lines: LoggedLines
    let range: Range<Int>

    init(_ lines: LoggedLines, _ range: Range<Int>) {
        self.lines = lines
        self.range = range
    }

    var texts: ArraySlice<String> { lines.texts[range] }
    var events: ArraySlice<LoggedEvent> { lines.events[range] }
}
