import CastleSupport
import Storage
import SyntheticData
import Testing

/// The stored form of a settlement block: what goes in comes out, and damaged bytes are refused, never
/// read as something else or crashed on.
@Suite struct SettlementBlockTests {
    /// A block of `count` random trades between a few owners, in two markets, with and without fees.
    static func randomBlock(count: Int, seed: UInt64) -> (SettlementBlock, [LedgerEntryRecord]) {
        var random = Xoshiro256(seed: seed)
        var builder = SettlementBlock.Builder(consumer: "match:0/1")
        var records: [LedgerEntryRecord] = []
        var seq: Int64 = Int64(random.next() % 1_000) + 1
        var ts = Int64(random.next() % 1_000_000_000_000)
        for _ in 0..<count {
            seq += Int64(random.next() % 40) + 1
            ts += Int64(random.next() % 2_000) - 500  // may go back: ts is stored as a signed step
            let buyer = "available:u\(random.next() % 7)"
            let seller = "available:u\(random.next() % 7)"
            let (base, quote) = random.next() % 2 == 0 ? ("BTC", "USD") : ("ETH", "USDT")
            let quoteAmount = Int64(random.next() % 1_000_000_000) + 1
            let baseAmount = Int64(random.next() % 1_000_000) + 1
            let fee = Int64(random.next() % 3)
            func posting(_ account: String, _ asset: String, _ amount: Int64) -> LedgerPostingRecord {
                LedgerPostingRecord(
                    account: account,
                    asset: asset,
                    scale: asset == "USD" ? 6 : 8,
                    amount: amount,
                    mayGoNegative: false
                )
            }
            var postings = [posting(buyer, quote, -quoteAmount), posting(seller, quote, quoteAmount - fee)]
            if fee > 0 { postings.append(posting("fees:exchange", quote, fee)) }
            postings += [posting(seller, base, -baseAmount), posting(buyer, base, baseAmount)]
            let record = LedgerEntryRecord(key: "trade:match:0/1:\(seq)", kind: "trade", ts: ts, postings: postings)
            builder.append(record)
            records.append(record)
        }
        return (builder.build(), records)
    }

    @Test(arguments: [1, 2, 3, 17, 500])
    func entriesAndBytesRoundTrip(count: Int) throws {
        let (block, records) = Self.randomBlock(count: count, seed: UInt64(count))
        #expect(block.records() == records, "the block's entries are the ones built")
        let body = block.encoded()
        let decoded = try #require(SettlementBlock.decode(body))
        #expect(decoded == block && decoded.records() == records)
        #expect(decoded.encoded() == body, "deterministic: the same block, the same bytes")
        for (index, record) in records.enumerated() {
            #expect(block.index(ofTradeSeq: SettlementBlock.parseTradeKey(record.key)!.seq) == index)
        }
        #expect(block.index(ofTradeSeq: block.lastTradeSeq + 1) == nil)
        #expect(block.prefix(count / 2).records() == Array(records.prefix(count / 2)))
    }

    @Test func tradeKeysParseOnlyAsSettlementWritesThem() {
        #expect(SettlementBlock.parseTradeKey("trade:match:0/1:17")! == ("match:0/1", 17))
        #expect(SettlementBlock.parseTradeKey("trade:c:9223372036854775807")! == ("c", Int64.max))
        for key in [
            "trade:c:017", "trade:c:0", "trade:c:+5", "trade:c:-5", "trade:c:", "trade:c", "trade:5",
            "trade:c:92233720368547758070", "trades:c:5", "deposit:c:5", "trade:c:5 ",
        ] {
            #expect(SettlementBlock.parseTradeKey(key) == nil, "\(key)")
        }
    }

    /// Every truncation and many single-byte changes of a body: refused (nil), or a block that encodes
    /// back to those very bytes; never a crash.
    @Test func damagedBodiesAreRefused() {
        let (block, _) = Self.randomBlock(count: 40, seed: 9)
        let body = block.encoded()
        for length in 0..<body.count {
            #expect(SettlementBlock.decode(Array(body[..<length])) == nil, "truncated to \(length) bytes")
        }
        var random = Xoshiro256(seed: 11)
        for _ in 0..<2_000 {
            var damaged = body
            let at = Int(random.next() % UInt64(body.count))
            damaged[at] ^= UInt8(truncatingIfNeeded: random.next() % 255 + 1)
            if let decoded = SettlementBlock.decode(damaged) {
                let canonical = decoded.encoded() == damaged
                #expect(canonical, "byte \(at) changed: a body that decodes is that block's encoding")
            }
        }
        #expect(SettlementBlock.decode(body + [0]) == nil, "a byte after the end")
    }

    @Test func aStoredBlockMustMatchItsHashAndColumns() throws {
        let (block, _) = Self.randomBlock(count: 5, seed: 3)
        let body = block.encoded()
        let hash = SettlementBlock.contentHash(body)
        func decode(
            consumer: String = "match:0/1",
            count: Int64 = 5,
            hash: [UInt8] = hash,
            body: [UInt8] = body
        ) throws(CastleError) -> StoredSettlementBlock {
            try StoredSettlementBlock.decode(
                firstSeq: 10,
                consumer: consumer,
                entryCount: count,
                postedAt: 7,
                contentHash: hash,
                body: body,
                store: "sqlite://x.db"
            )
        }
        let stored = try decode()
        #expect(stored.lastSeq == 14 && stored.entry(at: 4).seq == 14 && stored.entry(at: 0).postedAt == 7)
        var flipped = body
        flipped[flipped.count - 1] ^= 1
        for (what, attempt) in [
            ("another body", { () throws(CastleError) in _ = try decode(body: flipped) }),
            ("another consumer", { () throws(CastleError) in _ = try decode(consumer: "match:1/2") }),
            ("another count", { () throws(CastleError) in _ = try decode(count: 4) }),
        ] {
            let error = #expect(throws: CastleError.self, "\(what)") { try attempt() }
            #expect(error?.kind == .dataError, "\(what)")
            #expect(
                error?.message.contains("sqlite://x.db: ledger_trade_blocks row first_seq 10") == true,
                "names the row: \(error?.message ?? "")"
            )
        }
    }
}
