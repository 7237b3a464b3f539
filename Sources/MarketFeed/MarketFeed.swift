public import CastleCore
import CastleSupport
import Synchronization

/// The channels of `/v1/stream` (spec/serve.md).
public enum FeedChannel: String, Sendable, Hashable, CaseIterable {
    case trades
    case book
    /// The connection's own account's order events; takes no symbol.
    case orders
}

/// Bounds: every buffer and table of the fan-out has one.
public struct FeedLimits: Sendable, Hashable {
    /// Messages waiting for one connection (delivered to its ``FeedSink`` and not yet taken by the
    /// client's socket); past it the connection is dropped as a slow consumer. Sinks keep it.
    public var bufferMessagesMax: Int
    /// Open connections; one more is refused.
    public var connectionsMax: Int
    /// Channel subscriptions one connection may hold at once.
    public var subscriptionsPerConnectionMax: Int
    /// Events handed over by ``MarketFeed/enqueue(_:)`` and not yet fanned out; past it the publisher
    /// fans out the backlog itself (see there).
    public var inboxEventsMax: Int

    public init(
        bufferMessagesMax: Int = 4096,
        connectionsMax: Int = 1024,
        subscriptionsPerConnectionMax: Int = 64,
        inboxEventsMax: Int = 1 << 20
    ) {
        precondition(bufferMessagesMax > 0 && connectionsMax > 0 && subscriptionsPerConnectionMax > 0)
        precondition(inboxEventsMax > 0)
        self.bufferMessagesMax = bufferMessagesMax
        self.connectionsMax = connectionsMax
        self.subscriptionsPerConnectionMax = subscriptionsPerConnectionMax
        self.inboxEventsMax = inboxEventsMax
    }
}

public enum FeedError: Error, Sendable, Hashable {
    case tooManyConnections(max: Int)
    case tooManySubscriptions(max: Int)
    /// `trades` and `book` need a symbol.
    case missingSymbol
    /// `orders` takes none.
    case unexpectedSymbol
    /// Instruments are declared and this symbol is not one of them.
    case unknownSymbol(String)
    /// `orders` on a connection opened without an account.
    case noAccount
    /// The connection was dropped or closed.
    case closed

    /// The wire code (spec/serve.md's error codes) and a message for people.
    public var codeAndMessage: (code: String, message: String) {
        switch self {
        case .tooManyConnections(let max): ("too_many_streams", "at most \(max) open streams; try again later")
        case .tooManySubscriptions(let max): ("invalid", "at most \(max) subscriptions per stream")
        case .missingSymbol: ("invalid", "this channel needs a symbol")
        case .unexpectedSymbol: ("invalid", "the orders channel takes no symbol")
        case .unknownSymbol(let name): ("unknown_symbol", "unknown symbol \(name)")
        case .noAccount: ("unauthenticated", "the orders channel needs the X-Castle-Account header")
        case .closed: ("closed", "the stream is closed")
        }
    }
}

/// Where one connection's messages go: the socket of a WebSocket client, or a queue in tests.
///
/// The feed calls both methods under its lock, in the order of its messages: they must return at once,
/// without waiting and without calling back into the feed.
public protocol FeedSink: AnyObject, Sendable {
    /// Takes the connection's next messages, already JSON text. False when they do not fit in the
    /// connection's buffer (``FeedLimits/bufferMessagesMax`` messages): the feed then drops the
    /// connection as a slow consumer.
    func deliver(_ batch: FeedBatch) -> Bool
    /// The feed is done with the connection (closed, or dropped: ``FeedConnection/dropReason`` says
    /// why); nothing more is delivered.
    func finish()
}

/// Messages that go to a connection together, in order: what one fan-out sends to every connection
/// whose subscriptions among that fan-out's are the same (one batch, shared by all of them), or one
/// answer to one connection.
///
/// Sinks of one kind put a batch on the wire alike, so the first of them to ask encodes it and the
/// others share that encoding (``encoded(_:)``): a thousand subscribers of one symbol cost one framing
/// of its messages, not a thousand.
public final class FeedBatch: Sendable {
    public let messages: [String]
    private let encoding = Mutex<(any Sendable)?>(nil)

    public init(_ messages: [String]) {
        self.messages = messages
    }

    /// The batch as `encode` makes it: made once, by the first caller, and shared with every later caller
    /// that asks for the same type.
    public func encoded<Encoding: Sendable>(_ encode: ([String]) -> Encoding) -> Encoding {
        encoding.withLock { cached in
            if let cached = cached as? Encoding { return cached }
            let made = encode(messages)
            cached = made
            return made
        }
    }
}

/// Why a connection's stream ended.
public enum FeedDropReason: String, Sendable, Hashable {
    /// Its buffer filled: the client did not read fast enough (close code 4001).
    case slowConsumer = "slow consumer"
    /// The feed shut down (graceful stop).
    case shutdown = "shutdown"
}

/// The market-data fan-out: keeps every book from the 1.1 event stream and sends each connection the
/// messages of the channels it subscribed to, already encoded as JSON text (encoded once, shared by
/// every receiver).
///
/// ``publish(_:)`` is called by whoever applies events (the matcher's loop or the event-log reader). It
/// never waits: each connection has a bounded buffer, and a connection whose buffer is full is dropped
/// with ``FeedDropReason/slowConsumer`` — it cannot slow the matcher or the other connections. One lock
/// keeps the books and the subscriptions; a new `book` subscriber's snapshot is taken under it, so the
/// deltas that follow chain onto it without a gap.
public final class MarketFeed: Sendable {
    public let limits: FeedLimits
    private let state: Mutex<State>
    /// Events handed over by the matcher, waiting for ``run()``; its own lock, so a hand-over never
    /// waits for a fan-out in progress.
    private let inbox = Mutex(Inbox())

    private struct Inbox {
        var events: [FeedEvent] = []
        /// ``run()`` waiting for events.
        var waiter: CheckedContinuation<Void, Never>?
    }

    /// - Parameters:
    ///   - instruments: the decimals of each symbol's prices and quantities (others: 8 and 8).
    ///   - requireInstruments: only symbols with an instrument may be subscribed to.
    public init(
        instruments: [SymbolID: Instrument] = [:],
        requireInstruments: Bool = false,
        limits: FeedLimits = FeedLimits()
    ) {
        self.limits = limits
        state = Mutex(State(instruments: instruments, requireInstruments: requireInstruments))
    }

    /// Keeps the feed's copy of the names in step with the decoder's tables (names are only added):
    /// symbols numbered from 0, accounts from 1, as the command decoder interns them.
    public func syncNames(symbols: NameTable, accounts: NameTable) {
        state.withLock { state in
            for name in symbols.names[state.symbolNames.count...] {
                let key = String(decoding: name, as: UTF8.self)
                state.symbolIDs[key] = SymbolID(state.symbolNames.count)
                state.symbolKeys.append(key)
                state.symbolNames.append(jsonStringLiteral(name))
            }
            for name in accounts.names[state.accountNames.count...] {
                state.accountKeys.append(String(decoding: name, as: UTF8.self))
                state.accountNames.append(jsonStringLiteral(name))
            }
        }
    }

    /// Applies a batch of events (one command's, or several whole commands') and sends what they mean
    /// to every subscriber. The names of the events' symbols and accounts must have been synced.
    public func publish(_ events: some Collection<FeedEvent>) {
        state.withLock { state in state.publish(events) }
    }

    /// Hands events over to ``run()`` and returns at once: what the matcher calls, so that the fan-out
    /// (encoding, one buffer per connection) runs on another thread and costs the matcher one append.
    /// Batches handed over while ``run()`` is busy are fanned out together: a book changed by many
    /// commands meanwhile gets one delta. If ``FeedLimits/inboxEventsMax`` events are already waiting
    /// (the fan-out starved of CPU), the caller fans out the backlog itself: memory stays bounded and the
    /// books stay right; it still never waits for a client.
    public func enqueue(_ events: some Collection<FeedEvent>) {
        if events.isEmpty { return }
        let (accepted, waiter) = inbox.withLock { inbox -> (Bool, CheckedContinuation<Void, Never>?) in
            guard inbox.events.count + events.count <= limits.inboxEventsMax else { return (false, nil) }
            inbox.events.append(contentsOf: events)
            defer { inbox.waiter = nil }
            return (true, inbox.waiter)
        }
        if accepted {
            waiter?.resume()
            return
        }
        state.withLock { state in
            state.publish(takeInbox())
            state.publish(events)
        }
    }

    /// Fans out what ``enqueue(_:)`` hands over, until the task is cancelled (graceful stop), then ends
    /// every connection's stream with ``FeedDropReason/shutdown``.
    ///
    /// `pace`: the least time between two fan-outs. What is handed over meanwhile waits and goes in the
    /// next one: a book changed many times gets one delta, and each connection one batch of messages
    /// (a thousand connections each written once per matcher commit cost the machine more than the
    /// matching: docs/serve-performance.md). After a quiet spell the first events go at once; a
    /// message waits at most `pace`. Zero: every hand-over as soon as this loop gets to it.
    public func run(pace: Duration = .zero) async {
        let clock = ContinuousClock()
        var nextFanOut = clock.now
        while !Task.isCancelled {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = inbox.withLock { inbox in
                        if !inbox.events.isEmpty || Task.isCancelled { return true }
                        inbox.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                inbox.withLock { inbox in
                    defer { inbox.waiter = nil }
                    return inbox.waiter
                }?.resume()
            }
            // Cancelled (graceful stop): what waits goes out at once.
            if pace > .zero { try? await Task.sleep(until: nextFanOut, clock: clock) }
            // Taken under the state lock, so that an overflowing enqueue cannot publish newer events first.
            state.withLock { state in state.publish(takeInbox()) }
            nextFanOut = clock.now + pace
        }
        // What was handed over since the last fan-out still reaches the clients before their streams end.
        state.withLock { state in state.publish(takeInbox()) }
        shutdown()
    }

    private func takeInbox() -> [FeedEvent] {
        inbox.withLock { inbox in
            defer { inbox.events = [] }
            return inbox.events
        }
    }

    /// Opens a connection whose messages go to `sink`; `account` (already validated by the caller)
    /// enables the `orders` channel.
    public func connect(account: String? = nil, sink: some FeedSink) throws(FeedError) -> FeedConnection {
        let id = try state.withLock { state throws(FeedError) -> Int in
            guard state.connections.count < limits.connectionsMax else {
                throw .tooManyConnections(max: limits.connectionsMax)
            }
            state.nextConnectionID += 1
            state.connections[state.nextConnectionID] = Connection(sink: sink, account: account)
            return state.nextConnectionID
        }
        return FeedConnection(feed: self, id: id)
    }

    /// Open connections, and connections dropped as slow consumers since the start.
    public var counts: (connections: Int, droppedSlowConsumers: Int) {
        state.withLock { ($0.connections.count, $0.droppedSlowConsumers) }
    }

    /// One symbol's book as the fan-out holds it: levels best first, and the `seq` of the last event that
    /// changed it. Nil for a name never seen.
    public func book(
        _ symbol: String,
        depth: Int = .max
    ) -> (seq: UInt64, bids: [(price: Int64, qty: Int128)], asks: [(price: Int64, qty: Int128)])? {
        state.withLock { state in
            guard let id = state.symbolIDs[symbol] else { return nil }
            let book = state.books.books[id] ?? EventBooks.Book()
            return (book.seq, book.levels(.buy, depth: depth), book.levels(.sell, depth: depth))
        }
    }

    /// Ends every connection's stream with ``FeedDropReason/shutdown`` (graceful stop).
    public func shutdown() {
        state.withLock { state in
            for id in Array(state.connections.keys) { state.drop(id, reason: .shutdown) }
        }
    }

    fileprivate func subscribe(
        _ connection: Int,
        _ channel: FeedChannel,
        symbol: String?,
        acknowledgement: String?
    ) throws(FeedError) {
        try state.withLock { state throws(FeedError) in
            try state.subscribe(
                connection,
                channel,
                symbol: symbol,
                acknowledgement: acknowledgement,
                limit: limits.subscriptionsPerConnectionMax
            )
        }
    }

    fileprivate func send(_ connection: Int, _ message: String) {
        state.withLock { state in state.send(message, toConnection: connection) }
    }

    fileprivate func unsubscribe(_ connection: Int, _ channel: FeedChannel, symbol: String?) -> Bool {
        state.withLock { state in state.unsubscribe(connection, Subscription(channel: channel, key: symbol ?? "")) }
    }

    fileprivate func close(_ connection: Int) {
        state.withLock { state in state.remove(connection) }
    }

    fileprivate func dropReason(_ connection: Int) -> FeedDropReason? {
        state.withLock { $0.dropReasons[connection] }
    }
}

/// One client's handle on the fan-out: its subscriptions. Their messages, in order, go to the
/// connection's ``FeedSink`` until the connection is closed or dropped (see ``dropReason``).
public final class FeedConnection: Sendable {
    public let id: Int
    private let feed: MarketFeed

    fileprivate init(feed: MarketFeed, id: Int) {
        self.feed = feed
        self.id = id
    }

    /// Subscribes; for `book`, the snapshot is the next message of this symbol's book. Subscribing again
    /// to a `book` sends a fresh snapshot: that is how a client recovers from a gap. `acknowledgement`,
    /// when given, is sent first (before the snapshot), only if the subscription is taken.
    public func subscribe(
        _ channel: FeedChannel,
        symbol: String? = nil,
        acknowledgement: String? = nil
    ) throws(FeedError) {
        try feed.subscribe(id, channel, symbol: symbol, acknowledgement: acknowledgement)
    }

    /// Queues a message of the caller's (an answer, an error) in order with the feed's; like theirs, it
    /// drops the connection if the buffer is full.
    public func send(_ message: String) { feed.send(id, message) }

    /// Whether the subscription existed.
    @discardableResult
    public func unsubscribe(_ channel: FeedChannel, symbol: String? = nil) -> Bool {
        feed.unsubscribe(id, channel, symbol: symbol)
    }

    /// Why the stream ended, when the feed ended it; nil while open or after ``close()``.
    public var dropReason: FeedDropReason? { feed.dropReason(id) }

    /// Leaves the feed; the sink is finished. Safe to call more than once.
    public func close() { feed.close(id) }

    deinit { feed.close(id) }
}

private struct Subscription: Hashable {
    var channel: FeedChannel
    /// The symbol's name, or the account's for `orders`.
    var key: String
}

private struct Connection {
    var sink: any FeedSink
    var account: String?
    var subscriptions: Set<Subscription> = []
}

private struct State {
    let instruments: [SymbolID: Instrument]
    let requireInstruments: Bool
    var books = EventBooks()
    /// JSON string literals, quotes included; symbols by id, accounts by id - 1.
    var symbolNames: [[UInt8]] = []
    var accountNames: [[UInt8]] = []
    /// The same names as plain strings, the keys of subscriptions.
    var symbolKeys: [String] = []
    var accountKeys: [String] = []
    var symbolIDs: [String: SymbolID] = [:]
    var connections: [Int: Connection] = [:]
    var nextConnectionID = 0
    /// Receiving connections by subscription; a symbol not seen yet may be subscribed to by name.
    var receivers: [Subscription: Set<Int>] = [:]
    /// The messages of the fan-out in progress, in order (see ``deliverOutgoing()``), and the indices
    /// of each subscription's among them.
    var outgoing: [String] = []
    var outgoingIndices: [Subscription: [Int]] = [:]
    /// Why the feed ended a connection's stream; kept until the connection closes.
    var dropReasons: [Int: FeedDropReason] = [:]
    var droppedSlowConsumers = 0

    init(instruments: [SymbolID: Instrument], requireInstruments: Bool) {
        self.instruments = instruments
        self.requireInstruments = requireInstruments
    }

    func instrument(_ symbol: SymbolID) -> Instrument { instruments[symbol] ?? .unrestricted }

    func symbolName(_ symbol: SymbolID) -> [UInt8] { symbolNames[Int(symbol)] }

    func accountKey(_ account: AccountID) -> String? {
        guard account != .none, Int(account) <= accountNames.count else { return nil }
        return accountKeys[Int(account) - 1]
    }

    mutating func subscribe(
        _ id: Int,
        _ channel: FeedChannel,
        symbol: String?,
        acknowledgement: String?,
        limit: Int
    ) throws(FeedError) {
        guard let connection = connections[id] else { throw .closed }
        let key: String
        switch channel {
        case .orders:
            guard symbol == nil else { throw .unexpectedSymbol }
            guard let account = connection.account else { throw .noAccount }
            key = account
        case .trades, .book:
            guard let symbol, !symbol.isEmpty else { throw .missingSymbol }
            if requireInstruments {
                guard let known = symbolIDs[symbol], instruments[known] != nil else { throw .unknownSymbol(symbol) }
            }
            key = symbol
        }
        let subscription = Subscription(channel: channel, key: key)
        if !connection.subscriptions.contains(subscription) {
            guard connection.subscriptions.count < limit else { throw .tooManySubscriptions(max: limit) }
            connections[id]!.subscriptions.insert(subscription)
            receivers[subscription, default: []].insert(id)
        }
        if let acknowledgement { send(acknowledgement, toConnection: id) }
        if channel == .book { send(snapshot(of: key), toConnection: id) }
    }

    mutating func unsubscribe(_ id: Int, _ subscription: Subscription) -> Bool {
        var subscription = subscription
        if subscription.channel == .orders { subscription.key = connections[id]?.account ?? "" }
        guard connections[id]?.subscriptions.remove(subscription) != nil else { return false }
        receivers[subscription]?.remove(id)
        if receivers[subscription]?.isEmpty == true { receivers[subscription] = nil }
        return true
    }

    /// Forgets a connection and finishes its sink.
    mutating func remove(_ id: Int) {
        dropReasons[id] = nil
        guard let connection = connections.removeValue(forKey: id) else { return }
        for subscription in connection.subscriptions {
            receivers[subscription]?.remove(id)
            if receivers[subscription]?.isEmpty == true { receivers[subscription] = nil }
        }
        connection.sink.finish()
    }

    mutating func drop(_ id: Int, reason: FeedDropReason) {
        guard connections[id] != nil else { return }
        remove(id)
        dropReasons[id] = reason
        if reason == .slowConsumer { droppedSlowConsumers += 1 }
    }

    /// Adds a message for a subscription's receivers to the fan-out in progress.
    mutating func send(_ message: String, to subscription: Subscription) {
        outgoingIndices[subscription, default: []].append(outgoing.count)
        outgoing.append(message)
    }

    /// Ends a fan-out: each receiving connection gets its messages, in order, as one batch, shared by
    /// every connection with the same subscriptions among those that have messages (with one symbol's
    /// trades and book each, a thousand subscribers of four symbols take four batches). The work of a
    /// message is then the same for one receiver as for a thousand; what remains per connection is one
    /// batch handed over, and its one write. Sinks do not wait; a full buffer drops its connection.
    mutating func deliverOutgoing() {
        defer {
            outgoing = []
            outgoingIndices = [:]
        }
        // One pass over the subscriptions: every connection lists its own in the same order.
        var subscriptionsOf: [Int: [Subscription]] = [:]
        for subscription in outgoingIndices.keys {
            for id in receivers[subscription] ?? [] { subscriptionsOf[id, default: []].append(subscription) }
        }
        var connectionsBySubscriptions: [[Subscription]: [Int]] = [:]
        for (id, subscriptions) in subscriptionsOf { connectionsBySubscriptions[subscriptions, default: []].append(id) }
        var full: [Int] = []
        for (subscriptions, ids) in connectionsBySubscriptions {
            let indices =
                subscriptions.count == 1
                ? outgoingIndices[subscriptions[0]]! : subscriptions.flatMap { outgoingIndices[$0]! }.sorted()
            let batch = FeedBatch(indices.map { outgoing[$0] })
            for id in ids where !connections[id]!.sink.deliver(batch) { full.append(id) }
        }
        for id in full { drop(id, reason: .slowConsumer) }
    }

    mutating func send(_ message: String, toConnection id: Int) {
        guard let sink = connections[id]?.sink else { return }
        if !sink.deliver(FeedBatch([message])) { drop(id, reason: .slowConsumer) }
    }

    mutating func publish(_ events: some Collection<FeedEvent>) {
        if events.isEmpty { return }
        for event in events {
            sendOrderUpdate(event)
            books.apply(event)
            if case .trade(let trade) = event.kind { sendTrade(trade, event) }
        }
        books.endCommand()
        sendDeltas(books.takeChanges())
        deliverOutgoing()
    }

    private mutating func sendTrade(_ trade: Trade, _ event: FeedEvent) {
        let subscription = Subscription(channel: .trades, key: symbolKeys[Int(trade.symbol)])
        guard receivers[subscription] != nil else { return }
        let name = symbolName(trade.symbol)
        let instrument = instrument(trade.symbol)
        var text = MessageText()
        text.append("{\"channel\":\"trades\",\"symbol\":")
        text.append(name)
        text.append(",\"seq\":")
        text.appendUnsigned(event.seq)
        text.append(",\"price\":")
        text.appendDecimal(trade.price, decimals: instrument.priceDecimals)
        text.append(",\"qty\":")
        text.appendDecimal(trade.qty, decimals: instrument.qtyDecimals)
        text.append(",\"side\":\"")
        text.append(trade.side.name)
        text.append("\"")
        appendTS(event.ts, to: &text)
        text.append("}")
        send(text.string, to: subscription)
    }

    /// The `orders` channel: the event, as match.md writes it, to its owners' connections. Called before
    /// the event is applied, while a cancelled or amended order's owner is still known.
    private mutating func sendOrderUpdate(_ event: FeedEvent) {
        var owners: [AccountID] = []
        switch event.kind {
        case .accepted(_, _, _, _, _, _, _, let account): owners = [account]
        case .trade(let trade):
            owners =
                trade.makerAccount == trade.takerAccount
                ? [trade.makerAccount] : [trade.makerAccount, trade.takerAccount]
        case .canceled(let id, _, _, _, _, _), .amended(let id, _, _, _, _, _, _, _):
            owners = books.account(of: id).map { [$0] } ?? []
        case .rejected: return
        }
        var message: String?
        for owner in owners {
            guard let key = accountKey(owner) else { continue }
            let subscription = Subscription(channel: .orders, key: key)
            guard receivers[subscription] != nil else { continue }
            if message == nil { message = orderEventText(event) }
            send(message!, to: subscription)
        }
    }

    private func orderEventText(_ event: FeedEvent) -> String {
        var text = MessageText()
        text.append("{\"channel\":\"orders\",\"seq\":")
        text.appendUnsigned(event.seq)
        switch event.kind {
        case .accepted(let id, let symbol, let side, let type, let tif, let price, let qty, let account):
            let instrument = instrument(symbol)
            text.append(",\"event\":\"accepted\",\"id\":")
            text.appendUnsigned(id)
            appendSymbolSide(symbol, side, to: &text)
            text.append(type == .limit ? ",\"type\":\"limit\",\"tif\":\"" : ",\"type\":\"market\",\"tif\":\"")
            text.append(tif.name)
            text.append("\"")
            if let price {
                text.append(",\"price\":")
                text.appendDecimal(price, decimals: instrument.priceDecimals)
            }
            text.append(",\"qty\":")
            text.appendDecimal(qty, decimals: instrument.qtyDecimals)
            if account != .none {
                text.append(",\"account\":")
                text.append(accountNames[Int(account) - 1])
            }
        case .trade(let trade):
            let instrument = instrument(trade.symbol)
            text.append(",\"event\":\"trade\",\"symbol\":")
            text.append(symbolName(trade.symbol))
            text.append(",\"price\":")
            text.appendDecimal(trade.price, decimals: instrument.priceDecimals)
            text.append(",\"qty\":")
            text.appendDecimal(trade.qty, decimals: instrument.qtyDecimals)
            text.append(",\"maker\":")
            text.appendUnsigned(trade.maker)
            text.append(",\"taker\":")
            text.appendUnsigned(trade.taker)
            text.append(",\"side\":\"")
            text.append(trade.side.name)
            text.append("\"")
            if trade.makerAccount != .none {
                text.append(",\"maker_account\":")
                text.append(accountNames[Int(trade.makerAccount) - 1])
            }
            if trade.takerAccount != .none {
                text.append(",\"taker_account\":")
                text.append(accountNames[Int(trade.takerAccount) - 1])
            }
        case .canceled(let id, let symbol, let side, let price, let qty, let reason):
            let instrument = instrument(symbol)
            text.append(",\"event\":\"canceled\",\"id\":")
            text.appendUnsigned(id)
            text.append(",\"qty\":")
            text.appendDecimal(qty, decimals: instrument.qtyDecimals)
            text.append(",\"reason\":\"")
            text.append(reason.name)
            text.append("\"")
            appendSymbolSide(symbol, side, to: &text)
            if let price {
                text.append(",\"price\":")
                text.appendDecimal(price, decimals: instrument.priceDecimals)
            }
        case .amended(let id, let symbol, let side, let price, let qty, let prevPrice, let prevQty, let priorityKept):
            let instrument = instrument(symbol)
            text.append(",\"event\":\"amended\",\"id\":")
            text.appendUnsigned(id)
            text.append(",\"price\":")
            text.appendDecimal(price, decimals: instrument.priceDecimals)
            text.append(",\"qty\":")
            text.appendDecimal(qty, decimals: instrument.qtyDecimals)
            appendSymbolSide(symbol, side, to: &text)
            text.append(",\"prev_price\":")
            text.appendDecimal(prevPrice, decimals: instrument.priceDecimals)
            text.append(",\"prev_qty\":")
            text.appendDecimal(prevQty, decimals: instrument.qtyDecimals)
            text.append(priorityKept ? ",\"priority\":\"kept\"" : ",\"priority\":\"lost\"")
        case .rejected:
            break
        }
        appendTS(event.ts, to: &text)
        text.append("}")
        return text.string
    }

    private func appendSymbolSide(_ symbol: SymbolID, _ side: Side, to text: inout MessageText) {
        text.append(",\"symbol\":")
        text.append(symbolName(symbol))
        text.append(",\"side\":\"")
        text.append(side.name)
        text.append("\"")
    }

    private func appendTS(_ ts: Timestamp?, to text: inout MessageText) {
        guard let ts, ts >= 0 else { return }
        text.append(",\"ts\":")
        text.appendUnsigned(UInt64(ts))
    }

    /// One delta per symbol whose book changed: each level's new total (`"0"` removes it), chained to the
    /// symbol's previous book message by `prev_seq`.
    private mutating func sendDeltas(_ changes: [EventBooks.LevelChange]) {
        guard !changes.isEmpty else { return }
        var bySymbol: [SymbolID: [EventBooks.LevelChange]] = [:]
        var order: [SymbolID] = []
        for change in changes {
            if bySymbol[change.symbol] == nil { order.append(change.symbol) }
            bySymbol[change.symbol, default: []].append(change)
        }
        for symbol in order {
            let book = books.books[symbol] ?? EventBooks.Book()
            let previous = publishedSeq[symbol] ?? 0
            publishedSeq[symbol] = book.seq
            let subscription = Subscription(channel: .book, key: symbolKeys[Int(symbol)])
            guard receivers[subscription] != nil else { continue }
            let name = symbolName(symbol)
            let instrument = instrument(symbol)
            var text = MessageText()
            text.append("{\"channel\":\"book\",\"type\":\"delta\",\"symbol\":")
            text.append(name)
            text.append(",\"seq\":")
            text.appendUnsigned(book.seq)
            text.append(",\"prev_seq\":")
            text.appendUnsigned(previous)
            text.append(",\"changes\":[")
            for (index, change) in bySymbol[symbol]!.enumerated() {
                if index > 0 { text.append(",") }
                text.append(change.side == .buy ? "[\"buy\"," : "[\"sell\",")
                text.appendDecimal(change.price, decimals: instrument.priceDecimals)
                text.append(",")
                text.appendDecimal(book.qty(change.side, at: change.price), decimals: instrument.qtyDecimals)
                text.append("]")
            }
            text.append("]}")
            send(text.string, to: subscription)
        }
    }

    /// The `book` snapshot of a symbol by name (empty, `seq` 0, for a symbol not seen yet).
    func snapshot(of name: String) -> String {
        let symbol = symbolIDs[name]
        let book = symbol.flatMap { books.books[$0] } ?? EventBooks.Book()
        let instrument = symbol.map(instrument) ?? .unrestricted
        var text = MessageText(capacity: 1024)
        text.append("{\"channel\":\"book\",\"type\":\"snapshot\",\"symbol\":")
        text.append(jsonStringLiteral(Array(name.utf8)))
        text.append(",\"seq\":")
        text.appendUnsigned(symbol.flatMap { publishedSeq[$0] } ?? 0)
        for side in [Side.buy, .sell] {
            text.append(side == .buy ? ",\"bids\":[" : "],\"asks\":[")
            for (index, level) in book.levels(side).enumerated() {
                if index > 0 { text.append(",") }
                text.append("[")
                text.appendDecimal(level.price, decimals: instrument.priceDecimals)
                text.append(",")
                text.appendDecimal(level.qty, decimals: instrument.qtyDecimals)
                text.append("]")
            }
        }
        text.append("]}")
        return text.string
    }

    /// The `seq` of the last book message of each symbol: a delta's `prev_seq`, a snapshot's `seq`.
    var publishedSeq: [SymbolID: UInt64] = [:]
}
