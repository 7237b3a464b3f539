import CastleCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import HummingbirdWebSocket
import MarketFeed
import MarketStream
import NIOCore
import NIOWebSocket
import Synchronization
import Testing

/// `/v1/stream` and the page's files on a real server (port 0 on loopback) with real WebSocket clients.
@Suite struct StreamTests {
    /// A client subscribes over the wire and keeps the book from snapshot + deltas while a random stream
    /// is matched: its book equals the engine's, it saw every trade, every delta chained onto the one
    /// before, and the `orders` channel carried its account's events and nobody else's.
    @Test func aClientKeepsTheEnginesBookAndSeesEveryTradeOverTheWire() async throws {
        let names = nameTables()
        let feed = MarketFeed(instruments: instruments)
        feed.syncNames(symbols: names.symbols, accounts: names.accounts)
        let commands = randomCommands(seed: 11, count: 1500)
        let (received, expected) = try await withStreamServer(feed) { port in
            var source = VersionedEvents(instruments: instruments)
            let subscribed = AsyncStream<Void>.makeStream()
            async let client = readUntilBarrier(
                port: port,
                account: "alice",
                subscriptions: [("book", "BBB"), ("trades", "BBB"), ("orders", nil), ("trades", "ZZZ")],
                ready: subscribed.continuation
            )
            var ready = subscribed.stream.makeAsyncIterator()
            _ = await ready.next()
            for command in commands { feed.publish(source.apply(command)) }
            publishBarrier(feed, names: names)
            let expected = Expected(
                bids: engineLevels(source.engine, 1, .buy),
                asks: engineLevels(source.engine, 1, .sell),
                trades: source.tradeSeqs(symbol: 1),
                aliceEvents: source.eventSeqs(account: 1)
            )
            return (try await client, expected)
        }
        var mirror = MirrorBook()
        var trades: [UInt64] = []
        var orderEvents: [UInt64] = []
        var answers: [String] = []
        for text in received {
            let message = parse(text)
            switch message["channel"] as? String {
            case "book" where message["op"] == nil:
                #expect(mirror.apply(message) == .applied, "\(text)")
            case "trades" where message["op"] == nil:
                if message["symbol"] as? String == "BBB" { trades.append((message["seq"] as! NSNumber).uint64Value) }
            case "orders" where message["op"] == nil:
                orderEvents.append((message["seq"] as! NSNumber).uint64Value)
            default:
                answers.append(text)
            }
        }
        #expect(
            answers == [
                #"{"channel":"book","op":"subscribed","symbol":"BBB"}"#,
                #"{"channel":"trades","op":"subscribed","symbol":"BBB"}"#,
                #"{"channel":"orders","op":"subscribed"}"#,
                #"{"channel":"trades","op":"subscribed","symbol":"ZZZ"}"#,
            ]
        )
        #expect(mirror.levels(.buy) == expected.bids)
        #expect(mirror.levels(.sell) == expected.asks)
        #expect(!mirror.bids.isEmpty || !mirror.asks.isEmpty, "the stream left a book to compare")
        #expect(trades == expected.trades)
        #expect(!trades.isEmpty)
        #expect(orderEvents == expected.aliceEvents)
        #expect(!orderEvents.isEmpty)
    }

    /// A client that does not read is dropped once its buffer is full, and gets close code 4001 `slow
    /// consumer` when it reads again; a client that reads receives every trade, in order.
    @Test func aSlowConsumerIsClosedWith4001WhileAReaderGetsEverything() async throws {
        let names = nameTables()
        let feed = MarketFeed(instruments: instruments, limits: FeedLimits(bufferMessagesMax: 64))
        feed.syncNames(symbols: names.symbols, accounts: names.accounts)
        // The slow client, once released, drains megabytes of socket buffers before the close frame:
        // on a loaded machine that takes longer than the default cut-off, which is not under test here.
        // Nor is liveness: a client that reads nothing answers no ping either, and with the default
        // 30 s ping the server closed it as dead before a loaded machine had filled its buffers (the
        // feed then never counted a slow consumer). So this server does not ping.
        let (slowClose, fastSeqs, published) = try await withStreamServer(
            feed,
            closeTimeout: .seconds(300),
            autoPing: .disabled
        ) { port in
            var source = VersionedEvents(instruments: instruments)
            let maker = Command.new(id: 1, symbol: 1, side: .sell, price: decimal(100, 0), qty: decimal(100_000_000, 0))
            feed.publish(source.apply(maker))
            let progress = AsyncStream<Int>.makeStream()
            let release = AsyncStream<Void>.makeStream()
            let slowReady = AsyncStream<Void>.makeStream()
            async let fast = countTrades(port: port, progress: progress.continuation)
            async let slow = WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/v1/stream", logger: quietLogger) {
                inbound,
                outbound,
                _ in
                try await outbound.write(.text(#"{"op":"subscribe","channel":"trades","symbol":"BBB"}"#))
                var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                _ = try await messages.next()  // the answer: subscribed
                slowReady.continuation.yield()
                // Reads nothing until the feed has dropped it, then everything left, then the close.
                var wait = release.stream.makeAsyncIterator()
                _ = await wait.next()
                while try await messages.next() != nil {}
            }
            var fastProgress = progress.stream.makeAsyncIterator()
            _ = await fastProgress.next()  // the fast client is subscribed
            var slowSubscribed = slowReady.stream.makeAsyncIterator()
            _ = await slowSubscribed.next()
            var published: [UInt64] = []
            var id: OrderID = 2
            // Rounds of 32 trades, each read by the fast client before the next: it never falls behind,
            // while the slow client's socket and buffer fill. Bounded, in case nothing ever fills.
            while feed.counts.droppedSlowConsumers == 0 && published.count < 2_000_000 {
                for _ in 0..<32 {
                    let events = source.apply(
                        .new(id: id, symbol: 1, side: .buy, price: decimal(100, 0), qty: decimal(1, 0))
                    )
                    id += 1
                    feed.publish(events)
                    published += events.compactMap { if case .trade = $0.kind { $0.seq } else { nil } }
                }
                while let count = await fastProgress.next(), count < published.count {}
            }
            #expect(feed.counts.droppedSlowConsumers == 1)
            release.continuation.yield()
            let slowClose = try await slow
            let last = source.apply(.new(id: id, symbol: 1, side: .buy, price: decimal(100, 0), qty: decimal(1, 0)))
            feed.publish(last)
            published += last.compactMap { if case .trade = $0.kind { $0.seq } else { nil } }
            publishBarrier(feed, names: names)
            return (slowClose, try await fast, published)
        }
        #expect(slowClose?.closeCode == .unknown(4001))
        #expect(slowClose?.reason == "slow consumer")
        #expect(fastSeqs == published)
    }

    /// Bad frames get an error object and the stream stays open; `orders` without an account is refused.
    @Test func badFramesAreAnsweredWithErrorsAndTheStreamGoesOn() async throws {
        let feed = MarketFeed(instruments: instruments, requireInstruments: true)
        let names = nameTables()
        feed.syncNames(symbols: names.symbols, accounts: names.accounts)
        let answers = try await withStreamServer(feed) { port in
            let answers = Mutex<[String]>([])
            try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/v1/stream", logger: quietLogger) {
                inbound,
                outbound,
                _ in
                let frames = [
                    "not json", #"{"op":"subscribe","channel":"book","symbol":"BBB","depth":5}"#,
                    #"{"op":"watch","channel":"book"}"#, #"{"op":"subscribe","channel":"candles","symbol":"BBB"}"#,
                    #"{"op":"subscribe","channel":"book","symbol":7}"#, #"{"op":"subscribe","channel":"book"}"#,
                    #"{"op":"subscribe","channel":"book","symbol":"ZZZ"}"#, #"{"op":"subscribe","channel":"orders"}"#,
                    #"{"op":"subscribe","channel":"trades","symbol":"AAA"}"#,
                    #"{"op":"subscribe","channel":"trades","symbol":""# + String(repeating: "A", count: 4100) + #""}"#,
                ]
                var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                for frame in frames {
                    try await outbound.write(.text(frame))
                    guard case .text(let answer) = try await messages.next() else { break }
                    answers.withLock { $0.append(answer) }
                }
                try await outbound.write(.binary(ByteBuffer(string: "{}")))
                if case .text(let answer) = try await messages.next() { answers.withLock { $0.append(answer) } }
            }
            return answers.withLock { $0 }
        }
        #expect(
            answers == [
                #"{"error":{"code":"malformed","message":"not a JSON object"}}"#,
                #"{"error":{"code":"malformed","message":"unknown field depth"}}"#,
                #"{"error":{"code":"malformed","message":"op must be subscribe or unsubscribe"}}"#,
                #"{"error":{"code":"malformed","message":"channel must be trades, book or orders"}}"#,
                #"{"error":{"code":"malformed","message":"symbol must be a string"}}"#,
                #"{"error":{"code":"invalid","message":"this channel needs a symbol"}}"#,
                #"{"error":{"code":"unknown_symbol","message":"unknown symbol ZZZ"}}"#,
                #"{"error":{"code":"unauthenticated","message":"the orders channel needs the X-Castle-Account header"}}"#,
                #"{"channel":"trades","op":"subscribed","symbol":"AAA"}"#,
                #"{"error":{"code":"malformed","message":"a message over 4096 bytes"}}"#,
                #"{"error":{"code":"malformed","message":"send JSON text frames"}}"#,
            ]
        )
    }

    /// The page's files: ETag and Cache-Control, and 304 for a matching If-None-Match.
    @Test func thePageIsServedWithETagAndCacheControl() async throws {
        try await withStreamServer(MarketFeed()) { port in
            let page = try await rawRequest(port: port, path: "/")
            #expect(page.status == 200)
            #expect(page.headers[.cacheControl] == "no-cache")
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.body.contains(#"<script src="/app.js"></script>"#))
            // HEAD: the same head, the length a GET gets, no body.
            let head = try await rawRequest(port: port, path: "/", method: .head)
            #expect(head.status == 200 && head.body.isEmpty)
            #expect(head.headers[.contentLength] == String(page.body.utf8.count))
            #expect(head.headers[.eTag] == page.headers[.eTag])
            let tag = try #require(page.headers[.eTag])
            let again = try await rawRequest(port: port, path: "/", headers: [.ifNoneMatch: tag])
            #expect(again.status == 304)
            #expect(again.body.isEmpty)
            let script = try await rawRequest(port: port, path: "/app.js", headers: [.ifNoneMatch: "\"other\""])
            #expect(script.status == 200)
            #expect(script.headers[.cacheControl] == "public, max-age=300")
            #expect(script.body.contains("new WebSocket("))
            #expect(script.headers[.eTag] != tag)
        }
    }
}

/// What the engine says a client should have seen.
struct Expected: Sendable {
    var bids: [[String]]
    var asks: [[String]]
    var trades: [UInt64]
    var aliceEvents: [UInt64]
}
