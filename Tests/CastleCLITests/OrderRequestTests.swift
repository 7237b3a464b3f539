import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import PropertyBased
import Testing

@testable import Server

/// The orders serve reads in front of NIO's HTTP codec (``OrderRequest``): the plain form is taken, a
/// request cut anywhere waits for the rest, everything else goes to NIO; and whatever is taken, NIO's
/// own parser reads the same way.
struct OrderRequestTests {
    static let body = #"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1"}"#

    static func order(headers: [String] = ["Host: castle", "X-Castle-Account: a1"], body: String = body) -> String {
        "POST /v1/orders HTTP/1.1\r\n" + headers.map { $0 + "\r\n" }.joined()
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    }

    static func parse(_ text: String) -> OrderRequest.Parsed {
        parse(Array(text.utf8))
    }

    static func parse(_ bytes: [UInt8]) -> OrderRequest.Parsed {
        bytes.withUnsafeBytes(OrderRequest.parse)
    }

    @Test func aPlainOrderIsTakenWithItsAccountAndBody() throws {
        let text = Self.order()
        let next = "GET /health HTTP/1.1\r\n\r\n"
        guard case .order(let request) = Self.parse(text + next) else {
            Issue.record("not taken: \(Self.parse(text + next))")
            return
        }
        #expect(request.accounts == ["a1"])
        #expect(request.body == Array(Self.body.utf8))
        #expect(request.length == text.utf8.count, "the request ends where the next begins")
        // Names in any case, spaces and tabs before values, two account lines (refused later, with 401).
        let loose =
            "POST /v1/orders HTTP/1.1\r\nx-CASTLE-account:\t a2\r\nX-Castle-Account: a3\r\n"
            + "content-LENGTH:  2\r\n\r\n{}"
        #expect(
            Self.parse(loose)
                == .order(OrderRequest(accounts: ["a2", "a3"], body: Array("{}".utf8), length: loose.utf8.count))
        )
        #expect(Self.parse(Self.order(headers: [])) != .other, "no account: taken, and refused with 401")
    }

    @Test func aRequestCutAnywhereWaitsForTheRest() {
        let bytes = Array(Self.order().utf8)
        for cut in 0..<bytes.count {
            #expect(Self.parse(Array(bytes[..<cut])) == .incomplete, "cut after \(cut) bytes")
        }
    }

    @Test func everythingElseGoesToNIO() {
        let others = [
            "GET /health HTTP/1.1\r\n\r\n",
            "POST /v1/orders?dry=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            "POST /v1/orders HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
            "post /v1/orders HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            "POST  /v1/orders HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            Self.order(headers: ["Transfer-Encoding: chunked"]),
            Self.order(headers: ["Connection: close"]),
            Self.order(headers: ["Expect: 100-continue"]),
            Self.order(headers: ["Upgrade: websocket"]),
            Self.order(headers: ["Content-Length: 56"]),  // twice, even the same
            "POST /v1/orders HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}",
            "POST /v1/orders HTTP/1.1\r\nContent-Length: 2 2\r\n\r\n{}",
            "POST /v1/orders HTTP/1.1\r\nContent-Length: \r\n\r\n{}",
            "POST /v1/orders HTTP/1.1\r\nContent-Length: 2 \r\n\r\n{}",  // NIO: a trailing space is in the value
            Self.order(headers: ["X-Castle-Account: a1\t"]),
            "POST /v1/orders HTTP/1.1\r\nContent-Length: 00000002\r\n\r\n{}",
            "POST /v1/orders HTTP/1.1\r\nHost: castle\r\n\r\n",  // no length
            "POST /v1/orders HTTP/1.1\r\nContent-Length: \(ServerLimits.bodyBytesMax + 1)\r\n\r\n",
            Self.order(headers: ["Host: castle", " folded"]),
            Self.order(headers: ["Host : castle"]),
            Self.order(headers: [": castle"]),
            Self.order(headers: ["Ho(st: castle"]),
            Self.order(headers: ["Host: cas\ntle"]),
            Self.order(headers: ["Host: cas\rtle"]),
            Self.order(headers: ["Host: cas\u{0}tle"]),
            Self.order(headers: ["Host: cas\u{7F}tle"]),
            "POST /v1/orders HTTP/1.1\nContent-Length: 2\r\n\r\n{}",
            Self.order(headers: ["X-Pad: " + String(repeating: "p", count: OrderRequest.headBytesMax)]),
            Self.order(headers: (0...OrderRequest.fieldsMax).map { "X-\($0): 1" }),
            "\u{16}\u{3}\u{1}\u{2}\u{0}",  // a TLS hello
        ]
        for text in others {
            #expect(Self.parse(text) == .other, "\(text.debugDescription)")
        }
        // A head that never ends is not waited for past the cap.
        #expect(Self.parse("POST /v1/orders HTTP/1.1\r\nX: " + String(repeating: "y", count: 9000)) == .other)
    }

    /// Requests built from an order's parts, changed at random: whatever is taken, NIO's parser reads as
    /// the same order (method, target, version, account lines, body, where it ends).
    @Test func whatIsTakenNIOReadsTheSameWay() async {
        await propertyCheck(count: 20000, input: Self.mutatedRequest) { bytes in
            guard case .order(let request) = Self.parse(bytes) else { return }
            let next = Array("GET /next HTTP/1.1\r\n\r\n".utf8)
            let parts: [HTTPServerRequestPart]
            do {
                // What follows the request taken (here another request) is the connection's next request.
                parts = try Self.decodeWithNIO(Array(bytes[..<request.length]) + next)
            } catch {
                Issue.record(
                    "NIO refuses what was taken (\(error)): \(String(decoding: bytes, as: UTF8.self).debugDescription)"
                )
                return
            }
            var heads: [HTTPRequestHead] = []
            var body: [UInt8] = []
            for part in parts {
                switch part {
                case .head(let head): heads.append(head)
                case .body(let buffer) where heads.count == 1: body += buffer.readableBytesView
                default: break
                }
            }
            let text = String(decoding: bytes, as: UTF8.self).debugDescription
            guard heads.count == 2 else {
                Issue.record("NIO read \(heads.count) requests where one and the next were sent: \(text)")
                return
            }
            #expect(heads[0].method == .POST && heads[0].uri == "/v1/orders" && heads[0].version == .http1_1, "\(text)")
            #expect(heads[0].headers["x-castle-account"] == request.accounts, "\(text)")
            #expect(body == request.body, "\(text)")
            #expect(heads[1].uri == "/next", "the next request starts where this one ends: \(text)")
        }
    }

    static func decodeWithNIO(_ bytes: [UInt8]) throws -> [HTTPServerRequestPart] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder()))
        defer { _ = try? channel.finish() }
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        var parts: [HTTPServerRequestPart] = []
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
        return parts
    }

    /// An order with random extra lines, random case and spacing, then up to four random byte changes.
    static let mutatedRequest = Generator<[UInt8], Shrink.None<[UInt8]>> { rng in
        let pool = [
            "Host: castle", "X-Castle-Account: a1", "X-Castle-Account: b2", "Accept: */*", "X-Empty:",
            "Transfer-Encoding: chunked", "Content-Length: 3", "Connection: keep-alive", "X-Obs: caf\u{E9}",
        ]
        var lines = (0..<Int.random(in: 0...4, using: &rng)).map { _ in pool.randomElement(using: &rng)! }
        lines = lines.map { line in
            let flip = Bool.random(using: &rng)
            let spaced = line.replacingOccurrences(
                of: ": ",
                with: [":", ": ", ":\t", ":  "].randomElement(using: &rng)!
            )
            return flip ? spaced.uppercased() : spaced
        }
        let body = ["{}", body, "", "x\r\n\r\ny"].randomElement(using: &rng)!
        var bytes = Array(order(headers: lines, body: body).utf8)
        let interesting: [UInt8] = [13, 10, 32, 9, 58, 0, 127, 0x80, 0xFF, 97, 65, 48, 44, 59, 34]
        for _ in 0..<Int.random(in: 0...4, using: &rng) {
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: bytes[at] = interesting.randomElement(using: &rng)!
            case 1: bytes.insert(interesting.randomElement(using: &rng)!, at: at)
            default: bytes.remove(at: at)
            }
            if bytes.isEmpty { bytes = [13] }
        }
        return bytes
    }
}
