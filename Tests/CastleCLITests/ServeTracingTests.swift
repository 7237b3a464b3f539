import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// `castle serve --otlp-endpoint`: the spans a real collector receives, over real OTLP/HTTP.
@Suite(.serialized) struct ServeTracingTests {
    /// One order: the request's span, and under it the order path's spans with the order id, all of one
    /// trace; the group commit's span linked to them. SIGTERM exports what is still buffered.
    @Test func anOrdersSpansReachTheCollector() async throws {
        let receiver = try await TraceReceiver.start()
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(
            dir,
            extra: ["--otlp-endpoint", "http://127.0.0.1:\(receiver.port)", "--otlp-service-name", "castle-test"]
        )
        let answer = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "alice",
            body: #"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1"}"#
        )
        #expect(answer.status == 201, "\(answer.body)")
        let id = try #require(answer.json["id"] as? Int)
        #expect(await serve.stop() == 0, "\(serve.server.stderr)")
        // serve exits only after its exporter's last request was answered, and the receiver takes each
        // request before it answers: everything sent is in hand.
        let exports = await receiver.stop()
        try #require(!exports.isEmpty, "no export reached the collector: \(serve.server.stderr)")
        for export in exports {
            #expect(export.method == .POST)
            #expect(export.uri == "/v1/traces")
            #expect(export.contentType == "application/x-protobuf")
        }
        let spans = exports.flatMap { ExportedSpan.all(in: $0.body) }
        #expect(Set(spans.map(\.serviceName)) == ["castle-test"])

        let request = try #require(spans.first { $0.name == "/v1/orders" }, "\(spans.map(\.name))")
        #expect(request.kind == 2)  // SPAN_KIND_SERVER
        #expect(request.parentSpanID == nil)
        #expect(request.traceID.count == 32 && request.spanID.count == 16)
        #expect(request.attributes["http.request.method"] == "POST")
        #expect(request.attributes["http.route"] == "/v1/orders")
        #expect(request.attributes["http.response.status_code"] == "201")

        let enqueue = try #require(spans.first { $0.name == "order.enqueue" }, "\(spans.map(\.name))")
        let verdict = try #require(spans.first { $0.name == "order.verdict" }, "\(spans.map(\.name))")
        for span in [enqueue, verdict] {
            #expect(span.traceID == request.traceID, "\(span.name)")
            #expect(span.parentSpanID == request.spanID, "\(span.name)")
            #expect(span.attributes["castle.order.id"] == String(id), "\(span.name)")
            #expect(span.attributes["castle.queue.line"] == String(id), "\(span.name)")
        }
        #expect(verdict.attributes["castle.order.verdict"] == "accepted")

        // The group commit is a trace of its own, linked to the requests it made durable.
        let commit = try #require(
            spans.first { $0.name == "queue.commit" && $0.links.contains { $0.spanID == enqueue.spanID } },
            "\(spans.map(\.name))"
        )
        #expect(commit.traceID != request.traceID)
        #expect(commit.links.contains { $0.traceID == request.traceID })
        #expect(commit.attributes["castle.queue.rows"] == "1")
    }

    /// A collector that is not there: orders are answered as ever, the failed exports are warnings on
    /// stderr, and SIGTERM still exits 0.
    @Test func aCollectorDownNeverStopsServe() async throws {
        let gone = try await TraceReceiver.start()
        let port = gone.port
        _ = await gone.stop()
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir, extra: ["--otlp-endpoint", "http://127.0.0.1:\(port)"])
        let answer = try await http(
            .POST,
            serve.base + "/v1/orders",
            account: "alice",
            body: #"{"symbol":"BTC-USD","side":"buy","price":"100","qty":"1"}"#
        )
        #expect(answer.status == 201, "\(answer.body)")
        #expect(await serve.stop() == 0, "\(serve.server.stderr)")
        #expect(serve.server.stderr.contains("Failed to export batch"), "\(serve.server.stderr)")
    }

    @Test func aBadOTLPEndpointIsAUsageError() async throws {
        for arguments in [
            ["--otlp-endpoint", "localhost:4318"],
            ["--otlp-service-name", "castle-eu"],
            ["--otlp-endpoint", "http://localhost:4318", "--otlp-service-name", ""],
        ] {
            let run = try await CastleProcess.run(["serve"] + arguments)
            #expect(run.status == 64, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains("--otlp-"), "\(arguments): \(run.stderr)")
        }
    }
}

/// An OTLP/HTTP collector in miniature: a loopback HTTP server (swift-nio) that answers every request
/// with an empty export response (an empty protobuf message) and keeps what it was sent.
final class TraceReceiver: Sendable {
    struct Export: Sendable {
        var method: HTTPMethod
        var uri: String
        var contentType: String?
        var body: [UInt8]
    }

    let port: Int
    private let channel: any Channel
    private let exports: AsyncStream<Export>
    private let continuation: AsyncStream<Export>.Continuation

    static func start() async throws -> TraceReceiver {
        let (exports, continuation) = AsyncStream<Export>.makeStream()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(received: continuation))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let port = try #require(channel.localAddress?.port)
        return TraceReceiver(port: port, channel: channel, exports: exports, continuation: continuation)
    }

    private init(
        port: Int,
        channel: any Channel,
        exports: AsyncStream<Export>,
        continuation: AsyncStream<Export>.Continuation
    ) {
        self.port = port
        self.channel = channel
        self.exports = exports
        self.continuation = continuation
    }

    /// Stops listening and returns every request received.
    func stop() async -> [Export] {
        try? await channel.close()
        continuation.finish()
        var all: [Export] = []
        for await export in exports { all.append(export) }
        return all
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let received: AsyncStream<Export>.Continuation
        var head: HTTPRequestHead?
        var body = ByteBuffer()

        init(received: AsyncStream<Export>.Continuation) {
            self.received = received
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body.clear()
            case .body(var part):
                body.writeBuffer(&part)
            case .end:
                guard let head else { return }
                // Taken before it is answered: the exporter's request returns only after this.
                received.yield(
                    Export(
                        method: head.method,
                        uri: head.uri,
                        contentType: head.headers.first(name: "Content-Type"),
                        body: Array(body.readableBytesView)
                    )
                )
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/x-protobuf")
                headers.add(name: "Content-Length", value: "0")
                context.write(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                    promise: nil
                )
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

/// One span of an OTLP export (an ExportTraceServiceRequest in protobuf), with what the tests look at:
/// ids in hex, attribute values as text.
struct ExportedSpan {
    var serviceName: String?
    var name: String
    var kind: UInt64?
    var traceID: String
    var spanID: String
    var parentSpanID: String?
    var attributes: [String: String]
    var links: [(traceID: String, spanID: String)]

    /// The spans of a request body; none when it is not an ExportTraceServiceRequest.
    /// Field numbers from opentelemetry-proto's trace.proto, common.proto and resource.proto.
    static func all(in body: [UInt8]) -> [ExportedSpan] {
        guard let request = ProtobufMessage(body[...]) else { return [] }
        var spans: [ExportedSpan] = []
        for resourceSpans in request.messages(1) {
            let resource = attributes(resourceSpans.messages(1).first?.messages(1) ?? [])
            for scopeSpans in resourceSpans.messages(2) {
                for span in scopeSpans.messages(2) {
                    spans.append(
                        ExportedSpan(
                            serviceName: resource["service.name"],
                            name: span.string(5) ?? "",
                            kind: span.varint(6),
                            traceID: hex(span.bytes(1)),
                            spanID: hex(span.bytes(2)),
                            parentSpanID: span.bytes(4).map { hex($0) },
                            attributes: attributes(span.messages(9)),
                            links: span.messages(13).map { (hex($0.bytes(1)), hex($0.bytes(2))) }
                        )
                    )
                }
            }
        }
        return spans
    }

    /// KeyValues (`key` 1, `value` 2: an AnyValue, of which string 1, bool 2, int 3) as text.
    private static func attributes(_ pairs: [ProtobufMessage]) -> [String: String] {
        var result: [String: String] = [:]
        for pair in pairs {
            guard let key = pair.string(1), let value = pair.messages(2).first else { continue }
            if let text = value.string(1) {
                result[key] = text
            } else if let flag = value.varint(2) {
                result[key] = flag == 0 ? "false" : "true"
            } else if let number = value.varint(3) {
                result[key] = String(Int64(bitPattern: number))
            }
        }
        return result
    }

    private static func hex(_ bytes: ArraySlice<UInt8>?) -> String {
        (bytes ?? []).map { String(format: "%02x", $0) }.joined()
    }
}

/// Just enough of protobuf's wire format to read a message's fields by number (varints and
/// length-delimited fields; fixed-size ones skipped).
struct ProtobufMessage {
    private enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed
    }

    private var fields: [(number: Int, value: Value)] = []

    /// Nil when `data` is not a well-formed message.
    init?(_ data: ArraySlice<UInt8>) {
        var index = data.startIndex
        func varint() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while index < data.endIndex, shift < 64 {
                let byte = data[index]
                index += 1
                result |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
            return nil
        }
        while index < data.endIndex {
            guard let key = varint() else { return nil }
            let number = Int(key >> 3)
            switch key & 7 {
            case 0:
                guard let value = varint() else { return nil }
                fields.append((number, .varint(value)))
            case 1, 5:
                let size = key & 7 == 1 ? 8 : 4
                guard data.endIndex - index >= size else { return nil }
                index += size
                fields.append((number, .fixed))
            case 2:
                guard let count = varint(), count <= UInt64(data.endIndex - index) else { return nil }
                let end = index + Int(count)
                fields.append((number, .bytes(data[index..<end])))
                index = end
            default:
                return nil
            }
        }
    }

    func bytes(_ number: Int) -> ArraySlice<UInt8>? {
        for field in fields where field.number == number {
            if case .bytes(let bytes) = field.value { return bytes }
        }
        return nil
    }

    func string(_ number: Int) -> String? { bytes(number).map { String(decoding: $0, as: UTF8.self) } }

    func varint(_ number: Int) -> UInt64? {
        for field in fields where field.number == number {
            if case .varint(let value) = field.value { return value }
        }
        return nil
    }

    /// Every sub-message of a repeated (or single) message field.
    func messages(_ number: Int) -> [ProtobufMessage] {
        fields.compactMap { field in
            guard field.number == number, case .bytes(let bytes) = field.value else { return nil }
            return ProtobufMessage(bytes)
        }
    }
}
