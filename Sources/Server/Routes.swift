import CastleSupport
import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Storage

/// The routes of spec/serve.md.
enum Routes {
    static func build(_ state: ServerState) -> Router<ServerContext> {
        // HEAD of every GET route (RFC 9110: a server supports both): GET's status and headers, no body.
        let router = Router(context: ServerContext.self, options: .autoGenerateHeadEndpoints)
        // Outermost, so that its span covers the others and sees the status ErrorMiddleware gives: one span
        // per request, named by its route, with `http.route` and `http.response.status_code`.
        if state.path.tracing { router.middlewares.add(TracingMiddleware()) }
        router.middlewares.add(MetricsMiddleware(metrics: state.metrics))
        router.middlewares.add(ErrorMiddleware())
        addHealth(to: router)
        router.get("ready") { _, _ in
            let readiness = await state.readiness()
            return try jsonResponse(readiness.ready ? .ok : .serviceUnavailable, readiness)
        }
        router.get("metrics") { _, _ in
            state.metrics.queueDepth.record((try? await state.queue.depth(partition: nil)) ?? 0)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: state.metrics.text()))
            )
        }
        router.get("openapi.json") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPI.document))
            )
        }
        let trading = state.trading
        var account = router.group("v1").add(middleware: AccountMiddleware())
        if let limiter = state.rateLimiter {
            account = account.add(middleware: RateLimitMiddleware(limiter: limiter, metrics: state.metrics))
        }
        // Each route with the query parameters it takes (``query(_:takes:)``).
        account.post("orders") { request, context in
            try query(request, takes: [])
            return try await trading.place(request, context)
        }
        account.delete("orders/{id}") { request, context in
            try query(request, takes: [])
            return try await trading.cancel(request, context)
        }
        account.patch("orders/{id}") { request, context in
            try query(request, takes: [])
            return try await trading.amend(request, context)
        }
        account.get("orders") { request, context in
            try query(request, takes: ["status"])
            return try await trading.orders(request, context)
        }
        account.get("fills") { request, context in
            try query(request, takes: ["after_seq", "limit"])
            return try await trading.fills(request, context)
        }
        let market = MarketDataRoutes(view: state.view, listed: state.market.listedSymbols)
        let data = router.group("v1")
        data.get("book/{symbol}") { request, context in
            try query(request, takes: ["depth"])
            return try market.book(request, context)
        }
        data.get("trades/{symbol}") { request, context in
            try query(request, takes: ["limit"])
            return try market.trades(request, context)
        }
        data.get("ticker") { request, context in
            try query(request, takes: [])
            return try market.ticker(request, context)
        }
        data.get("candles/{symbol}") { request, context in
            try query(request, takes: ["interval", "limit"])
            return try market.candles(request, context)
        }
        return router
    }

    /// A query parameter the route does not take is refused, as an unknown field of a body is: ignored,
    /// a typo (`after` for `after_seq`) would page from the start again, and a wish (`POST
    /// /v1/orders?dry_run=1`) would place the order.
    static func query(_ request: Request, takes names: Set<String>) throws(APIError) {
        for (name, _) in request.uri.queryParameters where !names.contains(String(name)) {
            let taken = names.isEmpty ? "none" : names.sorted().joined(separator: ", ")
            throw APIError.malformed(
                "unknown query parameter \(jsonStringLiteral(String(name))) (this route takes \(taken))"
            )
        }
    }

    /// `/health`: liveness, on every listener.
    static func addHealth<Context: RequestContext>(to router: Router<Context>) {
        router.get("health") { _, _ in
            try jsonResponse(.ok, ["status": "ok"])
        }
    }

    /// A JSON body with keys in sorted order, so the same state always answers the same bytes.
    static func jsonResponse(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = try encoder.encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
        )
    }
}
