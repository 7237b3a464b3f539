import CastleTesting
import Ledger
import SyntheticData
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Mutation fuzzing of the entries NDJSON decoder, as Tests/StorageTests/FuzzTests.swift does for the
/// other parsers: valid lines broken by a few random edits. The decoder answers (an entry or a
/// `line: reason`) and never crashes; it answers the same twice; and whatever it accepts, it encodes
/// canonically and decodes back to the same entry. Fixed seed; `CASTLE_FUZZ_ROUNDS=N` runs N times more.
@Suite struct LedgerFuzzTests {
    static var rounds: Int {
        guard let text = getenv("CASTLE_FUZZ_ROUNDS"), let value = Int(String(cString: text)), value > 0 else {
            return 1
        }
        return value
    }

    static let lines = [
        CodecTests.example,
        #"{"key":"trade:match-1:42","kind":"trade","ts":7,"postings":[{"account":"available:alice","asset":"USD","amount":"-26000.10"},{"account":"available:bob","asset":"USD","amount":"25974.10"},{"account":"fees:exchange","asset":"USD","amount":"26.00"},{"account":"available:bob","asset":"BTC","amount":"-0.4"},{"account":"available:alice","asset":"BTC","amount":"0.3992"},{"account":"fees:exchange","asset":"BTC","amount":"0.0008"}]}"#,
        #"{"key":"rev-\u00e9\"1\"","kind":"reversal","ts":0,"reverses":"dep\\1","memo":"a\tb","postings":[{"account":"external:world","asset":"JPY","amount":"-92233720368547758"},{"account":"bank:eu-main","asset":"JPY","amount":"92233720368547758"}]}"#,
        #" { "key" : "w" , "kind" : "withdrawal" , "ts" : 1 , "ref" : "E2E-1" , "postings" : [ { "amount" : "5" , "asset" : "USD" , "account" : "available:a" } , { "account" : "bank:b" , "asset" : "USD" , "amount" : "-5.00" } ] } "#,
    ]

    @Test func entriesNDJSON() {
        for line in Self.lines {
            #expect((try? EntryCodec.decode(line, lineNumber: 1, assets: Fixture.assets).get()) != nil, "\(line)")
        }
        var mutator = Mutator(seed: 9)
        var accepted = 0
        for _ in 0..<(50_000 * Self.rounds) {
            let bytes = mutator.mutate(Array(Self.lines[mutator.below(Self.lines.count)].utf8))
            let first = EntryCodec.decode(bytes, lineNumber: 3, assets: Fixture.assets)
            let second = EntryCodec.decode(bytes, lineNumber: 3, assets: Fixture.assets)
            #expect(first == second, "decoding is deterministic: \(String(decoding: bytes, as: UTF8.self))")
            switch first {
            case .success(let entry):
                accepted += 1
                let canonical = EntryCodec.encode(entry)
                let again = EntryCodec.decode(canonical, lineNumber: 1, assets: Fixture.assets)
                #expect(again == .success(entry), "\(canonical)")
                if case .success(let back) = again { #expect(EntryCodec.encode(back) == canonical) }
            case .failure(let error):
                #expect(error.line == 3 && !error.reason.isEmpty)
            }
        }
        // Some mutants stay valid (a digit changed, a space added): the round trip is exercised.
        #expect(accepted > 100)
    }
}
