import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization
import Testing

/// serve's listeners: `--port`, and `--stream-port`, the market-data stream on a listener of its own
/// (driven by orders through the API's port), with real HTTP and WebSocket clients against a real
/// `castle serve`.
@Suite struct ServeListenersTests {
    @Test func theStreamOnItsOwnPortCarriesTradesAndClosesOnStop() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir, extra: ["--stream-port", "0"])
        // The whole line: it ends with the path.
        let announced = await serve.server.waitFor("/v1/stream\n")
        try #require(announced, "no stream listener: \(serve.server.stderr)")
        let line = try #require(serve.server.stderr.split(separator: "\n").first { $0.contains("streams on ws://") })
        let url = String(line[line.range(of: "ws://")!.lowerBound...])
        let host = String(url.dropFirst("ws://".count).prefix { $0 != "/" })
        #expect(url == "ws://\(host)/v1/stream")
        #expect(!serve.base.hasSuffix(host), "the stream has a port of its own")

        // The stream's listener answers /health, and nothing of the API.
        let health = try await http(.GET, "http://\(host)/health")
        #expect(health.status == 200 && health.json["status"] as? String == "ok")
        let notHere = try await http(.GET, "http://\(host)/v1/ticker")
        #expect(notHere.status == 404 && notHere.errorCode == "not_found", "\(notHere.body)")

        let trade = Mutex<String?>(nil)
        let close = try await WebSocketClient.connect(url: url, logger: Logger(label: "test")) { inbound, outbound, _ in
            try await outbound.write(.text(#"{"op":"subscribe","channel":"trades","symbol":"S1"}"#))
            var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
            let subscribed = try await messages.next()
            guard case .text(let answer) = subscribed, answer.contains(#""op":"subscribed""#) else {
                Issue.record("not subscribed: \(String(describing: subscribed))")
                return
            }
            // A sell, then a buy that takes it, through the API's port.
            for (side, account) in [("sell", "maker"), ("buy", "taker")] {
                let placed = try await http(
                    .POST,
                    serve.base + "/v1/orders",
                    account: account,
                    body: #"{"symbol":"S1","side":"\#(side)","type":"limit","price":"100","qty":"2","tif":"gtc"}"#
                )
                #expect(placed.status == 201, "\(placed.body)")
            }
            while let message = try await messages.next() {
                guard case .text(let text) = message else { continue }
                if text.contains(#""channel":"trades""#) {
                    trade.withLock { $0 = text }
                    break
                }
            }
            // The server stops: the stream gets its close frame before the process exits.
            serve.server.signal(SIGTERM)
            while try await messages.next() != nil {}
        }
        let text = try #require(trade.withLock { $0 })
        let seen = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(seen["symbol"] as? String == "S1")
        #expect(seen["price"] as? String == "100")
        #expect(seen["qty"] as? String == "2")
        #expect(seen["side"] as? String == "buy")
        #expect(close?.closeCode == .normalClosure)
        #expect(await serve.server.wait() == 0, "\(serve.server.stderr)")
    }

    /// RFC 6455: a text frame that is not UTF-8 fails the stream with close code 1007 (it used to be read
    /// as if it were, with U+FFFD for the bad bytes).
    @Test func aTextFrameThatIsNotUTF8FailsTheStream() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let payload = Array(#"{"op":"subscribe","channel":"trades","symbol":""#.utf8) + [0xFF] + Array(#""}"#.utf8)
        // A final text frame, masked with the key 0 (which leaves the payload as it is).
        let frame = [0x81, 0x80 | UInt8(payload.count), 0, 0, 0, 0] + payload
        #expect(try await firstFrame(after: frame, serve) == [0x88, 2, 0x03, 0xEF], "a close frame with code 1007")
        #expect(await serve.stop() == 0)
    }

    /// RFC 6455, section 5.1: the server closes the connection on a client frame that is not masked.
    @Test func anUnmaskedFrameFailsTheStream() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let payload = Array(#"{"op":"subscribe","channel":"trades","symbol":"BTC-USD"}"#.utf8)
        let frame = [0x81, UInt8(payload.count)] + payload
        #expect(try await firstFrame(after: frame, serve) == [0x88, 2, 0x03, 0xEA], "a close frame with code 1002")
        #expect(await serve.stop() == 0)
    }

    /// The first four bytes of the first frame serve sends on `/v1/stream` after `frame`, sent right
    /// after the upgrade request: a close frame's header and its code.
    private func firstFrame(after frame: [UInt8], _ serve: ServeProcess) async throws -> [UInt8] {
        let port = try #require(Int(serve.base.split(separator: ":").last ?? ""))
        let upgrade =
            "GET /v1/stream HTTP/1.1\r\nHost: castle\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        let (first, _) = try await withRawConnection(port: port) { inbound, outbound in
            var bytes = ByteBuffer(string: upgrade)
            bytes.writeBytes(frame)
            try await outbound.write(bytes)
            var received: [UInt8] = []
            for try await chunk in inbound {
                received += chunk.readableBytesView
                guard let end = received.firstRange(of: Array("\r\n\r\n".utf8)) else { continue }
                let frames = received[end.upperBound...]
                if frames.count >= 4 { return Array(frames.prefix(4)) }
            }
            return Array(received)
        }
        return first
    }

    @Test func theStreamPortIsCheckedBeforeAnythingStarts() async throws {
        for (arguments, message) in [
            (["--port", "8080", "--stream-port", "8080"], "--stream-port must differ from --port (8080)"),
            (["--stream-port", "70000"], "--stream-port must be 0 to 65535, not 70000"),
        ] {
            let result = try await CastleProcess.run(["serve"] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(result.stderr)")
        }
    }

    /// A `--host` that is no address of this machine (192.0.2.1 is TEST-NET-1, RFC 5737): a usage error
    /// naming `--host`, not the `--port` that was fine.
    @Test func aHostThatIsNotThisMachineIsAClearError() async throws {
        let dir = try TemporaryDirectory()
        let store = "sqlite://" + dir.path("castle.db")
        #expect(try await CastleProcess.run(["migrate", "up", "--store", store]).status == 0)
        let run = try await CastleProcess.shell(
            ["/usr/bin/timeout", "-s", "KILL", "120", CastleProcess.binary, "serve", "--store", store]
                + ["--host", "192.0.2.1", "--port", "0"]
        )
        #expect(run.status == 64, "\(run.stderr)")
        #expect(
            run.stderr.contains("castle serve: cannot listen on 192.0.2.1:0 (--host): not an address of this machine"),
            "\(run.stderr)"
        )
    }

    /// A port another process listens on is a clear error naming the option, and serve exits. It used to
    /// print NIO's `bind(…)` text and never exit: the cancelled matcher spun on a core (hence `timeout`).
    @Test func aTakenPortIsAClearErrorAndServeExits() async throws {
        let dir = try TemporaryDirectory()
        let first = try await ServeProcess.start(dir)
        let taken = try #require(first.base.split(separator: ":").last.map(String.init))
        let store = "sqlite://" + dir.path("other.db")
        #expect(try await CastleProcess.run(["migrate", "up", "--store", store]).status == 0)
        for (arguments, option) in [
            (["--port", taken], "--port"), (["--port", "0", "--stream-port", taken], "--stream-port"),
        ] {
            let run = try await CastleProcess.shell(
                ["/usr/bin/timeout", "-s", "KILL", "120", CastleProcess.binary, "serve", "--store", store] + arguments
            )
            #expect(run.status == 75, "\(arguments): \(run.stderr)")
            #expect(
                run.stderr.contains(
                    "castle serve: cannot listen on 127.0.0.1:\(taken) (\(option)): another process listens there"
                ),
                "\(run.stderr)"
            )
        }
        #expect(await first.stop() == 0)
    }
}
