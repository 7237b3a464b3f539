public import CastleCore

/// A resting order in the pool. Orders of one price level form a doubly linked FIFO through `prev`/`next`.
struct RestingOrder {
    var id: OrderID
    var qty: Int64
    var price: Int64
    var symbol: SymbolID
    var account: AccountID
    var prev: Int32
    var next: Int32
    var side: Side
    var postOnly: Bool
    var stp: STPMode
}

/// One price level: its FIFO of orders and their total quantity.
struct Level: LadderLevel {
    /// `price` for bids, `-price` for asks, so that on both sides a larger key is a better price.
    var key: Int64
    var head: Int32
    var tail: Int32
    /// Orders that are each valid can sum past Int64.max; Int128 cannot overflow on Int64 quantities.
    var total: Int128
}

/// One side of one symbol's book: levels sorted by key, ascending, so the best level is the last one and
/// the levels that change most often (near the touch) are the cheapest to insert and remove.
struct Ladder {
    var levels: ContiguousArray<Level> = []

    /// Index of the level with `key`, or where it would be inserted.
    @inline(__always)
    func search(_ key: Int64) -> (index: Int, found: Bool) { levels.searchLevel(key) }
}

/// A read-only view of one price level: its price and its orders in time priority.
public struct BookLevel: Sendable, Hashable {
    public var price: Int64
    public var orders: [BookOrder]

    public init(price: Int64, orders: [BookOrder]) {
        self.price = price
        self.orders = orders
    }

    public var totalQty: Int128 { orders.reduce(0) { $0 + Int128($1.qty) } }
}

public struct BookOrder: Sendable, Hashable {
    public var id: OrderID
    public var qty: Int64

    public init(id: OrderID, qty: Int64) {
        self.id = id
        self.qty = qty
    }
}

/// A live order as the engine holds it.
public struct LiveOrder: Sendable, Hashable {
    public var id: OrderID
    public var symbol: SymbolID
    public var side: Side
    public var price: Int64
    public var qty: Int64
    public var account: AccountID
    /// A post-only order stays post-only when an amend reinserts it.
    public var postOnly: Bool
    /// The order's self-trade prevention mode, kept for an amend that reinserts it.
    public var stp: STPMode

    public init(
        id: OrderID,
        symbol: SymbolID,
        side: Side,
        price: Int64,
        qty: Int64,
        account: AccountID,
        postOnly: Bool,
        stp: STPMode
    ) {
        self.id = id
        self.symbol = symbol
        self.side = side
        self.price = price
        self.qty = qty
        self.account = account
        self.postOnly = postOnly
        self.stp = stp
    }
}
