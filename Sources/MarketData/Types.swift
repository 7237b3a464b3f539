public import CastleCore

/// One message of a recorded level-3 feed (LOBSTER's message file, or any venue's order-by-order
/// data), in integer units: `price` in units of the feed's price decimals, `size` in its lot units.
public struct L3Event: Sendable, Hashable {
    public enum Kind: UInt8, Sendable, Hashable, CaseIterable {
        /// A new visible limit order.
        case add = 1
        /// Partial cancellation: `size` leaves the order.
        case cancel = 2
        /// Total deletion of the order.
        case delete = 3
        /// Execution against a visible resting order: `size` traded at the order's price.
        case execute = 4
        /// Execution against hidden liquidity: a trade that leaves the visible book unchanged.
        case executeHidden = 5
        /// Cross trade (LOBSTER type 6); a trade that does not touch the book.
        case cross = 6
        /// Trading halt (`price` -1), quoting resumed (0) or trading resumed (1).
        case halt = 7
    }

    /// Nanoseconds since midnight of the trading day (LOBSTER's time column), or since the epoch.
    public var timeNs: Int64
    public var kind: Kind
    public var orderID: UInt64
    public var size: Int64
    public var price: Int64
    /// The resting order's side (for executions: the maker's side; the aggressor is the other side).
    public var side: Side
    /// 1-based line of the source file.
    public var line: Int

    public init(timeNs: Int64, kind: Kind, orderID: UInt64, size: Int64, price: Int64, side: Side, line: Int) {
        self.timeNs = timeNs
        self.kind = kind
        self.orderID = orderID
        self.size = size
        self.price = price
        self.side = side
        self.line = line
    }
}

/// One price level of an aggregated (level-2) view.
public struct L2Level: Sendable, Hashable {
    public var price: Int64
    /// Total quantity at the level; Int128 because orders that each fit Int64 can sum past it.
    public var qty: Int128

    public init(price: Int64, qty: Int128) {
        self.price = price
        self.qty = qty
    }
}

/// The top of a book at one moment: best level first on each side.
public struct L2Snapshot: Sendable, Hashable {
    public var timeNs: Int64
    public var bids: [L2Level]
    public var asks: [L2Level]

    public init(timeNs: Int64, bids: [L2Level], asks: [L2Level]) {
        self.timeNs = timeNs
        self.bids = bids
        self.asks = asks
    }
}

/// A trade as analytics see it: when, at what price, how much, and which side was the aggressor.
public struct TradePrint: Sendable, Hashable {
    public var timeNs: Int64
    public var price: Int64
    public var qty: Int64
    /// The taker's side (a buy-initiated trade executes a resting sell).
    public var aggressor: Side

    public init(timeNs: Int64, price: Int64, qty: Int64, aggressor: Side) {
        self.timeNs = timeNs
        self.price = price
        self.qty = qty
        self.aggressor = aggressor
    }
}
