/// A trade: always at the resting (maker) order's price. Price and quantity are in the instrument's units.
public struct Trade: Sendable, Hashable {
    public var symbol: SymbolID
    public var price: Int64
    public var qty: Int64
    public var maker: OrderID
    public var taker: OrderID
    /// The taker's side.
    public var side: Side
    public var makerAccount: AccountID
    public var takerAccount: AccountID

    public init(
        symbol: SymbolID,
        price: Int64,
        qty: Int64,
        maker: OrderID,
        taker: OrderID,
        side: Side,
        makerAccount: AccountID,
        takerAccount: AccountID
    ) {
        self.symbol = symbol
        self.price = price
        self.qty = qty
        self.maker = maker
        self.taker = taker
        self.side = side
        self.makerAccount = makerAccount
        self.takerAccount = takerAccount
    }
}

/// What the engine did, in the order it happened. Prices and quantities are integers in the units of
/// the symbol's instrument; `seq` is assigned by whoever writes or stores the stream.
/// A trivial value type (no references), so arrays of events are reused without allocation.
///
/// Contract 1.1 (spec/match.md): every event that changes the book carries what a consumer of the
/// stream alone needs to keep it (side, price, quantities), so the market-data fan-out and other
/// downstream readers never need the commands.
public enum Event: Sendable, Hashable {
    /// `price` is nil for a market order; `qty` is the quantity as submitted; `account` is
    /// ``AccountID/none`` when the order named none.
    case accepted(
        id: OrderID,
        symbol: SymbolID,
        side: Side,
        type: OrderType,
        tif: TimeInForce,
        price: Int64?,
        qty: Int64,
        account: AccountID,
        ts: Timestamp?
    )
    case trade(Trade, ts: Timestamp?)
    /// `qty` is what was left; `price` is the order's limit (nil for a market order).
    case canceled(
        id: OrderID,
        symbol: SymbolID,
        side: Side,
        price: Int64?,
        qty: Int64,
        reason: CancelReason,
        ts: Timestamp?
    )
    /// `price` and `qty` are the new limit and remaining quantity; `prevPrice` and `prevQty` what the
    /// resting order had; `keptPriority` is true for a same-price decrease, which keeps its place.
    case amended(
        id: OrderID,
        symbol: SymbolID,
        side: Side,
        price: Int64,
        qty: Int64,
        prevPrice: Int64,
        prevQty: Int64,
        keptPriority: Bool,
        ts: Timestamp?
    )
    /// `op` and `id` where they could be read.
    case rejected(op: Op?, id: OrderID?, reason: RejectReason, detail: RejectDetail, line: Int, ts: Timestamp?)
}
