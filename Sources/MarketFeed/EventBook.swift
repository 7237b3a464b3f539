public import CastleCore

/// Every book, kept from 1.1 events alone (no commands, no matching): the state behind the `book`
/// channel's snapshots and deltas, and the owner of each live order for the `orders` channel.
///
/// An order rests exactly when it was accepted as a limit `gtc` or `post_only` and was not finished by
/// the trades and cancels of the same command (match.md, 1.1). So an accepted order, or an order amended
/// with priority lost, is held as the *incoming* order while the trades and cancels of its command
/// arrive, and rests (with what is left) when the next command's first event, or the end of the batch,
/// comes. The book is never seen crossed.
public struct EventBooks: Sendable {
    public struct Order: Sendable, Hashable {
        public var symbol: SymbolID
        public var side: Side
        public var price: Int64
        public var qty: Int64
        public var account: AccountID
    }

    /// One symbol's levels: price → total resting quantity (Int128: orders that each fit Int64 can sum past it).
    public struct Book: Sendable, Hashable {
        public var bids: [Int64: Int128] = [:]
        public var asks: [Int64: Int128] = [:]
        /// The `seq` of the last event that changed this book (0: never changed).
        public var seq: UInt64 = 0

        /// Levels best first: bids high to low, asks low to high.
        public func levels(_ side: Side, depth: Int = .max) -> [(price: Int64, qty: Int128)] {
            let sideLevels = side == .buy ? bids : asks
            let sorted = sideLevels.sorted { side == .buy ? $0.key > $1.key : $0.key < $1.key }
            return sorted.prefix(depth).map { (price: $0.key, qty: $0.value) }
        }

        public func qty(_ side: Side, at price: Int64) -> Int128 {
            (side == .buy ? bids[price] : asks[price]) ?? 0
        }

        fileprivate mutating func add(_ side: Side, _ price: Int64, _ delta: Int128) {
            if side == .buy {
                let total = (bids[price] ?? 0) + delta
                bids[price] = total == 0 ? nil : total
            } else {
                let total = (asks[price] ?? 0) + delta
                asks[price] = total == 0 ? nil : total
            }
        }
    }

    /// A level whose total changed, for a delta.
    public struct LevelChange: Sendable, Hashable {
        public var symbol: SymbolID
        public var side: Side
        public var price: Int64
    }

    /// The order of the command being applied, until its command ends.
    private struct Incoming {
        var id: OrderID
        var order: Order
        var rests: Bool
        /// The last event of its command so far: the `seq` its resting changes the book at.
        var seq: UInt64
    }

    public private(set) var books: [SymbolID: Book] = [:]
    /// Resting orders by id.
    public private(set) var orders: [OrderID: Order] = [:]
    private var incoming: Incoming?
    /// Levels touched since the last ``takeChanges()``, in first-touched order, without repeats.
    private var changed: [LevelChange] = []
    private var changedSet: Set<LevelChange> = []

    public init() {}

    /// The account that owns `id`, while it rests or is the incoming order.
    public func account(of id: OrderID) -> AccountID? {
        if let incoming, incoming.id == id { return incoming.order.account }
        return orders[id]?.account
    }

    /// Applies one event. Trades and cancels belong to the command under way; an `accepted`, `amended`
    /// or `rejected` starts the next one. Call ``endCommand()`` when a batch of events ends.
    public mutating func apply(_ event: FeedEvent) {
        switch event.kind {
        case .accepted(let id, let symbol, let side, let type, let tif, let price, let qty, let account):
            endCommand()
            incoming = Incoming(
                id: id,
                order: Order(symbol: symbol, side: side, price: price ?? 0, qty: qty, account: account),
                rests: type == .limit && (tif == .gtc || tif == .postOnly) && price != nil,
                seq: event.seq
            )
        case .trade(let trade):
            if var current = incoming, current.id == trade.taker {
                current.order.qty -= trade.qty
                current.seq = event.seq
                incoming = current
            }
            reduce(trade.maker, by: trade.qty, seq: event.seq)
        case .canceled(let id, _, _, _, _, _):
            if let current = incoming, current.id == id {
                incoming = nil
            } else if let order = orders[id] {
                // A user cancel, or a maker cancelled by self-trade prevention while the taker goes on.
                reduce(id, by: order.qty, seq: event.seq)
            }
        case .amended(let id, let symbol, let side, let price, let qty, _, _, let priorityKept):
            endCommand()
            guard let order = orders[id] else { return }
            if priorityKept {
                reduce(id, by: order.qty - qty, seq: event.seq)
            } else {
                reduce(id, by: order.qty, seq: event.seq)
                incoming = Incoming(
                    id: id,
                    order: Order(symbol: symbol, side: side, price: price, qty: qty, account: order.account),
                    rests: true,
                    seq: event.seq
                )
            }
        case .rejected:
            endCommand()
        }
    }

    /// Rests what is left of the incoming order, if it rests: its command is over.
    public mutating func endCommand() {
        guard let current = incoming else { return }
        incoming = nil
        guard current.rests, current.order.qty > 0 else { return }
        orders[current.id] = current.order
        change(
            current.order.symbol,
            current.order.side,
            current.order.price,
            by: Int128(current.order.qty),
            seq: current.seq
        )
    }

    /// The levels changed since the last call, and forgets them.
    public mutating func takeChanges() -> [LevelChange] {
        defer {
            changed.removeAll(keepingCapacity: true)
            changedSet.removeAll(keepingCapacity: true)
        }
        return changed
    }

    private mutating func reduce(_ id: OrderID, by qty: Int64, seq: UInt64) {
        guard var order = orders[id], qty != 0 else { return }
        let taken = min(qty, order.qty)
        order.qty -= taken
        orders[id] = order.qty > 0 ? order : nil
        change(order.symbol, order.side, order.price, by: -Int128(taken), seq: seq)
    }

    private mutating func change(_ symbol: SymbolID, _ side: Side, _ price: Int64, by delta: Int128, seq: UInt64) {
        books[symbol, default: Book()].add(side, price, delta)
        books[symbol]!.seq = max(books[symbol]!.seq, seq)
        let level = LevelChange(symbol: symbol, side: side, price: price)
        if changedSet.insert(level).inserted { changed.append(level) }
    }
}
