/// One command of the order stream, as read from the wire: symbols and accounts interned, prices and
/// quantities still exact decimals. The ``MatchingEngine`` validates it against the instrument.
public struct Command: Sendable, Hashable {
    public var op: Op
    public var id: OrderID
    public var symbol: SymbolID
    public var side: Side
    public var type: OrderType
    public var tif: TimeInForce
    /// Nil: the engine's default mode.
    public var stp: STPMode?
    public var account: AccountID
    /// For `new` limit orders and optionally for `amend`.
    public var price: FixedDecimal?
    /// For `new`; for `amend` the new remaining quantity.
    public var qty: FixedDecimal?
    public var ts: Timestamp?
    /// 1-based line of the input this came from; 0 when not read from a file.
    public var line: Int

    public init(
        op: Op,
        id: OrderID,
        symbol: SymbolID = 0,
        side: Side = .buy,
        type: OrderType = .limit,
        tif: TimeInForce = .gtc,
        stp: STPMode? = nil,
        account: AccountID = .none,
        price: FixedDecimal? = nil,
        qty: FixedDecimal? = nil,
        ts: Timestamp? = nil,
        line: Int = 0
    ) {
        self.op = op
        self.id = id
        self.symbol = symbol
        self.side = side
        self.type = type
        self.tif = tif
        self.stp = stp
        self.account = account
        self.price = price
        self.qty = qty
        self.ts = ts
        self.line = line
    }

    public static func new(
        id: OrderID,
        symbol: SymbolID,
        side: Side,
        price: FixedDecimal?,
        qty: FixedDecimal,
        type: OrderType = .limit,
        tif: TimeInForce = .gtc,
        account: AccountID = .none,
        stp: STPMode? = nil,
        ts: Timestamp? = nil,
        line: Int = 0
    ) -> Command {
        Command(
            op: .new,
            id: id,
            symbol: symbol,
            side: side,
            type: type,
            tif: tif,
            stp: stp,
            account: account,
            price: price,
            qty: qty,
            ts: ts,
            line: line
        )
    }

    public static func cancel(id: OrderID, ts: Timestamp? = nil, line: Int = 0) -> Command {
        Command(op: .cancel, id: id, ts: ts, line: line)
    }

    public static func amend(
        id: OrderID,
        price: FixedDecimal? = nil,
        qty: FixedDecimal? = nil,
        ts: Timestamp? = nil,
        line: Int = 0
    ) -> Command {
        Command(op: .amend, id: id, price: price, qty: qty, ts: ts, line: line)
    }
}
