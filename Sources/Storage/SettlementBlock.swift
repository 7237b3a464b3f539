public import CastleSupport
import Crypto

/// A run of trade settlements of one consumer, stored as one row (`ledger_trade_blocks`, migration 0008)
/// instead of one `ledger_entries` row each: what lets `castle ledger settle` keep up with the matcher.
///
/// It holds, for each trade in `seq` order, the entry ``LedgerStore/postLedgerEntries(_:postedAt:watermark:)``
/// would post for it: key `trade:CONSUMER:SEQ`, kind `trade`, the trade's `ts`, no ref, reversal or memo,
/// and its postings. Stores expand it back into those entries wherever entries are read (a block's entries
/// take consecutive posting sequence numbers), and a key in a block is posted as far as every check is
/// concerned: posting it again is a no-op with the same content and `exists_with_different_content`
/// otherwise, and it can be reversed. What a block saves is the per-entry cost: one key, hash and index
/// entry a block rather than a trade, and postings as small integers into the block's tables of accounts,
/// assets and (account, asset) pairs (about 50 bytes a trade instead of 330).
///
/// Built with ``Builder``; immutable once built. Equality is of content.
public struct SettlementBlock: Sendable, Hashable {
    public struct Account: Sendable, Hashable {
        public var name: String
        public var mayGoNegative: Bool
    }

    public struct Asset: Sendable, Hashable {
        public var code: String
        public var scale: UInt8
    }

    /// Indexes into ``accounts`` and ``assets``.
    public struct Pair: Sendable, Hashable {
        public var account: Int32
        public var asset: Int32
    }

    public struct Posting: Sendable, Hashable {
        /// An index into ``pairs``.
        public var pair: Int32
        public var amount: Int64
    }

    public struct Trade: Sendable, Hashable {
        public var seq: Int64
        public var ts: Int64
        /// The end of its postings in ``postings`` (they start where the previous trade's end).
        public var postingsEnd: Int32
    }

    public let consumer: String
    public private(set) var accounts: [Account] = []
    public private(set) var assets: [Asset] = []
    public private(set) var pairs: [Pair] = []
    public private(set) var trades: [Trade] = []
    public private(set) var postings: [Posting] = []

    init(consumer: String) { self.consumer = consumer }

    /// The number of trades (entries).
    public var count: Int { trades.count }
    public var isEmpty: Bool { trades.isEmpty }
    public var firstTradeSeq: Int64 { trades.first?.seq ?? 0 }
    public var lastTradeSeq: Int64 { trades.last?.seq ?? 0 }
    public var tsRange: ClosedRange<Int64> {
        var low = Int64.max
        var high = Int64.min
        for trade in trades {
            low = min(low, trade.ts)
            high = max(high, trade.ts)
        }
        return trades.isEmpty ? 0...0 : low...high
    }

    /// The postings of trade `index`, as indexes into ``postings``.
    public func postingRange(_ index: Int) -> Range<Int> {
        (index == 0 ? 0 : Int(trades[index - 1].postingsEnd))..<Int(trades[index].postingsEnd)
    }

    /// `trade:CONSUMER:SEQ`: the key settlement gives a trade's entry.
    public static func tradeKey(consumer: String, seq: Int64) -> String { "trade:\(consumer):\(seq)" }

    /// The consumer and trade `seq` of a key shaped like a settlement's (`trade:CONSUMER:SEQ`, SEQ a
    /// positive decimal without leading zeros; CONSUMER may hold colons), or nil.
    public static func parseTradeKey(_ key: String) -> (consumer: String, seq: Int64)? {
        guard key.hasPrefix("trade:"), let colon = key.lastIndex(of: ":") else { return nil }
        let consumerStart = key.index(key.startIndex, offsetBy: 6)
        guard colon >= consumerStart else { return nil }
        let digits = key[key.index(after: colon)...]
        guard let first = digits.utf8.first, first != UInt8(ascii: "0"),
            digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }), let seq = Int64(digits)
        else { return nil }
        return (String(key[consumerStart..<colon]), seq)
    }

    /// The index of the trade with `seq`, or nil.
    public func index(ofTradeSeq seq: Int64) -> Int? {
        var low = 0
        var high = trades.count
        while low < high {
            let middle = (low + high) / 2
            if trades[middle].seq < seq { low = middle + 1 } else { high = middle }
        }
        return low < trades.count && trades[low].seq == seq ? low : nil
    }

    /// Trade `index`'s entry, as ``LedgerStore/postLedgerEntries(_:postedAt:watermark:)`` takes it.
    public func record(at index: Int) -> LedgerEntryRecord {
        var entryPostings: [LedgerPostingRecord] = []
        let range = postingRange(index)
        entryPostings.reserveCapacity(range.count)
        for posting in postings[range] {
            let pair = pairs[Int(posting.pair)]
            let account = accounts[Int(pair.account)]
            let asset = assets[Int(pair.asset)]
            entryPostings.append(
                LedgerPostingRecord(
                    account: account.name,
                    asset: asset.code,
                    scale: asset.scale,
                    amount: posting.amount,
                    mayGoNegative: account.mayGoNegative
                )
            )
        }
        return LedgerEntryRecord(
            key: Self.tradeKey(consumer: consumer, seq: trades[index].seq),
            kind: "trade",
            ts: trades[index].ts,
            postings: entryPostings
        )
    }

    /// Every entry, in order.
    public func records() -> [LedgerEntryRecord] { trades.indices.map(record(at:)) }

    /// The first `count` trades, as a block of their own.
    public func prefix(_ count: Int) -> SettlementBlock {
        var builder = Builder(consumer: consumer)
        for index in 0..<min(count, trades.count) { builder.append(record(at: index)) }
        return builder.build()
    }

    /// The same trades with every account renamed by `rename` (a residency policy's pseudonyms).
    public func renamingAccounts(_ rename: (String) -> String) -> SettlementBlock {
        var builder = Builder(consumer: consumer)
        for index in trades.indices {
            var record = record(at: index)
            for position in record.postings.indices {
                record.postings[position].account = rename(record.postings[position].account)
            }
            builder.append(record)
        }
        return builder.build()
    }
}

// MARK: - Building

extension SettlementBlock {
    /// Builds a block a trade at a time: intern the accounts, assets and pairs a trade posts to, add its
    /// postings, then end the trade with its `seq` (increasing) and `ts`.
    public struct Builder: Sendable {
        private var block: SettlementBlock
        private var accountIndex: [String: Int32] = [:]
        private var assetIndex: [String: Int32] = [:]
        /// Per account, per asset: the pair's index, -1 for none yet (accounts and assets are few).
        private var pairIndex: [[Int32]] = []

        public init(consumer: String) { block = SettlementBlock(consumer: consumer) }

        public var count: Int { block.trades.count }

        /// The account's index; an account has one `mayGoNegative` (its kind's).
        public mutating func account(_ name: String, mayGoNegative: Bool) -> Int32 {
            if let index = accountIndex[name] {
                precondition(block.accounts[Int(index)].mayGoNegative == mayGoNegative, "one account, one kind")
                return index
            }
            let index = Int32(block.accounts.count)
            accountIndex[name] = index
            block.accounts.append(Account(name: name, mayGoNegative: mayGoNegative))
            return index
        }

        /// The asset's index; an asset code has one scale in a block.
        public mutating func asset(_ code: String, scale: UInt8) -> Int32 {
            if let index = assetIndex[code] {
                precondition(block.assets[Int(index)].scale == scale, "one asset, one scale")
                return index
            }
            let index = Int32(block.assets.count)
            assetIndex[code] = index
            block.assets.append(Asset(code: code, scale: scale))
            return index
        }

        public mutating func pair(account: Int32, asset: Int32) -> Int32 {
            let (row, column) = (Int(account), Int(asset))
            if row < pairIndex.count, column < pairIndex[row].count, pairIndex[row][column] >= 0 {
                return pairIndex[row][column]
            }
            while pairIndex.count <= row { pairIndex.append([]) }
            while pairIndex[row].count <= column { pairIndex[row].append(-1) }
            let index = Int32(block.pairs.count)
            pairIndex[row][column] = index
            block.pairs.append(Pair(account: account, asset: asset))
            return index
        }

        /// A posting of the trade being built; never zero or Int64.min.
        public mutating func posting(pair: Int32, amount: Int64) {
            precondition(amount != 0 && amount != .min, "a settlement posting is neither 0 nor Int64.min")
            block.postings.append(Posting(pair: pair, amount: amount))
        }

        /// Ends the trade whose postings were added since the last one ended.
        public mutating func endTrade(seq: Int64, ts: Int64) {
            precondition(seq > block.lastTradeSeq, "trades in increasing seq")
            block.trades.append(Trade(seq: seq, ts: ts, postingsEnd: Int32(block.postings.count)))
        }

        /// A trade's entry as a record (its key must be this consumer's `trade:CONSUMER:SEQ`).
        public mutating func append(_ record: LedgerEntryRecord) {
            let parsed = SettlementBlock.parseTradeKey(record.key)
            precondition(parsed?.consumer == block.consumer && record.kind == "trade", "a settlement entry")
            for posting in record.postings {
                let account = account(posting.account, mayGoNegative: posting.mayGoNegative)
                let asset = asset(posting.asset, scale: posting.scale)
                self.posting(pair: pair(account: account, asset: asset), amount: posting.amount)
            }
            endTrade(seq: parsed!.seq, ts: record.ts)
        }

        public func build() -> SettlementBlock { block }
    }
}

// MARK: - The stored form

extension SettlementBlock {
    private static let magic: [UInt8] = Array("CSB1".utf8)

    /// The block as stored (`body`): deterministic, so the same trades give the same bytes and hash.
    /// `CSB1`, then the consumer, the accounts (name, flag), the assets (code, scale), the pairs, and per
    /// trade its `seq` as the step from the previous one, `ts` as the signed step, and its postings (pair,
    /// signed amount); counts and numbers as LEB128 varints, signed ones zigzag-encoded.
    public func encoded() -> [UInt8] {
        // An upper bound of the size (a varint takes at most 10 bytes), written through a pointer: no
        // capacity check or closure per byte.
        var bound = Self.magic.count + 10 + consumer.utf8.count + 4 * 10
        for account in accounts { bound += 11 + account.name.utf8.count }
        for asset in assets { bound += 11 + asset.code.utf8.count }
        bound += pairs.count * 20 + trades.count * 30 + postings.count * 15
        return [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            var out = Writer(buffer: buffer)
            for byte in Self.magic { out.byte(byte) }
            out.text(consumer)
            out.unsigned(UInt64(accounts.count))
            for account in accounts {
                out.text(account.name)
                out.byte(account.mayGoNegative ? 1 : 0)
            }
            out.unsigned(UInt64(assets.count))
            for asset in assets {
                out.text(asset.code)
                out.byte(asset.scale)
            }
            out.unsigned(UInt64(pairs.count))
            for pair in pairs {
                out.unsigned(UInt64(pair.account))
                out.unsigned(UInt64(pair.asset))
            }
            out.unsigned(UInt64(trades.count))
            var previousSeq: Int64 = 0
            var previousTS: Int64 = 0
            var start = 0
            postings.withUnsafeBufferPointer { postings in
                for trade in trades {
                    let end = Int(trade.postingsEnd)
                    out.unsigned(UInt64(trade.seq - previousSeq))
                    out.signed(trade.ts &- previousTS)
                    out.unsigned(UInt64(end - start))
                    for index in start..<end {
                        out.unsigned(UInt64(postings[index].pair))
                        out.signed(postings[index].amount)
                    }
                    previousSeq = trade.seq
                    previousTS = trade.ts
                    start = end
                }
            }
            precondition(out.count <= bound, "settlement block: the size bound is wrong")
            count = out.count
        }
    }

    /// Writes ``encoded()``'s bytes into a buffer known to be large enough.
    private struct Writer {
        let buffer: UnsafeMutableBufferPointer<UInt8>
        var count = 0

        mutating func byte(_ value: UInt8) {
            buffer[count] = value
            count += 1
        }

        mutating func unsigned(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                buffer[count] = UInt8(truncatingIfNeeded: value) | 0x80
                count += 1
                value >>= 7
            }
            buffer[count] = UInt8(value)
            count += 1
        }

        mutating func signed(_ value: Int64) { unsigned(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }

        mutating func text(_ value: String) {
            unsigned(UInt64(value.utf8.count))
            for byte in value.utf8 { self.byte(byte) }
        }
    }

    /// The block ``encoded()`` wrote, or nil for bytes it cannot have written: a damaged row. Every index is
    /// in range, seqs increase from 1 up, an entry has 2 to 64 postings, none zero or Int64.min, and names
    /// are non-empty, without tab or line break.
    public static func decode(_ body: [UInt8]) -> SettlementBlock? {
        var reader = Reader(bytes: body)
        guard reader.take(magic.count).map(Array.init) == magic, let consumer = reader.text() else { return nil }
        var block = SettlementBlock(consumer: consumer)
        func validName(_ value: String) -> Bool {
            !value.isEmpty && !value.utf8.contains { $0 == 9 || $0 == 10 }
        }
        guard let accountCount = reader.count(atLeastBytesEach: 2) else { return nil }
        for _ in 0..<accountCount {
            guard let name = reader.text(), validName(name), let flag = reader.byte(), flag <= 1 else { return nil }
            block.accounts.append(Account(name: name, mayGoNegative: flag == 1))
        }
        guard let assetCount = reader.count(atLeastBytesEach: 2) else { return nil }
        for _ in 0..<assetCount {
            guard let code = reader.text(), validName(code), let scale = reader.byte() else { return nil }
            block.assets.append(Asset(code: code, scale: scale))
        }
        guard let pairCount = reader.count(atLeastBytesEach: 2) else { return nil }
        for _ in 0..<pairCount {
            guard let account = reader.unsigned(), account < accountCount, let asset = reader.unsigned(),
                asset < assetCount
            else { return nil }
            block.pairs.append(Pair(account: Int32(account), asset: Int32(asset)))
        }
        guard let tradeCount = reader.count(atLeastBytesEach: 7) else { return nil }
        var seq: Int64 = 0
        var ts: Int64 = 0
        for _ in 0..<tradeCount {
            guard let step = reader.unsigned(), step > 0, step <= UInt64(Int64.max - seq), let tsStep = reader.signed(),
                let postingCount = reader.unsigned(), (2...64).contains(postingCount)
            else { return nil }
            seq += Int64(step)
            ts = ts &+ tsStep
            for _ in 0..<postingCount {
                guard let pair = reader.unsigned(), pair < pairCount, let amount = reader.signed(), amount != 0,
                    amount != .min
                else { return nil }
                block.postings.append(Posting(pair: Int32(pair), amount: amount))
            }
            block.trades.append(Trade(seq: seq, ts: ts, postingsEnd: Int32(block.postings.count)))
        }
        guard reader.atEnd else { return nil }
        return block
    }

    /// SHA-256 of a stored body: kept beside it, so a damaged row is found rather than read.
    public static func contentHash(_ body: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: body)) }

    private struct Reader {
        let bytes: [UInt8]
        var at = 0

        var atEnd: Bool { at == bytes.count }

        mutating func byte() -> UInt8? {
            guard at < bytes.count else { return nil }
            defer { at += 1 }
            return bytes[at]
        }

        mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count <= bytes.count - at else { return nil }
            defer { at += count }
            return bytes[at..<at + count]
        }

        mutating func unsigned() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while let byte = byte() {
                guard shift < 64, shift < 63 || byte <= 1 else { return nil }
                value |= UInt64(byte & 0x7f) << shift
                // The shortest form only (a last byte of 0 after others adds nothing): one value, one encoding.
                if byte < 0x80 { return shift > 0 && byte == 0 ? nil : value }
                shift += 7
            }
            return nil
        }

        mutating func signed() -> Int64? {
            guard let value = unsigned() else { return nil }
            return Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
        }

        /// A count of items taking at least `size` bytes each: no more than the bytes left could hold.
        mutating func count(atLeastBytesEach size: Int) -> Int? {
            guard let value = unsigned(), value <= UInt64(bytes.count - at) / UInt64(size) else { return nil }
            return Int(value)
        }

        mutating func text() -> String? {
            guard let length = unsigned(), length <= 1 << 16, let bytes = take(Int(length)) else { return nil }
            return String(validating: bytes, as: UTF8.self)
        }
    }
}

// MARK: - Checks

/// What to write for an accepted block besides its row: the balances after it of every pair it posts to
/// (sorted), and the asset codes the store did not know, with their scales.
public struct SettlementBlockPlan: Sendable {
    public var balances: [LedgerBalanceRecord]
    public var newAssets: [(code: String, scale: UInt8)]
}

extension SettlementBlock {
    /// The (account, asset) pairs whose stored balances ``plan(balances:scales:)`` needs.
    public var balanceKeys: [LedgerBalanceKey] {
        pairs.map { LedgerBalanceKey(account: accounts[Int($0.account)].name, asset: assets[Int($0.asset)].code) }
    }

    /// The checks ``LedgerBatch/plan(_:context:)`` makes of these entries as new ones (the store has found
    /// none of their keys), as array arithmetic over the block's pairs: an asset keeps the ledger's scale,
    /// and after each entry (its postings to one account netted first) no account flagged non-negative is
    /// below zero. The first refusal names the entry's index and key, with the same codes and reasons.
    /// `balances` and `scales` are the stored ones of ``balanceKeys`` and their assets.
    public func plan(
        balances stored: [LedgerBalanceKey: Int128],
        scales: [String: UInt8]
    ) -> Result<SettlementBlockPlan, LedgerRefusal> {
        let keys = balanceKeys
        var balance = keys.map { stored[$0] ?? 0 }
        var touched = [Bool](repeating: false, count: pairs.count)
        let nonNegative = pairs.map { !accounts[Int($0.account)].mayGoNegative }
        var knownScale: [UInt8?] = assets.map { scales[$0.code] }
        var newAssets: [(code: String, scale: UInt8)] = []
        let problems: [String?] = pairs.map { pair in
            let account = accounts[Int(pair.account)]
            let asset = assets[Int(pair.asset)]
            if let problem = LedgerBatch.unstorable(account: account.name, asset: asset.code) { return problem }
            if let scale = scales[asset.code], scale != asset.scale {
                return "asset \(asset.code) has scale \(scale) in the ledger, not \(asset.scale)"
            }
            return nil
        }
        let anyProblem = problems.contains { $0 != nil }
        var start = 0
        for index in trades.indices {
            let end = Int(trades[index].postingsEnd)
            defer { start = end }
            func refuse(_ code: LedgerRefusal.Code, _ reason: String) -> Result<SettlementBlockPlan, LedgerRefusal> {
                .failure(
                    LedgerRefusal(
                        index: index,
                        key: Self.tradeKey(consumer: consumer, seq: trades[index].seq),
                        code: code,
                        reason: reason
                    )
                )
            }
            if anyProblem {
                for posting in postings[start..<end] {
                    if let problem = problems[Int(posting.pair)] { return refuse(.invalid, problem) }
                }
            }
            // All of the entry's postings first (an account's postings in one entry net), then the signs,
            // in posting order; a refusal drops every balance computed here.
            for posting in postings[start..<end] { balance[Int(posting.pair)] += Int128(posting.amount) }
            for posting in postings[start..<end] {
                let pair = Int(posting.pair)
                if nonNegative[pair] && balance[pair] < 0 {
                    let names = pairs[pair]
                    return refuse(
                        .wouldGoNegative,
                        "\(accounts[Int(names.account)].name) would go below zero in \(assets[Int(names.asset)].code)"
                    )
                }
                if !touched[pair] {
                    touched[pair] = true
                    let asset = Int(pairs[pair].asset)
                    if knownScale[asset] == nil {
                        knownScale[asset] = assets[asset].scale
                        newAssets.append((assets[asset].code, assets[asset].scale))
                    }
                }
            }
        }
        let rows = keys.indices.filter { touched[$0] }
            .sorted { keys[$0] < keys[$1] }
            .map { pair in
                LedgerBalanceRecord(
                    account: keys[pair].account,
                    asset: keys[pair].asset,
                    scale: assets[Int(pairs[pair].asset)].scale,
                    balance: balance[pair]
                )
            }
        return .success(SettlementBlockPlan(balances: rows, newAssets: newAssets))
    }
}

// MARK: - Stored blocks and reads

/// A block as stored: the posting sequence of its first entry (its entries take `firstSeq`,
/// `firstSeq + 1`, …) and when it was posted.
public struct StoredSettlementBlock: Sendable, Hashable {
    public var firstSeq: Int64
    public var postedAt: Int64
    public var block: SettlementBlock

    public init(firstSeq: Int64, postedAt: Int64, block: SettlementBlock) {
        self.firstSeq = firstSeq
        self.postedAt = postedAt
        self.block = block
    }

    public var lastSeq: Int64 { firstSeq + Int64(block.count) - 1 }

    public func entry(at index: Int) -> StoredLedgerEntry {
        StoredLedgerEntry(seq: firstSeq + Int64(index), postedAt: postedAt, entry: block.record(at: index))
    }

    /// A row of `ledger_trade_blocks` read back: the body must hash to `contentHash` and decode, and agree
    /// with the row's other columns; else the error names the row (a damaged or edited database).
    public static func decode(
        firstSeq: Int64,
        consumer: String,
        entryCount: Int64,
        postedAt: Int64,
        contentHash: [UInt8],
        body: [UInt8],
        store: String
    ) throws(CastleError) -> StoredSettlementBlock {
        guard SettlementBlock.contentHash(body) == contentHash, let block = SettlementBlock.decode(body),
            block.consumer == consumer, Int64(block.count) == entryCount, !block.isEmpty
        else {
            throw CastleError(
                .dataError,
                "\(store): ledger_trade_blocks row first_seq \(firstSeq) (consumer \(consumer)) is damaged: "
                    + "its body does not match its hash or columns"
            )
        }
        return StoredSettlementBlock(firstSeq: firstSeq, postedAt: postedAt, block: block)
    }
}

/// Merges a read of stored entries with the settlement blocks between them, in posting order
/// (``LedgerStore/readLedgerEntries(_:)``): the backend reads up to `query.limit` entry rows after
/// `query.afterSeq` with the query's filters, then hands over the blocks that may hold entries after
/// `query.afterSeq` (and, with a `ts` range, entries within it), in `firstSeq` order, one at a time while
/// ``add(_:)`` wants more. Blocks hold no entry with a `ref`, so a query by `ref` reads none.
public struct LedgerEntryMerge: Sendable {
    private let query: LedgerEntryQuery
    private var rows: [StoredLedgerEntry]
    private var nextRow = 0
    private var result: [StoredLedgerEntry] = []

    public init(query: LedgerEntryQuery, rows: [StoredLedgerEntry]) {
        self.query = query
        self.rows = rows
    }

    /// Whether blocks can add anything (false for a query by `ref`).
    public var wantsBlocks: Bool { query.ref == nil && query.limit > 0 }

    /// Adds a block's entries after the rows before it; false once the result is full.
    public mutating func add(_ stored: StoredSettlementBlock) -> Bool {
        takeRows(before: stored.firstSeq)
        guard result.count < query.limit else { return false }
        for index in 0..<stored.block.count where stored.firstSeq + Int64(index) > query.afterSeq {
            if let ts = query.ts, !ts.contains(stored.block.trades[index].ts) { continue }
            result.append(stored.entry(at: index))
            if result.count == query.limit { return false }
        }
        return true
    }

    public mutating func finish() -> [StoredLedgerEntry] {
        takeRows(before: .max)
        return result
    }

    private mutating func takeRows(before seq: Int64) {
        while nextRow < rows.count, rows[nextRow].seq < seq, result.count < query.limit {
            result.append(rows[nextRow])
            nextRow += 1
        }
    }
}
