import CastleCore
import CastleSupport
import HTTPTypes
import Hummingbird
import MarketData

/// `GET /v1/book/{symbol}`, `/v1/trades/{symbol}`, `/v1/ticker`, `/v1/candles/{symbol}` (spec/serve.md),
/// from the event-fed ``ExchangeView``. No account needed.
struct MarketDataRoutes: Sendable {
    let view: ExchangeView
    /// The symbols of `--instruments`: listed, so their market data answers before their first order,
    /// empty. Without `--instruments` (any symbol can trade), a symbol is known by its events.
    let listed: Set<String>

    func book(_ request: Request, _ context: ServerContext) throws -> Response {
        let symbol = try knownSymbol(context)
        let depth = try Trading.integer(request, "depth", default: 50, range: 1...1000)
        let book = view.book(symbol: symbol, depth: Int(depth))
        var reply = JSONText()
        reply.object { o in
            o.member("symbol", symbol)
            o.member("seq", book.seq)
            for (name, levels) in [("bids", book.bids), ("asks", book.asks)] {
                o.key(name)
                o.array { a in
                    for (price, qty) in levels {
                        a.array { level in
                            level.string(price.text)
                            level.string(qty.text)
                        }
                    }
                }
            }
        }
        return Trading.json(.ok, reply.text)
    }

    func trades(_ request: Request, _ context: ServerContext) throws -> Response {
        let symbol = try knownSymbol(context)
        let limit = try Trading.integer(request, "limit", default: 100, range: 1...1000)
        var reply = JSONText()
        reply.object { o in
            o.key("trades")
            o.array { a in
                for trade in view.trades(symbol: symbol, limit: Int(limit)) {
                    a.object { t in
                        t.member("seq", trade.seq)
                        t.member("price", trade.price.text)
                        t.member("qty", trade.qty.text)
                        t.member("side", trade.side.name)
                        if let ts = trade.ts { t.member("ts", ts) }
                    }
                }
            }
        }
        return Trading.json(.ok, reply.text)
    }

    func ticker(_ request: Request, _ context: ServerContext) throws -> Response {
        var reply = JSONText()
        reply.object { o in
            o.key("tickers")
            o.array { a in
                for entry in view.tickers(listed: listed) {
                    a.object { t in
                        t.member("symbol", entry.symbol)
                        t.member("bid", entry.bid?.text)
                        t.member("ask", entry.ask?.text)
                        t.member("last", entry.ticker.last?.text)
                        t.member("volume", entry.ticker.volume.text)
                        t.member("seq", entry.ticker.seq)
                    }
                }
            }
        }
        return Trading.json(.ok, reply.text)
    }

    /// Bars of the replay module's ``BarBuilder`` over the trades serve keeps, prices at 8 decimals.
    func candles(_ request: Request, _ context: ServerContext) throws -> Response {
        let symbol = try knownSymbol(context)
        let intervalText = request.uri.queryParameters.get("interval") ?? "1m"
        guard let interval = BarBuilder.parseInterval(intervalText) else {
            throw APIError.invalid("interval \(jsonStringLiteral(intervalText)) is not like 1s, 1m, 5m or 1h")
        }
        let limit = try Trading.integer(request, "limit", default: 100, range: 1...1000)
        var builder = BarBuilder(intervalNs: interval)
        var bars: [Bar] = []
        for trade in view.trades(symbol: symbol, limit: ExchangeView.tradesKeptPerSymbol).reversed() {
            guard let ts = trade.ts, let price = Self.eighths(trade.price), let qty = Self.eighths(trade.qty) else {
                continue
            }
            if let bar = builder.add(MarketData.TradePrint(timeNs: ts, price: price, qty: qty, aggressor: .buy)) {
                bars.append(bar)
            }
        }
        if let bar = builder.finish() { bars.append(bar) }
        var reply = JSONText()
        reply.object { o in
            o.key("candles")
            o.array { a in
                for bar in bars.suffix(Int(limit)) {
                    a.object { c in
                        c.member("start", bar.startNs)
                        c.member("open", Self.text(Int128(bar.open)))
                        c.member("high", Self.text(Int128(bar.high)))
                        c.member("low", Self.text(Int128(bar.low)))
                        c.member("close", Self.text(Int128(bar.close)))
                        c.member("volume", Self.text(bar.volume))
                        c.member("vwap", bar.vwap(extraDecimals: 2).map { Amount(units: $0 * 100_000_000).text })
                        c.member("trades", bar.trades)
                    }
                }
            }
        }
        return Trading.json(.ok, reply.text)
    }

    private func knownSymbol(_ context: ServerContext) throws(APIError) -> String {
        let symbol = context.parameters.get("symbol") ?? ""
        guard listed.contains(symbol) || view.knows(symbol: symbol) else {
            throw APIError(
                status: .notFound,
                code: "unknown_symbol",
                message: listed.isEmpty
                    ? "no events of \(jsonStringLiteral(symbol))" : "no instrument \(jsonStringLiteral(symbol))"
            )
        }
        return symbol
    }

    /// An amount in units of 10^-8, when it has no more decimals than that and fits an Int64.
    private static func eighths(_ amount: Amount) -> Int64? {
        let (quotient, remainder) = amount.units.quotientAndRemainder(dividingBy: 10_000_000_000)
        guard remainder == 0, let value = Int64(exactly: quotient) else { return nil }
        return value
    }

    private static func text(_ eighths: Int128) -> String { Amount(units: eighths * 10_000_000_000).text }
}
