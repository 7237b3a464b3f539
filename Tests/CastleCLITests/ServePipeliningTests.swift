import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// serve's answers on one HTTP/1.1 connection whose requests are sent all at once (pipelining): orders,
/// which are answered on the connection's channel, and the other routes, which Hummingbird's router
/// answers, come back in the order sent, each whole, and `Connection: close` ends the connection.
@Suite struct ServePipeliningTests {
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        func order(_ body: String, account: String = "pip", close: Bool = false) -> String {
            "POST /v1/orders HTTP/1.1\r\nHost: castle\r\nX-Castle-Account: \(account)\r\n"
                + (close ? "Connection: close\r\n" : "") + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        }
        let sent =
            order(#"{"symbol":"BTC-USD","side":"sell","price":"100","qty":"1"}"#)
            + "GET /health HTTP/1.1\r\nHost: castle\r\n\r\n"
            + order(#"{"symbol":"#)
            + "GET /v1/book/BTC-USD HTTP/1.1\r\nHost: castle\r\n\r\n"
            + "POST /v1/orders HTTP/1.1\r\nHost: castle\r\nContent-Length: 2\r\n\r\n{}"
            // The account given twice, to the order path and to Hummingbird's routes.
            + order("{}", account: "pip\r\nX-Castle-Account: pip")
            + "GET /v1/orders HTTP/1.1\r\nHost: castle\r\nX-Castle-Account: pip\r\nX-Castle-Account: b\r\n\r\n"
            + order(#"{"symbol":"BTC-USD","side":"buy","price":"99","qty":"2"}"#)
            + "GET /v1/orders HTTP/1.1\r\nHost: castle\r\nX-Castle-Account: pip\r\n\r\n"
            + order(#"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1"}"#, account: "taker", close: true)
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let received = try await exchange(sent, port: port)
        let answers = try parseResponses(received)
        #expect(
            answers.map(\.status) == [201, 200, 400, 200, 401, 401, 401, 201, 200, 201],
            "\(answers.map(\.status))"
        )
        guard answers.count == 10 else { return }
        #expect(answers[1].body == #"{"status":"ok"}"#)
        #expect(answers[2].errorCode == "malformed")
        #expect(
            answers[3].json["asks"] as? [[String]] == [["100", "1"]],
            "the book after the first order: \(answers[3].body)"
        )
        #expect(answers[4].errorCode == "unauthenticated")
        for twice in answers[5...6] {
            #expect(twice.errorMessage == "X-Castle-Account is given 2 times: give it once", "\(twice.body)")
        }
        #expect((answers[8].json["orders"] as? [Any])?.count == 2, "both resting orders: \(answers[8].body)")
        #expect(answers[9].json["status"] as? String == "filled", "\(answers[9].body)")
        #expect(answers.map { $0.header("connection") } == Array(repeating: nil, count: 9) + ["close"])
        let date = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/
        for answer in answers {
            let value = answer.header("date") ?? ""
            #expect(value.wholeMatch(of: date) != nil, "Date: \(value)")
        }
        #expect(await serve.stop() == 0)
    }

    /// Many orders sent at once on one connection: serve reads on while it answers one, and holds a few
    /// parts at most before it stops reading; every order is answered, in order, none lost or doubled.
    @Test func manyPipelinedOrdersAreAllAnsweredInOrder() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let count = 300
        var sent = ""
        for index in 1...count {
            let body = #"{"symbol":"PIPE","side":"buy","price":"\#(index)","qty":"1"}"#
            sent +=
                "POST /v1/orders HTTP/1.1\r\nHost: castle\r\nX-Castle-Account: many\r\n"
                + (index == count ? "Connection: close\r\n" : "") + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        }
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let answers = try parseResponses(try await exchange(sent, port: port))
        #expect(answers.count == count)
        #expect(answers.allSatisfy { $0.status == 201 }, "\(Set(answers.map(\.status)))")
        // In the order sent: each answer is for the order of its price.
        let prices = answers.map { ((($0.json["events"] as? [[String: Any]])?.first)?["price"]) as? String }
        let outOfOrder = prices.indices.first { prices[$0] != String($0 + 1) }
        #expect(
            outOfOrder == nil,
            "answer \(outOfOrder ?? 0) is for the order of price \(prices[outOfOrder ?? 0] ?? "none")"
        )
        #expect(await serve.stop() == 0)
    }

    /// Orders, then the client closes its side of the connection (a half-close): each is answered, then
    /// serve closes. None of them says `Connection: close`.
    @Test func ordersBeforeAHalfCloseAreAnsweredThenTheConnectionCloses() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        var sent = ""
        for price in 1...3 {
            let body = #"{"symbol":"HALF","side":"sell","price":"\#(price)","qty":"1"}"#
            sent +=
                "POST /v1/orders HTTP/1.1\r\nX-Castle-Account: half\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                + body
        }
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let answers = try parseResponses(try await exchange(sent, port: port, halfClose: true))
        #expect(answers.map(\.status) == [201, 201, 201])
        #expect(await serve.stop() == 0)
    }

    /// An order whose body the client cuts short by closing its side: a 400 with a JSON error, not a 500.
    @Test func aBodyCutShortByAHalfCloseIsABadRequest() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let sent = "POST /v1/orders HTTP/1.1\r\nX-Castle-Account: half\r\nContent-Length: 50\r\n\r\n{\"symbol\":"
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let answers = try parseResponses(try await exchange(sent, port: port, halfClose: true))
        #expect(answers.map(\.status) == [400])
        #expect(answers.first?.errorCode == "malformed", "\(answers.first?.body ?? "no answer")")
        #expect(await serve.stop() == 0)
    }

    /// HTTP/1.0 closes the connection after the answer unless the request asks for keep-alive (as
    /// HAProxy's health checks and ApacheBench do not): serve closes it, and the client, waiting for the
    /// end of the connection, is not left hanging.
    @Test func anHTTP10RequestIsAnsweredThenClosed() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let answers = try parseResponses(try await exchange("GET /health HTTP/1.0\r\n\r\n", port: port))
        #expect(answers.map(\.status) == [200])
        #expect(answers.first?.body == #"{"status":"ok"}"#)
        #expect(answers.first?.header("connection") == "close", "RFC 9112 9.6: the answer says it closes")
        #expect(await serve.stop() == 0)
    }

    /// `Expect: 100-continue` (RFC 9110, section 10.1.1): the client waits for a `100 (Continue)` before
    /// it sends the body; serve sends it after the answer to the request before (pipelined), not inside
    /// it, and the order is then answered. Without it, curl waits a second, and other clients longer.
    @Test func aRequestThatExpects100ContinueGetsItBeforeItsBody() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let body = #"{"symbol":"BTC-USD","side":"buy","price":"99","qty":"1"}"#
        let head =
            "POST /v1/orders HTTP/1.1\r\nHost: castle\r\nX-Castle-Account: a\r\nExpect: 100-continue\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n"
        let (received, _) = try await withRawConnection(port: port) { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET /health HTTP/1.1\r\nHost: castle\r\n\r\n" + head))
            var received: [UInt8] = []
            var iterator = inbound.makeAsyncIterator()
            while received.firstRange(of: Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) == nil {
                guard let chunk = try await iterator.next() else { return received }
                received += chunk.readableBytesView
            }
            let last = "GET /health HTTP/1.1\r\nHost: castle\r\nConnection: close\r\n\r\n"
            try await outbound.write(ByteBuffer(string: body + last))
            while let chunk = try await iterator.next() { received += chunk.readableBytesView }
            return received
        }
        let text = String(decoding: received, as: UTF8.self)
        let statuses = text.matches(of: /HTTP\/1\.1 (\d{3})\s/).map { String($0.output.1) }
        #expect(statuses == ["200", "100", "201", "200"], "\(text)")
        #expect(text.contains(#""status":"open""#), "the order is placed: \(text)")
        #expect(await serve.stop() == 0)
    }

    /// A request that is not HTTP/1.1 gets a JSON error and its connection is closed, on the API's port
    /// and on `--stream-port` alike: as the first on its connection (it used to wait, unanswered, until
    /// `--idle-timeout` closed it) and after others (it used to get a 400 with no body).
    @Test func aRequestThatIsNotHTTPIsAnsweredThenClosed() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir, extra: ["--stream-port", "0", "--idle-timeout", "30"])
        try #require(await serve.server.waitFor("/v1/stream\n"), "no stream listener: \(serve.server.stderr)")
        let line = try #require(serve.server.stderr.split(separator: "\n").first { $0.contains("streams on ws://") })
        let streamPort = try #require(Int(line.split(separator: ":").last?.prefix { $0.isNumber } ?? ""))
        let apiPort = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let requests = [
            (sent: "GARBAGE\r\n\r\n", status: 400),
            ("GET /health HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 100_000) + "\r\n\r\n", 431),
            ("POST /v1/orders HTTP/1.1\r\nX-Castle-Account: a\r\nContent-Length: abc\r\n\r\n", 400),
        ]
        // Each first on its connection, then after a request answered (Hummingbird's empty 400, without
        // ``AnswerHandler``).
        let health = "GET /health HTTP/1.1\r\nHost: castle\r\n\r\n"
        for port in [apiPort, streamPort] {
            for (sent, status) in requests {
                for before in ["", health] {
                    let answers = try parseResponses(try await exchange(before + sent, port: port))
                    let expected = before.isEmpty ? [status] : [200, status]
                    #expect(answers.map(\.status) == expected, "port \(port): \(before.prefix(4)) \(sent.prefix(40))")
                    #expect(answers.last?.errorCode == "malformed", "\(answers.last?.body ?? "no answer")")
                    let date = answers.last?.header("date")
                    #expect(date != nil, "no Date: \(answers.last?.headers ?? [])")
                }
            }
        }
        #expect(try await http(.GET, serve.base + "/health").status == 200)
        #expect(await serve.stop() == 0)
    }

    /// What serve answers to `text`, read until it closes the connection.
    private func exchange(_ text: String, port: Int, halfClose: Bool = false) async throws -> [UInt8] {
        let (received, closedByServer) = try await sendThenReadUntilClosed(text, port: port, halfClose: halfClose)
        #expect(closedByServer, "serve did not close the connection")
        return received
    }

    /// Responses one after another, each framed by its `Content-Length`.
    private func parseResponses(_ bytes: [UInt8]) throws -> [Answer] {
        var answers: [Answer] = []
        var rest = bytes[...]
        let separator = Array("\r\n\r\n".utf8)
        while !rest.isEmpty {
            let end = try #require(rest.firstRange(of: separator), "a response head without its end")
            let lines = String(decoding: rest[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
            let status = try #require(Int(lines[0].split(separator: " ")[1]), "\(lines[0])")
            let headers = lines.dropFirst().compactMap { line -> (String, String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            let length = try #require(headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) })
            let body = rest[end.upperBound...].prefix(length)
            try #require(body.count == length, "a body cut short")
            answers.append(Answer(status: status, body: String(decoding: body, as: UTF8.self), headers: headers))
            rest = rest[(end.upperBound + length)...]
        }
        return answers
    }
}
