import CastleCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import HummingbirdWebSocket
import Logging
import MarketFeed
import MarketStream
import MatchingEngine
import NIOCore
import Synchronization
import Testing

/// SplitMix64: a small seeded generator, so that a failing stream is replayed from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Two symbols with different decimals: "AAA" prices with 2 decimals (tick 0.05), quantities with 3
/// (lot 0.01); "BBB" whole numbers.
let instruments: [SymbolID: Instrument] = [
    0: Instrument(priceDecimals: 2, qtyDecimals: 3, tick: 5, lot: 10),
    1: Instrument(priceDecimals: 0, qtyDecimals: 0),
]

/// A feed with the tests' instruments and the names of ``nameTables(accounts:)`` synced.
func namedFeed() -> MarketFeed {
    let names = nameTables()
    let feed = MarketFeed(instruments: instruments)
    feed.syncNames(symbols: names.symbols, accounts: names.accounts)
    return feed
}

func nameTables(accounts names: [String] = ["alice", "bob"]) -> (symbols: NameTable, accounts: NameTable) {
    var symbols = NameTable()
    _ = symbols.intern("AAA")
    _ = symbols.intern("BBB")
    _ = symbols.intern("ZZZ")  // no instrument: the barrier's symbol (see publishBarrier)
    var accounts = NameTable(firstID: 1)
    for name in names { _ = accounts.intern(name) }
    return (symbols, accounts)
}

/// `units × 10^-decimals` as the decoder would give it.
func decimal(_ units: Int64, _ decimals: UInt8) -> FixedDecimal {
    var mantissa = units
    var scale = decimals
    while scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10
        scale -= 1
    }
    return FixedDecimal(mantissa: mantissa, scale: scale)
}

/// Random commands over a small space, so that ids collide, orders cross, amends and cancels hit live
/// and finished orders, and self-trade prevention fires: ids 1...40, 9 ticks around 100, every tif.
func randomCommands(seed: UInt64, count: Int) -> [Command] {
    var rng = SeededGenerator(seed: seed)
    var commands: [Command] = []
    for line in 1...count {
        let id = OrderID.random(in: 1...40, using: &rng)
        let symbol = SymbolID.random(in: 0...1, using: &rng)
        let k = Int64.random(in: -4...4, using: &rng)
        let price = symbol == 0 ? decimal(10_000 + 5 * k, 2) : decimal(100 + k, 0)
        let lots = Int64.random(in: 1...10, using: &rng)
        let qty = symbol == 0 ? decimal(10 * lots, 3) : decimal(lots, 0)
        let ts = Timestamp(line) * 1_000_000
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<15:
            commands.append(.cancel(id: id, ts: ts, line: line))
        case 15..<35:
            let which = Int.random(in: 0..<4, using: &rng)
            commands.append(
                .amend(
                    id: id,
                    price: which != 1 ? price : nil,
                    qty: which == 1 ? qty : which == 2 ? decimal(lots / 3, 0) : nil,
                    ts: ts,
                    line: line
                )
            )
        default:
            let type: OrderType = Int.random(in: 0..<10, using: &rng) == 0 ? .market : .limit
            let tif = [TimeInForce.gtc, .gtc, .gtc, .ioc, .fok, .postOnly].randomElement(using: &rng)!
            commands.append(
                .new(
                    id: id,
                    symbol: symbol,
                    side: Bool.random(using: &rng) ? .buy : .sell,
                    price: type == .market ? nil : price,
                    qty: qty,
                    type: type,
                    tif: type == .market && tif == .postOnly ? .gtc : tif,
                    account: AccountID.random(in: 0...2, using: &rng),
                    stp: [STPMode?.none, .cancelTaker, .cancelMaker, .cancelBoth].randomElement(using: &rng)!,
                    ts: ts,
                    line: line
                )
            )
        }
    }
    return commands
}

/// Runs commands through the engine and keeps its 1.1 events, numbered from 1 as `castle match` does.
struct VersionedEvents {
    var engine: Exchange
    var seq: UInt64 = 0
    /// Every event so far, and who owned each order (for the `orders` channel's expectations).
    var all: [FeedEvent] = []
    var owners: [OrderID: AccountID] = [:]

    /// The `seq`s of the trades of `symbol`.
    func tradeSeqs(symbol: SymbolID) -> [UInt64] {
        all.compactMap { event in
            if case .trade(let trade) = event.kind, trade.symbol == symbol { event.seq } else { nil }
        }
    }

    /// The `seq`s of the events the `orders` channel owes `account`.
    var accountEvents: [AccountID: [UInt64]] = [:]

    func eventSeqs(account: AccountID) -> [UInt64] { accountEvents[account] ?? [] }

    mutating func apply(_ command: Command) -> [FeedEvent] {
        let events = convert(command)
        for event in events {
            var concerned: Set<AccountID> = []
            switch event.kind {
            case .accepted(let id, _, _, _, _, _, _, let account):
                owners[id] = account
                concerned = [account]
            case .trade(let trade): concerned = [trade.makerAccount, trade.takerAccount]
            case .canceled(let id, _, _, _, _, _), .amended(let id, _, _, _, _, _, _, _):
                if let owner = owners[id] { concerned = [owner] }
            case .rejected: break
            }
            for account in concerned where account != .none { accountEvents[account, default: []].append(event.seq) }
        }
        all += events
        return events
    }

    init(instruments: [SymbolID: Instrument]) { engine = Exchange(instruments: instruments) }

    /// The engine's own 1.1 events of the command, numbered as a writer would.
    private mutating func convert(_ command: Command) -> [FeedEvent] {
        var events: [Event] = []
        engine.apply(command, into: &events)
        return events.map { event in
            seq += 1
            return FeedEvent(seq: seq, event: event)
        }
    }
}

/// The engine's aggregated levels of one side, as decimal strings, best first.
func engineLevels(_ engine: Exchange, _ symbol: SymbolID, _ side: Side) -> [[String]] {
    let instrument = engine.instrument(of: symbol)
    return engine.levels(of: symbol, side: side).map { level in
        [
            formatDecimal(level.price, decimals: instrument.priceDecimals),
            formatDecimal(Int64(level.totalQty), decimals: instrument.qtyDecimals),
        ]
    }
}

/// A client's copy of one book, kept from `book` messages as a browser would: a snapshot, then deltas
/// chained by `prev_seq`. A delta that does not chain is a gap: the client must subscribe again.
struct MirrorBook {
    var seq: UInt64?
    var bids: [String: String] = [:]
    var asks: [String: String] = [:]
    var gaps = 0

    enum Outcome: Equatable {
        case applied
        case gap
        /// A delta before the first snapshot, or after a gap until the next snapshot.
        case ignored
    }

    mutating func apply(_ message: [String: Any]) -> Outcome {
        let type = message["type"] as! String
        let messageSeq = (message["seq"] as! NSNumber).uint64Value
        if type == "snapshot" {
            seq = messageSeq
            bids = Dictionary(uniqueKeysWithValues: (message["bids"] as! [[String]]).map { ($0[0], $0[1]) })
            asks = Dictionary(uniqueKeysWithValues: (message["asks"] as! [[String]]).map { ($0[0], $0[1]) })
            return .applied
        }
        guard let held = seq else { return .ignored }
        guard (message["prev_seq"] as! NSNumber).uint64Value == held else {
            gaps += 1
            seq = nil
            return .gap
        }
        for change in message["changes"] as! [[String]] {
            let qty = change[2] == "0" ? nil : change[2]
            if change[0] == "buy" { bids[change[1]] = qty } else { asks[change[1]] = qty }
        }
        seq = messageSeq
        return .applied
    }

    /// Best first, as ``engineLevels(_:_:_:)`` gives them.
    func levels(_ side: Side) -> [[String]] {
        let levels = side == .buy ? bids : asks
        // Prices compared as exact decimals at the largest scale the tests use.
        func units(_ text: String) -> Int64 { try! FixedDecimal.parse(text)!.scaled(to: 8).get() }
        return levels.sorted { a, b in
            side == .buy ? units(a.key) > units(b.key) : units(a.key) < units(b.key)
        }.map { [$0.key, $0.value] }
    }
}

func parse(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

// The wire: a real server, real clients.

/// Logs of the server and the clients only when something is wrong.
let quietLogger: Logger = {
    var logger = Logger(label: "castle.test")
    logger.logLevel = .error
    return logger
}()

/// A feed connection whose messages queue up for the test to read, bounded by the feed's
/// `bufferMessagesMax` as a socket's are: a full queue refuses the message and the feed drops the
/// connection. The in-process counterpart of the stream route's sink.
final class QueuedConnection: FeedSink {
    let messages: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation
    private let connection = Mutex<FeedConnection?>(nil)

    init(_ feed: MarketFeed, account: String? = nil) throws(FeedError) {
        (messages, continuation) = AsyncStream.makeStream(
            bufferingPolicy: .bufferingOldest(feed.limits.bufferMessagesMax)
        )
        let opened = try feed.connect(account: account, sink: self)
        connection.withLock { $0 = opened }
    }

    func deliver(_ batch: FeedBatch) -> Bool {
        for message in batch.messages {
            if case .dropped = continuation.yield(message) { return false }
        }
        return true
    }

    func finish() { continuation.finish() }

    private var opened: FeedConnection { connection.withLock { $0! } }

    func subscribe(_ channel: FeedChannel, symbol: String? = nil) throws(FeedError) {
        try opened.subscribe(channel, symbol: symbol)
    }

    var dropReason: FeedDropReason? { opened.dropReason }

    func close() { opened.close() }
}

extension MarketFeed {
    func connect(account: String? = nil) throws(FeedError) -> QueuedConnection {
        try QueuedConnection(self, account: account)
    }
}

/// A server with the stream and the page's files on 127.0.0.1, any free port, for the time of `body`.
func withStreamServer<Value: Sendable>(
    _ feed: MarketFeed,
    closeTimeout: Duration = StreamRoute.closeTimeoutDefault,
    autoPing: AutoPingSetup = .enabled(timePeriod: .seconds(30)),
    _ body: @escaping @Sendable (_ port: Int) async throws -> Value
) async throws -> Value {
    let router = Router(options: .autoGenerateHeadEndpoints)
    WebRoutes.add(to: router)
    let application = Application(
        router: router,
        server: .http1WebSocketUpgrade(
            webSocketRouter: StreamRoute.router(feed: feed, closeTimeout: closeTimeout),
            configuration: HTTP1WebSocketUpgradeChannel.Configuration(
                ws: WebSocketServerConfiguration(autoPing: autoPing)
            )
        ),
        configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
        logger: quietLogger
    )
    return try await application.test(.live) { client in try await body(client.port!) }
}

/// A trade on ZZZ after everything else: a client subscribed to ZZZ's trades that sees it has seen
/// everything published before (one connection's messages keep their order).
func publishBarrier(_ feed: MarketFeed, names: (symbols: NameTable, accounts: NameTable)) {
    let trade = Trade(
        symbol: 2,
        price: 1,
        qty: 1,
        maker: 0,
        taker: 0,
        side: .buy,
        makerAccount: .none,
        takerAccount: .none
    )
    feed.publish([FeedEvent(seq: .max, kind: .trade(trade))])
}

func isBarrier(_ message: [String: Any]) -> Bool {
    message["channel"] as? String == "trades" && message["symbol"] as? String == "ZZZ" && message["op"] == nil
}

/// Connects, subscribes, says `ready` once every subscription is answered, and returns every text
/// message up to the barrier.
func readUntilBarrier(
    port: Int,
    account: String?,
    subscriptions: [(channel: String, symbol: String?)],
    ready: AsyncStream<Void>.Continuation
) async throws -> [String] {
    let received = Mutex<[String]>([])
    var headers = HTTPFields()
    if let account { headers[StreamRoute.accountHeader] = account }
    try await WebSocketClient.connect(
        url: "ws://127.0.0.1:\(port)/v1/stream",
        configuration: WebSocketClientConfiguration(maxFrameSize: 1 << 20, additionalHeaders: headers),
        logger: quietLogger
    ) { inbound, outbound, _ in
        for (channel, symbol) in subscriptions {
            let symbolField = symbol.map { #","symbol":"\#($0)""# } ?? ""
            try await outbound.write(.text(#"{"op":"subscribe","channel":"\#(channel)"\#(symbolField)}"#))
        }
        var answered = 0
        for try await message in inbound.messages(maxSize: 1 << 20) {
            guard case .text(let text) = message else { continue }
            received.withLock { $0.append(text) }
            let object = parse(text)
            if object["op"] as? String == "subscribed" {
                answered += 1
                if answered == subscriptions.count { ready.yield() }
            }
            if isBarrier(object) { break }
        }
    }
    return received.withLock { $0 }
}

/// A client that reads everything: subscribes to BBB's and the barrier's trades, says 0 once both are
/// answered, then the count of BBB trades after each; returns their `seq`s when the barrier comes.
func countTrades(port: Int, progress: AsyncStream<Int>.Continuation) async throws -> [UInt64] {
    let seqs = Mutex<[UInt64]>([])
    try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/v1/stream", logger: quietLogger) {
        inbound,
        outbound,
        _ in
        try await outbound.write(.text(#"{"op":"subscribe","channel":"trades","symbol":"BBB"}"#))
        try await outbound.write(.text(#"{"op":"subscribe","channel":"trades","symbol":"ZZZ"}"#))
        var answered = 0
        for try await message in inbound.messages(maxSize: 1 << 20) {
            guard case .text(let text) = message else { continue }
            let object = parse(text)
            if object["op"] as? String == "subscribed" {
                answered += 1
                if answered == 2 { progress.yield(0) }
                continue
            }
            if isBarrier(object) { break }
            let count = seqs.withLock { seqs in
                seqs.append((object["seq"] as! NSNumber).uint64Value)
                return seqs.count
            }
            progress.yield(count)
        }
    }
    return seqs.withLock { $0 }
}

struct RawResponse: Sendable {
    var status: Int
    var headers: HTTPFields
    var body: String
}

/// One plain HTTP request (a GET unless told) through Hummingbird's test client.
func rawRequest(
    port: Int,
    path: String,
    method: HTTPRequest.Method = .get,
    headers: HTTPFields = [:]
) async throws -> RawResponse {
    try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
        let response = try await client.execute(TestClient.Request(path, method: method, headers: headers))
        return RawResponse(
            status: Int(response.status.code),
            headers: response.headers,
            body: response.body.map { String(buffer: $0) } ?? ""
        )
    }
}
