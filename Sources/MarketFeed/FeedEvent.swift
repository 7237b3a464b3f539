public import CastleCore

/// One event of the contract's version 1.1 (`spec/match.md`), as the fan-out reads it: enough to keep
/// every book from the event stream alone, whether the matcher runs in this process or elsewhere.
/// Prices and quantities are integers in the units of the symbol's instrument.
public struct FeedEvent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// `price` is nil for a market order; `qty` is as submitted.
        case accepted(
            id: OrderID,
            symbol: SymbolID,
            side: Side,
            type: OrderType,
            tif: TimeInForce,
            price: Int64?,
            qty: Int64,
            account: AccountID
        )
        case trade(Trade)
        /// `qty` is what was left; `price` is nil for a market order.
        case canceled(id: OrderID, symbol: SymbolID, side: Side, price: Int64?, qty: Int64, reason: CancelReason)
        /// `priorityKept`: a same-price decrease; otherwise the order left the book and came back as a
        /// taker at `price` (it may trade in the events that follow).
        case amended(
            id: OrderID,
            symbol: SymbolID,
            side: Side,
            price: Int64,
            qty: Int64,
            prevPrice: Int64,
            prevQty: Int64,
            priorityKept: Bool
        )
        /// Changes no book; carried so that `seq` stays dense for consumers that count.
        case rejected(op: Op?, id: OrderID?, reason: RejectReason)
    }

    /// The contract's `seq`: dense from 1 across the whole event stream.
    public var seq: UInt64
    public var kind: Kind
    public var ts: Timestamp?

    public init(seq: UInt64, kind: Kind, ts: Timestamp? = nil) {
        self.seq = seq
        self.kind = kind
        self.ts = ts
    }

    /// The symbol whose book or tape the event concerns; nil for a rejection.
    public var symbol: SymbolID? {
        switch kind {
        case .accepted(_, let symbol, _, _, _, _, _, _): symbol
        case .trade(let trade): trade.symbol
        case .canceled(_, let symbol, _, _, _, _): symbol
        case .amended(_, let symbol, _, _, _, _, _, _): symbol
        case .rejected: nil
        }
    }
}
