public import CastleCore
public import CastleSupport
public import MatchingEngine
public import Streams

/// Writes the resting book as one JSON object (`--book-out`):
/// `{"BTC-USD": {"bids": [["101.25", [[17, "0.5"]]]], "asks": []}}` — symbols in byte order of their
/// names, best level first, orders in time priority, empty books left out.
public enum BookWriter {
    public static func write(_ exchange: Exchange, symbols: NameTable, to sink: OutputSink) throws(CastleError) {
        let live = exchange.symbolsWithOrders.sorted {
            symbols.name(of: $0).lexicographicallyPrecedes(symbols.name(of: $1))
        }
        try sink.write("{")
        for (n, symbol) in live.enumerated() {
            let instrument = exchange.instrument(of: symbol)
            if n > 0 { try sink.write(", ") }
            try sink.reserve(1024)
            sink.appendJSONString(symbols.name(of: symbol))
            try sink.write(": {\"bids\": ")
            try writeSide(exchange.levels(of: symbol, side: .buy), instrument, sink)
            try sink.write(", \"asks\": ")
            try writeSide(exchange.levels(of: symbol, side: .sell), instrument, sink)
            try sink.write("}")
        }
        try sink.write("}\n")
    }

    private static func writeSide(
        _ levels: [BookLevel],
        _ instrument: Instrument,
        _ sink: OutputSink
    ) throws(CastleError) {
        try sink.write("[")
        for (n, level) in levels.enumerated() {
            try sink.reserve(64)
            if n > 0 { sink.append(", ") }
            sink.append("[\"")
            sink.appendDecimal(level.price, decimals: instrument.priceDecimals)
            sink.append("\", [")
            for (k, order) in level.orders.enumerated() {
                try sink.reserve(64)
                if k > 0 { sink.append(", ") }
                sink.append("[")
                sink.appendUnsigned(order.id)
                sink.append(", \"")
                sink.appendDecimal(order.qty, decimals: instrument.qtyDecimals)
                sink.append("\"]")
            }
            try sink.write("]]")
        }
        try sink.write("]")
    }
}
