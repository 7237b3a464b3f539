import CastleCore
import Foundation
import MarketFeed
import MatchingEngine
import Synchronization
import Testing

@Suite struct MarketFeedTests {
    /// The books kept from events alone equal the engine's, level by level, after every command of
    /// random streams; a client that mirrors snapshot + deltas (one from the start, one that joins
    /// half-way) ends with the same books, and every delta chains onto the message before it.
    @Test(arguments: 0..<40)
    func booksFromEventsEqualTheEngines(seed: UInt64) async throws {
        let names = nameTables()
        let feed = MarketFeed(instruments: instruments, requireInstruments: true)
        feed.syncNames(symbols: names.symbols, accounts: names.accounts)
        var source = VersionedEvents(instruments: instruments)
        let early = try feed.connect()
        try early.subscribe(.book, symbol: "AAA")
        try early.subscribe(.book, symbol: "BBB")
        var earlyMessages = early.messages.makeAsyncIterator()
        var mirrors: [String: MirrorBook] = [:]
        let commands = randomCommands(seed: seed, count: 300)
        var late: QueuedConnection?
        for (index, command) in commands.enumerated() {
            if index == commands.count / 2 {
                late = try feed.connect()
                try late!.subscribe(.book, symbol: "AAA")
                try late!.subscribe(.book, symbol: "BBB")
            }
            feed.publish(source.apply(command))
            for symbol in [SymbolID(0), 1] {
                let name = symbol == 0 ? "AAA" : "BBB"
                let book = try #require(feed.book(name))
                let kept = [book.bids, book.asks].map { levels in
                    levels.map { level in
                        [
                            formatDecimal(level.price, decimals: instruments[symbol]!.priceDecimals),
                            formatDecimal(Int64(level.qty), decimals: instruments[symbol]!.qtyDecimals),
                        ]
                    }
                }
                let expected = [engineLevels(source.engine, symbol, .buy), engineLevels(source.engine, symbol, .sell)]
                guard kept == expected else {
                    Issue.record("seed \(seed), command #\(index) \(command): \(name) kept \(kept), engine \(expected)")
                    return
                }
            }
        }
        early.close()
        while let text = await earlyMessages.next() {
            let message = parse(text)
            let outcome = mirrors[message["symbol"] as! String, default: MirrorBook()].apply(message)
            #expect(outcome == .applied, "seed \(seed): \(text)")
        }
        var lateMirrors: [String: MirrorBook] = [:]
        late!.close()
        for await text in late!.messages {
            let message = parse(text)
            #expect(lateMirrors[message["symbol"] as! String, default: MirrorBook()].apply(message) == .applied)
        }
        for (symbol, name) in [(SymbolID(0), "AAA"), (1, "BBB")] {
            for side in [Side.buy, .sell] {
                let expected = engineLevels(source.engine, symbol, side)
                #expect(mirrors[name, default: MirrorBook()].levels(side) == expected, "seed \(seed) \(name) \(side)")
                #expect(
                    lateMirrors[name, default: MirrorBook()].levels(side) == expected,
                    "seed \(seed) \(name) \(side)"
                )
            }
        }
    }

    /// A client that misses a delta sees `prev_seq` differ from the `seq` it holds, subscribes again,
    /// and the fresh snapshot plus what follows gives it the engine's book.
    @Test func aMissedDeltaIsDetectedAndASecondSubscribeRecovers() async throws {
        let feed = namedFeed()
        var source = VersionedEvents(instruments: instruments)
        let connection = try feed.connect()
        try connection.subscribe(.book, symbol: "BBB")
        var messages = connection.messages.makeAsyncIterator()
        var mirror = MirrorBook()
        #expect(mirror.apply(parse(try #require(await messages.next()))) == .applied)  // the empty snapshot
        var lost = false
        let commands = randomCommands(seed: 7, count: 400).filter { $0.op != .new || $0.symbol == 1 }
        for (index, command) in commands.enumerated() {
            let before = feed.book("BBB")?.seq ?? 0
            feed.publish(source.apply(command))
            // A command that changed the book sent exactly one message: the snapshot at first, then a delta.
            guard feed.book("BBB")?.seq ?? 0 != before else { continue }
            let message = parse(try #require(await messages.next()))
            if !lost, index > 20, message["type"] as? String == "delta" {
                lost = true  // this delta never reaches the client
                continue
            }
            if mirror.apply(message) == .gap {
                try connection.subscribe(.book, symbol: "BBB")
                let snapshot = parse(try #require(await messages.next()))
                #expect(snapshot["type"] as? String == "snapshot")
                #expect(mirror.apply(snapshot) == .applied)
            }
        }
        #expect(lost)
        #expect(mirror.gaps == 1)
        #expect(mirror.levels(.buy) == engineLevels(source.engine, 1, .buy))
        #expect(mirror.levels(.sell) == engineLevels(source.engine, 1, .sell))
    }

    /// A connection that does not read is dropped when its buffer fills, with the reason; the publisher
    /// goes on, and a connection that reads receives every message, in order.
    @Test func aSlowConsumerIsDroppedWhileOthersReceiveEverything() async throws {
        let names = nameTables()
        let feed = MarketFeed(instruments: instruments, limits: FeedLimits(bufferMessagesMax: 16))
        feed.syncNames(symbols: names.symbols, accounts: names.accounts)
        let slow = try feed.connect()
        let fast = try feed.connect()
        for connection in [slow, fast] { try connection.subscribe(.trades, symbol: "BBB") }
        var fastMessages = fast.messages.makeAsyncIterator()
        var source = VersionedEvents(instruments: instruments)
        _ = source.apply(.new(id: 1, symbol: 1, side: .sell, price: decimal(100, 0), qty: decimal(1_000_000, 0)))
        var received: [UInt64] = []
        var published: [UInt64] = []
        for id in OrderID(2)...201 {
            let events = source.apply(.new(id: id, symbol: 1, side: .buy, price: decimal(100, 0), qty: decimal(1, 0)))
            feed.publish(events)
            published += events.compactMap { if case .trade = $0.kind { $0.seq } else { nil } }
            // What publish sent is already in the buffer: this reads it without waiting for anything else.
            let text = try #require(await fastMessages.next())
            received.append((parse(text)["seq"] as! NSNumber).uint64Value)
        }
        #expect(received == published)
        #expect(published.count == 200)
        #expect(slow.dropReason == .slowConsumer)
        #expect(fast.dropReason == nil)
        var slowCount = 0
        for await _ in slow.messages { slowCount += 1 }
        #expect(slowCount == 16, "the slow consumer keeps only what its buffer held")
        #expect(feed.counts.connections == 1)
        #expect(feed.counts.droppedSlowConsumers == 1)
        #expect(throws: FeedError.closed) { try slow.subscribe(.trades, symbol: "AAA") }
    }

    /// The `orders` channel carries the account's own events as 1.1 writes them, and nobody else's.
    @Test func theOrdersChannelCarriesOnlyTheAccountsOwnEvents() async throws {
        let feed = namedFeed()
        let alice = try feed.connect(account: "alice")
        let anonymous = try feed.connect()
        try alice.subscribe(.orders)
        #expect(throws: FeedError.noAccount) { try anonymous.subscribe(.orders) }
        #expect(throws: FeedError.unexpectedSymbol) { try alice.subscribe(.orders, symbol: "AAA") }
        var source = VersionedEvents(instruments: instruments)
        feed.publish(
            source.apply(
                .new(id: 1, symbol: 0, side: .sell, price: decimal(10_005, 2), qty: decimal(50, 3), account: 1)
            )
        )
        feed.publish(
            source.apply(.new(id: 2, symbol: 0, side: .buy, price: decimal(10_010, 2), qty: decimal(20, 3), account: 2))
        )
        feed.publish(
            source.apply(.new(id: 3, symbol: 0, side: .buy, price: decimal(9_000, 2), qty: decimal(10, 3), account: 2))
        )
        feed.publish(source.apply(.amend(id: 1, qty: decimal(10, 3))))
        feed.publish(source.apply(.cancel(id: 1)))
        alice.close()
        var texts: [String] = []
        for await text in alice.messages { texts.append(text) }
        #expect(
            texts == [
                #"{"channel":"orders","seq":1,"event":"accepted","id":1,"symbol":"AAA","side":"sell","type":"limit","tif":"gtc","price":"100.05","qty":"0.05","account":"alice"}"#,
                #"{"channel":"orders","seq":3,"event":"trade","symbol":"AAA","price":"100.05","qty":"0.02","maker":1,"taker":2,"side":"buy","maker_account":"alice","taker_account":"bob"}"#,
                #"{"channel":"orders","seq":5,"event":"amended","id":1,"price":"100.05","qty":"0.01","symbol":"AAA","side":"sell","prev_price":"100.05","prev_qty":"0.03","priority":"kept"}"#,
                #"{"channel":"orders","seq":6,"event":"canceled","id":1,"qty":"0.01","reason":"user","symbol":"AAA","side":"sell","price":"100.05"}"#,
            ]
        )
    }

    /// Snapshot and delta text: instrument decimals, best level first, `"0"` for a level that went. Three
    /// orders rest (events 1-3: the snapshot's `seq`); the fourth (event 4) trades the best bid away
    /// (event 5: the delta's `seq`).
    @Test func bookMessagesAreWrittenAsTheProtocolSays() async throws {
        let names = nameTables()
        let feed = MarketFeed(instruments: instruments, requireInstruments: true)
        feed.syncNames(symbols: names.symbols, accounts: names.accounts)
        var source = VersionedEvents(instruments: instruments)
        feed.publish(source.apply(.new(id: 1, symbol: 0, side: .buy, price: decimal(9_990, 2), qty: decimal(1_500, 3))))
        feed.publish(source.apply(.new(id: 2, symbol: 0, side: .buy, price: decimal(9_995, 2), qty: decimal(10, 3))))
        feed.publish(source.apply(.new(id: 3, symbol: 0, side: .sell, price: decimal(10_000, 2), qty: decimal(20, 3))))
        let connection = try feed.connect()
        try connection.subscribe(.book, symbol: "AAA")
        #expect(throws: FeedError.unknownSymbol("ZZZ")) { try connection.subscribe(.book, symbol: "ZZZ") }
        #expect(throws: FeedError.missingSymbol) { try connection.subscribe(.trades) }
        feed.publish(source.apply(.new(id: 4, symbol: 0, side: .sell, price: decimal(9_995, 2), qty: decimal(10, 3))))
        connection.close()
        var texts: [String] = []
        for await text in connection.messages { texts.append(text) }
        #expect(
            texts == [
                #"{"channel":"book","type":"snapshot","symbol":"AAA","seq":3,"bids":[["99.95","0.01"],["99.9","1.5"]],"asks":[["100","0.02"]]}"#,
                #"{"channel":"book","type":"delta","symbol":"AAA","seq":5,"prev_seq":3,"changes":[["buy","99.95","0"]]}"#,
            ]
        )
    }

    /// One fan-out of a random stream's events gives each connection, on the `trades` and `orders`
    /// channels, what a fan-out per command gives it: the same messages, in event order across its
    /// subscriptions (an account's own events interleaved with a symbol's trades).
    @Test(arguments: 0..<8)
    func oneFanOutGivesEachConnectionWhatAFanOutPerCommandGives(seed: UInt64) async throws {
        var source = VersionedEvents(instruments: instruments)
        let perCommand = randomCommands(seed: seed, count: 300).map { source.apply($0) }
        let subscriptions: [(account: String?, channels: [(FeedChannel, String?)])] = [
            (nil, [(.trades, "AAA")]),
            ("alice", [(.orders, nil), (.trades, "BBB")]),
            ("alice", [(.trades, "AAA"), (.orders, nil), (.trades, "BBB")]),
            (nil, [(.trades, "AAA")]),
            ("bob", [(.orders, nil)]),
        ]
        func messages(fanOuts: [[FeedEvent]]) async throws -> [[String]] {
            let names = nameTables()
            let feed = MarketFeed(instruments: instruments, limits: FeedLimits(bufferMessagesMax: 1 << 20))
            feed.syncNames(symbols: names.symbols, accounts: names.accounts)
            var connections: [QueuedConnection] = []
            for (account, channels) in subscriptions {
                let connection = try feed.connect(account: account)
                for (channel, symbol) in channels { try connection.subscribe(channel, symbol: symbol) }
                connections.append(connection)
            }
            for events in fanOuts { feed.publish(events) }
            var all: [[String]] = []
            for connection in connections {
                connection.close()
                var texts: [String] = []
                for await text in connection.messages { texts.append(text) }
                all.append(texts)
            }
            return all
        }
        let together = try await messages(fanOuts: [perCommand.flatMap { $0 }])
        #expect(together == (try await messages(fanOuts: perCommand)))
        #expect(together[1].contains { $0.contains(#""channel":"orders""#) })
        #expect(together[1].contains { $0.contains(#""channel":"trades""#) })
        #expect(together[2].count > together[1].count)
    }

    /// Connections with the same subscriptions get one fan-out's messages as one shared batch; one with
    /// other subscriptions, its own.
    @Test func connectionsWithTheSameSubscriptionsShareABatch() throws {
        final class Recorder: FeedSink {
            let batches = Mutex<[FeedBatch]>([])
            func deliver(_ batch: FeedBatch) -> Bool {
                batches.withLock { $0.append(batch) }
                return true
            }
            func finish() {}
        }
        let feed = namedFeed()
        let recorders = [Recorder(), Recorder(), Recorder()]
        let connections = try recorders.map { try feed.connect(sink: $0) }
        for connection in connections { try connection.subscribe(.trades, symbol: "BBB") }
        try connections[0].subscribe(.book, symbol: "BBB")
        try connections[1].subscribe(.book, symbol: "BBB")
        var source = VersionedEvents(instruments: instruments)
        feed.publish(source.apply(.new(id: 1, symbol: 1, side: .sell, price: decimal(100, 0), qty: decimal(5, 0))))
        feed.publish(source.apply(.new(id: 2, symbol: 1, side: .buy, price: decimal(100, 0), qty: decimal(2, 0))))
        let last = recorders.map { recorder in recorder.batches.withLock { $0.last! } }
        #expect(last[0] === last[1])
        #expect(last[0].messages.count == 2, "the trade, then the book's delta")
        #expect(last[2] !== last[0])
        #expect(last[2].messages == [last[0].messages[0]])
        _ = connections
    }

    /// One connection more than the cap is refused; closing one makes room.
    @Test func theConnectionCapRefusesOneMore() throws {
        let feed = MarketFeed(limits: FeedLimits(connectionsMax: 2))
        let first = try feed.connect()
        let second = try feed.connect()
        #expect(throws: FeedError.tooManyConnections(max: 2)) { try feed.connect() }
        first.close()
        let third = try feed.connect()
        #expect(feed.counts.connections == 2)
        _ = (second, third)
    }

    /// With a pace, the first hand-over after a quiet spell goes at once and what follows within the pace
    /// waits: many commands' changes to a book go as one delta, which a mirror applies to the engine's
    /// book. A stop (here long before the pace is over) fans out what waits before ending the streams.
    @Test func aPacedRunMergesWhatComesWithinThePace() async throws {
        let feed = namedFeed()
        let connection = try feed.connect()
        try connection.subscribe(.book, symbol: "BBB")
        var source = VersionedEvents(instruments: instruments)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await feed.run(pace: .seconds(3600)) }
            var messages = connection.messages.makeAsyncIterator()
            var mirror = MirrorBook()
            #expect(mirror.apply(parse(try #require(await messages.next()))) == .applied)  // the snapshot
            feed.enqueue(source.apply(.new(id: 1, symbol: 1, side: .sell, price: decimal(101, 0), qty: decimal(5, 0))))
            #expect(mirror.apply(parse(try #require(await messages.next()))) == .applied, "the first goes at once")
            for id in OrderID(2)...11 {
                let price = decimal(90 + Int64(id % 3), 0)
                feed.enqueue(source.apply(.new(id: id, symbol: 1, side: .buy, price: price, qty: decimal(1, 0))))
            }
            group.cancelAll()
            try await group.waitForAll()
            var rest: [[String: Any]] = []
            while let text = await messages.next() { rest.append(parse(text)) }
            #expect(rest.count == 1, "ten commands, one delta")
            for message in rest { #expect(mirror.apply(message) == .applied) }
            #expect(mirror.levels(.buy) == engineLevels(source.engine, 1, .buy))
            #expect(mirror.levels(.sell) == engineLevels(source.engine, 1, .sell))
        }
        #expect(connection.dropReason == .shutdown)
    }

    /// What the matcher hands over with `enqueue` reaches the clients through `run`, in order, with the
    /// books' deltas of a busy spell merged; cancelling `run` (graceful stop) ends every stream with the
    /// reason `shutdown`.
    @Test func enqueuedEventsAreFannedOutByRunAndAStopEndsTheStreams() async throws {
        let feed = namedFeed()
        let connection = try feed.connect()
        try connection.subscribe(.trades, symbol: "BBB")
        try connection.subscribe(.book, symbol: "BBB")
        var source = VersionedEvents(instruments: instruments)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await feed.run() }
            var messages = connection.messages.makeAsyncIterator()
            let snapshot = parse(try #require(await messages.next()))
            #expect(snapshot["type"] as? String == "snapshot")
            feed.enqueue(source.apply(.new(id: 1, symbol: 1, side: .sell, price: decimal(101, 0), qty: decimal(5, 0))))
            feed.enqueue(source.apply(.new(id: 2, symbol: 1, side: .buy, price: decimal(101, 0), qty: decimal(2, 0))))
            var trades = 0
            var mirror = MirrorBook()
            _ = mirror.apply(snapshot)
            while mirror.levels(.sell) != [["101", "3"]] || trades < 1 {
                let message = parse(try #require(await messages.next()))
                if message["channel"] as? String == "trades" {
                    trades += 1
                    #expect(message["price"] as? String == "101" && message["qty"] as? String == "2")
                } else {
                    #expect(mirror.apply(message) == .applied)
                }
            }
            #expect(trades == 1)
            group.cancelAll()
            try await group.waitForAll()
            let afterStop = await messages.next()
            #expect(afterStop == nil)
        }
        #expect(connection.dropReason == .shutdown)
    }
}
