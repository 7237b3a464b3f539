public import CastleCore

// A market-by-order book rebuilt from a recorded level-3 feed, without matching: the feed says what
// happened, the book only keeps account. It also knows that a recorded file is a window on a book:
// liquidity that rested before the file began ("anonymous" quantity), and, for LOBSTER files of depth N,
// levels beyond the N the file shows, whose messages the file leaves out (see `learn(from:)`).

/// Trading state announced by a halt message (LOBSTER type 7; its price column carries the state).
public enum L3HaltState: Int8, Sendable, Hashable {
    case halted = -1
    case quoting = 0
    case trading = 1
}

/// Something in an event the book could not take at face value. At most one is reported per event.
public enum L3Anomaly: Sendable, Hashable {
    /// The order id is not in the book, and the event's size was taken from the anonymous quantity at its
    /// price and side. The normal case for orders that rested before the file began, or that rested beyond
    /// the file's depth (their adds were never recorded).
    case attributedToPreexisting
    /// The order id is not in the book and the anonymous quantity at the event's price and side is smaller
    /// than the event's size: the book took what anonymous quantity there was, `unexplained` is the rest.
    case unknownOrder(unexplained: Int64)
    /// A cancel or execution larger than the order's remaining size was clamped to it; for a delete, the
    /// stated size differs from the remaining size (the order is removed anyway). `excess` is the stated
    /// size minus the remaining size (negative for a delete that stated less).
    case sizeExceedsOrder(excess: Int64)
    /// An add for an id that is live: the old order was removed and the new one added.
    case duplicateID
    /// The event's price or side differ from those of the order it names; the order's own were used.
    case orderMismatch
    /// Zero or negative size, or a halt whose state is not -1, 0 or 1: the event was ignored.
    case invalidEvent
}

/// What one event did.
public struct L3Outcome: Sendable, Hashable {
    /// For executions (visible or hidden) and crosses: the trade as the feed states it (the event's price
    /// and size), the aggressor being the side opposite to the resting order's.
    public var trade: TradePrint?
    public var anomaly: L3Anomaly?
    /// For halt messages: the state they announce.
    public var halt: L3HaltState?

    public init(trade: TradePrint? = nil, anomaly: L3Anomaly? = nil, halt: L3HaltState? = nil) {
        self.trade = trade
        self.anomaly = anomaly
        self.halt = halt
    }
}

/// How much of one side the last row given to ``L3Book/learn(from:)`` showed.
public enum L3View: Sendable, Hashable {
    /// No row yet.
    case unknown
    /// The row had fewer levels than the file's depth on this side, so it showed the whole side.
    case whole
    /// The row was full: it showed every level from the best down to this price, and nothing beyond.
    case through(Int64)

    /// Whether a level at `price` on `side` was inside the view. An unknown view contains every price.
    @inlinable
    public func contains(_ price: Int64, side: Side) -> Bool {
        switch self {
        case .unknown, .whole: true
        case .through(let worst): side == .buy ? price >= worst : price <= worst
        }
    }
}

/// Running totals over everything applied to and learned by one book.
public struct L3Counters: Sendable, Hashable {
    public var events = 0
    public var trades = 0
    public var attributedToPreexisting = 0
    public var unknownOrders = 0
    public var sizeExceedsOrder = 0
    public var duplicateIDs = 0
    public var orderMismatches = 0
    public var invalidEvents = 0
    public var halts = 0
    /// Levels added from orderbook rows because they came into view (see ``L3Book/learn(from:)``).
    public var levelsLearned = 0
    /// Levels dropped because they left the view.
    public var levelsForgotten = 0
    /// Known orders in forgotten levels: later events that name them are attributed to anonymous quantity.
    public var ordersForgotten = 0

    public init() {}
}

/// A known order as the book holds it.
public struct L3Order: Sendable, Hashable {
    public var side: Side
    public var price: Int64
    public var remaining: Int64

    public init(side: Side, price: Int64, remaining: Int64) {
        self.side = side
        self.price = price
        self.remaining = remaining
    }
}

/// A market-by-order book without matching. Orders by id (side, price, remaining size); levels per side
/// with their total, which is the known orders' sizes plus an anonymous quantity: liquidity known to rest
/// at the price but not attributable to a known order. Reads give the best level first.
///
/// Every operation is total: no input traps (sizes and prices are checked; level totals are Int128).
/// Work per event is one probe of an open-addressing id table plus one binary search over one side's
/// levels (the touch is checked first), with no allocation once the table and level arrays have grown
/// to the live book. Memory follows the live book: empty levels and finished orders are removed at once;
/// orders of forgotten levels (see `learn(from:)`) are dropped lazily and swept when they outnumber the
/// live ones.
public struct L3Book: Sendable {
    struct Level: LadderLevel {
        /// `price` for bids, `~price` for asks (no overflow, unlike negation), so that on both sides a
        /// larger key is a better price; the array is ascending and the best level is the last one.
        var key: Int64
        var price: Int64
        var known: Int128
        var anonymous: Int128
        var orderCount: Int
        /// Unique per level instance: orders remember it, so that the orders of a level that was
        /// forgotten (and perhaps re-created later at the same price) are recognised as stale in O(1).
        var serial: UInt64

        var total: Int128 { known &+ anonymous }
    }

    /// Depth of the level-2 rows this book learns from (LOBSTER's level count); `Int.max` when rows show
    /// whole sides (or when the book never learns).
    public let viewDepth: Int
    public private(set) var haltState: L3HaltState = .trading
    public private(set) var counters = L3Counters()
    private var orders = L3OrderTable()
    private var bids: ContiguousArray<Level> = []
    private var asks: ContiguousArray<Level> = []
    private var bidView: L3View = .unknown
    private var askView: L3View = .unknown
    private var nextSerial: UInt64 = 1
    /// Entries in `orders` whose level was forgotten.
    private var staleOrders = 0

    /// Seeded and learned quantities are clamped to this, so that level totals never overflow Int128.
    public static let anonymousMax: Int128 = 1 << 120

    public init(viewDepth: Int = .max) {
        self.viewDepth = max(1, viewDepth)
    }

    // MARK: Reading

    /// Live known orders (anonymous liquidity is not counted).
    public var orderCount: Int { orders.count - staleOrders }

    public func levelCount(_ side: Side) -> Int { side == .buy ? bids.count : asks.count }

    /// The level at `index` from the best (0) on `side`, or nil beyond the last.
    public func level(_ side: Side, _ index: Int) -> L2Level? {
        side == .buy ? Self.level(bids, index) : Self.level(asks, index)
    }

    @inline(__always)
    private static func level(_ ladder: ContiguousArray<Level>, _ index: Int) -> L2Level? {
        guard index >= 0, index < ladder.count else { return nil }
        let level = ladder[ladder.count - 1 - index]
        return L2Level(price: level.price, qty: level.total)
    }

    public var bestBid: L2Level? { Self.level(bids, 0) }
    public var bestAsk: L2Level? { Self.level(asks, 0) }

    /// True when the best bid is at or above the best ask.
    public var isCrossed: Bool {
        guard let bid = bids.last, let ask = asks.last else { return false }
        return bid.price >= ask.price
    }

    /// The anonymous part of the level at `price` on `side` (0 when there is no level).
    public func anonymousQuantity(_ side: Side, at price: Int64) -> Int128 {
        let ladder = side == .buy ? bids : asks
        let (index, found) = Self.search(ladder, Self.key(price, side))
        return found ? ladder[index].anonymous : 0
    }

    /// The known order `id`, if it is live.
    public func order(_ id: UInt64) -> L3Order? {
        let slot = orders.find(id)
        guard slot >= 0 else { return nil }
        let entry = orders.entry(slot)
        guard liveLevel(entry) != nil else { return nil }
        return L3Order(side: entry.side, price: entry.price, remaining: entry.remaining)
    }

    /// What the last learned row showed of `side`.
    public func view(_ side: Side) -> L3View { side == .buy ? bidView : askView }

    /// The best `levels` levels of each side, best first.
    public func snapshot(levels: Int, timeNs: Int64) -> L2Snapshot {
        var result = L2Snapshot(timeNs: timeNs, bids: [], asks: [])
        snapshot(levels: levels, timeNs: timeNs, into: &result)
        return result
    }

    /// The same, into an existing snapshot whose arrays are reused: no allocation per event once they
    /// have grown to `levels`.
    public func snapshot(levels: Int, timeNs: Int64, into result: inout L2Snapshot) {
        func top(_ ladder: ContiguousArray<Level>, _ out: inout [L2Level]) {
            out.removeAll(keepingCapacity: true)
            let count = min(max(levels, 0), ladder.count)
            for offset in 0..<count {
                let level = ladder[ladder.count - 1 - offset]
                out.append(L2Level(price: level.price, qty: level.total))
            }
        }
        result.timeNs = timeNs
        top(bids, &result.bids)
        top(asks, &result.asks)
    }

    // MARK: Seeding and learning

    /// Sets the anonymous quantity of each given level to its quantity (clamped to 0...``anonymousMax``),
    /// creating the level when absent; known orders are untouched. Meant for the state before the first
    /// message (for LOBSTER: the first orderbook row with the first message undone, see
    /// ``L2Snapshot/reverting(_:)``). Does not change the view.
    public mutating func seed(_ snapshot: L2Snapshot) {
        for level in snapshot.bids { setAnonymous(.buy, level.price, level.qty) }
        for level in snapshot.asks { setAnonymous(.sell, level.price, level.qty) }
    }

    /// Learns from a level-2 row of depth ``viewDepth`` what the messages cannot tell: the levels that
    /// came into view from beyond the file's depth. Call it after every row, once the row's message has
    /// been applied (and the row compared, see ``BookVerification``). Returns the number of levels learned.
    ///
    /// A depth-N file records only the messages that touch its top N levels. So the book can vouch for a
    /// level only while it stays in view; the row says where the view ends. The rule, per side:
    ///
    /// 1. A row level is *newly visible* when its price lies beyond the view of the previous row: strictly
    ///    worse than the previous row's worst level when that row was full (N levels); never when that
    ///    row showed the whole side (fewer than N levels); always for the first row learned.
    /// 2. A newly visible level that the book does not hold is added, all of it as anonymous quantity.
    ///    A level the book holds is never changed, whatever its quantity: a level inside the previous
    ///    view is what the messages made of it, and overwriting it would make the next comparison
    ///    circular; the next row checks it instead.
    /// 3. The new view is this row's: up to its worst level when it is full, the whole side otherwise.
    /// 4. Levels strictly worse than the new view's worst level are forgotten with their known orders:
    ///    the file will not report what happens to them. When such a level comes back into view, rule 2
    ///    learns it afresh from the row, and events naming its old orders draw on that anonymous quantity
    ///    (``L3Anomaly/attributedToPreexisting``).
    @discardableResult
    public mutating func learn(from row: L2Snapshot) -> Int {
        learnSide(.buy, row.bids) + learnSide(.sell, row.asks)
    }

    private mutating func learnSide(_ side: Side, _ rowLevels: [L2Level]) -> Int {
        let previous = side == .buy ? bidView : askView
        var learned = 0
        // Rule 1: after a row that showed the whole side, every level must come from a message.
        if previous != .whole {
            for level in rowLevels where level.qty > 0 {
                // Inside the previous view: what the messages made of it stands (rule 2).
                if previous != .unknown, previous.contains(level.price, side: side) { continue }
                let (_, found) = Self.search(side == .buy ? bids : asks, Self.key(level.price, side))
                if found { continue }
                setAnonymous(side, level.price, level.qty)
                learned += 1
            }
        }
        let full = rowLevels.count >= viewDepth && !rowLevels.isEmpty
        let view: L3View = full ? .through(rowLevels[rowLevels.count - 1].price) : .whole
        if side == .buy { bidView = view } else { askView = view }
        if case .through(let worst) = view { forget(side, worseThan: worst) }
        counters.levelsLearned += learned
        return learned
    }

    /// Drops the levels strictly worse than `worst`: the lowest keys, at the front of the array.
    private mutating func forget(_ side: Side, worseThan worst: Int64) {
        let key = Self.key(worst, side)
        // Nothing to drop when the worst level held is inside the view: the usual case, checked first.
        guard let lowest = (side == .buy ? bids : asks).first, lowest.key < key else { return }
        let (boundary, _) = Self.search(side == .buy ? bids : asks, key)
        var forgottenOrders = 0
        if side == .buy {
            for index in 0..<boundary { forgottenOrders += bids[index].orderCount }
            bids.removeSubrange(0..<boundary)
        } else {
            for index in 0..<boundary { forgottenOrders += asks[index].orderCount }
            asks.removeSubrange(0..<boundary)
        }
        counters.levelsForgotten += boundary
        counters.ordersForgotten += forgottenOrders
        staleOrders += forgottenOrders
        // Amortised O(1) per forgotten order: sweep only when stale entries outnumber the live ones.
        if staleOrders > 1024, staleOrders > orders.count - staleOrders {
            let book = self
            orders.removeAll { book.liveLevel($0) == nil }
            staleOrders = 0
        }
    }

    private mutating func setAnonymous(_ side: Side, _ price: Int64, _ qty: Int128) {
        let amount = min(max(qty, 0), Self.anonymousMax)
        let key = Self.key(price, side)
        if side == .buy {
            Self.setAnonymous(&bids, key, price, amount, &nextSerial)
        } else {
            Self.setAnonymous(&asks, key, price, amount, &nextSerial)
        }
    }

    private static func setAnonymous(
        _ ladder: inout ContiguousArray<Level>,
        _ key: Int64,
        _ price: Int64,
        _ amount: Int128,
        _ serial: inout UInt64
    ) {
        let (index, found) = search(ladder, key)
        if found {
            ladder[index].anonymous = amount
            if ladder[index].total == 0 { ladder.remove(at: index) }
        } else if amount > 0 {
            ladder.insert(
                Level(key: key, price: price, known: 0, anonymous: amount, orderCount: 0, serial: serial),
                at: index
            )
            serial &+= 1
        }
    }

    // MARK: Events

    /// Applies one event. Never traps; what could not be taken at face value is reported in the outcome
    /// and counted in ``counters``.
    public mutating func apply(_ event: L3Event) -> L3Outcome {
        counters.events += 1
        var outcome = L3Outcome()
        switch event.kind {
        case .add:
            outcome.anomaly = add(event)
        case .cancel, .delete, .execute:
            if event.size <= 0 {
                outcome.anomaly = .invalidEvent
            } else {
                outcome.anomaly = reduce(event)
                if event.kind == .execute { outcome.trade = trade(event) }
            }
        case .executeHidden, .cross:
            if event.size <= 0 { outcome.anomaly = .invalidEvent } else { outcome.trade = trade(event) }
        case .halt:
            if let state = L3HaltState(rawValue: Int8(clamping: event.price)), Int64(state.rawValue) == event.price {
                haltState = state
                outcome.halt = state
                counters.halts += 1
            } else {
                outcome.anomaly = .invalidEvent
            }
        }
        if let anomaly = outcome.anomaly { count(anomaly) }
        if outcome.trade != nil { counters.trades += 1 }
        return outcome
    }

    private func trade(_ event: L3Event) -> TradePrint {
        TradePrint(timeNs: event.timeNs, price: event.price, qty: event.size, aggressor: event.side.opposite)
    }

    private mutating func count(_ anomaly: L3Anomaly) {
        switch anomaly {
        case .attributedToPreexisting: counters.attributedToPreexisting += 1
        case .unknownOrder: counters.unknownOrders += 1
        case .sizeExceedsOrder: counters.sizeExceedsOrder += 1
        case .duplicateID: counters.duplicateIDs += 1
        case .orderMismatch: counters.orderMismatches += 1
        case .invalidEvent: counters.invalidEvents += 1
        }
    }

    private mutating func add(_ event: L3Event) -> L3Anomaly? {
        guard event.size > 0 else { return .invalidEvent }
        var anomaly: L3Anomaly?
        let slot = orders.find(event.orderID)
        if slot >= 0 {
            let old = orders.entry(slot)
            orders.remove(at: slot)
            if let index = liveLevel(old) {
                anomaly = .duplicateID
                withLadder(old.side) { Self.takeKnown(&$0, index, old.remaining, finishesOrder: true) }
            } else {
                staleOrders -= 1
            }
        }
        let key = Self.key(event.price, event.side)
        var next = nextSerial
        let serial = withLadder(event.side) { Self.addKnown(&$0, key, event.price, event.size, &next) }
        nextSerial = next
        orders.insert(
            event.orderID,
            L3OrderTable.Entry(price: event.price, remaining: event.size, serial: serial, side: event.side)
        )
        return anomaly
    }

    private static func addKnown(
        _ ladder: inout ContiguousArray<Level>,
        _ key: Int64,
        _ price: Int64,
        _ size: Int64,
        _ serial: inout UInt64
    ) -> UInt64 {
        let (index, found) = search(ladder, key)
        if found {
            ladder[index].known &+= Int128(size)
            ladder[index].orderCount += 1
            return ladder[index].serial
        }
        let new = serial
        serial &+= 1
        ladder.insert(
            Level(key: key, price: price, known: Int128(size), anonymous: 0, orderCount: 1, serial: new),
            at: index
        )
        return new
    }

    /// Cancel, delete or execute (size > 0).
    private mutating func reduce(_ event: L3Event) -> L3Anomaly? {
        let slot = orders.find(event.orderID)
        guard slot >= 0 else { return takeAnonymous(event) }
        let entry = orders.entry(slot)
        guard let index = liveLevel(entry) else {
            orders.remove(at: slot)
            staleOrders -= 1
            return takeAnonymous(event)
        }
        var anomaly: L3Anomaly?
        let taken: Int64
        if event.kind == .delete {
            taken = entry.remaining
            if event.size != entry.remaining { anomaly = .sizeExceedsOrder(excess: event.size &- entry.remaining) }
        } else {
            taken = min(event.size, entry.remaining)
            if event.size > entry.remaining { anomaly = .sizeExceedsOrder(excess: event.size &- entry.remaining) }
        }
        if anomaly == nil, event.price != entry.price || event.side != entry.side { anomaly = .orderMismatch }
        let finished = taken == entry.remaining
        if finished {
            orders.remove(at: slot)
        } else {
            orders.setRemaining(at: slot, entry.remaining - taken)
        }
        withLadder(entry.side) { Self.takeKnown(&$0, index, taken, finishesOrder: finished) }
        return anomaly
    }

    /// Takes `size` of a live order out of the level at `index`, removing the level when it empties.
    @inline(__always)
    private static func takeKnown(
        _ ladder: inout ContiguousArray<Level>,
        _ index: Int,
        _ size: Int64,
        finishesOrder: Bool
    ) {
        ladder[index].known &-= Int128(size)
        if finishesOrder { ladder[index].orderCount -= 1 }
        if ladder[index].orderCount <= 0 && ladder[index].total <= 0 { ladder.remove(at: index) }
    }

    /// An event naming no live order: its size comes out of the anonymous quantity at its price and side.
    private mutating func takeAnonymous(_ event: L3Event) -> L3Anomaly {
        let key = Self.key(event.price, event.side)
        return withLadder(event.side) { Self.takeAnonymous(&$0, key, event.size) }
    }

    private static func takeAnonymous(_ ladder: inout ContiguousArray<Level>, _ key: Int64, _ size: Int64) -> L3Anomaly
    {
        let (index, found) = search(ladder, key)
        guard found else { return .unknownOrder(unexplained: size) }
        let available = ladder[index].anonymous
        let anomaly: L3Anomaly
        if available >= Int128(size) {
            ladder[index].anonymous = available - Int128(size)
            anomaly = .attributedToPreexisting
        } else {
            // The order did rest here (the feed says so) and was not a known one, so it was part of the
            // anonymous quantity, which was underestimated: take what there is, report the rest.
            ladder[index].anonymous = 0
            anomaly = .unknownOrder(unexplained: Int64(Int128(size) - available))
        }
        if ladder[index].total == 0 { ladder.remove(at: index) }
        return anomaly
    }

    // MARK: Helpers

    /// One side's levels, ascending by key (best last), for readers in this module.
    @inline(__always)
    func ladder(_ side: Side) -> ContiguousArray<Level> { side == .buy ? bids : asks }

    @inline(__always)
    private mutating func withLadder<R>(_ side: Side, _ body: (inout ContiguousArray<Level>) -> R) -> R {
        side == .buy ? body(&bids) : body(&asks)
    }

    @inline(__always)
    static func key(_ price: Int64, _ side: Side) -> Int64 { side == .buy ? price : ~price }

    /// The index of the order's level when the order is live: its level still exists (same serial).
    @inline(__always)
    func liveLevel(_ entry: L3OrderTable.Entry) -> Int? {
        let ladder = entry.side == .buy ? bids : asks
        let (index, found) = Self.search(ladder, Self.key(entry.price, entry.side))
        return found && ladder[index].serial == entry.serial ? index : nil
    }

    /// Index of the level with `key`, or where it would be inserted.
    @inline(__always)
    static func search(_ levels: ContiguousArray<Level>, _ key: Int64) -> (index: Int, found: Bool) {
        levels.searchLevel(key)
    }
}

/// Order id → order: open addressing with linear probing and backward-shift deletion (no tombstones),
/// entries stored in the table itself. Fibonacci hashing spreads sequential ids. Never shrinks, so a
/// steady book does not allocate.
struct L3OrderTable: Sendable {
    struct Entry: Sendable {
        var price: Int64
        var remaining: Int64
        /// Serial of the level the order joined; 0 marks an empty slot (level serials start at 1).
        var serial: UInt64
        var side: Side
    }

    private var ids: ContiguousArray<UInt64>
    private var entries: ContiguousArray<Entry>
    private var shift: UInt64
    private(set) var count = 0

    init() {
        let size = 1024
        ids = ContiguousArray(repeating: 0, count: size)
        entries = ContiguousArray(repeating: Entry(price: 0, remaining: 0, serial: 0, side: .buy), count: size)
        shift = UInt64(64 - size.trailingZeroBitCount)
    }

    @inline(__always)
    private func home(_ id: UInt64) -> Int {
        Int(truncatingIfNeeded: (id &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The slot of `id`, or -1.
    @inline(__always)
    func find(_ id: UInt64) -> Int {
        let mask = ids.count - 1
        var i = home(id)
        while true {
            if entries[i].serial == 0 { return -1 }
            if ids[i] == id { return i }
            i = (i + 1) & mask
        }
    }

    @inline(__always)
    func entry(_ slot: Int) -> Entry { entries[slot] }

    @inline(__always)
    mutating func setRemaining(at slot: Int, _ remaining: Int64) { entries[slot].remaining = remaining }

    /// Inserts an id known to be absent; `entry.serial` must not be 0.
    mutating func insert(_ id: UInt64, _ entry: Entry) {
        if (count + 1) * 2 > ids.count { resize(ids.count * 2) }
        let mask = ids.count - 1
        var i = home(id)
        while entries[i].serial != 0 { i = (i + 1) & mask }
        ids[i] = id
        entries[i] = entry
        count += 1
    }

    /// Removes the entry at `slot` (from ``find(_:)``).
    mutating func remove(at slot: Int) {
        let mask = ids.count - 1
        var i = slot
        // Backward shift: pull later members of the probe run into the hole when their home allows it.
        var j = i
        while true {
            j = (j + 1) & mask
            if entries[j].serial == 0 { break }
            let k = home(ids[j])
            let between = i <= j ? (i < k && k <= j) : (i < k || k <= j)
            if !between {
                ids[i] = ids[j]
                entries[i] = entries[j]
                i = j
            }
        }
        entries[i].serial = 0
        count -= 1
    }

    /// Removes every entry for which `isDead` holds, by rebuilding the table at its size.
    mutating func removeAll(where isDead: (Entry) -> Bool) {
        let oldIDs = ids
        let oldEntries = entries
        resize(ids.count, from: oldIDs, oldEntries, keeping: { !isDead($0) })
    }

    private mutating func resize(_ size: Int) {
        let oldIDs = ids
        let oldEntries = entries
        resize(size, from: oldIDs, oldEntries, keeping: { _ in true })
    }

    private mutating func resize(
        _ size: Int,
        from oldIDs: ContiguousArray<UInt64>,
        _ oldEntries: ContiguousArray<Entry>,
        keeping: (Entry) -> Bool
    ) {
        ids = ContiguousArray(repeating: 0, count: size)
        entries = ContiguousArray(repeating: Entry(price: 0, remaining: 0, serial: 0, side: .buy), count: size)
        shift = UInt64(64 - size.trailingZeroBitCount)
        count = 0
        for i in oldIDs.indices where oldEntries[i].serial != 0 && keeping(oldEntries[i]) {
            insert(oldIDs[i], oldEntries[i])
        }
    }
}

extension L2Snapshot {
    /// The book before `event`, given this snapshot of the book after it: an add's size leaves its level,
    /// a cancel's, delete's or visible execution's size returns to its level (creating it when the event
    /// emptied it). Hidden executions, crosses and halts leave it as is. For LOBSTER, the first orderbook
    /// row reverting the first message is the state to ``L3Book/seed(_:)`` the book with. Levels that drop
    /// to zero or below are removed; quantities saturate rather than overflow.
    public func reverting(_ event: L3Event) -> L2Snapshot {
        let delta: Int128
        switch event.kind {
        case .add: delta = -Int128(event.size)
        case .cancel, .delete, .execute: delta = Int128(event.size)
        case .executeHidden, .cross, .halt: return self
        }
        var result = self
        func adjust(_ levels: inout [L2Level], better: (Int64, Int64) -> Bool) {
            if let index = levels.firstIndex(where: { $0.price == event.price }) {
                let (sum, overflow) = levels[index].qty.addingReportingOverflow(delta)
                levels[index].qty = overflow ? (delta > 0 ? .max : .min) : sum
                if levels[index].qty <= 0 { levels.remove(at: index) }
            } else if delta > 0 {
                let index = levels.firstIndex(where: { better(event.price, $0.price) }) ?? levels.count
                levels.insert(L2Level(price: event.price, qty: delta), at: index)
            }
        }
        if event.side == .buy {
            adjust(&result.bids, better: >)
        } else {
            adjust(&result.asks, better: <)
        }
        return result
    }
}
