import Foundation
import Testing

/// The web page in a real headless Chromium, driven through chromedriver by Tests/browser/serve_page.py
/// against a real `castle serve`: an order placed through the form shows in the ladder, a matching order
/// sent through the API shows in the tape, and the page's screenshot is kept for CI.
///
/// Skipped, with the reason, when chromium or chromedriver is missing and the run is not CI; under CI
/// (`CI` set) it runs and fails without them: bin/test installs both when run as root.
@Suite(
    .enabled(
        if: ServePage.enabled,
        "chromium and chromedriver are not installed: sudo apt-get install -y chromium chromium-driver"
    )
)
struct ServePageTests {
    @Test func aFormOrderShowsInTheLadderAndItsFillInTheTape() async throws {
        let directory = try TemporaryDirectory()
        let store = "sqlite://\(directory.path("castle.db"))"
        let migrated = try await CastleProcess.run(["migrate", "up", "--store", store])
        try #require(migrated.status == 0, "castle migrate up: \(migrated.stderr)")
        let server = try Background(
            [
                "serve", "--store", store, "--port", "0",
                "--instruments", ServePage.repository.appendingPathComponent("datasets/instruments.ndjson").path,
            ],
            stderrPath: directory.path("serve.stderr")
        )
        let listening = await server.waitFor("listening on http://")
        try #require(listening, "castle serve did not start: \(server.stderr)")
        let url = try #require(ServePage.listeningURL(in: server.stderr))

        let result = try await CastleProcess.shell([
            try #require(CastleProcess.which("python3")),
            ServePage.repository.appendingPathComponent("Tests/browser/serve_page.py").path,
            "--url", url, "--screenshot", ServePage.screenshot,
        ])
        #expect(result.status == 0, "serve_page.py: \(result.stderr)\nserve: \(server.stderr)")
        #expect(FileManager.default.fileExists(atPath: ServePage.screenshot))

        server.signal(SIGTERM)
        #expect(await server.wait() == 0, "serve: \(server.stderr)")
    }
}

enum ServePage {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Where CI keeps artifacts: `.ci/artifacts/` at the repository's root (see .ci/run).
    static var screenshot: String { repository.appendingPathComponent(".ci/artifacts/serve-page.png").path }

    static var enabled: Bool {
        let installed = CastleProcess.which("chromium") != nil && CastleProcess.which("chromedriver") != nil
        return installed || ProcessInfo.processInfo.environment["CI"]?.isEmpty == false
    }

    /// The `http://HOST:PORT` that `castle serve` announces on stderr.
    static func listeningURL(in stderr: String) -> String? {
        guard let range = stderr.range(of: "castle serve: listening on ") else { return nil }
        return stderr[range.upperBound...].prefix { !$0.isWhitespace }.description
    }
}
