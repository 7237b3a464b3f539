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
public enum Event: Sendable, Hashable {
    case accepted(id: OrderID, symbol: SymbolID, side: Side, ts: Timestamp?)
    case trade(Trade, ts: Timestamp?)
    /// `qty` is what was left; `symbol` lets writers format it.
    case canceled(id: OrderID, symbol: SymbolID, qty: Int64, reason: CancelReason, ts: Timestamp?)
    case amended(id: OrderID, symbol: SymbolID, price: Int64, qty: Int64, ts: Timestamp?)
    /// `op` and `id` where they could be read.
    case rejected(op: Op?, id: OrderID?, reason: RejectReason, detail: RejectDetail, line: Int, ts: Timestamp?)
}
