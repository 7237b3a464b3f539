import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// A `castle serve` process on a free loopback port of a store (a fresh SQLite file unless given), and a
/// real HTTP client.
final class ServeProcess: Sendable {
    let server: Background
    let base: String
    let storeURL: String

    /// Migrates the store (unless told not to), starts the server and waits for its listening line.
    static func start(
        _ dir: TemporaryDirectory,
        storeURL: String? = nil,
        extra: [String] = [],
        migrate: Bool = true,
        stderrName: String = "serve.err"
    ) async throws -> ServeProcess {
        let storeURL = storeURL ?? "sqlite://" + dir.path("castle.db")
        if migrate {
            let up = try await CastleProcess.run(["migrate", "up", "--store", storeURL])
            #expect(up.status == 0, "\(up.stderr)")
        }
        let server = try Background(
            ["serve", "--store", storeURL, "--port", "0", "--region", "test-region"] + extra,
            stderrPath: dir.path(stderrName)
        )
        let listening = await server.waitFor("castle serve: listening on http://")
        try #require(listening, "serve did not start: \(server.stderr)")
        // The line may arrive in pieces: wait for its end.
        _ = await server.waitFor("\n")
        let line = try #require(server.stderr.split(separator: "\n").first { $0.contains("listening on http://") })
        let base = String(line[line.range(of: "http://")!.lowerBound...])
        return ServeProcess(server: server, base: base, storeURL: storeURL)
    }

    private init(server: Background, base: String, storeURL: String) {
        self.server = server
        self.base = base
        self.storeURL = storeURL
    }

    /// Sends SIGTERM and returns the exit status.
    func stop() async -> Int32 {
        server.signal(SIGTERM)
        return await server.wait()
    }
}

/// One HTTP answer: status and body.
struct Answer: Sendable {
    var status: Int
    var body: String
    var headers: [(String, String)] = []

    /// The body as a JSON object (empty when it is not one).
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }

    /// The error code of an error answer.
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    var errorMessage: String? { (json["error"] as? [String: Any])?["message"] as? String }

    /// The value of the header `name` (any case), if there is one.
    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The events of an order answer, as JSON lines in the order given.
    var eventLines: [String] {
        guard let events = json["events"] as? [Any] else { return [] }
        return events.compactMap { event in
            (try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys])).map {
                String(decoding: $0, as: UTF8.self)
            }
        }
    }
}

/// Requests through AsyncHTTPClient's shared client.
func http(
    _ method: HTTPMethod,
    _ url: String,
    account: String? = nil,
    body: String? = nil,
    bodyBytes: Int? = nil,
    timeoutSeconds: Int64 = 60
) async throws -> Answer {
    var request = HTTPClientRequest(url: url)
    request.method = method
    if let account { request.headers.add(name: "X-Castle-Account", value: account) }
    if let body {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
    } else if let bodyBytes {
        request.body = .bytes(ByteBuffer(repeating: UInt8(ascii: " "), count: bodyBytes))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeoutSeconds))
    let buffer = try await response.body.collect(upTo: 16 << 20)
    return Answer(
        status: Int(response.status.code),
        body: String(buffer: buffer),
        headers: response.headers.map { ($0.name, $0.value) }
    )
}

/// An event line with `seq` and `ts` removed and keys sorted, to compare events of two runs whose
/// numbering and clocks differ.
func withoutSeqAndTS(_ line: some StringProtocol) -> String {
    guard var object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
        return String(line)
    }
    object["seq"] = nil
    object["ts"] = nil
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self)
}

/// Posts orders from `clients` concurrent clients, `perClient` each at most, until a request fails (the
/// server went away); `acked` is told the id of each order the server acknowledged (201). Each client
/// alternates buys and sells around 100 on one of three symbols, so many of them trade.
func placeOrders(_ base: String, clients: Int, perClient: Int = .max, acked: Acked) async {
    await withTaskGroup(of: Void.self) { group in
        for client in 0..<clients {
            group.addTask {
                for n in 1...perClient {
                    let side = n % 2 == 0 ? "buy" : "sell"
                    let price = 100 + (n % 7) - 3
                    let body = #"{"symbol":"S\#(client % 3)","side":"\#(side)","price":"\#(price)","qty":"1"}"#
                    guard
                        let answer = try? await http(
                            .POST,
                            base + "/v1/orders",
                            account: "c\(client)",
                            body: body,
                            timeoutSeconds: 10
                        ),
                        answer.status == 201, let id = answer.json["id"] as? Int
                    else { return }
                    acked.add(id)
                }
            }
        }
    }
}

/// The ids of `accepted` events in the store's event log, with how many times each appears.
func acceptedIDs(_ storeURL: String) async throws -> [Int: Int] {
    let log = try await CastleProcess.run(["events", "--store", storeURL])
    #expect(log.status == 0, "\(log.stderr)")
    var counts: [Int: Int] = [:]
    for line in log.lines {
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            object["event"] as? String == "accepted", let id = object["id"] as? Int
        else { continue }
        counts[id, default: 0] += 1
    }
    return counts
}

/// A retry of an order with a client order id, on the store at `storeURL`: after a 503 (no matcher yet),
/// then after a restart of serve, it finds the first order (200, the first reply) and places nothing
/// twice; other content under the id is a 409; another account's id of the same name is its own.
func retryFindsTheFirstOrder(_ dir: TemporaryDirectory, storeURL: String) async throws {
    let order = #"{"symbol":"BTC-USD","side":"sell","price":"100","qty":"2","client_order_id":"r-1"}"#
    let serve = try await ServeProcess.start(
        dir,
        storeURL: storeURL,
        extra: ["--matcher", "external", "--verdict-timeout", "0.5"]
    )
    for attempt in 1...2 {
        let waited = try await http(.POST, serve.base + "/v1/orders", account: "m", body: order)
        #expect(waited.status == 503, "attempt \(attempt): \(waited.body)")
    }
    let worker = try Background(["match", "--store", serve.storeURL, "-q"], stderrPath: dir.path("worker.err"))
    // The worker matches the queued sell once its process runs (an event, not a time); the retry then
    // finds its verdict in the log.
    #expect(
        try await eventually("the worker matches the queued sell") {
            try await http(.GET, serve.base + "/v1/orders", account: "m").body.contains(#""status":"open""#)
        }
    )
    let found = try await http(.POST, serve.base + "/v1/orders", account: "m", body: order)
    #expect(found.status == 200, "\(found.body)")
    #expect(found.json["status"] as? String == "open", "\(found.body)")
    #expect(found.json["client_order_id"] as? String == "r-1")
    #expect(found.eventLines.count == 1, "the accepted event of the first attempt: \(found.body)")
    let id = try #require(found.json["id"] as? Int)
    let other = try await http(
        .POST,
        serve.base + "/v1/orders",
        account: "m",
        body: #"{"symbol":"BTC-USD","side":"sell","price":"101","qty":"2","client_order_id":"r-1"}"#
    )
    #expect(other.status == 409, "\(other.body)")
    #expect(other.errorCode == "duplicate_client_order_id")
    // Another account's id of the same name is its own: a new order (201, or 503 when the worker has not
    // matched it within the 0.5 s timeout), never m's order (200) or a conflict (409); it rests.
    let otherAccount = try await http(.POST, serve.base + "/v1/orders", account: "n", body: order)
    #expect(otherAccount.status == 201 || otherAccount.errorCode == "not_ready", "\(otherAccount.body)")
    #expect(
        try await eventually("n's own order r-1 rests") {
            let open = try await http(.GET, serve.base + "/v1/orders?status=open", account: "n").body
            return open.contains(#""client_order_id":"r-1""#) && !open.contains(#""id":\#(id),"#)
        }
    )
    #expect(await serve.stop() == 0)
    worker.signal(SIGTERM)
    #expect(await worker.wait() == 0)

    // A restart, with the in-process matcher: the repeat reads the first reply back from the log.
    let restarted = try await ServeProcess.start(dir, storeURL: storeURL, migrate: false, stderrName: "serve2.err")
    // A retry is answered from the log once the restarted server has read it (/ready 200; before, 503).
    #expect(try await eventually("serve is ready") { try await http(.GET, restarted.base + "/ready").status == 200 })
    let again = try await http(.POST, restarted.base + "/v1/orders", account: "m", body: order)
    #expect(again.status == 200, "\(again.body)")
    #expect(again.body == found.body)
    let open = try await http(.GET, restarted.base + "/v1/orders?status=open", account: "m")
    #expect(open.body.contains(#"{"id":\#(id),"client_order_id":"r-1","#), "\(open.body)")
    #expect(await restarted.stop() == 0)
    let events = try await CastleProcess.run(["events", "--store", serve.storeURL])
    let accepted = events.lines.filter { $0.contains(#""event":"accepted""#) }
    #expect(accepted.count == 2, "one order per account, however often retried: \(events.stdoutText)")
    #expect(accepted.filter { $0.contains(#""id":\#(id),"#) }.count == 1)
}

/// Runs `body` on a new connection to 127.0.0.1:`port`. `closedByServer` is false when the test's own
/// guard closed the connection, a minute on: the server never did.
func withRawConnection<T: Sendable>(
    port: Int,
    _ body: (NIOAsyncChannelInboundStream<ByteBuffer>, NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> T
) async throws -> (T, closedByServer: Bool) {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(isOutboundHalfClosureEnabled: true)
                )
            }
        }
    let guardFired = Atomic(false)
    let guardClose = channel.channel.eventLoop.scheduleTask(in: .seconds(60)) {
        guardFired.store(true, ordering: .relaxed)
        channel.channel.close(promise: nil)
    }
    defer { guardClose.cancel() }
    let result = try await channel.executeThenClose { inbound, outbound in try await body(inbound, outbound) }
    return (result, !guardFired.load(ordering: .relaxed))
}

/// Writes `text` (if any) to 127.0.0.1:`port` at once (then, with `halfClose`, closes the client's side)
/// and returns everything read until the connection ends, and whether the server ended it.
func sendThenReadUntilClosed(
    _ text: String,
    port: Int,
    halfClose: Bool = false
) async throws -> ([UInt8], closedByServer: Bool) {
    try await withRawConnection(port: port) { inbound, outbound in
        if !text.isEmpty { try await outbound.write(ByteBuffer(string: text)) }
        if halfClose { outbound.finish() }
        var received: [UInt8] = []
        for try await chunk in inbound { received += chunk.readableBytesView }
        return received
    }
}
