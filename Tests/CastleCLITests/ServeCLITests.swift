import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing

/// `castle serve` as clients see it: a real server process on a free loopback port, a real SQLite store,
/// requests through AsyncHTTPClient.
@Suite(.serialized) struct ServeCLITests {
    @Test func healthReadyAndRegion() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let health = try await http(.GET, serve.base + "/health")
        #expect(health.status == 200)
        #expect(health.body == #"{"status":"ok"}"#)
        // Ready once the in-process matcher has taken the partition and read the stored log.
        #expect(try await eventually("ready") { try await http(.GET, serve.base + "/ready").status == 200 })
        let ready = try await http(.GET, serve.base + "/ready")
        #expect(ready.status == 200, "\(ready.body)")
        #expect(ready.json["matcher"] as? String == "active")
        #expect(ready.json["region"] as? String == "test-region")
        #expect(ready.json["migrations"] as? String == "current")
        #expect(ready.json["store"] as? String == "ok")
        #expect(await serve.stop() == 0)
    }

    /// A store one migration behind: serve starts, and /ready says 503 until `castle migrate up`.
    @Test func notReadyUntilMigrated() async throws {
        let dir = try TemporaryDirectory()
        let url = "sqlite://" + dir.path("castle.db")
        let partial = try await CastleProcess.run(["migrate", "up", "--to", "3", "--store", url])
        #expect(partial.status == 0, "\(partial.stderr)")
        let serve = try await ServeProcess.start(dir, migrate: false)
        let ready = try await http(.GET, serve.base + "/ready")
        #expect(ready.status == 503, "\(ready.body)")
        #expect(ready.json["ready"] as? Bool == false)
        #expect(ready.json["migrations"] as? String == "pending")
        let up = try await CastleProcess.run(["migrate", "up", "--store", url])
        #expect(up.status == 0, "\(up.stderr)")
        let readyNow = try await eventually("ready once migrated") {
            try await http(.GET, serve.base + "/ready").status == 200
        }
        #expect(readyNow)
        #expect(await serve.stop() == 0)
    }

    /// Orders through the API give the events `castle match` gives for the same commands.
    @Test func ordersInEventsOutAsCastleMatch() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let requests: [(account: String, body: String)] = [
            ("alice", #"{"symbol":"BTC-USD","side":"sell","price":"101.5","qty":"2"}"#),
            ("bob", #"{"symbol":"BTC-USD","side":"sell","price":"101.25","qty":"1","tif":"post_only"}"#),
            ("carol", #"{"symbol":"BTC-USD","side":"buy","price":"102","qty":"1.5"}"#),
            ("alice", #"{"symbol":"BTC-USD","side":"buy","type":"market","qty":"5","tif":"ioc"}"#),
            ("dave", #"{"symbol":"ETH-USD","side":"buy","price":"3000","qty":"0.5","stp":"none"}"#),
            ("dave", #"{"symbol":"ETH-USD","side":"sell","price":"2999","qty":"0.25","stp":"none"}"#),
        ]
        var commands: [String] = []
        var served: [String] = []
        for (account, body) in requests {
            let answer = try await http(.POST, serve.base + "/v1/orders", account: account, body: body)
            #expect(answer.status == 201, "\(answer.body)")
            let id = try #require(answer.json["id"] as? Int)
            var command = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            command["op"] = "new"
            command["id"] = id
            command["account"] = account
            commands.append(String(decoding: try JSONSerialization.data(withJSONObject: command), as: UTF8.self))
            served += answer.eventLines.map(withoutSeqAndTS)
        }
        // A cancel and an amend of what rests.
        let resting = try await http(.GET, serve.base + "/v1/orders?status=open", account: "dave")
        let open = try #require(resting.json["orders"] as? [[String: Any]])
        #expect(open.count == 1, "\(resting.body)")
        let daveID = try #require(open.first?["id"] as? Int)
        let amend = try await http(
            .PATCH,
            serve.base + "/v1/orders/\(daveID)",
            account: "dave",
            body: #"{"qty":"0.1"}"#
        )
        #expect(amend.status == 200, "\(amend.body)")
        commands.append(#"{"op":"amend","id":\#(daveID),"qty":"0.1"}"#)
        served += amend.eventLines.map(withoutSeqAndTS)
        let cancel = try await http(.DELETE, serve.base + "/v1/orders/\(daveID)", account: "dave")
        #expect(cancel.status == 200, "\(cancel.body)")
        commands.append(#"{"op":"cancel","id":\#(daveID)}"#)
        served += cancel.eventLines.map(withoutSeqAndTS)

        let matched = try await CastleProcess.run(
            ["match", "-q", "-"],
            stdin: Data((commands.joined(separator: "\n") + "\n").utf8)
        )
        #expect(matched.status == 0, "\(matched.stderr)")
        let expected = matched.lines.map(withoutSeqAndTS)
        #expect(served.count == expected.count)
        let difference = zip(served, expected).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(difference == nil, "first difference (serve, castle match): \(String(describing: difference))")

        // The store's event log holds the same events, in the same order.
        let log = try await CastleProcess.run(["events", "--store", serve.storeURL])
        #expect(log.lines.map(withoutSeqAndTS) == expected)
        #expect(await serve.stop() == 0)
    }

    @Test func tradingStateAndMarketData() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let maker = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "m",
            body: #"{"symbol":"BTC-USD","side":"sell","price":"100","qty":"3","client_order_id":"m-1"}"#
        )
        #expect(maker.status == 201, "\(maker.body)")
        #expect(maker.json["status"] as? String == "open")
        #expect(maker.json["client_order_id"] as? String == "m-1")
        // The same client order id and content: the first reply, 200. Different content: 409.
        let repeated = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "m",
            body: #"{"symbol":"BTC-USD","side":"sell","price":"100","qty":"3","client_order_id":"m-1"}"#
        )
        #expect(repeated.status == 200)
        #expect(repeated.body == maker.body)
        let conflicting = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "m",
            body: #"{"symbol":"BTC-USD","side":"sell","price":"100","qty":"4","client_order_id":"m-1"}"#
        )
        #expect(conflicting.status == 409)
        #expect(conflicting.errorCode == "duplicate_client_order_id")

        let taker = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "t",
            body: #"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1"}"#
        )
        #expect(taker.status == 201)
        #expect(taker.json["status"] as? String == "filled")
        #expect(taker.json["remaining"] as? String == "0")

        let book = try await http(.GET, serve.base + "/v1/book/BTC-USD?depth=5")
        #expect(book.status == 200)
        // HEAD of a GET route: the same status and length, no body.
        for path in ["/v1/book/BTC-USD?depth=5", "/health"] {
            let get = try await http(.GET, serve.base + path)
            let head = try await http(.HEAD, serve.base + path)
            #expect(head.status == 200 && head.body.isEmpty, "\(path)")
            #expect(head.header("content-length") == String(get.body.utf8.count))
        }
        #expect(try await http(.HEAD, serve.base + "/v1/fills").status == 401, "HEAD goes through the account check")
        #expect((book.json["asks"] as? [[String]]) == [["100", "2"]])
        #expect((book.json["bids"] as? [[String]]) == [])
        let trades = try await http(.GET, serve.base + "/v1/trades/BTC-USD")
        let prints = try #require(trades.json["trades"] as? [[String: Any]])
        #expect(prints.count == 1)
        #expect(prints.first?["price"] as? String == "100")
        #expect(prints.first?["side"] as? String == "buy")
        let ticker = try await http(.GET, serve.base + "/v1/ticker")
        let tickers = try #require(ticker.json["tickers"] as? [[String: Any]])
        #expect(tickers.first?["ask"] as? String == "100")
        #expect(tickers.first?["last"] as? String == "100")
        #expect(tickers.first?["volume"] as? String == "1")
        let candles = try await http(.GET, serve.base + "/v1/candles/BTC-USD?interval=1m")
        let bars = try #require(candles.json["candles"] as? [[String: Any]])
        #expect(bars.count == 1)
        #expect(bars.first?["close"] as? String == "100")
        #expect(bars.first?["trades"] as? Int == 1)

        let fills = try await http(.GET, serve.base + "/v1/fills", account: "m")
        let makerFills = try #require(fills.json["fills"] as? [[String: Any]])
        #expect(makerFills.count == 1)
        #expect(makerFills.first?["liquidity"] as? String == "maker")
        #expect(makerFills.first?["qty"] as? String == "1")

        // Another account cannot cancel it; its owner can, once.
        let makerID = try #require(maker.json["id"] as? Int)
        let stranger = try await http(.DELETE, serve.base + "/v1/orders/\(makerID)", account: "t")
        #expect(stranger.status == 404)
        #expect(stranger.errorCode == "unknown_order")
        let canceled = try await http(.DELETE, serve.base + "/v1/orders/\(makerID)", account: "m")
        #expect(canceled.status == 200, "\(canceled.body)")
        #expect(canceled.body.contains(#""event":"canceled""#))
        let again = try await http(.DELETE, serve.base + "/v1/orders/\(makerID)", account: "m")
        #expect(again.status == 404)
        let emptied = try await http(.GET, serve.base + "/v1/book/BTC-USD")
        #expect((emptied.json["asks"] as? [[String]]) == [])
        #expect(try await http(.GET, serve.base + "/v1/book/NOPE").errorCode == "unknown_symbol")

        let metrics = try await http(.GET, serve.base + "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("castle_orders_total 2"), "\(metrics.body)")
        #expect(metrics.body.contains("castle_trades_total 1"))
        #expect(metrics.body.contains(#"castle_http_request_duration_seconds_bucket{route="/v1/orders""#))
        #expect(metrics.body.contains("castle_match_latency_seconds_count"))
        #expect(await serve.stop() == 0)
    }

    /// Every kind of bad request gets its JSON error and status, and leaves the server and the book as
    /// they were.
    @Test func badRequests() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let orders = serve.base + "/v1/orders"
        let good = #"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1"}"#
        #expect(try await http(.POST, orders, account: "a", body: good).status == 201)
        let before = try await http(.GET, serve.base + "/v1/book/BTC-USD").body

        let cases: [(body: String, status: Int, code: String)] = [
            ("not json", 400, "malformed"),
            ("[1,2]", 400, "malformed"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1""#, 400, "malformed"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":{"n":1}}"#, 400, "malformed"),
            (#"{"symbol":"BTC-USD","side":7,"price":"100","qty":"1"}"#, 400, "malformed"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1","colour":"red"}"#, 400, "malformed"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1","qty":"2"}"#, 400, "malformed"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"-1"}"#, 400, "invalid"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"0"}"#, 400, "invalid"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"99999999999999999999999"}"#, 400, "invalid"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1e3"}"#, 400, "invalid"),
            (#"{"symbol":"BTC-USD","side":"up","price":"100","qty":"1"}"#, 400, "invalid"),
            (#"{"symbol":"BTC-USD","side":"buy","qty":"1"}"#, 400, "invalid"),
            (#"{"symbol":"BTC-USD","side":"buy","type":"market","price":"100","qty":"1"}"#, 400, "invalid"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"0.000000001","qty":"1"}"#, 400, "invalid"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1","client_order_id":""}"#, 400, "malformed"),
            (#"{"symbol":"BTC-USD","side":"buy","price":"1","qty":"1","client_order_id":"a\u0000"}"#, 400, "malformed"),
        ]
        for (body, status, code) in cases {
            let answer = try await http(.POST, orders, account: "a", body: body)
            #expect(answer.status == status, "\(body) → \(answer.status) \(answer.body)")
            #expect(answer.errorCode == code, "\(body) → \(answer.body)")
            #expect(answer.errorCode.map { !$0.isEmpty } == true)
        }
        // A price or quantity no instrument takes is refused before the queue, with the field named:
        // no events, as the matcher never saw it. An amend's qty 0 is a cancel, and is not refused.
        let qtyDetail = "qty is not a positive plain decimal"
        let priceDetail = "price is not a positive plain decimal"
        for (body, detail) in [
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"-1"}"#, qtyDetail),
            (#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"0.000"}"#, qtyDetail),
            (#"{"symbol":"BTC-USD","side":"buy","price":"0","qty":"1"}"#, priceDetail),
            (#"{"symbol":"BTC-USD","side":"sell","price":"-5","qty":"1"}"#, priceDetail),
            (
                #"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"99999999999999999999999"}"#,
                "qty too large for the instrument's scale"
            ),
            (
                #"{"symbol":"BTC-USD","side":"buy","price":"0.0000000000000000001","qty":"1"}"#,
                "price has more decimals than the instrument allows"
            ),
        ] {
            let answer = try await http(.POST, orders, account: "a", body: body)
            let error = answer.json["error"] as? [String: Any]
            #expect(answer.status == 400 && error?["message"] as? String == detail, "\(body) → \(answer.body)")
            #expect(answer.json["events"] == nil, "\(body) reached the matcher: \(answer.body)")
        }
        let resting = try #require(try await http(.GET, orders, account: "a").json["orders"] as? [[String: Any]]).first
        let restingID = try #require((resting?["id"] as? NSNumber)?.stringValue)
        for (body, detail) in [(#"{"qty":"-2"}"#, qtyDetail), (#"{"price":"0"}"#, priceDetail)] {
            let answer = try await http(.PATCH, orders + "/" + restingID, account: "a", body: body)
            let message = (answer.json["error"] as? [String: Any])?["message"] as? String
            #expect(answer.status == 400 && message == detail, "\(body) → \(answer.body)")
        }
        let tooLarge = try await http(.POST, orders, account: "a", bodyBytes: 70_000)
        #expect(tooLarge.status == 413)
        #expect(tooLarge.errorCode == "too_large")
        let noAccount = try await http(.POST, orders, body: good)
        #expect(noAccount.status == 401)
        #expect(noAccount.errorCode == "unauthenticated")
        let badAccount = try await http(.POST, orders, account: "no spaces", body: good)
        #expect(badAccount.status == 401)
        let nowhere = try await http(.GET, serve.base + "/v1/nowhere")
        #expect(nowhere.status == 404)
        #expect(nowhere.errorCode == "not_found")
        let wrongMethod = try await http(.PUT, orders, account: "a", body: good)
        #expect(wrongMethod.status == 404)
        #expect(wrongMethod.errorMessage == "no such route: PUT /v1/orders", "\(wrongMethod.body)")
        let badID = try await http(.DELETE, orders + "/abc", account: "a")
        #expect(badID.status == 404)
        #expect(badID.errorCode == "unknown_order")
        let emptyAmend = try await http(.PATCH, orders + "/1", account: "a", body: "{}")
        #expect(emptyAmend.status == 400)
        // A query parameter the route does not take: refused, not ignored (the order is not placed).
        let wish = try await http(.POST, orders + "?dry_run=1", account: "a", body: good)
        #expect(wish.status == 400, "\(wish.body)")
        #expect(wish.errorMessage == #"unknown query parameter "dry_run" (this route takes none)"#)
        let typo = try await http(.GET, serve.base + "/v1/fills?after=5", account: "a")
        #expect(typo.errorMessage == #"unknown query parameter "after" (this route takes after_seq, limit)"#)
        #expect(try await http(.GET, serve.base + "/v1/book/BTC-USD?depth=2&levels=3").errorCode == "malformed")

        #expect(try await http(.GET, serve.base + "/v1/book/BTC-USD").body == before)
        #expect(try await http(.GET, serve.base + "/health").status == 200)
        #expect(await serve.stop() == 0)
    }

    /// With `--instruments`, a listed symbol's market data answers before its first order, and an
    /// unlisted one is a 404 for market data and orders alike.
    @Test func symbolsOfInstruments() async throws {
        let dir = try TemporaryDirectory()
        let instruments = try dir.write(
            "instruments.ndjson",
            #"{"symbol":"BTC-USD","price_decimals":2,"qty_decimals":4,"tick":"0.5","lot":"0.001"}"# + "\n"
        )
        let serve = try await ServeProcess.start(dir, extra: ["--instruments", instruments])
        let book = try await http(.GET, serve.base + "/v1/book/BTC-USD")
        #expect(book.status == 200, "\(book.body)")
        #expect(book.body == #"{"symbol":"BTC-USD","seq":0,"bids":[],"asks":[]}"#)
        #expect(try await http(.GET, serve.base + "/v1/trades/BTC-USD").body == #"{"trades":[]}"#)
        #expect(try await http(.GET, serve.base + "/v1/candles/BTC-USD").body == #"{"candles":[]}"#)
        let ticker = try await http(.GET, serve.base + "/v1/ticker")
        #expect(
            ticker.body
                == #"{"tickers":[{"symbol":"BTC-USD","bid":null,"ask":null,"last":null,"volume":"0","seq":0}]}"#
        )
        for route in ["book", "trades", "candles"] {
            let unlisted = try await http(.GET, serve.base + "/v1/\(route)/DOGE")
            #expect(unlisted.status == 404, "\(route): \(unlisted.body)")
            #expect(unlisted.errorCode == "unknown_symbol")
        }
        let unknown = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "a",
            body: #"{"symbol":"DOGE","side":"buy","price":"1","qty":"1"}"#
        )
        #expect(unknown.status == 404, "\(unknown.body)")
        #expect(unknown.errorCode == "unknown_symbol")
        let offTick = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "a",
            body: #"{"symbol":"BTC-USD","side":"buy","price":"100.25","qty":"1"}"#
        )
        #expect(offTick.status == 400, "\(offTick.body)")
        #expect(offTick.errorCode == "invalid")
        #expect(offTick.body.contains(#""event":"rejected""#))
        #expect(await serve.stop() == 0)
    }

    /// With `--matcher external`, a separate `castle match --queue` worker matches and serve answers
    /// from the event log it writes.
    @Test func externalMatcher() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir, extra: ["--matcher", "external"])
        let worker = try Background(["match", "--store", serve.storeURL, "-q"], stderrPath: dir.path("worker.err"))
        let maker = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "m",
            body: #"{"symbol":"BTC-USD","side":"sell","price":"100","qty":"2"}"#
        )
        #expect(maker.status == 201, "\(maker.body)")
        #expect(maker.json["status"] as? String == "open")
        let taker = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "t",
            body: #"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1","tif":"ioc"}"#
        )
        #expect(taker.status == 201, "\(taker.body)")
        #expect(taker.eventLines.count == 2, "accepted and its trade: \(taker.body)")
        #expect(taker.json["status"] as? String == "filled")
        let makerID = try #require(maker.json["id"] as? Int)
        let amend = try await http(.PATCH, serve.base + "/v1/orders/\(makerID)", account: "m", body: #"{"qty":"0.5"}"#)
        #expect(amend.status == 200, "\(amend.body)")
        #expect(amend.body.contains(#""priority":"kept""#))
        let cancel = try await http(.DELETE, serve.base + "/v1/orders/\(makerID)", account: "m")
        #expect(cancel.status == 200, "\(cancel.body)")
        #expect(cancel.body.contains(#""reason":"user""#))
        #expect(await serve.stop() == 0)
        worker.signal(SIGTERM)
        #expect(await worker.wait() == 0)
    }

    /// With no external matcher running, an order gets 503 `not_ready` after --verdict-timeout instead of
    /// waiting for ever; it is durable in the queue, and the matcher started later matches it.
    @Test func noVerdictInTimeIsA503AndTheOrderIsMatchedLater() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir, extra: ["--matcher", "external", "--verdict-timeout", "0.5"])
        let waited = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "m",
            body: #"{"symbol":"BTC-USD","side":"sell","price":"100","qty":"2"}"#
        )
        #expect(waited.status == 503, "\(waited.body)")
        #expect(waited.errorCode == "not_ready")
        #expect(waited.body.contains("durable in the queue"), "\(waited.body)")
        let worker = try Background(["match", "--store", serve.storeURL, "-q"], stderrPath: dir.path("worker.err"))
        // The worker matches the queued sell (serve's view shows it open), not before its process has
        // started: then a crossing buy trades with it, well within the timeout.
        #expect(
            try await eventually("the worker matches the queued sell") {
                try await http(.GET, serve.base + "/v1/orders", account: "m").body.contains(#""status":"open""#)
            }
        )
        let taker = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "t",
            body: #"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1","tif":"ioc"}"#
        )
        #expect(taker.status == 201, "\(taker.body)")
        #expect(taker.json["status"] as? String == "filled", "\(taker.body)")
        #expect(await serve.stop() == 0)
        worker.signal(SIGTERM)
        #expect(await worker.wait() == 0)
    }

    /// A client order id is claimed in the store before its order is enqueued: a retry after a 503, and
    /// after a restart, finds the order the first attempt placed (200, the same reply) and never places a
    /// second one; other content under the same id is a 409. (On PostgreSQL: ServeFailoverTests.)
    @Test func aRetryAfterA503OrARestartFindsTheFirstOrder() async throws {
        let dir = try TemporaryDirectory()
        try await retryFindsTheFirstOrder(dir, storeURL: "sqlite://" + dir.path("castle.db"))
    }

    /// Requests with one client order id, all at once, while other orders keep the matcher busy: one
    /// order is placed (one 201) and every other request gets its reply (200, the same body), whether it
    /// came before the verdict, after it, or while the matcher's batch was still being committed (the
    /// verdict is out before its events are in the stored log).
    @Test func concurrentRetriesOfOneClientOrderIDGetTheFirstReply() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        for round in 0..<5 {
            let body = #"{"symbol":"BTC-USD","side":"buy","price":"99","qty":"1","client_order_id":"c-\#(round)"}"#
            let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                for index in 0..<40 {
                    if index % 2 == 0 {
                        group.addTask {
                            try await http(
                                .POST,
                                serve.base + "/v1/orders",
                                account: "other",
                                body: #"{"symbol":"BTC-USD","side":"sell","price":"200","qty":"1"}"#
                            )
                        }
                    }
                    group.addTask { try await http(.POST, serve.base + "/v1/orders", account: "c", body: body) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let mine = answers.filter { $0.json["client_order_id"] as? String == "c-\(round)" }
            #expect(mine.count == 40, "\(answers.filter { $0.status >= 300 }.map(\.body))")
            #expect(mine.filter { $0.status == 201 }.count == 1)
            #expect(mine.allSatisfy { $0.status == 201 || $0.status == 200 })
            #expect(Set(mine.map(\.body)).count == 1)
        }
        let open = try await http(.GET, serve.base + "/v1/orders?status=open", account: "c")
        #expect((open.json["orders"] as? [Any])?.count == 5, "\(open.body)")
        #expect(await serve.stop() == 0)
    }

    /// `--rate-limit 1`: an account's requests past one a second get 429 `rate_limited` with
    /// `Retry-After`; another account is not held back; the refusals are counted in /metrics.
    @Test func overTheRateLimitIsA429() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir, extra: ["--rate-limit", "1"])
        var refused: Answer?
        // Back to back, two requests come well within a second; a loaded machine may space some out.
        for _ in 1...50 {
            let reply = try await http(.GET, serve.base + "/v1/orders", account: "busy")
            if reply.status == 429 {
                refused = reply
                break
            }
            #expect(reply.status == 200, "\(reply.body)")
        }
        let limited = try #require(refused, "50 requests in a row, none refused")
        #expect(limited.errorCode == "rate_limited", "\(limited.body)")
        #expect(limited.header("retry-after") == "1", "\(limited.headers)")
        let other = try await http(.GET, serve.base + "/v1/orders", account: "calm")
        #expect(other.status == 200)
        let metrics = try await http(.GET, serve.base + "/metrics")
        #expect(metrics.body.contains("castle_rate_limited_total"), "\(metrics.body)")
        #expect(!metrics.body.contains("castle_rate_limited_total 0"), "\(metrics.body)")
        #expect(await serve.stop() == 0)
        for value in ["0", "-3", "1000001"] {
            let run = try await CastleProcess.run(["serve", "--rate-limit", value])
            #expect(run.status == 64, "\(value): \(run.stderr)")
            #expect(run.stderr.contains("--rate-limit"), "\(run.stderr)")
        }
    }

    @Test func aVerdictTimeoutOutOfRangeIsAUsageError() async throws {
        for value in ["0", "-1", "nan", "3601"] {
            let run = try await CastleProcess.run(["serve", "--verdict-timeout", value])
            #expect(run.status == 64, "\(value): \(run.stderr)")
            #expect(run.stderr.contains("--verdict-timeout"), "\(run.stderr)")
        }
    }

    /// The document's paths and methods are exactly the routes.
    @Test func openAPIMatchesTheRoutes() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let answer = try await http(.GET, serve.base + "/openapi.json")
        #expect(answer.status == 200)
        #expect(answer.json["openapi"] as? String == "3.1.0")
        let paths = try #require(answer.json["paths"] as? [String: [String: Any]])
        var documented: Set<String> = []
        for (path, methods) in paths {
            for method in methods.keys { documented.insert("\(method.uppercased()) \(path)") }
        }
        let routes: Set<String> = [
            "POST /v1/orders", "GET /v1/orders", "DELETE /v1/orders/{id}", "PATCH /v1/orders/{id}",
            "GET /v1/fills", "GET /v1/book/{symbol}", "GET /v1/trades/{symbol}", "GET /v1/ticker",
            "GET /v1/candles/{symbol}", "GET /health", "GET /ready", "GET /metrics", "GET /openapi.json",
        ]
        #expect(documented == routes)
        // Every documented route is routed: nothing answers `not_found` for want of a route.
        for route in documented.sorted() {
            let parts = route.split(separator: " ")
            let path = parts[1].replacingOccurrences(of: "{id}", with: "1")
                .replacingOccurrences(of: "{symbol}", with: "BTC-USD")
            let reply = try await http(
                HTTPMethod(rawValue: String(parts[0])),
                serve.base + path,
                account: "a",
                body: parts[0] == "GET" || parts[0] == "DELETE" ? nil : "{}"
            )
            #expect(reply.errorCode != "not_found", "\(route) is documented but not routed: \(reply.body)")
        }
        #expect(await serve.stop() == 0)
    }
}
