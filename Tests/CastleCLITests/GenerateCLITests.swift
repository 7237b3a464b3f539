import Foundation
import Testing

@Suite struct GenerateCLITests {
    @Test func sameSeedSameBytesOtherSeedOtherBytes() async throws {
        let a = try await CastleProcess.run(["generate", "orders", "--seed", "5", "--count", "5000"])
        let b = try await CastleProcess.run(["generate", "orders", "--seed", "5", "--count", "5000"])
        let c = try await CastleProcess.run(["generate", "orders", "--seed", "6", "--count", "5000"])
        #expect(a.status == 0)
        #expect(a.lines.count == 5000)
        #expect(a.stdout == b.stdout)
        #expect(a.stdout != c.stdout)
    }

    @Test func theFlowHasTheAdvertisedMix() async throws {
        let dir = try TemporaryDirectory()
        #expect(
            try await CastleProcess.run([
                "generate", "orders", "--seed", "9", "--count", "100000", "-o", dir.path("day.ndjson"),
            ]).status == 0
        )
        #expect(try await CastleProcess.run(["generate", "instruments", "-o", dir.path("i.ndjson")]).status == 0)
        let lines = try dir.read("day.ndjson").split(separator: "\n")
        func share(_ needle: String) -> Double {
            Double(lines.filter { $0.contains(needle) }.count) / Double(lines.count)
        }
        let news = share("\"op\":\"new\"")
        #expect(news > 0.4 && news < 0.65)
        #expect(share("\"op\":\"cancel\"") > 0.3)
        #expect(share("\"op\":\"amend\"") > 0.03)
        let ioc = Double(lines.filter { $0.contains("\"tif\":\"ioc\"") }.count) / (news * Double(lines.count))
        #expect(ioc > 0.12 && ioc < 0.18, "about 15% of new orders are IOC: \(ioc)")
        #expect(share("\"type\":\"market\"") > 0)
        #expect(
            Set(
                lines.compactMap {
                    $0.components(separatedBy: "\"symbol\":\"").dropFirst().first?.prefix(while: { $0 != "\"" })
                }
            ).count == 4
        )
        // Every generated command fits the instruments: nothing is rejected as invalid.
        let matched = try await CastleProcess.run([
            "match", "-q", "--strict", "-i", dir.path("day.ndjson"), "--instruments", dir.path("i.ndjson"),
        ])
        #expect(matched.status == 0, "\(matched.stderr)")
        let trades = matched.lines.filter { $0.contains("\"event\":\"trade\"") }.count
        #expect(trades > 5_000, "the flow trades: \(trades)")
    }
}
