import CastleCore
import CastleSupport
import MarketData
import Reports
import Streams

/// The user's own orders injected into a rematch, and what became of them.
struct InjectedOrder {
    var id: OrderID
    var side: Side
    var price: Int64?
    var qty: Int64
    var submittedNs: Int64
    var filled: Int64 = 0
    var notional: Int128 = 0
    var fills = 0
    var firstFillNs: Int64?
    var lastFillNs: Int64?
    /// `filled`, `partial`, `open`, `canceled` or `rejected`, with a reason for the last two.
    var status = "open"
    var reason: String?
}

/// Writes the fill report: one row per injected order, in the order they were injected.
enum FillReportWriter {
    static func write(
        _ orders: [InjectedOrder],
        to sink: OutputSink,
        format: ReplayFormat,
        symbol: String,
        priceDecimals: UInt8,
        qtyDecimals: UInt8
    ) throws(CastleError) {
        if format == .csv {
            try sink.write(
                "id,symbol,side,price,qty,filled,unfilled,avg_price,fills,time_to_first_fill_ns,time_to_fill_ns,status,reason\n"
            )
        }
        for order in orders {
            let price = order.price.map { formatDecimal($0, decimals: priceDecimals) }
            let average: String? =
                order.filled > 0
                ? roundedQuotient(order.notional, Int128(order.filled), extraDecimals: 2).map {
                    formatDecimal128($0, decimals: priceDecimals + 2)
                } : nil
            let unfilled = order.status == "filled" ? 0 : order.qty - order.filled
            let toFirst = order.firstFillNs.map { $0 - order.submittedNs }
            let toFill = order.status == "filled" ? order.lastFillNs.map { $0 - order.submittedNs } : nil
            let qty = formatDecimal(order.qty, decimals: qtyDecimals)
            let filled = formatDecimal(order.filled, decimals: qtyDecimals)
            let left = formatDecimal(unfilled, decimals: qtyDecimals)
            func number(_ value: Int64?) -> String { value.map(String.init) ?? "" }
            if format == .csv {
                let row = [
                    String(order.id), symbol, order.side.name.description, price ?? "", qty, filled, left,
                    average ?? "",
                    String(order.fills), number(toFirst), number(toFill), order.status, order.reason ?? "",
                ]
                try sink.write(row.joined(separator: ",") + "\n")
            } else {
                func json(_ value: String?) -> String { value.map { "\"\($0)\"" } ?? "null" }
                func json(_ value: Int64?) -> String { value.map(String.init) ?? "null" }
                var line = "{\"id\":\(order.id),\"symbol\":\"\(symbol)\",\"side\":\"\(order.side.name)\""
                line += ",\"price\":\(json(price)),\"qty\":\"\(qty)\",\"filled\":\"\(filled)\",\"unfilled\":\"\(left)\""
                line += ",\"avg_price\":\(json(average)),\"fills\":\(order.fills)"
                line += ",\"time_to_first_fill_ns\":\(json(toFirst)),\"time_to_fill_ns\":\(json(toFill))"
                line += ",\"status\":\"\(order.status)\",\"reason\":\(json(order.reason))}\n"
                try sink.write(line)
            }
        }
    }
}
