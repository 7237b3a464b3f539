import CastleSupport
import Ledger
import Reconcile
import Testing

/// `LedgerEntriesFile.forEachItem` reads castle's canonical lines on a fast path: it must give exactly
/// the items (and the errors) of the strict decoder, whatever the line looks like.
@Suite struct LedgerFileTests {
    static let lines = [
        #"{"key":"dep-1","kind":"deposit","ts":1796159009000000000,"ref":"ch_1","postings":[{"account":"clearing:stripe","asset":"USD","amount":"-436.02"},{"account":"available:u43","asset":"USD","amount":"436.02"}]}"#,
        #"{"key":"wd-1","kind":"withdrawal","ts":0,"ref":"e2e-1","memo":"m","postings":[{"account":"available:u1","asset":"USD","amount":"-40.00"},{"account":"bank:main","asset":"USD","amount":"40.00"}]}"#,
        #"{"key":"rev-1","kind":"reversal","ts":5,"ref":"ch_1","reverses":"dep-1","postings":[{"account":"clearing:stripe","asset":"USD","amount":"436.02"},{"account":"available:u43","asset":"USD","amount":"-436.02"}]}"#,
        // Not through clearing or bank: no item.
        #"{"key":"t-1","kind":"trade","ts":7,"postings":[{"account":"available:a","asset":"USD","amount":"-1.00"},{"account":"available:b","asset":"USD","amount":"1.00"}]}"#,
        // Two assets through clearing: no item.
        #"{"key":"x-1","kind":"transfer","ts":7,"postings":[{"account":"clearing:a","asset":"USD","amount":"-1.00"},{"account":"available:b","asset":"USD","amount":"1.00"},{"account":"clearing:a","asset":"JPY","amount":"-5"},{"account":"available:b","asset":"JPY","amount":"5"}]}"#,
        // Not canonical, still valid: spaces, another order, an escape, a trailing zero, a leading zero.
        #"{ "kind":"deposit", "key":"dep-2", "ts":9, "ref":"ch_\u0032", "postings":[{"asset":"USD","account":"clearing:stripe","amount":"-1.500"},{"account":"available:u","asset":"USD","amount":"01.50"}] }"#,
        #"{"key":"dep-3","kind":"deposit","ts":86400000000001,"ref":"é","postings":[{"account":"clearing:stripe","asset":"JPY","amount":"-7"},{"account":"available:u","asset":"JPY","amount":"7"}]}"#,
    ]

    static let bad = [
        #"{"key":"dep-1","kind":"deposit","ts":01,"postings":[{"account":"clearing:s","asset":"USD","amount":"-1.00"},{"account":"available:u","asset":"USD","amount":"1.00"}]}"#,
        #"{"key":"dep-1","kind":"deposit","ts":1,"ref":"","postings":[{"account":"clearing:s","asset":"USD","amount":"-1.00"},{"account":"available:u","asset":"USD","amount":"1.00"}]}"#,
        #"{"key":"dep-1","kind":"deposit","ts":1,"postings":[{"account":"clearing:s","asset":"USD","amount":"-1.001"},{"account":"available:u","asset":"USD","amount":"1.001"}]}"#,
        #"{"key":"dep-1","kind":"deposit","ts":1,"postings":[{"account":"clearing:s","asset":"USD","amount":"-0.00"},{"account":"available:u","asset":"USD","amount":"0.00"}]}"#,
        #"{"key":"dep-1","kind":"deposit","ts":1,"reverses":"x","postings":[{"account":"clearing:s","asset":"USD","amount":"-1.00"},{"account":"available:u","asset":"USD","amount":"1.00"}]}"#,
        #"{"key":"dep-1","kind":"deposit","ts":1,"postings":[{"account":"clearing:s","asset":"USD","amount":"-1.00"}]}"#,
        #"{"key":"dep-1","kind":"deposit","ts":1,"postings":[{"account":"clearing:s","asset":"XXX","amount":"-1.00"},{"account":"available:u","asset":"XXX","amount":"1.00"}]}"#,
        #"{"key":"dep-1","kind":"deposit","ts":1,"postings":[{"account":"nowhere:s","asset":"USD","amount":"-1.00"},{"account":"available:u","asset":"USD","amount":"1.00"}]}"#,
        #"{"key":"dep-1","kind":"deposit","ts":1,"postings":[{"account":"clearing:s","asset":"USD","amount":"-1.00"},{"account":"available:u","asset":"USD","amount":"1.00"}]} x"#,
    ]

    func strictItems(_ text: String) throws -> [LedgerItem] {
        try EntryCodec.decodeAll(text, assets: .iso4217).get().compactMap(LedgerItem.init)
    }

    func fileItems(_ text: String) throws -> [LedgerItem] {
        let dir = try ScratchDirectory()
        let path = try dir.write("ledger.ndjson", text)
        var items: [LedgerItem] = []
        try LedgerEntriesFile(path: path).forEachItem { items.append($0) }
        return items
    }

    @Test func theFastPathGivesTheStrictDecodersItems() throws {
        let text = Self.lines.joined(separator: "\n") + "\n\n"
        let items = try fileItems(text)
        #expect(items == (try strictItems(text)))
        #expect(items.map(\.key) == ["dep-1", "wd-1", "rev-1", "dep-2", "dep-3"])
        #expect(items[0].amount == 43602 && items[1].amount == -4000 && items[2].reverses == "dep-1")
        #expect(items[3].ref == "ch_2" && items[3].amount == 150 && items[4].day == 1)
    }

    @Test func everyBadLineFailsAsTheStrictDecoderSays() throws {
        for (index, line) in Self.bad.enumerated() {
            let text = Self.lines[0] + "\n" + line + "\n"
            guard case .failure(let expected) = EntryCodec.decodeAll(text, assets: .iso4217) else {
                Issue.record("bad line \(index + 1) decodes")
                continue
            }
            let error = castleError { _ = try fileItems(text) }
            #expect(error?.kind == .dataError)
            #expect(error?.message.hasSuffix(":2: \(expected.reason)") == true, "\(error?.message ?? "none")")
        }
    }
}
