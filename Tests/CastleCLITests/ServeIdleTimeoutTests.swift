import Foundation
import NIOCore
import Testing

/// `--idle-timeout`: a connection on which no request is being answered is closed once nothing has
/// moved for that long (no request yet, a head or a body never finished, a keep-alive connection after
/// its answer) or a request has been arriving for that long (trickled), on both listeners, quietly; a
/// request serve takes longer than that to answer is not cut, and a WebSocket connection is not closed
/// for being quiet. Raw loopback connections against a real `castle serve`: each test waits
/// for the server's answers and closes (a connection's close is the clock), never for a length of time.
@Suite struct ServeIdleTimeoutTests {
    @Test func quietConnectionsAreClosedOnBothListeners() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir, extra: ["--idle-timeout", "3", "--stream-port", "0"])
        let api = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let stream = try await streamPort(serve)
        let order = #"{"symbol":"IDLE","side":"sell","price":"1","qty":"1"}"#
        let cases: [(String, Int, String)] = [
            ("nothing sent, API", api, ""),
            ("nothing sent, stream", stream, ""),
            ("an order's head cut short", api, "POST /v1/orders HTTP/1.1\r\nX-Castle-Account: idle\r\n"),
            ("another route's head cut short", api, "GET /health HTTP/1.1\r\nHo"),
            (
                "an order's body withheld", api,
                "POST /v1/orders HTTP/1.1\r\nX-Castle-Account: idle\r\nContent-Length: 60\r\n\r\n{\"symbol\""
            ),
            (
                "another route's body withheld", api,
                "PATCH /v1/orders/1 HTTP/1.1\r\nX-Castle-Account: idle\r\nContent-Length: 60\r\n\r\n{\"qty\""
            ),
            ("a stream upgrade cut short", stream, "GET /v1/stream HTTP/1.1\r\nUpg"),
            (
                "an order answered, then nothing", api,
                "POST /v1/orders HTTP/1.1\r\nX-Castle-Account: idle\r\nContent-Length: \(order.utf8.count)\r\n\r\n"
                    + order
            ),
            ("a GET answered, then nothing", api, "GET /health HTTP/1.1\r\nHost: castle\r\n\r\n"),
        ]
        // All at once: each waits a whole idle timeout.
        let results = try await withThrowingTaskGroup { group in
            for (name, port, sent) in cases {
                group.addTask {
                    let answered = name.hasSuffix("then nothing")
                    return (
                        name,
                        try await answered
                            ? sendUntilAnswered(sent, port: port) : sendThenReadUntilClosed(sent, port: port)
                    )
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == cases.count)
        for (name, (received, closedByServer)) in results {
            #expect(closedByServer, "\(name): serve did not close the connection")
            let text = String(decoding: received, as: UTF8.self)
            if name.hasSuffix("then nothing") {
                #expect(text.hasPrefix("HTTP/1.1 20"), "\(name): answered before the close: \(text)")
            } else {
                #expect(received.isEmpty, "\(name): nothing is answered: \(text)")
            }
        }
        #expect(await serve.stop() == 0)
        // Closing a connection that waited for its first request is not an error of the server's.
        let errors = serve.server.stderr.split(separator: "\n").filter { $0.contains(" error ") }
        #expect(errors.isEmpty, "\(errors)")
    }

    /// A client that sends a request a byte every half second, each well within the timeout, is closed
    /// once the request has been arriving for the timeout, unanswered: its head trickled, on the order
    /// path and Hummingbird's, or its body after a whole head.
    @Test func aTrickledRequestIsClosed() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir, extra: ["--idle-timeout", "3"])
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let order = #"{"symbol":"IDLE","side":"sell","price":"1","qty":"1"}"#
        let cases: [(name: String, whole: String, trickled: String)] = [
            (
                "an order", "",
                "POST /v1/orders HTTP/1.1\r\nX-Castle-Account: idle\r\nContent-Length: \(order.utf8.count)\r\n\r\n"
                    + order
            ),
            ("another route's head", "", "GET /health HTTP/1.1\r\nHost: castle\r\nX-Trickled: 0123456789\r\n\r\n"),
            (
                "another route's body",
                "PATCH /v1/orders/1 HTTP/1.1\r\nX-Castle-Account: idle\r\nContent-Length: 60\r\n\r\n",
                #"{"qty":"1","price":"1","pad":"0123456789012345678901234567"}"#
            ),
        ]
        let results = try await withThrowingTaskGroup { group in
            for (name, whole, trickled) in cases {
                group.addTask { (name, try await trickleThenReadUntilClosed(trickled, after: whole, port: port)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == cases.count)
        for (name, (received, closedByServer)) in results {
            #expect(closedByServer, "\(name): serve did not close the connection")
            #expect(received.isEmpty, "\(name): nothing is answered: \(String(decoding: received, as: UTF8.self))")
        }
        #expect(await serve.stop() == 0)
    }

    /// An order waits eight seconds for a verdict that does not come (no matcher runs), over two idle
    /// timeouts: it is answered (503, durable in the queue), and only then is the connection closed. On
    /// the order path, and on Hummingbird's (the connection's first request is another route's).
    @Test(arguments: [false, true])
    func aRequestServeIsStillAnsweringIsNotCut(afterAnotherRoute: Bool) async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(
            dir,
            extra: ["--matcher", "external", "--verdict-timeout", "8", "--idle-timeout", "3"]
        )
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let body = #"{"symbol":"IDLE","side":"sell","price":"1","qty":"1"}"#
        let before = afterAnotherRoute ? "GET /health HTTP/1.1\r\nHost: castle\r\n\r\n" : ""
        let (received, closedByServer) = try await sendUntilAnswered(
            before + "POST /v1/orders HTTP/1.1\r\nX-Castle-Account: slow\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                + body,
            port: port
        )
        let text = String(decoding: received, as: UTF8.self)
        #expect(closedByServer)
        #expect(text.hasPrefix(afterAnotherRoute ? "HTTP/1.1 200" : "HTTP/1.1 503"), "\(text)")
        #expect(text.contains("HTTP/1.1 503"), "\(text)")
        #expect(text.contains("durable in the queue"), "\(text)")
        #expect(await serve.stop() == 0)
    }

    /// A WebSocket connection that sends nothing is not closed: after a plain connection opened later
    /// has been closed as idle, the stream still answers a subscribe.
    @Test func aQuietWebSocketStays() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir, extra: ["--idle-timeout", "3"])
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        // A starved test process may send its upgrade after serve closed the connection for having sent
        // nothing, as it should: that attempt does not count (at most five).
        var answer: (opcode: UInt8, payload: [UInt8])?
        var failure: (any Error)?
        for _ in 0..<5 where answer == nil {
            do {
                (answer, _) = try await withRawConnection(port: port) { inbound, outbound in
                    var socket = RawWebSocket(inbound: inbound.makeAsyncIterator(), outbound: outbound)
                    guard try await socket.upgrade().hasPrefix("HTTP/1.1 101") else { return nil }
                    let (_, plainClosed) = try await sendThenReadUntilClosed("", port: port)
                    #expect(plainClosed, "the plain connection is closed as idle")
                    try await socket.send(text: #"{"op":"subscribe","channel":"trades","symbol":"IDLE"}"#)
                    var answer: (opcode: UInt8, payload: [UInt8])?
                    repeat { answer = try await socket.nextFrame() } while answer?.opcode == 0x9
                    return answer
                }
            } catch {
                failure = error  // the connection closed under the late upgrade
            }
        }
        #expect(answer?.opcode == 0x1, "\(String(describing: answer)), \(String(describing: failure))")
        let text = String(decoding: answer?.payload ?? [], as: UTF8.self)
        #expect(text.contains(#""op":"subscribed""#), "\(text)")
        #expect(await serve.stop() == 0)
    }

    @Test func theIdleTimeoutIsChecked() async throws {
        for (arguments, message) in [
            (
                ["--idle-timeout=-1"],
                "--idle-timeout must be from 0 (never) to 86400 seconds, not -1.0"
            ),
            (["--idle-timeout", "90000"], "not 90000.0"),
        ] {
            let result = try await CastleProcess.run(["serve"] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(result.stderr)")
        }
    }

    /// ``sendThenReadUntilClosed(_:port:halfClose:)`` until something is answered, at most five times. A
    /// test process starved of CPU (a loaded CI machine) may send its request only after serve has
    /// closed the connection for having sent nothing, as it should: that attempt is not the request's.
    private func sendUntilAnswered(_ text: String, port: Int) async throws -> ([UInt8], closedByServer: Bool) {
        var result = try await sendThenReadUntilClosed(text, port: port)
        for _ in 1..<5 where result.0.isEmpty { result = try await sendThenReadUntilClosed(text, port: port) }
        return result
    }

    /// Writes `whole` at once, then `trickled` a byte every half second (until the connection ends), and
    /// returns everything read until the connection ends, and whether the server ended it.
    private func trickleThenReadUntilClosed(
        _ trickled: String,
        after whole: String,
        port: Int
    ) async throws -> ([UInt8], closedByServer: Bool) {
        try await withRawConnection(port: port) { inbound, outbound in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        if !whole.isEmpty { try await outbound.write(ByteBuffer(string: whole)) }
                        for byte in trickled.utf8 {
                            try await outbound.write(ByteBuffer(bytes: [byte]))
                            try await Task.sleep(for: .milliseconds(500))
                        }
                    } catch {
                        // The connection ended, or the test is done.
                    }
                }
                var received: [UInt8] = []
                for try await chunk in inbound { received += chunk.readableBytesView }
                group.cancelAll()
                return received
            }
        }
    }

    private func streamPort(_ serve: ServeProcess) async throws -> Int {
        let announced = await serve.server.waitFor("/v1/stream\n")
        try #require(announced, "no stream listener: \(serve.server.stderr)")
        let line = try #require(serve.server.stderr.split(separator: "\n").first { $0.contains("streams on ws://") })
        let address = line[line.range(of: "ws://")!.upperBound...].prefix { $0 != "/" }
        return try #require(Int(address.split(separator: ":").last ?? ""))
    }
}

/// The client's half of RFC 6455 that these tests need, over a plain connection: the upgrade, masked
/// text frames out, the server's frames in, pings answered.
private struct RawWebSocket {
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var buffered: [UInt8] = []

    init(
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) {
        self.inbound = inbound
        self.outbound = outbound
    }

    /// Asks for `/v1/stream` and returns the head of the answer.
    mutating func upgrade() async throws -> String {
        try await outbound.write(
            ByteBuffer(
                string: "GET /v1/stream HTTP/1.1\r\nHost: castle\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
        )
        var head: [UInt8] = []
        while head.suffix(4) != [13, 10, 13, 10] {
            guard let byte = try await read(1) else { break }
            head += byte
        }
        return String(decoding: head, as: UTF8.self)
    }

    /// The server's next frame (opcode and payload), a ping answered with a pong first; nil once the
    /// server has closed the connection or sent a close frame.
    mutating func nextFrame() async throws -> (opcode: UInt8, payload: [UInt8])? {
        guard let header = try await read(2) else { return nil }
        var length = Int(header[1] & 0x7F)
        if length == 126 {
            guard let bytes = try await read(2) else { return nil }
            length = Int(bytes[0]) << 8 | Int(bytes[1])
        } else if length == 127 {
            guard let bytes = try await read(8) else { return nil }
            length = bytes.reduce(0) { $0 << 8 | Int($1) }
        }
        guard let payload = try await read(length) else { return nil }
        let opcode = header[0] & 0x0F
        if opcode == 0x8 { return nil }
        if opcode == 0x9 { try await send(opcode: 0xA, payload: payload) }
        return (opcode, payload)
    }

    func send(text: String) async throws { try await send(opcode: 0x1, payload: Array(text.utf8)) }

    /// A final frame, masked with a zero key (RFC 6455 allows any key; the payload stays as it is).
    private func send(opcode: UInt8, payload: [UInt8]) async throws {
        precondition(payload.count < 126)
        try await outbound.write(ByteBuffer(bytes: [0x80 | opcode, 0x80 | UInt8(payload.count), 0, 0, 0, 0] + payload))
    }

    /// Exactly `count` bytes, or nil if the connection ends first.
    private mutating func read(_ count: Int) async throws -> [UInt8]? {
        while buffered.count < count {
            guard let chunk = try await inbound.next(isolation: #isolation) else { return nil }
            buffered += chunk.readableBytesView
        }
        defer { buffered.removeFirst(count) }
        return Array(buffered.prefix(count))
    }
}
