/// The rows that cross the storage seam. Prices and quantities are integers in the instrument's units;
/// order ids are unsigned 64-bit and stored as their signed bit pattern where SQL has no unsigned type.

/// One command of an order stream as ingested: its line in the source, the symbol it belongs to (the
/// partition key; for a cancel or an amend, the symbol of the order it names), and the contract's NDJSON.
public struct OrderRow: Sendable, Hashable {
    public var line: Int64
    public var symbol: String
    public var body: String

    public init(line: Int64, symbol: String, body: String) {
        self.line = line
        self.symbol = symbol
        self.body = body
    }
}

/// A message of a ``MessageQueue``. `id` is its offset: dense per queue, increasing in the
/// order of enqueue, so a consumer that applies messages in `id` order applies them in stream order.
public struct QueueMessage: Sendable, Hashable {
    public var id: Int64
    public var source: String
    public var line: Int64
    public var symbol: String
    public var body: String
    /// Deliveries counted so far: one each time an owner died with it in flight
    /// (``MessageQueue/recoverInFlight(partition:after:maxAttempts:)``).
    public var attempts: Int

    public init(id: Int64, source: String, line: Int64, symbol: String, body: String, attempts: Int) {
        self.id = id
        self.source = source
        self.line = line
        self.symbol = symbol
        self.body = body
        self.attempts = attempts
    }
}

/// A message that failed `attempts` times, parked with the last error.
public struct DeadLetter: Sendable, Hashable {
    public var id: Int64
    public var source: String
    public var line: Int64
    public var body: String
    public var attempts: Int
    public var error: String

    public init(id: Int64, source: String, line: Int64, body: String, attempts: Int, error: String) {
        self.id = id
        self.source = source
        self.line = line
        self.body = body
        self.attempts = attempts
        self.error = error
    }
}

/// One of `count` disjoint slices of the symbols, by a stable hash of the symbol name.
public struct Partition: Sendable, Hashable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public static let whole = Partition(index: 0, count: 1)

    public init(index: Int, count: Int) {
        precondition(count >= 1 && index >= 0 && index < count, "partition \(index)/\(count)")
        self.index = index
        self.count = count
    }

    /// `K/N` with 0 ≤ K < N.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count >= 1, count <= 1024,
            index >= 0, index < count
        else { return nil }
        self.init(index: index, count: count)
    }

    public var description: String { "\(index)/\(count)" }

    public func contains(symbol: String) -> Bool { Int(Self.shard(of: symbol)) % count == index }

    /// FNV-1a over the UTF-8 bytes, folded to 31 bits so every SQL dialect stores and divides it alike.
    public static func shard(of symbol: String) -> Int64 {
        var hash: UInt32 = 2_166_136_261
        for byte in symbol.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return Int64(hash & 0x7fff_ffff)
    }
}

/// A run of the matcher's events, as the contract's NDJSON lines (`seq` included), `firstSeq...lastSeq`.
/// The log is stored in such segments, one per committed batch, rather than a row an event.
public struct EventSegment: Sendable, Hashable {
    public var firstSeq: Int64
    public var lastSeq: Int64
    public var body: [UInt8]

    public init(firstSeq: Int64, lastSeq: Int64, body: [UInt8]) {
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.body = body
    }
}

public struct TradeRow: Sendable, Hashable {
    /// The `seq` of the trade event.
    public var seq: Int64
    public var symbol: String
    public var price: Int64
    public var qty: Int64
    public var maker: UInt64
    public var taker: UInt64
    /// The taker's side: `buy` or `sell`.
    public var side: String
    public var ts: Int64?
    /// The accounts the maker's and the taker's orders named (nil when an order named none, or for a trade
    /// stored before migration 0005): `castle ledger settle` books the trade to them.
    public var makerAccount: String?
    public var takerAccount: String?

    public init(
        seq: Int64,
        symbol: String,
        price: Int64,
        qty: Int64,
        maker: UInt64,
        taker: UInt64,
        side: String,
        ts: Int64?,
        makerAccount: String? = nil,
        takerAccount: String? = nil
    ) {
        self.seq = seq
        self.symbol = symbol
        self.price = price
        self.qty = qty
        self.maker = maker
        self.taker = taker
        self.side = side
        self.ts = ts
        self.makerAccount = makerAccount
        self.takerAccount = takerAccount
    }
}

/// A resting order, enough to put it back in its book. `priority` orders the orders of one price level:
/// it is the queue offset of the message that last placed the order (its `new`, or an amend that lost
/// its place), so restoring a book in `priority` order restores time priority exactly.
public struct RestingOrderRow: Sendable, Hashable {
    public var id: UInt64
    public var symbol: String
    /// `Side.rawValue`.
    public var side: UInt8
    public var price: Int64
    public var qty: Int64
    /// Empty for an order that named no account.
    public var account: String
    public var postOnly: Bool
    /// `STPMode.rawValue`.
    public var stp: UInt8
    public var priority: Int64

    public init(
        id: UInt64,
        symbol: String,
        side: UInt8,
        price: Int64,
        qty: Int64,
        account: String,
        postOnly: Bool,
        stp: UInt8,
        priority: Int64
    ) {
        self.id = id
        self.symbol = symbol
        self.side = side
        self.price = price
        self.qty = qty
        self.account = account
        self.postOnly = postOnly
        self.stp = stp
        self.priority = priority
    }
}

/// Where a matcher consumer stands: the last queue offset it applied, the last event `seq` it wrote,
/// and its resting orders.
public struct MatcherState: Sendable, Hashable {
    public var offset: Int64
    public var lastSeq: Int64
    public var orders: [RestingOrderRow]

    public init(offset: Int64 = 0, lastSeq: Int64 = 0, orders: [RestingOrderRow] = []) {
        self.offset = offset
        self.lastSeq = lastSeq
        self.orders = orders
    }
}

/// What one batch of the matcher changes, written in one transaction: its events, its trades, the
/// orders it touched (upserted or deleted), and the consumer's new offset and last `seq`.
public struct MatchCommit: Sendable, Hashable {
    public var consumer: String
    public var offset: Int64
    public var lastSeq: Int64
    public var events: EventSegment?
    public var trades: [TradeRow]
    public var upserts: [RestingOrderRow]
    public var deletes: [UInt64]

    public init(
        consumer: String,
        offset: Int64,
        lastSeq: Int64,
        events: EventSegment?,
        trades: [TradeRow] = [],
        upserts: [RestingOrderRow] = [],
        deletes: [UInt64] = []
    ) {
        self.consumer = consumer
        self.offset = offset
        self.lastSeq = lastSeq
        self.events = events
        self.trades = trades
        self.upserts = upserts
        self.deletes = deletes
    }
}

/// A dataset in the store: a named order stream, usually a market day.
public struct DatasetInfo: Sendable, Hashable {
    public var name: String
    public var rows: Int64

    public init(name: String, rows: Int64) {
        self.name = name
        self.rows = rows
    }
}
