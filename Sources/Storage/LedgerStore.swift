public import CastleSupport
import Crypto

/// The double-entry ledger as the store keeps it: entries under unique idempotency keys, their postings,
/// the balances they project, and a settlement watermark per consumer. The seam speaks plain records:
/// Storage does not import the `Ledger` module, which validates entries (their own rules, balance per
/// asset) before they get here. What needs the stored ledger is the store's to check, inside the write
/// transaction: the key (same content: a no-op; other content: refused, naming the key), an asset's one
/// scale, a reversal's target, and that no account flagged as non-negative goes below zero after any
/// entry.
///
/// Every backend (memory, SQLite, PostgreSQL) implements it beside ``Store``; the ledger conformance
/// checks in CastleTesting hold them to the same answers.
public protocol LedgerStore: AnyObject, Sendable {
    /// Posts `entries` in order, in one transaction, all or nothing: each is either new (recorded, with the
    /// next posting sequence and `postedAt`, its postings added to the balances) or already posted with the
    /// same content hash (a no-op). The first entry the store refuses rolls the whole batch back and comes
    /// back as ``LedgerPostOutcome/refused(_:)``; nothing of the batch is stored then.
    ///
    /// With `watermark`, the consumer's settlement watermark moves from `watermark.previous` to
    /// `watermark.next` in the same transaction (so a settle killed mid-run and run again settles each
    /// trade once). When the stored watermark is not `previous` (0 for a new consumer) nothing is written
    /// and the call throws a ``CastleError/Kind/temporaryFailure`` (75): another settle moved it.
    func postLedgerEntries(
        _ entries: [LedgerEntryRecord],
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance?
    ) async throws(CastleError) -> LedgerPostOutcome

    /// Posts a settlement's entries as ``postLedgerEntries(_:postedAt:watermark:)`` posts
    /// `block.records()`, with the same checks, outcome and watermark move, stored as one row
    /// (``SettlementBlock``). When any of the block's keys is stored already (an entry posted by hand, an
    /// earlier block), the store posts the records one by one instead, in the same transaction, so that
    /// those keys are no-ops or refusals exactly as there.
    func postSettlementBlock(
        _ block: SettlementBlock,
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance
    ) async throws(CastleError) -> LedgerPostOutcome

    /// Stored entries in posting order (`seq`), with `seq > query.afterSeq`, at most `query.limit`, and
    /// only those with `ts` in `query.ts` and `ref == query.ref` when these are given. Page by passing the
    /// last `seq` read as the next `afterSeq`.
    func readLedgerEntries(_ query: LedgerEntryQuery) async throws(CastleError) -> [StoredLedgerEntry]

    /// The stored projection, sorted by account then asset, of one account and/or one asset code when given.
    func ledgerBalances(account: String?, asset: String?) async throws(CastleError) -> [LedgerBalanceRecord]

    /// The balances recomputed from the stored postings (not from the projection), sorted like
    /// ``ledgerBalances(account:asset:)``: `castle ledger verify` compares the two.
    func recomputedLedgerBalances() async throws(CastleError) -> [LedgerBalanceRecord]

    /// The last trade `seq` the consumer's settlement covers (0 when it has settled nothing).
    func settlementWatermark(consumer: String) async throws(CastleError) -> Int64

    /// Makes this process the only settler of `consumer` until the lock is released or the process ends,
    /// however it ends; nil when another process holds it (`castle ledger settle` then exits 75).
    func acquireSettlementLock(consumer: String) async throws(CastleError) -> (any PartitionLock)?
}

/// One leg of an entry: `amount` minor units (`10^-scale` of the asset) to `account`, negative from it.
public struct LedgerPostingRecord: Sendable, Hashable {
    /// `KIND:OWNER`.
    public var account: String
    /// The asset code.
    public var asset: String
    /// The asset's decimals; one scale per asset code in a store.
    public var scale: UInt8
    public var amount: Int64
    /// False for an account whose kind may not go below zero (`available`, `held`, `fees`): the Ledger
    /// module knows the kinds, the store enforces what it is told. Stored with the posting.
    public var mayGoNegative: Bool

    public init(account: String, asset: String, scale: UInt8, amount: Int64, mayGoNegative: Bool) {
        self.account = account
        self.asset = asset
        self.scale = scale
        self.amount = amount
        self.mayGoNegative = mayGoNegative
    }
}

/// An entry as it crosses the seam: the fields of the ledger contract (`shared/spec/ledger.md`), kind as
/// its name. Two records are the same content exactly when their ``contentHash`` is equal.
///
/// A producer may compute the hash and the stored postings text ahead (``seal()``, on its own thread) so
/// that the store's write transaction does not; changing a field drops what was computed from it.
public struct LedgerEntryRecord: Sendable, Hashable {
    public var key: String { didSet { sealedHash = nil } }
    public var kind: String { didSet { sealedHash = nil } }
    /// Business time, nanoseconds since the epoch.
    public var ts: Int64 { didSet { sealedHash = nil } }
    public var ref: String? { didSet { sealedHash = nil } }
    public var reverses: String? { didSet { sealedHash = nil } }
    public var memo: String? { didSet { sealedHash = nil } }
    public var postings: [LedgerPostingRecord] {
        didSet {
            sealedHash = nil
            sealedPostingsText = nil
        }
    }
    /// ``contentHash`` computed ahead, or nil.
    private var sealedHash: [UInt8]?
    /// ``postingsText`` computed ahead, or nil.
    private var sealedPostingsText: [UInt8]?

    public init(
        key: String,
        kind: String,
        ts: Int64,
        ref: String? = nil,
        reverses: String? = nil,
        memo: String? = nil,
        postings: [LedgerPostingRecord]
    ) {
        self.key = key
        self.kind = kind
        self.ts = ts
        self.ref = ref
        self.reverses = reverses
        self.memo = memo
        self.postings = postings
    }

    /// SHA-256 of the entry's canonical content: every field, postings in order, each text as its UTF-8
    /// bytes with a length prefix (so no two different entries share a serialization). Stored with the
    /// entry, so "same key, other content" is decided by comparing 32 bytes in the database. Strings are
    /// compared as bytes here: a key or memo in another Unicode normalisation is other content.
    public var contentHash: [UInt8] { sealedHash ?? computedContentHash }

    /// The postings as the SQL backends store them (``LedgerPostingsText``), UTF-8.
    public var postingsText: [UInt8] {
        if let sealedPostingsText { return sealedPostingsText }
        var bytes: [UInt8] = []
        LedgerPostingsText.encode(postings, into: &bytes)
        return bytes
    }

    /// Computes ``contentHash`` and ``postingsText`` now and keeps them with the record (until a field
    /// they depend on changes).
    public mutating func seal() {
        sealedHash = computedContentHash
        sealedPostingsText = postingsText
    }

    /// Equal content: every field, not whether the hash was computed ahead.
    public static func == (a: LedgerEntryRecord, b: LedgerEntryRecord) -> Bool {
        a.key == b.key && a.kind == b.kind && a.ts == b.ts && a.ref == b.ref && a.reverses == b.reverses
            && a.memo == b.memo && a.postings == b.postings
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(key)
        hasher.combine(kind)
        hasher.combine(ts)
        hasher.combine(ref)
        hasher.combine(reverses)
        hasher.combine(memo)
        hasher.combine(postings)
    }

    private var computedContentHash: [UInt8] {
        // Written straight into one buffer of the exact size and hashed once: no intermediate arrays, and
        // no closure capturing the offset (a captured var is boxed and checked for exclusive access).
        func size(_ value: String?) -> Int { value.map { 9 + $0.utf8.count } ?? 1 }
        var count = size(key) + size(kind) + 8 + size(ref) + size(reverses) + size(memo) + 8
        for posting in postings { count += size(posting.account) + size(posting.asset) + 10 }
        let byteCount = count
        return withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 8) { buffer in
            var writer = ContentWriter(buffer: buffer)
            writer.text(key)
            writer.text(kind)
            writer.integer(ts)
            writer.text(ref)
            writer.text(reverses)
            writer.text(memo)
            writer.integer(Int64(postings.count))
            for posting in postings {
                writer.text(posting.account)
                writer.text(posting.asset)
                writer.byte(posting.scale)
                writer.integer(posting.amount)
                writer.byte(posting.mayGoNegative ? 1 : 0)
            }
            precondition(writer.offset == byteCount, "content hash: size computed and written differ")
            var sha = SHA256()
            sha.update(bufferPointer: UnsafeRawBufferPointer(buffer))
            return sha.finalize().withUnsafeBytes { Array($0) }
        }
    }
}

/// Writes ``LedgerEntryRecord/contentHash``'s serialization into a buffer of the exact size.
private struct ContentWriter {
    let buffer: UnsafeMutableRawBufferPointer
    var offset = 0

    mutating func integer(_ value: Int64) {
        buffer.storeBytes(of: value.littleEndian, toByteOffset: offset, as: Int64.self)
        offset += 8
    }

    mutating func byte(_ value: UInt8) {
        buffer[offset] = value
        offset += 1
    }

    mutating func text(_ value: String?) {
        guard let value else { return byte(0) }
        byte(1)
        integer(Int64(value.utf8.count))
        let copied = value.utf8.withContiguousStorageIfAvailable { utf8 in
            UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + utf8.count])
                .copyMemory(from: UnsafeRawBufferPointer(utf8))
            return utf8.count
        }
        if let copied {
            offset += copied
        } else {
            for unit in value.utf8 { byte(unit) }
        }
    }
}

/// An entry as stored: its posting sequence (1, 2, … in the order the store recorded entries) and when
/// it was posted (nanoseconds since the epoch, the caller's clock).
public struct StoredLedgerEntry: Sendable, Hashable {
    public var seq: Int64
    public var postedAt: Int64
    public var entry: LedgerEntryRecord

    public init(seq: Int64, postedAt: Int64, entry: LedgerEntryRecord) {
        self.seq = seq
        self.postedAt = postedAt
        self.entry = entry
    }
}

/// Which stored entries to read: see ``LedgerStore/readLedgerEntries(_:)``.
public struct LedgerEntryQuery: Sendable, Hashable {
    public var afterSeq: Int64
    public var limit: Int
    /// Business time, inclusive bounds.
    public var ts: ClosedRange<Int64>?
    public var ref: String?

    public init(afterSeq: Int64 = 0, limit: Int, ts: ClosedRange<Int64>? = nil, ref: String? = nil) {
        self.afterSeq = afterSeq
        self.limit = limit
        self.ts = ts
        self.ref = ref
    }
}

/// One balance of the projection: the sum of the amounts posted to (account, asset), in minor units.
public struct LedgerBalanceRecord: Sendable, Hashable {
    public var account: String
    public var asset: String
    public var scale: UInt8
    public var balance: Int128

    public init(account: String, asset: String, scale: UInt8, balance: Int128) {
        self.account = account
        self.asset = asset
        self.scale = scale
        self.balance = balance
    }
}

/// Moves a consumer's settlement watermark with the entries that settle its trades.
public struct LedgerWatermarkAdvance: Sendable, Hashable {
    public var consumer: String
    /// The watermark the settler read; the store refuses when it is no longer the stored one.
    public var previous: Int64
    public var next: Int64

    public init(consumer: String, previous: Int64, next: Int64) {
        self.consumer = consumer
        self.previous = previous
        self.next = next
    }

    /// Refuses (75) when the consumer's stored watermark is not where the settler read it.
    public func check(stored: Int64, store: String) throws(CastleError) {
        guard stored == previous else {
            throw LedgerStoreErrors.watermarkMoved(store: store, consumer: consumer, stored: stored, expected: previous)
        }
    }
}

/// What ``LedgerStore/postLedgerEntries(_:postedAt:watermark:)`` did with a batch.
public enum LedgerPostOutcome: Sendable, Hashable {
    /// Committed: `posted` entries were new, `alreadyPosted` were there with the same content.
    case committed(posted: Int, alreadyPosted: Int)
    /// Nothing was stored: the store refused the entry at `refusal.index`.
    case refused(LedgerRefusal)
}

/// Why the store refused an entry, TigerBeetle-style: a code and the entry it names.
public struct LedgerRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The key is posted with another content hash.
        case existsWithDifferentContent = "exists_with_different_content"
        /// After the entry, an account that may not go below zero would be.
        case wouldGoNegative = "would_go_negative"
        /// A reversal names a key that is not posted.
        case reversedEntryMissing = "reversed_entry_missing"
        /// The entry a reversal names has a reversal already.
        case alreadyReversed = "already_reversed"
        /// A reversal's postings are not the reversed entry's negated (as a multiset).
        case reversalMismatch = "reversal_mismatch"
        /// An asset code with another scale than the store knows it by, or a balance beyond Int128.
        case invalid
    }

    /// The entry's index in the batch.
    public var index: Int
    public var key: String
    public var code: Code
    /// What was wrong, for people: names the key, account and asset as the code needs.
    public var reason: String

    public init(index: Int, key: String, code: Code, reason: String) {
        self.index = index
        self.key = key
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code.rawValue): \(reason)" }
}
