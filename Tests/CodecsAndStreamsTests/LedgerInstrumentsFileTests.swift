import CastleCore
import CastleSupport
import Codecs
import Testing

/// The instruments file's ledger parts: `base`/`quote` on symbol lines, implied by `BASE-QUOTE`, and asset
/// lines with their scales.
@Suite struct LedgerInstrumentsFileTests {
    @Test func marketsAndAssetScales() throws {
        let dir = TempDir()
        let path = dir.write(
            "instruments.ndjson",
            """
            {"asset":"USD","scale":6}
            {"symbol":"BTC-USD","tick":"0.01","lot":"0.0001"}
            {"symbol":"XBTEUR","tick":"0.5","lot":"0.01","base":"BTC","quote":"EUR"}
            {"symbol":"idx-1","tick":"1","lot":"1"}
            {"asset":"BTC","scale":8}
            """
        )
        var symbols = NameTable()
        let catalog = try InstrumentsFile.loadCatalog(path: path, symbols: &symbols)
        #expect(catalog.instruments.count == 3)
        #expect(catalog.assetScales == ["USD": 6, "BTC": 8])
        #expect(catalog.markets[symbols.lookup("BTC-USD")!] == InstrumentsFile.Market(base: "BTC", quote: "USD"))
        #expect(catalog.markets[symbols.lookup("XBTEUR")!] == InstrumentsFile.Market(base: "BTC", quote: "EUR"))
        #expect(catalog.markets[symbols.lookup("idx-1")!] == nil, "lowercase halves are no asset codes")
        // The matcher's view is unchanged: asset lines are not instruments.
        #expect(try InstrumentsFile.load(path: path, symbols: &symbols).count == 3)
    }

    @Test(arguments: [
        (#"{"asset":"USD"}"#, "scale must be an integer"),
        (#"{"asset":"USD","scale":19}"#, "scale must be an integer between 0 and 18"),
        (#"{"asset":"usd","scale":2}"#, "asset is not an asset code"),
        (#"{"asset":"USD","scale":2,"tick":"1"}"#, "an asset line has only asset and scale"),
        ("{\"asset\":\"USD\",\"scale\":2}\n{\"asset\":\"USD\",\"scale\":2}", "asset USD declared twice"),
        (#"{"symbol":"A","tick":"1","lot":"1","base":"A"}"#, "base and quote go together"),
        (#"{"symbol":"A","tick":"1","lot":"1","base":"A","quote":"A"}"#, "base and quote are both A"),
        (#"{"symbol":"A","tick":"1","lot":"1","scale":2}"#, "scale belongs on an asset line"),
    ])
    func badLedgerLinesNameFileAndLine(_ content: String, _ phrase: String) {
        let dir = TempDir()
        let path = dir.write("instruments.ndjson", content)
        var symbols = NameTable()
        let error = expectCastleError { () throws(CastleError) in
            try InstrumentsFile.loadCatalog(path: path, symbols: &symbols)
        }
        #expect(error?.kind == .dataError)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("\(path):"), "\(message)")
        #expect(message.contains(phrase), "\(message)")
    }
}
