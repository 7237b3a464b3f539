import CastleSupport
import Ledger
import Testing

@Suite struct AssetTests {
    @Test func codes() {
        #expect(throws: Never.self) { try Asset(code: "USD", scale: 2) }
        #expect(throws: Never.self) { try Asset(code: "A1B2C3D4E5F6", scale: 18) }
        for bad in ["", "usd", "US D", "ABCDEFGHIJKLM", "BTC-USD", "É"] {
            #expect(throws: LedgerInputError.self) { try Asset(code: bad, scale: 2) }
        }
        #expect(throws: LedgerInputError.self) { try Asset(code: "X", scale: 19) }
    }

    @Test(
        arguments: [
            ("100.25", 10_025), ("100", 10_000), ("100.2", 10_020), ("-3", -300), ("0.00", 0), ("-0", 0),
            ("0007.50", 750), ("1.50000000000000000000000", 150), ("92233720368547758.07", Int64.max),
            ("-92233720368547758.07", -Int64.max),
        ] as [(String, Int64)]
    )
    func parsesExactly(text: String, units: Int64) {
        #expect(Fixture.usd.parseAmount(text) == .success(units))
    }

    @Test(arguments: [
        ("100.255", "more decimals than USD's scale of 2"), ("0.001", "more decimals"),
        ("0.0000000000000000000001", "more decimals"), ("92233720368547758.08", "too large"),
        ("-92233720368547758.08", "too large"), ("99999999999999999999999", "too large"),
        ("1e3", "not a plain decimal"), ("+1", "not a plain decimal"), (".5", "not a plain decimal"),
        ("5.", "not a plain decimal"), ("", "not a plain decimal"), (" 1", "not a plain decimal"),
        ("1,5", "not a plain decimal"), ("--1", "not a plain decimal"), ("NaN", "not a plain decimal"),
    ])
    func refusesWithAReason(text: String, reason: String) {
        guard case .failure(let error) = Fixture.usd.parseAmount(text) else {
            Issue.record("\(text) parsed")
            return
        }
        #expect(error.reason.contains(reason), "\(text): \(error.reason)")
    }

    @Test func formatsCanonically() {
        #expect(Fixture.usd.format(Int64(10_025)) == "100.25")
        #expect(Fixture.usd.format(Int64(10_000)) == "100.00")
        #expect(Fixture.usd.format(Int64(-5)) == "-0.05")
        #expect(Fixture.usd.format(Int64(0)) == "0.00")
        #expect(Fixture.jpy.format(Int64(-1234)) == "-1234")
        #expect(Fixture.btc.format(Int64(1)) == "0.00000001")
        #expect(Fixture.usd.format(Int64.max) == "92233720368547758.07")
        #expect(Fixture.usd.format(Int128(Int64.max) * 4) == "368934881474191032.28")
        for units: Int64 in [0, 1, -1, 99, 100, -12_345_678, Int64.max, -Int64.max] {
            for asset in [Fixture.usd, Fixture.btc, Fixture.jpy] {
                #expect(asset.parseAmount(asset.format(units)) == .success(units))
            }
        }
    }

    @Test func iso4217() {
        #expect(AssetTable.iso4217["USD"]?.scale == 2)
        #expect(AssetTable.iso4217["JPY"]?.scale == 0)
        #expect(AssetTable.iso4217["BHD"]?.scale == 3)
        #expect(AssetTable.iso4217["BTC"] == nil)
    }
}

@Suite struct AccountTests {
    @Test func parses() throws {
        let account = try Account(parsing: "bank:eu-main")
        #expect(account.kind == .bank && account.owner == "eu-main")
        #expect(account.description == "bank:eu-main")
        #expect(try Account(parsing: "fees:exchange") == Account.exchangeFees)
    }

    @Test func refuses() {
        for bad in [
            "alice", "wallet:alice", "available:", ":alice", "Available:alice", "available:al ice",
            "available:" + String(repeating: "x", count: 65), "available:a:b", "held:é",
        ] {
            #expect(throws: LedgerInputError.self, "\(bad)") { try Account(parsing: bad) }
        }
    }

    @Test func whoMayGoNegative() {
        #expect(AccountKind.allCases.filter(\.mayGoNegative) == [.clearing, .bank, .external])
    }
}

@Suite struct EntryTests {
    @Test func valid() throws {
        try Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 10_000).validate()
        let reversal = Fixture.reversal("rev-1", of: Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 1))
        try reversal.validate()
    }

    @Test func refused() {
        let good = Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 10_000)
        var cases: [(Entry, String)] = []
        var e = good
        e.key = ""
        cases.append((e, "key is 0 bytes"))
        e.key = String(repeating: "k", count: 129)
        cases.append((e, "key is 129 bytes"))
        e.key = "a\nb"
        cases.append((e, "control character"))
        e = good
        e.ts = -1
        cases.append((e, "negative"))
        e = good
        e.postings = [e.postings[0]]
        cases.append((e, "1 postings"))
        e = good
        e.postings = Array(repeating: e.postings[0], count: 65)
        cases.append((e, "65 postings"))
        e = good
        e.postings[0].amount = 0
        cases.append((e, "zero"))
        e = good
        e.postings[0].amount = Int64.min
        cases.append((e, "too large"))
        e = good
        e.reverses = "x"
        cases.append((e, "only a reversal"))
        e = good
        e.kind = .reversal
        cases.append((e, "names the key"))
        e.reverses = "dep-1"
        cases.append((e, "reverses itself"))
        e = good
        e.memo = ""
        cases.append((e, "memo is 0 bytes"))
        e = good
        e.postings[1].asset = try! Asset(code: "USD", scale: 3)
        cases.append((e, "scales 2 and 3"))
        for (entry, reason) in cases {
            #expect(throws: LedgerInputError.self) { try entry.validate() }
            do throws(LedgerInputError) {
                try entry.validate()
            } catch {
                #expect(error.reason.contains(reason), "\(error.reason), expected \(reason)")
            }
        }
    }

    @Test func balance() {
        var entry = Fixture.deposit("d", to: Fixture.alice, Fixture.usd, 100)
        #expect(entry.unbalancedAsset == nil)
        entry.postings.append(Fixture.posting(Fixture.bob, Fixture.btc, 1))
        entry.postings.append(Fixture.posting(Fixture.carol, Fixture.btc, -2))
        #expect(entry.unbalancedAsset == Fixture.btc)
        // Sums are Int128: amounts near Int64.max do not overflow.
        let big = Entry(
            key: "big",
            kind: .adjustment,
            ts: 0,
            postings: [
                Fixture.posting(Fixture.alice, Fixture.usd, Int64.max),
                Fixture.posting(Fixture.bob, Fixture.usd, Int64.max),
                Fixture.posting(Fixture.bank, Fixture.usd, -Int64.max),
                Fixture.posting(Fixture.world, Fixture.usd, -Int64.max),
            ]
        )
        #expect(big.unbalancedAsset == nil)
    }
}

@Suite struct JournalTests {
    @Test func postsAndMovesBalances() {
        var journal = Journal()
        #expect(journal.post(Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 10_000)) == .posted)
        #expect(journal.balance(of: Fixture.alice, in: Fixture.usd) == 10_000)
        #expect(journal.balance(of: Fixture.stripe, in: Fixture.usd) == -10_000)
        #expect(journal.post(Fixture.move("t-1", from: Fixture.alice, to: Fixture.bob, Fixture.usd, 2_500)) == .posted)
        #expect(journal.balance(of: Fixture.alice, in: Fixture.usd) == 7_500)
        #expect(journal.balance(of: Fixture.bob, in: Fixture.usd) == 2_500)
        #expect(journal.count == 2)
        #expect(journal.isVerified)
        #expect(journal.totals[Fixture.usd] == 0)
        #expect(journal.balanceRows(account: Fixture.bob).map(\.1) == [2_500])
        #expect(journal.balanceRows(assetCode: "USD").map(\.0.account) == [Fixture.alice, Fixture.bob, Fixture.stripe])
    }

    @Test func idempotency() {
        var journal = Journal()
        let deposit = Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 10_000)
        #expect(journal.post(deposit) == .posted)
        let before = journal.balances
        #expect(journal.post(deposit) == .alreadyPosted)
        var other = deposit
        other.postings[1].amount = 9_999
        other.postings[0].amount = -9_999
        #expect(journal.post(other) == .existsWithDifferentContent(key: "dep-1"))
        other = deposit
        other.memo = "changed"
        #expect(journal.post(other) == .existsWithDifferentContent(key: "dep-1"))
        #expect(journal.balances == before && journal.count == 1)
        #expect(PostResult.existsWithDifferentContent(key: "dep-1").code == "exists_with_different_content")
    }

    @Test func refusesUnbalancedAndInvalid() {
        var journal = Journal()
        var entry = Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 10_000)
        entry.postings[1].amount += 1
        #expect(journal.post(entry) == .unbalanced(asset: Fixture.usd))
        entry.postings = [entry.postings[0]]
        guard case .invalid = journal.post(entry) else {
            Issue.record("a single posting is invalid")
            return
        }
        #expect(journal.post(Fixture.deposit("d", to: Fixture.alice, Fixture.usd, 1)) == .posted)
        let otherScale = Fixture.deposit("d2", to: Fixture.alice, try! Asset(code: "USD", scale: 3), 1)
        guard case .invalid(let error) = journal.post(otherScale) else {
            Issue.record("a second scale for USD is invalid")
            return
        }
        #expect(error.reason.contains("scale 2 in the journal"))
        #expect(journal.count == 1)
    }

    @Test func forbiddenNegatives() {
        var journal = Journal()
        #expect(journal.post(Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 100)) == .posted)
        #expect(
            journal.post(Fixture.move("t", from: Fixture.alice, to: Fixture.bob, Fixture.usd, 101))
                == .wouldGoNegative(account: Fixture.alice, asset: Fixture.usd)
        )
        for account in [Fixture.aliceHeld, Fixture.fees] {
            #expect(
                journal.post(Fixture.move("t", from: account, to: Fixture.bob, Fixture.usd, 1))
                    == .wouldGoNegative(account: account, asset: Fixture.usd)
            )
        }
        // The same account twice in one entry: the net counts, not each posting.
        let netted = Entry(
            key: "n",
            kind: .transfer,
            ts: 0,
            postings: [
                Fixture.posting(Fixture.alice, Fixture.usd, -150), Fixture.posting(Fixture.alice, Fixture.usd, 60),
                Fixture.posting(Fixture.bob, Fixture.usd, 90),
            ]
        )
        #expect(journal.post(netted) == .posted)
        #expect(journal.balance(of: Fixture.alice, in: Fixture.usd) == 10)
        // Clearing, bank and external may go below zero.
        #expect(
            journal.post(Fixture.move("w", .withdrawal, from: Fixture.bank, to: Fixture.world, Fixture.usd, 5))
                == .posted
        )
        #expect(journal.isVerified)
    }

    @Test func reversals() {
        var journal = Journal()
        let deposit = Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 100)
        #expect(journal.post(deposit) == .posted)
        var missing = Fixture.reversal("rev-0", of: deposit)
        missing.reverses = "nope"
        #expect(journal.post(missing) == .reversedEntryMissing(key: "nope"))
        var mismatch = Fixture.reversal("rev-0", of: deposit)
        mismatch.postings[0].amount = 99
        mismatch.postings[1].amount = -99
        #expect(journal.post(mismatch) == .reversalMismatch(key: "dep-1"))
        // Order does not matter; the postings as a multiset do.
        var reordered = Fixture.reversal("rev-1", of: deposit)
        reordered.postings.reverse()
        #expect(journal.post(reordered) == .posted)
        #expect(journal.balance(of: Fixture.alice, in: Fixture.usd) == 0)
        #expect(journal.reversal(of: "dep-1") == "rev-1")
        #expect(journal.post(Fixture.reversal("rev-2", of: deposit)) == .alreadyReversed(key: "dep-1", by: "rev-1"))
        #expect(journal.post(reordered) == .alreadyPosted)
        #expect(journal.isVerified)
    }

    @Test func reversalCannotOverdraw() {
        var journal = Journal()
        let deposit = Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 100)
        #expect(journal.post(deposit) == .posted)
        #expect(journal.post(Fixture.move("t", from: Fixture.alice, to: Fixture.bob, Fixture.usd, 60)) == .posted)
        #expect(
            journal.post(Fixture.reversal("rev", of: deposit))
                == .wouldGoNegative(account: Fixture.alice, asset: Fixture.usd)
        )
        #expect(journal.reversal(of: "dep-1") == nil)
    }

    @Test func verifyNamesTheFirstOffendingEntry() {
        let deposit = Fixture.deposit("dep-1", to: Fixture.alice, Fixture.usd, 100)
        let transfer = Fixture.move("t-1", from: Fixture.alice, to: Fixture.bob, Fixture.usd, 40)
        var journal = Journal()
        #expect(journal.post(deposit) == .posted)
        #expect(journal.post(transfer) == .posted)

        var unbalanced = transfer
        unbalanced.postings[1].amount = 41
        #expect(Journal(entries: [deposit, unbalanced], balances: journal.balances).verifyFailure?.key == "t-1")

        var projection = journal.balances
        projection[BalanceKey(account: Fixture.bob, asset: Fixture.usd)] = 39
        let failure = Journal(entries: journal.entries, balances: projection).verifyFailure
        #expect(failure?.key == "t-1")
        #expect(failure?.reason.contains("0.39") == true)

        let overdraft = Fixture.move("t-2", from: Fixture.alice, to: Fixture.bob, Fixture.usd, 101)
        #expect(Journal(entries: [deposit, overdraft], balances: [:]).verifyFailure?.key == "t-2")
        #expect(Journal(entries: [deposit, deposit], balances: [:]).verifyFailure?.key == "dep-1")
        let orphan = Fixture.reversal("rev", of: transfer)
        #expect(Journal(entries: [deposit, orphan], balances: [:]).verifyFailure?.key == "rev")
        #expect(Journal(entries: [], balances: [:]).isVerified)
    }
}

@Suite struct CodecTests {
    static let example =
        #"{"key":"dep-ch_3Nx","kind":"deposit","ts":1719561600000000000,"ref":"ch_3Nx","memo":"card deposit","postings":[{"account":"clearing:stripe","asset":"USD","amount":"-100.00"},{"account":"available:alice","asset":"USD","amount":"100.00"}]}"#

    @Test func decodesTheSpecExample() throws {
        let spaced = """
            {"key":"dep-ch_3Nx","kind":"deposit","ts":1719561600000000000,"ref":"ch_3Nx","memo":"card deposit",
             "postings":[{"account":"clearing:stripe","asset":"USD","amount":"-100.00"},
                         {"account":"available:alice","asset":"USD","amount":"100.00"}]}
            """.split(separator: "\n").joined()
        let entry = try EntryCodec.decode(spaced, lineNumber: 1, assets: .iso4217).get()
        #expect(entry.key == "dep-ch_3Nx" && entry.kind == .deposit && entry.ts == 1_719_561_600_000_000_000)
        #expect(entry.ref == "ch_3Nx" && entry.memo == "card deposit" && entry.reverses == nil)
        #expect(
            entry.postings == [
                Fixture.posting(Fixture.stripe, Fixture.usd, -10_000),
                Fixture.posting(Fixture.alice, Fixture.usd, 10_000),
            ]
        )
        #expect(EntryCodec.encode(entry) == Self.example)
    }

    @Test func encodesCanonically() throws {
        var entry = Fixture.reversal("rev \"1\"", of: Fixture.deposit("d\\1", to: Fixture.alice, Fixture.btc, 5))
        entry.memo = "tab\there é\u{1}"
        let line = EntryCodec.encode(entry)
        #expect(
            line
                == #"{"key":"rev \"1\"","kind":"reversal","ts":1719561600000000001,"reverses":"d\\1","memo":"tab\u0009here é\u0001","postings":[{"account":"clearing:stripe","asset":"BTC","amount":"0.00000005"},{"account":"available:alice","asset":"BTC","amount":"-0.00000005"}]}"#
        )
        #expect(try EntryCodec.decode(line, lineNumber: 1, assets: Fixture.assets).get() == entry)
        var bytes: [UInt8] = []
        EntryCodec.encodeLine(entry, to: &bytes)
        #expect(bytes.last == UInt8(ascii: "\n"))
    }

    @Test(arguments: [
        (#"{"key":"k","kind":"deposit","ts":1,"postings":[],"extra":1}"#, #""extra" is not a member of an entry"#),
        (
            #"{"key":"k","kind":"deposit","ts":1,"postings":[{"account":"bank:x","asset":"USD","amount":"1","x":1}]}"#,
            #"posting 1: "x" is not a member of a posting"#
        ),
        (#"{"key":1,"kind":"deposit","ts":1,"postings":[]}"#, #""key" is a number, not a string"#),
        (#"{"key":"k","kind":"deposit","ts":"1","postings":[]}"#, #""ts" is a string, not a number"#),
        (#"{"key":"k","kind":"deposit","ts":1.5,"postings":[]}"#, "non-negative integer"),
        (#"{"key":"k","kind":"deposit","ts":-1,"postings":[]}"#, "non-negative integer"),
        (#"{"key":"k","kind":"deposit","ts":99999999999999999999,"postings":[]}"#, "too large"),
        (#"{"key":"k","kind":"gift","ts":1,"postings":[]}"#, #"kind "gift" is not one of"#),
        (#"{"key":"k","kind":"deposit","postings":[]}"#, #"the member "ts" is missing"#),
        (#"{"key":"k","kind":"deposit","ts":1,"postings":{}}"#, "not an array"),
        (#"{"key":"k","kind":"deposit","ts":1,"postings":[]}"#, "0 postings"),
        (#"{"key":"k","kind":"deposit","ts":1,"ref":null,"postings":[]}"#, #""ref" is null, not a string"#),
        (#"{"key":"k","key":"k","kind":"deposit","ts":1,"postings":[]}"#, "appears twice"),
        (
            #"{"key":"k","kind":"deposit","ts":1,"postings":[{"account":"bank:x","asset":"USD","amount":"1.001"},{"account":"bank:y","asset":"USD","amount":"-1.001"}]}"#,
            "posting 1: amount \"1.001\" has more decimals than USD's scale of 2"
        ),
        (
            #"{"key":"k","kind":"deposit","ts":1,"postings":[{"account":"bank:x","asset":"USD","amount":1},{"account":"bank:y","asset":"USD","amount":"-1"}]}"#,
            #"posting 1: "amount" is a number, not a string"#
        ),
        (
            #"{"key":"k","kind":"deposit","ts":1,"postings":[{"account":"bank:x","asset":"XAU","amount":"1"},{"account":"bank:y","asset":"USD","amount":"-1"}]}"#,
            "posting 1: asset XAU is unknown"
        ),
        (
            #"{"key":"k","kind":"deposit","ts":1,"postings":[{"account":"bank:x","asset":"USD","amount":"1"},{"account":"vault:y","asset":"USD","amount":"-1"}]}"#,
            #"posting 2: account "vault:y": kind "vault" is not one of"#
        ),
        (#"{"key":"k","kind":"deposit","ts":1,"postings":[]"#, "malformed JSON"),
        (#"[1]"#, "an entry is a JSON object"),
        (#"{"key":"k"} x"#, "text after the JSON value"),
        ("{\"key\":\"k\u{01}\"}", "a control character in a string"),
    ])
    func refusesWithLineAndReason(line: String, reason: String) {
        guard case .failure(let error) = EntryCodec.decode(line, lineNumber: 12, assets: .iso4217) else {
            Issue.record("decoded: \(line)")
            return
        }
        #expect(error.line == 12)
        #expect(error.description.hasPrefix("12: "))
        #expect(error.reason.contains(reason), "\(error.reason), expected \(reason)")
        let castle = error.castleError(file: "entries.ndjson")
        #expect(castle.kind == .dataError && castle.message.hasPrefix("entries.ndjson:12: "))
    }

    @Test func bounds() {
        let posting = #"{"account":"bank:x","asset":"USD","amount":"1"}"#
        let many = Array(repeating: posting, count: 65).joined(separator: ",")
        let line = #"{"key":"k","kind":"deposit","ts":1,"postings":["# + many + "]}"
        guard case .failure(let error) = EntryCodec.decode(line, lineNumber: 1, assets: .iso4217) else {
            Issue.record("65 postings decoded")
            return
        }
        #expect(error.reason.contains("more than 64"))
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect((try? EntryCodec.decode(deep, lineNumber: 1, assets: .iso4217).get()) == nil)
        let long = #"{"key":"k","memo":""# + String(repeating: "x", count: 70_000) + #""}"#
        guard case .failure(let tooLong) = EntryCodec.decode(long, lineNumber: 1, assets: .iso4217) else {
            Issue.record("a 70 kB line decoded")
            return
        }
        #expect(tooLong.reason.contains("longer than 65536"))
        #expect(
            EntryCodec.decode([0x7B, 0xFF, 0x7D], lineNumber: 3, assets: .iso4217)
                == .failure(EntryDecodeError(line: 3, reason: "the line is not valid UTF-8"))
        )
    }

    @Test func decodeAllSkipsBlankLinesAndCountsThem() {
        let text = Self.example + "\n\n" + Self.example.replacingFirst("dep-ch_3Nx", "k2") + "\r\n" + "{}\n"
        guard case .failure(let error) = EntryCodec.decodeAll(text, assets: .iso4217) else {
            Issue.record("{} decoded")
            return
        }
        #expect(error.line == 4)
        #expect((try? EntryCodec.decodeAll(Self.example + "\n", assets: .iso4217).get())?.count == 1)
    }
}

extension String {
    /// `self` with the first `target` replaced (no Foundation in these tests).
    func replacingFirst(_ target: String, _ replacement: String) -> String {
        let bytes = Array(utf8)
        let needle = Array(target.utf8)
        guard needle.count <= bytes.count else { return self }
        for start in 0...(bytes.count - needle.count) where Array(bytes[start..<(start + needle.count)]) == needle {
            let out = bytes[..<start] + Array(replacement.utf8) + bytes[(start + needle.count)...]
            return String(decoding: out, as: UTF8.self)
        }
        return self
    }
}
