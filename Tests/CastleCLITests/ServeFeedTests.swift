import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// `castle serve --feed`: an order stream played into the server's own API, cancels mapped to the ids
/// the server gave; a bad line stops serve before anything is sent, naming the file and line.
struct ServeFeedTests {
    @Test func aFeedFilePlaysIntoTheAPIAsOrders() async throws {
        let directory = try TemporaryDirectory()
        let store = "sqlite://\(directory.path("castle.db"))"
        let migrated = try await CastleProcess.run(["migrate", "up", "--store", store])
        try #require(migrated.status == 0, "castle migrate up: \(migrated.stderr)")
        let feed = try directory.write(
            "feed.ndjson",
            """
            {"op":"new","id":7,"symbol":"BTC-USD","side":"sell","price":"100","qty":"1","account":"a","ts":1000}
            {"op":"new","id":8,"symbol":"BTC-USD","side":"buy","price":"100","qty":"0.4","tif":"ioc","account":"b","ts":2000}
            {"op":"cancel","id":7,"ts":3000}
            {"op":"new","id":9,"symbol":"BTC-USD","side":"buy","price":"99","qty":"2","account":"b","ts":4000}

            """
        )
        let server = try Background(
            ["serve", "--store", store, "--port", "0", "--feed", feed, "--speed", "1000"],
            stderrPath: directory.path("serve.stderr")
        )
        let done = await server.waitFor("feed done")
        try #require(done, "the feed did not finish: \(server.stderr)")
        let url = try #require(ServePage.listeningURL(in: server.stderr))
        let book = try await httpGet(url + "/v1/book/BTC-USD")
        #expect(book.contains(#""bids":[["99","2"]]"#), "\(book)")
        #expect(book.contains(#""asks":[]"#), "the cancel reached the server's id for order 7: \(book)")
        let trades = try await httpGet(url + "/v1/trades/BTC-USD")
        #expect(trades.contains(#""qty":"0.4""#), "\(trades)")
        server.signal(SIGTERM)
        #expect(await server.wait() == 0, "serve: \(server.stderr)")
    }

    @Test func aBadFeedLineStopsServeWithItsFileAndLine() async throws {
        let directory = try TemporaryDirectory()
        let store = "sqlite://\(directory.path("castle.db"))"
        _ = try await CastleProcess.run(["migrate", "up", "--store", store])
        let feed = try directory.write(
            "feed.ndjson",
            "{\"op\":\"new\",\"id\":1,\"symbol\":\"X\",\"side\":\"buy\",\"price\":\"1\",\"qty\":\"1\"}\nnot json\n"
        )
        let result = try await CastleProcess.run(["serve", "--store", store, "--port", "0", "--feed", feed])
        #expect(result.status == 65)
        #expect(result.stderr.contains("\(feed):2: malformed"), "\(result.stderr)")
    }

    private func httpGet(_ url: String) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return String(buffer: body)
    }
}
