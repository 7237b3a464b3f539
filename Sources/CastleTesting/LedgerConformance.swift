import CastleSupport
public import Storage

/// The ledger behaviour every backend must have (``LedgerStore``), as checks that run unchanged against
/// memory, SQLite and PostgreSQL. Each check gets a fresh, migrated backend and throws
/// ``ConformanceFailure`` when the backend misbehaves.
public enum LedgerConformance {
    public typealias Check = @Sendable (any Backend) async throws -> Void

    public static let checks: [(name: String, run: Check)] = [
        ("entries read back in posting order", entriesReadBack),
        ("posting a key again is idempotent", postingIsIdempotent),
        ("a key with other content is refused with its batch", otherContentIsRefused),
        ("going below zero is refused with the whole batch", negativeIsRefused),
        ("an asset keeps one scale", assetKeepsOneScale),
        ("reversals are checked against their entry", reversalsAreChecked),
        ("the watermark moves with its entries", watermarkMovesWithEntries),
        ("a settlement has one holder", settlementHasOneHolder),
        ("recomputed balances equal the projection", recomputedEqualsProjection),
        ("trades keep their accounts", tradesKeepTheirAccounts),
        ("a settlement block reads back as its entries", blockReadsBackAsEntries),
        ("a settlement block's keys are posted keys", blockKeysArePosted),
        ("a settlement block is refused as its entries would be", blockIsRefusedAsItsEntries),
    ]

    public static var checkNames: [String] { checks.map(\.name) }

    public static func run(_ name: String, on backend: any Backend) async throws {
        guard let check = checks.first(where: { $0.name == name }) else {
            throw ConformanceFailure("no ledger conformance check named '\(name)'")
        }
        try await check.run(backend)
    }

    static let now: Int64 = 1_767_364_200_000_000_000

    static func posting(
        _ account: String,
        _ amount: Int64,
        _ asset: String = "USD",
        scale: UInt8 = 2
    )
        -> LedgerPostingRecord
    {
        let kind = account.prefix { $0 != ":" }
        return LedgerPostingRecord(
            account: account,
            asset: asset,
            scale: scale,
            amount: amount,
            mayGoNegative: !["available", "held", "fees"].contains(kind)
        )
    }

    /// `amount` from the processor's clearing account to `available:OWNER`.
    static func deposit(
        _ key: String,
        _ owner: String,
        _ amount: Int64,
        ts: Int64 = 1,
        ref: String? = nil
    )
        -> LedgerEntryRecord
    {
        LedgerEntryRecord(
            key: key,
            kind: "deposit",
            ts: ts,
            ref: ref,
            postings: [posting("clearing:stripe", -amount), posting("available:\(owner)", amount)]
        )
    }

    static func withdrawal(_ key: String, _ owner: String, _ amount: Int64) -> LedgerEntryRecord {
        LedgerEntryRecord(
            key: key,
            kind: "withdrawal",
            ts: 2,
            postings: [posting("available:\(owner)", -amount), posting("bank:main", amount)]
        )
    }

    static func post(
        _ backend: any Backend,
        _ entries: [LedgerEntryRecord],
        watermark: LedgerWatermarkAdvance? = nil
    ) async throws -> LedgerPostOutcome {
        try await backend.postLedgerEntries(entries, postedAt: now, watermark: watermark)
    }

    static func balance(_ backend: any Backend, _ account: String, _ asset: String = "USD") async throws -> Int128 {
        try await backend.ledgerBalances(account: account, asset: asset).first?.balance ?? 0
    }

    static func allEntries(_ backend: any Backend) async throws -> [StoredLedgerEntry] {
        try await backend.readLedgerEntries(LedgerEntryQuery(limit: 1_000))
    }

    static func entriesReadBack(_ backend: any Backend) async throws {
        let entries = [
            deposit("d1", "alice", 10_000, ts: 100, ref: "ch_1"),
            LedgerEntryRecord(
                key: "t1",
                kind: "transfer",
                ts: 200,
                memo: "rent, paid \"early\"\tand\nlate",
                postings: [posting("available:alice", -2_500), posting("available:bob", 2_500)]
            ),
            deposit("d2", "bob", 1, ts: 300, ref: "ch_2"),
        ]
        let outcome = try await post(backend, entries)
        try expect(outcome == .committed(posted: 3, alreadyPosted: 0), "three new entries: \(outcome)")
        let read = try await allEntries(backend)
        try expect(read.map(\.entry) == entries, "entries read back as posted: \(read.map(\.entry.key))")
        try expect(read.map(\.seq) == [1, 2, 3], "seq is the posting order: \(read.map(\.seq))")
        try expect(read.allSatisfy { $0.postedAt == now }, "posted at the caller's time")
        let paged = try await backend.readLedgerEntries(LedgerEntryQuery(afterSeq: 1, limit: 1))
        try expect(paged.map(\.entry.key) == ["t1"], "paged by seq: \(paged.map(\.entry.key))")
        let byTime = try await backend.readLedgerEntries(LedgerEntryQuery(limit: 10, ts: 150...300))
        try expect(byTime.map(\.entry.key) == ["t1", "d2"], "ts range, bounds included: \(byTime.map(\.entry.key))")
        let byRef = try await backend.readLedgerEntries(LedgerEntryQuery(limit: 10, ref: "ch_2"))
        try expect(byRef.map(\.entry.key) == ["d2"], "by ref: \(byRef.map(\.entry.key))")
        let balances = try await backend.ledgerBalances(account: nil, asset: nil)
        try expect(
            balances == [
                LedgerBalanceRecord(account: "available:alice", asset: "USD", scale: 2, balance: 7_500),
                LedgerBalanceRecord(account: "available:bob", asset: "USD", scale: 2, balance: 2_501),
                LedgerBalanceRecord(account: "clearing:stripe", asset: "USD", scale: 2, balance: -10_001),
            ],
            "balances sorted by account then asset: \(balances)"
        )
        let bob = try await backend.ledgerBalances(account: "available:bob", asset: nil)
        try expect(bob.map(\.balance) == [2_501], "one account: \(bob)")
        try expect(try await backend.ledgerBalances(account: nil, asset: "EUR").isEmpty, "no EUR balance")
    }

    static func postingIsIdempotent(_ backend: any Backend) async throws {
        let batch = [deposit("d1", "alice", 500), deposit("d2", "bob", 700)]
        _ = try await post(backend, batch)
        let again = try await post(backend, batch + [deposit("d3", "carol", 1)])
        try expect(again == .committed(posted: 1, alreadyPosted: 2), "the same keys again are no-ops: \(again)")
        let twiceInOneBatch = try await post(backend, [deposit("d4", "dan", 9), deposit("d4", "dan", 9)])
        try expect(twiceInOneBatch == .committed(posted: 1, alreadyPosted: 1), "\(twiceInOneBatch)")
        try expect(try await allEntries(backend).count == 4, "four entries, each once")
        try expect(try await balance(backend, "available:alice") == 500, "alice credited once")
        // A posted withdrawal in a batch again, where counting it twice would overdraw: a no-op still.
        _ = try await post(backend, [withdrawal("w1", "alice", 300)])
        let repeated = try await post(backend, [deposit("d5", "eve", 1), withdrawal("w1", "alice", 300)])
        try expect(repeated == .committed(posted: 1, alreadyPosted: 1), "\(repeated)")
        try expect(try await balance(backend, "available:alice") == 200, "alice debited once")
        try expect(try await allEntries(backend).count == 6, "six entries, each once")
    }

    static func otherContentIsRefused(_ backend: any Backend) async throws {
        _ = try await post(backend, [deposit("d1", "alice", 500)])
        var changed = deposit("d1", "alice", 500)
        changed.memo = "another memo"
        let outcome = try await post(backend, [deposit("d2", "bob", 100), changed])
        guard case .refused(let refusal) = outcome else {
            throw ConformanceFailure("a key with other content was accepted: \(outcome)")
        }
        try expect(
            refusal.code == .existsWithDifferentContent && refusal.key == "d1" && refusal.index == 1,
            "names the key and its place: \(refusal)"
        )
        try expect(refusal.reason.contains("d1"), "the reason names the key: \(refusal.reason)")
        try expect(try await allEntries(backend).map(\.entry.key) == ["d1"], "d2 went with the batch")
        try expect(try await balance(backend, "available:bob") == 0, "bob's balance untouched")
        let inBatch = try await post(backend, [deposit("d5", "eve", 1), deposit("d5", "eve", 2)])
        guard case .refused(let second) = inBatch, second.code == .existsWithDifferentContent, second.index == 1
        else { throw ConformanceFailure("a key reused in its own batch with other content: \(inBatch)") }
    }

    static func negativeIsRefused(_ backend: any Backend) async throws {
        _ = try await post(backend, [deposit("d1", "alice", 1_000)])
        let outcome = try await post(backend, [deposit("d2", "bob", 300), withdrawal("w1", "alice", 1_001)])
        guard case .refused(let refusal) = outcome else {
            throw ConformanceFailure("an overdraft was accepted: \(outcome)")
        }
        try expect(refusal.code == .wouldGoNegative && refusal.key == "w1", "\(refusal)")
        try expect(refusal.reason.contains("available:alice") && refusal.reason.contains("USD"), "\(refusal.reason)")
        try expect(try await balance(backend, "available:bob") == 0, "the deposit before it went with the batch")
        try expect(try await allEntries(backend).count == 1, "nothing of the batch stored")
        // After each entry, not at the end of the batch: a later deposit does not cover an earlier overdraft.
        let early = try await post(backend, [withdrawal("w2", "alice", 1_500), deposit("d3", "alice", 1_000)])
        guard case .refused(let first) = early, first.index == 0 else {
            throw ConformanceFailure("an overdraft covered later in its batch was accepted: \(early)")
        }
        // Kinds that may go negative do; exactly zero is allowed.
        let exact = try await post(backend, [withdrawal("w3", "alice", 1_000)])
        try expect(exact == .committed(posted: 1, alreadyPosted: 0), "down to zero exactly: \(exact)")
        try expect(try await balance(backend, "clearing:stripe") == -1_000, "clearing went below zero")
        try expect(try await balance(backend, "available:alice") == 0, "alice at zero")
    }

    static func assetKeepsOneScale(_ backend: any Backend) async throws {
        _ = try await post(backend, [deposit("d1", "alice", 1_000)])
        let other = LedgerEntryRecord(
            key: "d2",
            kind: "deposit",
            ts: 1,
            postings: [
                posting("clearing:stripe", -5, "USD", scale: 3), posting("available:bob", 5, "USD", scale: 3),
            ]
        )
        let outcome = try await post(backend, [other])
        guard case .refused(let refusal) = outcome, refusal.code == .invalid else {
            throw ConformanceFailure("USD at another scale was accepted: \(outcome)")
        }
        try expect(refusal.reason.contains("USD"), "\(refusal.reason)")
    }

    static func reversalsAreChecked(_ backend: any Backend) async throws {
        _ = try await post(backend, [deposit("d1", "alice", 1_000), deposit("d2", "bob", 50)])
        func reversal(_ key: String, of target: String, _ postings: [LedgerPostingRecord]) -> LedgerEntryRecord {
            LedgerEntryRecord(key: key, kind: "reversal", ts: 5, reverses: target, postings: postings)
        }
        let exact = [posting("available:alice", -1_000), posting("clearing:stripe", 1_000)]
        let missing = try await post(backend, [reversal("r0", of: "nope", exact)])
        guard case .refused(let r0) = missing, r0.code == .reversedEntryMissing else {
            throw ConformanceFailure("a reversal of nothing: \(missing)")
        }
        let wrong = [posting("available:alice", -999), posting("clearing:stripe", 999)]
        let mismatch = try await post(backend, [reversal("r1", of: "d1", wrong)])
        guard case .refused(let r1) = mismatch, r1.code == .reversalMismatch else {
            throw ConformanceFailure("a reversal that is not the negation: \(mismatch)")
        }
        let accepted = try await post(backend, [reversal("r2", of: "d1", exact)])
        try expect(
            accepted == .committed(posted: 1, alreadyPosted: 0),
            "postings negated, in another order: \(accepted)"
        )
        try expect(try await balance(backend, "available:alice") == 0, "alice's deposit undone")
        let twice = try await post(backend, [reversal("r3", of: "d1", exact)])
        guard case .refused(let r3) = twice, r3.code == .alreadyReversed, r3.reason.contains("r2") else {
            throw ConformanceFailure("a second reversal: \(twice)")
        }
        // A target posted earlier in the same batch counts.
        let sameBatch = try await post(
            backend,
            [
                deposit("d3", "carol", 70),
                reversal("r4", of: "d3", [posting("available:carol", -70), posting("clearing:stripe", 70)]),
            ]
        )
        try expect(sameBatch == .committed(posted: 2, alreadyPosted: 0), "reversal within the batch: \(sameBatch)")
        // Reversing a deposit that was spent would take the account below zero.
        _ = try await post(backend, [withdrawal("w1", "bob", 50)])
        let spent = try await post(
            backend,
            [reversal("r5", of: "d2", [posting("clearing:stripe", 50), posting("available:bob", -50)])]
        )
        guard case .refused(let r5) = spent, r5.code == .wouldGoNegative else {
            throw ConformanceFailure("reversing a spent deposit: \(spent)")
        }
    }

    static func watermarkMovesWithEntries(_ backend: any Backend) async throws {
        try expect(try await backend.settlementWatermark(consumer: "main") == 0, "a new consumer is at 0")
        let first = try await post(
            backend,
            [deposit("trade:main:3", "alice", 10)],
            watermark: LedgerWatermarkAdvance(consumer: "main", previous: 0, next: 3)
        )
        try expect(first == .committed(posted: 1, alreadyPosted: 0), "\(first)")
        try expect(try await backend.settlementWatermark(consumer: "main") == 3, "moved with the entries")
        do {
            _ = try await post(
                backend,
                [deposit("trade:main:4", "alice", 10)],
                watermark: LedgerWatermarkAdvance(consumer: "main", previous: 0, next: 4)
            )
            throw ConformanceFailure("a settlement from a stale watermark was accepted")
        } catch let error as CastleError {
            try expect(error.kind == .temporaryFailure, "a stale watermark is temporary (75): \(error)")
        }
        try expect(try await allEntries(backend).count == 1, "nothing of the stale settlement stored")
        let refused = try await post(
            backend,
            [deposit("trade:main:5", "bob", 10), withdrawal("trade:main:6", "carol", 1)],
            watermark: LedgerWatermarkAdvance(consumer: "main", previous: 3, next: 6)
        )
        guard case .refused = refused else { throw ConformanceFailure("an overdraft settled: \(refused)") }
        try expect(try await backend.settlementWatermark(consumer: "main") == 3, "a refused batch leaves the watermark")
        try expect(try await backend.settlementWatermark(consumer: "other") == 0, "watermarks are per consumer")
        let empty = try await post(
            backend,
            [],
            watermark: LedgerWatermarkAdvance(consumer: "main", previous: 3, next: 9)
        )
        try expect(empty == .committed(posted: 0, alreadyPosted: 0), "a batch of no entries: \(empty)")
        try expect(try await backend.settlementWatermark(consumer: "main") == 9, "moves on an empty batch too")
    }

    static func settlementHasOneHolder(_ backend: any Backend) async throws {
        guard let lock = try await backend.acquireSettlementLock(consumer: "main") else {
            throw ConformanceFailure("a free settlement lock could not be taken")
        }
        try expect(try await backend.acquireSettlementLock(consumer: "main") == nil, "the second settler is refused")
        guard let other = try await backend.acquireSettlementLock(consumer: "other") else {
            throw ConformanceFailure("another consumer's settlement was locked too")
        }
        await lock.release()
        await other.release()
        guard let again = try await backend.acquireSettlementLock(consumer: "main") else {
            throw ConformanceFailure("a released settlement lock could not be taken again")
        }
        await again.release()
    }

    static func recomputedEqualsProjection(_ backend: any Backend) async throws {
        var batch: [LedgerEntryRecord] = []
        for index in 1...40 {
            batch.append(deposit("d\(index)", "u\(index % 7)", Int64(index) * 101, ts: Int64(index)))
        }
        batch.append(
            LedgerEntryRecord(
                key: "x1",
                kind: "transfer",
                ts: 99,
                postings: [
                    posting("available:u1", -5), posting("available:u2", 5),
                    posting("external:world", -3, "BTC", scale: 8), posting("available:u3", 3, "BTC", scale: 8),
                ]
            )
        )
        _ = try await post(backend, Array(batch[0..<20]))
        _ = try await post(backend, Array(batch[20...]))
        let projection = try await backend.ledgerBalances(account: nil, asset: nil)
        let recomputed = try await backend.recomputedLedgerBalances()
        try expect(projection == recomputed, "projection \(projection) vs postings \(recomputed)")
        try expect(projection.count == 10, "7 users and clearing in USD, two BTC accounts: \(projection.count)")
        var totals: [String: Int128] = [:]
        for row in projection { totals[row.asset, default: 0] += row.balance }
        try expect(totals.values.allSatisfy { $0 == 0 }, "every asset sums to zero: \(totals)")
    }

    static func tradesKeepTheirAccounts(_ backend: any Backend) async throws {
        let trades = [
            TradeRow(
                seq: 1,
                symbol: "BTC-USD",
                price: 3_000_000,
                qty: 5,
                maker: 1,
                taker: 2,
                side: "buy",
                ts: 10,
                makerAccount: "m1",
                takerAccount: "t1"
            ),
            TradeRow(seq: 2, symbol: "BTC-USD", price: 3_000_000, qty: 5, maker: 3, taker: 4, side: "sell", ts: nil),
        ]
        try await backend.commitMatch(
            MatchCommit(consumer: "main", offset: 2, lastSeq: 2, events: nil, trades: trades),
            previousOffset: 0
        )
        let read = try await backend.readTrades(consumer: "main", afterSeq: 0, limit: 10)
        try expect(read == trades, "trades read back with their accounts, or none: \(read)")
    }

    /// Trade `seq`'s settlement entry of consumer `c:1` (a consumer name with a colon, as `match:0/1`):
    /// `buyer` pays `cents` USD for `sats` BTC from `seller`, who pays a fee of 1 cent.
    static func tradeEntry(_ seq: Int64, buyer: String, seller: String, cents: Int64, sats: Int64) -> LedgerEntryRecord
    {
        LedgerEntryRecord(
            key: "trade:c:1:\(seq)",
            kind: "trade",
            ts: 1_000 + seq,
            postings: [
                posting("available:\(buyer)", -cents), posting("available:\(seller)", cents - 1),
                posting("fees:exchange", 1), posting("available:\(seller)", -sats, "BTC", scale: 8),
                posting("available:\(buyer)", sats, "BTC", scale: 8),
            ]
        )
    }

    static func block(_ entries: [LedgerEntryRecord]) -> SettlementBlock {
        var builder = SettlementBlock.Builder(consumer: "c:1")
        for entry in entries { builder.append(entry) }
        return builder.build()
    }

    /// Alice holds USD, bob BTC.
    static func fundTraders(_ backend: any Backend) async throws {
        let funds = [
            deposit("fund-alice", "alice", 100_000, ts: 5, ref: "ch_a"),
            LedgerEntryRecord(
                key: "fund-bob",
                kind: "deposit",
                ts: 6,
                postings: [
                    posting("external:world", -1_000, "BTC", scale: 8),
                    posting("available:bob", 1_000, "BTC", scale: 8),
                ]
            ),
        ]
        try expect(try await post(backend, funds) == .committed(posted: 2, alreadyPosted: 0), "funded")
    }

    static func postBlock(
        _ backend: any Backend,
        _ block: SettlementBlock,
        from previous: Int64
    ) async throws -> LedgerPostOutcome {
        try await backend.postSettlementBlock(
            block,
            postedAt: now + 1,
            watermark: LedgerWatermarkAdvance(consumer: "c:1", previous: previous, next: block.lastTradeSeq)
        )
    }

    static func blockReadsBackAsEntries(_ backend: any Backend) async throws {
        try await fundTraders(backend)
        let trades = [
            tradeEntry(3, buyer: "alice", seller: "bob", cents: 500, sats: 10),
            tradeEntry(7, buyer: "bob", seller: "alice", cents: 200, sats: 4),
            tradeEntry(8, buyer: "alice", seller: "bob", cents: 300, sats: 6),
        ]
        let outcome = try await postBlock(backend, block(trades), from: 0)
        try expect(outcome == .committed(posted: 3, alreadyPosted: 0), "a block of three: \(outcome)")
        try expect(try await backend.settlementWatermark(consumer: "c:1") == 8, "the watermark moves with it")
        let after = deposit("d-after", "carol", 50, ts: 1_004)
        try expect(try await post(backend, [after]) == .committed(posted: 1, alreadyPosted: 0), "an entry after it")
        let all = try await allEntries(backend)
        try expect(all.map(\.seq) == [1, 2, 3, 4, 5, 6], "one posting order for rows and blocks: \(all.map(\.seq))")
        try expect(
            all.map(\.entry) == [all[0].entry, all[1].entry] + trades + [after],
            "the block's entries as posted"
        )
        try expect(all[2...4].allSatisfy { $0.postedAt == now + 1 }, "posted when the block was")
        // Paging through the block, and reading from inside it.
        var paged: [StoredLedgerEntry] = []
        var last: Int64 = 0
        while true {
            let page = try await backend.readLedgerEntries(LedgerEntryQuery(afterSeq: last, limit: 2))
            guard let end = page.last else { break }
            try expect(page.count <= 2, "a page holds at most its limit: \(page.count)")
            paged += page
            last = end.seq
        }
        try expect(paged == all, "pages of two give the same entries")
        let byTS = try await backend.readLedgerEntries(LedgerEntryQuery(limit: 10, ts: 1_005...1_008))
        try expect(byTS.map(\.entry.key) == ["trade:c:1:7", "trade:c:1:8"], "a ts range inside the block: \(byTS)")
        let byRef = try await backend.readLedgerEntries(LedgerEntryQuery(limit: 10, ref: "ch_a"))
        try expect(byRef.map(\.entry.key) == ["fund-alice"], "a ref names no block entry: \(byRef)")
        try expect(try await balance(backend, "available:alice") == 100_000 - 500 + 199 - 300, "alice's USD")
        try expect(try await balance(backend, "available:bob", "BTC") == 1_000 - 10 + 4 - 6, "bob's BTC")
        try expect(try await balance(backend, "fees:exchange") == 3, "a fee a trade")
        let projection = try await backend.ledgerBalances(account: nil, asset: nil)
        try expect(projection == (try await backend.recomputedLedgerBalances()), "recomputed from rows and blocks")
    }

    static func blockKeysArePosted(_ backend: any Backend) async throws {
        try await fundTraders(backend)
        let first = tradeEntry(1, buyer: "alice", seller: "bob", cents: 500, sats: 10)
        let second = tradeEntry(2, buyer: "alice", seller: "bob", cents: 400, sats: 8)
        // A trade's entry posted by hand first: the block's post of it is a no-op, the rest is posted.
        try expect(try await post(backend, [first]) == .committed(posted: 1, alreadyPosted: 0), "posted by hand")
        let mixed = try await postBlock(backend, block([first, second]), from: 0)
        try expect(mixed == .committed(posted: 1, alreadyPosted: 1), "the hand-posted key is a no-op: \(mixed)")
        let third = tradeEntry(4, buyer: "alice", seller: "bob", cents: 300, sats: 6)
        let fourth = tradeEntry(5, buyer: "bob", seller: "alice", cents: 100, sats: 2)
        let posted = try await postBlock(backend, block([third, fourth]), from: 2)
        try expect(posted == .committed(posted: 2, alreadyPosted: 0), "a block: \(posted)")
        // Its keys are posted: the same content is a no-op, other content is refused.
        let again = try await post(backend, [fourth, third])
        try expect(again == .committed(posted: 0, alreadyPosted: 2), "a block's entries posted again: \(again)")
        var changed = fourth
        changed.ts += 1
        guard case .refused(let refusal) = try await post(backend, [changed]) else {
            throw ConformanceFailure("a block's key with other content was posted")
        }
        try expect(
            refusal.code == .existsWithDifferentContent && refusal.key == "trade:c:1:5",
            "refused naming the key: \(refusal)"
        )
        // The same block again (its watermark set back by hand): every key a no-op.
        let replay = try await backend.postSettlementBlock(
            block([third, fourth]),
            postedAt: now,
            watermark: LedgerWatermarkAdvance(consumer: "c:1", previous: 5, next: 5)
        )
        try expect(replay == .committed(posted: 0, alreadyPosted: 2), "a block posted twice: \(replay)")
        // A block's entry is reversed like any other, once.
        let reversal = LedgerEntryRecord(
            key: "rev-5",
            kind: "reversal",
            ts: 9,
            reverses: "trade:c:1:5",
            postings: fourth.postings.map {
                var negated = $0
                negated.amount = -negated.amount
                return negated
            }
        )
        let reversed = try await post(backend, [reversal])
        try expect(reversed == .committed(posted: 1, alreadyPosted: 0), "a block's entry reversed: \(reversed)")
        var twice = reversal
        twice.key = "rev-5b"
        guard case .refused(let secondReversal) = try await post(backend, [twice]) else {
            throw ConformanceFailure("a block's entry was reversed twice")
        }
        try expect(secondReversal.code == .alreadyReversed, "reversed once: \(secondReversal)")
        let keys = try await allEntries(backend).map(\.entry.key)
        try expect(
            keys == [
                "fund-alice", "fund-bob", "trade:c:1:1", "trade:c:1:2", "trade:c:1:4", "trade:c:1:5", "rev-5",
            ],
            "each key once, in posting order: \(keys)"
        )
        let projection = try await backend.ledgerBalances(account: nil, asset: nil)
        try expect(projection == (try await backend.recomputedLedgerBalances()), "recomputed equals the projection")
    }

    static func blockIsRefusedAsItsEntries(_ backend: any Backend) async throws {
        try await fundTraders(backend)
        let trades = [
            tradeEntry(1, buyer: "alice", seller: "bob", cents: 500, sats: 10),
            tradeEntry(2, buyer: "alice", seller: "bob", cents: 100_000, sats: 8),
        ]
        guard case .refused(let refusal) = try await postBlock(backend, block(trades), from: 0) else {
            throw ConformanceFailure("a block overdrawing alice was posted")
        }
        try expect(
            refusal.index == 1 && refusal.key == "trade:c:1:2" && refusal.code == .wouldGoNegative
                && refusal.reason == "available:alice would go below zero in USD",
            "refused at the entry that overdraws, as the entries would be: \(refusal)"
        )
        try expect(try await allEntries(backend).count == 2, "nothing of the block is stored")
        try expect(try await balance(backend, "available:alice") == 100_000, "no balance moved")
        try expect(try await backend.settlementWatermark(consumer: "c:1") == 0, "nor the watermark")
        let asEntries = try await post(backend, trades, watermark: nil)
        try expect(asEntries == .refused(refusal), "the entries one by one get the same refusal: \(asEntries)")
        var otherScale = trades[0]
        otherScale.postings[3].scale = 6
        otherScale.postings[4].scale = 6
        guard case .refused(let scale) = try await postBlock(backend, block([otherScale]), from: 0) else {
            throw ConformanceFailure("a block with BTC at another scale was posted")
        }
        try expect(
            scale.code == .invalid && scale.reason == "asset BTC has scale 8 in the ledger, not 6",
            "one scale per asset: \(scale)"
        )
        let accepted = try await postBlock(backend, block([trades[0]]), from: 0)
        try expect(accepted == .committed(posted: 1, alreadyPosted: 0), "what precedes the refusal posts: \(accepted)")
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ConformanceFailure(message()) }
    }
}
