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

extension FeedEvent {
    /// The engine's event (contract 1.1) with the `seq` its writer gave it.
    public init(seq: UInt64, event: Event) {
        switch event {
        case .accepted(let id, let symbol, let side, let type, let tif, let price, let qty, let account, let ts):
            self.init(
                seq: seq,
                kind: .accepted(
                    id: id,
                    symbol: symbol,
                    side: side,
                    type: type,
                    tif: tif,
                    price: price,
                    qty: qty,
                    account: account
                ),
                ts: ts
            )
        case .trade(let trade, let ts):
            self.init(seq: seq, kind: .trade(trade), ts: ts)
        case .canceled(let id, let symbol, let side, let price, let qty, let reason, let ts):
            self.init(
                seq: seq,
                kind: .canceled(id: id, symbol: symbol, side: side, price: price, qty: qty, reason: reason),
                ts: ts
            )
        case .amended(let id, let symbol, let side, let price, let qty, let prevPrice, let prevQty, let kept, let ts):
            self.init(
                seq: seq,
                kind: .amended(
                    id: id,
                    symbol: symbol,
                    side: side,
                    price: price,
                    qty: qty,
                    prevPrice: prevPrice,
                    prevQty: prevQty,
                    priorityKept: kept
                ),
                ts: ts
            )
        case .rejected(let op, let id, let reason, _, _, let ts):
            self.init(seq: seq, kind: .rejected(op: op, id: id, reason: reason), ts: ts)
        }
    }
}
