import CastleCore
import Foundation
import Testing

@testable import Server

/// Contract 1.1's promise (spec/match.md): a consumer of the event stream alone keeps every book. The
/// books rebuilt here from `castle match`'s events of random streams, and nothing else, must equal what
/// `--book-out` writes from the engine.
@Suite struct EventsRebuildBookTests {
    @Test(arguments: [UInt64(3), 11, 29])
    func booksFromEventsAloneMatchBookOut(seed: UInt64) async throws {
        let dir = try await matchedDay(seed: seed, count: 20000, accounts: 5, bookOut: true)

        var books = EventBooks()
        let events = try dir.read("events.ndjson").split(separator: "\n")
        for (index, line) in events.enumerated() {
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                "line \(index + 1)"
            )
            try books.apply(object)
        }
        #expect(books.resting > 0, "the stream leaves orders resting, so the comparison means something")
        let fromEvents = books.lines()
        let fromEngine = try bookOutLines(Data(dir.read("book.json").utf8))
        #expect(fromEvents.count == fromEngine.count)
        let difference = zip(fromEvents, fromEngine).first { $0 != $1 }
        #expect(difference == nil, "first difference (events, book-out): \(String(describing: difference))")
    }

    /// serve's view (what `GET /v1/book`, `/v1/ticker` and `GET /v1/orders?status=open` read) keeps its
    /// levels and open orders as events come, in batches of any size; after every batch they must equal
    /// the books kept from the same events by the plain model above.
    @Test(arguments: [UInt64(5), 17])
    func servesViewKeepsTheSameBooks(seed: UInt64) async throws {
        let dir = try await matchedDay(seed: seed, count: 6000, accounts: 4, bookOut: false)

        let view = ExchangeView()
        var books = EventBooks()
        let lines = try dir.read("events.ndjson").split(separator: "\n")
        var start = 0
        var batch = 1
        var compared = 0
        while start < lines.count {
            // Batches of 1, 2, 4, … 512 lines, then again: some end in the middle of a command.
            let end = min(start + batch, lines.count)
            view.apply(LoggedLines(ndjson: Array(lines[start..<end].joined(separator: "\n").utf8)).events)
            for line in lines[start..<end] {
                try books.apply(#require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]))
            }
            start = end
            batch = batch >= 512 ? 1 : batch * 2
            guard batch == 1 || start == lines.count else { continue }
            let symbols = Set(books.symbols).union(view.tickers(listed: []).map(\.symbol))
            for symbol in symbols.sorted() {
                let book = view.book(symbol: symbol, depth: .max)
                let bids = book.bids.map { [$0.0.text, $0.1.text] }
                let asks = book.asks.map { [$0.0.text, $0.1.text] }
                #expect(bids == books.levels(symbol, side: "buy"), "\(symbol) bids after line \(start)")
                #expect(asks == books.levels(symbol, side: "sell"), "\(symbol) asks after line \(start)")
            }
            // Mid-command an incoming IOC or market order is open without resting; at the end they agree.
            for account in books.accounts where start == lines.count {
                let open = view.openOrders(account: account).map(\.id)
                #expect(open == books.ids(account: account), "open orders of \(account) after line \(start)")
            }
            compared += 1
        }
        #expect(books.resting > 0 && compared > 3, "orders rest and the books were compared along the way")
    }

    /// A generated day matched by `castle match`: `events.ndjson` (and `book.json` with `bookOut`) in a new
    /// directory.
    private func matchedDay(seed: UInt64, count: Int, accounts: Int, bookOut: Bool) async throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        let generated = try await CastleProcess.run([
            "generate", "orders", "--seed", "\(seed)", "--count", "\(count)", "--accounts", "\(accounts)",
            "-o", dir.path("day.ndjson"),
        ])
        #expect(generated.status == 0, "\(generated.stderr)")
        let book = bookOut ? ["--book-out", dir.path("book.json")] : []
        let matched = try await CastleProcess.run(
            ["match", "-q", dir.path("day.ndjson"), "-o", dir.path("events.ndjson")] + book
        )
        #expect(matched.status == 0, "\(matched.stderr)")
        return dir
    }

    /// `--book-out` flattened to one line per resting order: symbol, side, price, id, qty, in book order.
    private func bookOutLines(_ data: Data) throws -> [String] {
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var lines: [String] = []
        for symbol in root.keys.sorted() {
            let sides = try #require(root[symbol] as? [String: Any])
            for side in ["bids", "asks"] {
                for level in sides[side] as? [[Any]] ?? [] {
                    let price = try #require(level[0] as? String)
                    for order in try #require(level[1] as? [[Any]]) {
                        let id = try #require((order[0] as? NSNumber)?.uint64Value)
                        let qty = try #require(order[1] as? String)
                        lines.append("\(symbol) \(side) \(price) \(id) \(qty)")
                    }
                }
            }
        }
        return lines
    }
}

/// Books kept from 1.1 events only. An accepted limit GTC or post-only order joins the tail of its level
/// at once; the trades and cancels of the same command then take from it, as the contract says.
struct EventBooks {
    struct Order {
        var symbol: String
        var side: String
        var price: String
        var qty: Int64
        var arrival: Int
        var account = ""
    }

    private var orders: [UInt64: Order] = [:]
    private var arrivals = 0

    var resting: Int { orders.count }
    /// Every symbol and account seen, sorted.
    private(set) var symbols: [String] = []
    private(set) var accounts: [String] = []

    /// The resting orders of `account`, by id.
    func ids(account: String) -> [UInt64] {
        orders.filter { $0.value.account == account }.map(\.key).sorted()
    }

    mutating func apply(_ event: [String: Any]) throws {
        let kind = try #require(event["event"] as? String)
        if let symbol = event["symbol"] as? String, !symbols.contains(symbol) {
            symbols = (symbols + [symbol]).sorted()
        }
        switch kind {
        case "accepted":
            if let account = event["account"] as? String, !accounts.contains(account) {
                accounts = (accounts + [account]).sorted()
            }
            let tif = try #require(event["tif"] as? String)
            guard event["type"] as? String == "limit", tif == "gtc" || tif == "post_only" else { return }
            try add(
                id: id(event),
                symbol: #require(event["symbol"] as? String),
                side: #require(event["side"] as? String),
                price: #require(event["price"] as? String),
                qty: units(#require(event["qty"] as? String)),
                account: event["account"] as? String ?? ""
            )
        case "trade":
            let qty = try units(#require(event["qty"] as? String))
            for key in ["maker", "taker"] {
                let id = try #require((event[key] as? NSNumber)?.uint64Value)
                take(qty, from: id)
            }
        case "canceled":
            orders[try id(event)] = nil
        case "amended":
            let id = try id(event)
            guard var order = orders[id] else { return }
            #expect(try units(#require(event["prev_qty"] as? String)) == order.qty, "amended prev_qty, order \(id)")
            #expect(event["prev_price"] as? String == order.price, "amended prev_price, order \(id)")
            order.qty = try units(#require(event["qty"] as? String))
            order.price = try #require(event["price"] as? String)
            if event["priority"] as? String == "lost" {
                arrivals += 1
                order.arrival = arrivals
            }
            orders[id] = order
        default:
            break
        }
    }

    private mutating func add(id: UInt64, symbol: String, side: String, price: String, qty: Int64, account: String) {
        arrivals += 1
        orders[id] = Order(symbol: symbol, side: side, price: price, qty: qty, arrival: arrivals, account: account)
    }

    private mutating func take(_ qty: Int64, from id: UInt64) {
        guard let order = orders[id] else { return }
        orders[id] =
            order.qty == qty
            ? nil
            : Order(
                symbol: order.symbol,
                side: order.side,
                price: order.price,
                qty: order.qty - qty,
                arrival: order.arrival,
                account: order.account
            )
    }

    private func id(_ event: [String: Any]) throws -> UInt64 {
        try #require((event["id"] as? NSNumber)?.uint64Value)
    }

    /// A symbol's levels on one side (`buy` or `sell`), best first, as `GET /v1/book/{symbol}` writes them:
    /// canonical decimal price and total quantity.
    func levels(_ symbol: String, side: String) -> [[String]] {
        var totals: [Int64: Int64] = [:]
        for order in orders.values where order.symbol == symbol && order.side == side {
            totals[units(order.price), default: 0] += order.qty
        }
        return totals.sorted { side == "buy" ? $0.key > $1.key : $0.key < $1.key }.map {
            [decimal($0.key), decimal($0.value)]
        }
    }

    /// The same flattening as `--book-out`'s: symbols sorted, bids then asks, best price first, then time.
    func lines() -> [String] {
        let sorted = orders.sorted { a, b in
            let (x, y) = (a.value, b.value)
            if x.symbol != y.symbol { return x.symbol < y.symbol }
            if x.side != y.side { return x.side == "buy" }
            let (px, py) = (units(x.price), units(y.price))
            if px != py { return x.side == "buy" ? px > py : px < py }
            return x.arrival < y.arrival
        }
        return sorted.map { id, order in
            "\(order.symbol) \(order.side == "buy" ? "bids" : "asks") \(order.price) \(id) \(decimal(order.qty))"
        }
    }
}

/// A decimal string in units of 10^-8 (the scale of a symbol without a declared instrument).
private func units(_ text: String) -> Int64 {
    guard let value = FixedDecimal.parse(text), case .success(let scaled) = value.scaled(to: 8) else {
        Issue.record("not a decimal of at most 8 places: \(text)")
        return 0
    }
    return scaled
}

/// Units of 10^-8 as a canonical decimal string (no trailing zeros), as the events and `--book-out` write.
private func decimal(_ units: Int64) -> String {
    let whole = units / 100_000_000
    var fraction = String(units % 100_000_000)
    guard fraction != "0" else { return "\(whole)" }
    fraction = String(repeating: "0", count: 8 - fraction.count) + fraction
    while fraction.hasSuffix("0") { fraction.removeLast() }
    return "\(whole).\(fraction)"
}
