import Foundation
import Testing

/// serve's listeners, against a real `castle serve`.
@Suite struct ServeListenersTests {
    /// A port another process listens on is a clear error naming the option, and serve exits. It used to
    /// print NIO's `bind(…)` text and never exit: the cancelled matcher spun on a core (hence `timeout`).
    @Test func aTakenPortIsAClearErrorAndServeExits() async throws {
        let dir = try TemporaryDirectory()
        let first = try await ServeProcess.start(dir)
        let taken = try #require(first.base.split(separator: ":").last.map(String.init))
        let store = "sqlite://" + dir.path("other.db")
        #expect(try await CastleProcess.run(["migrate", "up", "--store", store]).status == 0)
        for (arguments, option) in [(["--port", taken], "--port")] {
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
