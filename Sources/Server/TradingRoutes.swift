import CastleCore
import CastleSupport
import Codecs
import HTTPTypes
import Hummingbird
import NIOCore
import Storage
import Synchronization

/// `POST /v1/orders`, `DELETE /v1/orders/{id}`, `PATCH /v1/orders/{id}`, `GET /v1/orders`, `GET
/// /v1/fills` (spec/serve.md), for the account ``AccountMiddleware`` established.
final class Trading: Sendable {
    let path: OrderPath
    /// The symbols of `--instruments` (``MarketBridge/listedSymbols``); empty: any symbol.
    let listed: Set<String>
    /// Client order ids: claimed in the store before the order is enqueued, so that a retry, after a
    /// timeout or a restart too, finds the order instead of placing another.
    let clientOrders: any ClientOrderStore

    init(path: OrderPath, listed: Set<String>, clientOrders: any ClientOrderStore) {
        self.path = path
        self.listed = listed
        self.clientOrders = clientOrders
    }

    /// The members a new order's body may carry (an amend's: ``amendFields``).
    static let orderFields = ["symbol", "side", "type", "price", "qty", "tif", "stp", "client_order_id"]
    static let amendFields = ["price", "qty"]
    /// The members of an order that must be strings.
    private static let textFields = ["symbol", "side", "type", "tif", "stp", "client_order_id"]
    /// The members of an order that its command carries, in the command's order.
    private static let commandFields = ["symbol", "side", "type", "price", "qty", "tif", "stp"]

    func place(_ request: Request, _ context: ServerContext) async throws -> Response {
        let reply = try await place(account: try account(context), body: try await bytes(request, context))
        return Self.json(reply.status, reply.text)
    }

    /// A placed order's response: its status and JSON text.
    typealias Reply = (status: HTTPResponse.Status, text: String)

    /// A `POST /v1/orders` body, read and checked as far as it can be before an id is given.
    struct NewOrder: Sendable {
        var members: BodyMembers
        var clientOrderID: String?
        var symbol: String
    }

    /// Reads an order's body: members, their types, the client order id's form, a declared symbol.
    private func newOrder(_ body: [UInt8]) throws(APIError) -> NewOrder {
        let members = try readBody(body, allowed: Self.orderFields)
        for name in Self.textFields where members[name]?.isString == false {
            throw APIError.malformed("field \"\(name)\" must be a string")
        }
        var clientOrderID: String?
        if let given = members["client_order_id"]?.text {
            guard (1...64).contains(given.utf8.count), !given.unicodeScalars.contains(where: { $0.value < 0x20 })
            else {
                throw APIError.malformed("client_order_id must be 1 to 64 characters, none of them a control character")
            }
            clientOrderID = given
        }
        guard let symbol = members["symbol"]?.text else { throw APIError.invalid("missing symbol") }
        if !listed.isEmpty && !listed.contains(symbol) {
            throw APIError(
                status: .notFound,
                code: "unknown_symbol",
                message: "no instrument \(jsonStringLiteral(symbol))"
            )
        }
        return NewOrder(members: members, clientOrderID: clientOrderID, symbol: symbol)
    }

    /// `POST /v1/orders` for `account` with the request's `body`: the reply's status and JSON text. The
    /// router's route answers with it; ``OrderChannelHandler`` with ``place(account:body:then:)``.
    // Not inlined: inlined into the route's `place(_:_:)`, it crashes Swift 6.3.1's optimizer (LLVM's
    // coroutine splitting, signal 11).
    @inline(never)
    func place(account: String, body: [UInt8]) async throws(APIError) -> Reply {
        let order = try newOrder(body)
        try path.refuseIfStandingBy()
        return try await place(order, account: account)
    }

    /// The same, on the event loop that read the request: an order without a client order id, while the
    /// range of ids in hand lasts, is enqueued at once and `done` is called back from the matcher's verdict,
    /// with no task of its own (docs/serve-performance.md). The others (a client order id is claimed in
    /// the store first; a new range of ids is reserved) go on in a task. `done` must not block.
    func place(
        account: String,
        body: [UInt8],
        then done: @escaping @Sendable (Result<Reply, APIError>) -> Void
    ) {
        do throws(APIError) {
            let order = try newOrder(body)
            try path.refuseIfStandingBy()
            guard order.clientOrderID == nil, let id = path.ids.nextIfReady() else {
                Task {
                    do throws(APIError) {
                        done(.success(try await place(order, account: account)))
                    } catch {
                        done(.failure(error))
                    }
                }
                return
            }
            let command = try Self.command(order, id: id, account: account)
            try path.submit(line: id, symbol: order.symbol, body: command) { verdict in
                done(
                    verdict.flatMap { events in
                        Result { () throws(APIError) in try Self.reply(id, nil, events: events, isRepeat: false) }
                    }
                )
            }
        } catch {
            done(.failure(error))
        }
    }

    /// An order read and checked, once this server takes commands: its id (the one a client order id
    /// already holds, for a retry), its command, its events.
    private func place(_ order: NewOrder, account: String) async throws(APIError) -> Reply {
        var id = try await path.ids.next()
        var isRepeat = false
        if let clientOrderID = order.clientOrderID {
            let claim = ClientOrderClaim(
                account: account,
                clientOrderID: clientOrderID,
                orderID: id,
                content: Self.fingerprint(order.members)
            )
            let held = try await path.claim(claim)
            guard held.content == claim.content else {
                throw APIError(
                    status: .conflict,
                    code: "duplicate_client_order_id",
                    message: "client_order_id \(jsonStringLiteral(clientOrderID)) was used for a different order"
                )
            }
            isRepeat = held.orderID != id
            id = held.orderID
        }
        let command = try Self.command(order, id: id, account: account)
        let events =
            isRepeat
            ? try await path.replay(order: OrderRow(line: id, symbol: order.symbol, body: command))
            : try await path.submit(line: id, symbol: order.symbol, body: command)
        return try Self.reply(id, order.clientOrderID, events: events, isRepeat: isRepeat)
    }

    /// The command line of a new order, checked as the matcher's decoder will read it.
    private static func command(_ order: NewOrder, id: Int64, account: String) throws(APIError) -> String {
        var command = JSONText()
        command.object { o in
            o.member("op", "new")
            o.member("id", id)
            for name in Self.commandFields {
                guard let value = order.members[name] else { continue }
                o.key(name)
                if value.isString { o.string(value.text) } else { o.raw(value.text) }
            }
            o.member("account", account)
            o.member("ts", Self.now())
        }
        try Self.validate(command.text)
        return command.text
    }

    /// The reply to a placed order's request: 201 (200 for a repeat), or the matcher's reject as an error.
    private static func reply(
        _ id: Int64,
        _ clientOrderID: String?,
        events: CommandEvents,
        isRepeat: Bool
    ) throws(APIError) -> Reply {
        try Self.refuseRejected(events)
        return (isRepeat ? .ok : .created, Self.placed(id, clientOrderID, events))
    }

    /// The reply to a placed order, from its command's events alone: the same for the first request and
    /// for every repeat, whatever the order did since.
    static func placed(_ id: Int64, _ clientOrderID: String?, _ events: CommandEvents) -> String {
        let own = UInt64(id)
        var qty = Amount.zero
        var traded = Amount.zero
        var canceled = false
        for event in events.events {
            switch event.kind {
            case .accepted where event.id == own:
                qty = event.qty.map(Amount.init) ?? .zero
            case .trade where event.taker == own:
                traded = traded + (event.qty.map(Amount.init) ?? .zero)
            case .canceled where event.id == own:
                canceled = true
            default:
                break
            }
        }
        let remaining = qty - traded
        var reply = JSONText()
        reply.object { o in
            o.member("id", id)
            o.member("client_order_id", clientOrderID)
            o.member("status", canceled ? "canceled" : remaining <= .zero ? "filled" : "open")
            o.member("remaining", remaining.text)
            o.rawArray("events", events.texts)
        }
        return reply.text
    }

    func cancel(_ request: Request, _ context: ServerContext) async throws -> Response {
        let account = try account(context)
        let order = try openOrder(context, account: account)
        var command = JSONText()
        command.object { o in
            o.member("op", "cancel")
            o.member("id", order.id)
            o.member("ts", Self.now())
        }
        let events = try await path.submit(
            line: try await path.ids.next(),
            symbol: order.symbol,
            body: command.text,
            orderID: order.id
        )
        if Self.rejectReason(events) != nil {
            throw APIError(
                status: .notFound,
                code: "unknown_order",
                message: "order \(order.id) finished before the cancel reached it",
                events: Array(events.texts)
            )
        }
        return Self.json(.ok, Self.idAndEvents(order.id, events))
    }

    func amend(_ request: Request, _ context: ServerContext) async throws -> Response {
        let account = try account(context)
        let members = try readBody(try await bytes(request, context), allowed: Self.amendFields)
        if members.isEmpty { throw APIError.invalid("an amend carries price, qty or both") }
        let order = try openOrder(context, account: account)
        var command = JSONText()
        command.object { o in
            o.member("op", "amend")
            o.member("id", order.id)
            for (name, value) in members.given {
                o.key(name)
                if value.isString { o.string(value.text) } else { o.raw(value.text) }
            }
            o.member("ts", Self.now())
        }
        try Self.validate(command.text)
        let events = try await path.submit(
            line: try await path.ids.next(),
            symbol: order.symbol,
            body: command.text,
            orderID: order.id
        )
        if Self.rejectReason(events) == "unknown_order" {
            throw APIError(
                status: .notFound,
                code: "unknown_order",
                message: "order \(order.id) finished before the amend reached it",
                events: Array(events.texts)
            )
        }
        try Self.refuseRejected(events)
        return Self.json(.ok, Self.idAndEvents(order.id, events))
    }

    func orders(_ request: Request, _ context: ServerContext) async throws -> Response {
        let account = try account(context)
        let status = request.uri.queryParameters.get("status") ?? "open"
        guard status == "open" else { throw APIError.invalid("status must be open") }
        let open = path.view.openOrders(account: account)
        let clientOrderIDs: [Int64: String]
        do {
            clientOrderIDs = try await clientOrders.clientOrderIDs(
                account: account,
                orderIDs: open.map { Int64(bitPattern: $0.id) }
            )
        } catch {
            throw APIError.notReady("the store did not answer: \(error)")
        }
        var reply = JSONText()
        reply.object { o in
            o.key("orders")
            o.array { a in
                for order in open {
                    a.object { o in
                        o.member("id", order.id)
                        o.member("client_order_id", clientOrderIDs[Int64(bitPattern: order.id)])
                        o.member("symbol", order.symbol)
                        o.member("side", order.side.name)
                        o.member("type", order.type.name)
                        o.member("tif", order.tif.name)
                        o.member("price", order.price?.text)
                        o.member("qty", order.qty.text)
                        o.member("remaining", order.remaining.text)
                        o.member("status", order.status.name)
                    }
                }
            }
        }
        return Self.json(.ok, reply.text)
    }

    func fills(_ request: Request, _ context: ServerContext) async throws -> Response {
        let account = try account(context)
        let afterSeq = try Self.integer(request, "after_seq", default: 0, range: 0...Int64.max)
        let limit = try Self.integer(request, "limit", default: 100, range: 1...1000)
        var reply = JSONText()
        reply.object { o in
            o.key("fills")
            o.array { a in
                for fill in path.view.fills(account: account, afterSeq: afterSeq, limit: Int(limit)) {
                    a.object { o in
                        o.member("seq", fill.seq)
                        o.member("order_id", fill.orderID)
                        o.member("symbol", fill.symbol)
                        o.member("side", fill.side.name)
                        o.member("price", fill.price.text)
                        o.member("qty", fill.qty.text)
                        o.member("liquidity", fill.liquidity.name)
                        if let ts = fill.ts { o.member("ts", ts) }
                    }
                }
            }
        }
        return Self.json(.ok, reply.text)
    }

    // MARK: - Helpers

    private func account(_ context: ServerContext) throws(APIError) -> String {
        guard let account = context.account else {
            throw APIError(status: .unauthorized, code: "unauthenticated", message: "no account")
        }
        return account
    }

    private func openOrder(_ context: ServerContext, account: String) throws(APIError) -> ExchangeView.Order {
        let text = context.parameters.get("id") ?? ""
        guard let id = UInt64(text), let order = path.view.order(id), order.account == account,
            order.status == .open
        else { throw APIError.unknownOrder(text) }
        return order
    }

    private func bytes(_ request: Request, _ context: ServerContext) async throws -> [UInt8] {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        return Array(buffer.readableBytesView)
    }

    /// The content of an order request, for telling an idempotent repeat from a conflicting reuse: its
    /// members as one JSON object, keys sorted, strings and numbers as given (text any store keeps).
    private static func fingerprint(_ members: BodyMembers) -> String {
        var content = JSONText()
        content.object { o in
            for (name, value) in members.given.sorted(by: { $0.name < $1.name }) where name != "client_order_id" {
                o.key(name)
                if value.isString { o.string(value.text) } else { o.raw(value.text) }
            }
        }
        return content.text
    }

    /// The decoder of ``validate(_:)``: one for every request, its tables emptied after each (made anew
    /// for each order, they cost serve 1% of its CPU).
    private static let validator = Mutex(
        CommandDecoder(symbols: NameTable(capacityMax: 1), accounts: NameTable(firstID: 1, capacityMax: 1))
    )

    /// The decoder's checks before anything is enqueued: field values the contract refuses are `invalid`.
    /// So is a price or quantity that no instrument takes (zero or negative; an amend's qty may be 0,
    /// which cancels), which the decoder leaves to the matcher: refused here, the reply names the field
    /// rather than the matcher's bare `invalid`, and nothing is enqueued.
    private static func validate(_ line: String) throws(APIError) {
        var text = line
        let decoded = validator.withLock { decoder in
            defer {
                decoder.symbols.removeAll()
                decoder.accounts.removeAll()
            }
            return text.withUTF8 { decoder.decode($0, lineNumber: 1) }
        }
        switch decoded {
        case .rejected(_, _, _, let detail):
            throw APIError.invalid(detail.text)
        case .command(let command):
            let isAmend = command.op == .amend
            if let qty = command.qty, qty.mantissa < 0 || (qty.mantissa == 0 && !isAmend) {
                throw APIError.invalid(RejectDetail.badQty.text)
            }
            if let price = command.price, price.mantissa <= 0, isAmend || command.type == .limit {
                throw APIError.invalid(RejectDetail.badPrice.text)
            }
        }
    }

    /// The reason of a `rejected` event among `events`, if the matcher rejected the command.
    /// A rejected command has one event, `rejected` (match.md), so only the first line is read.
    private static func rejectReason(_ events: CommandEvents) -> String? {
        guard let event = events.events.first, event.kind == .rejected else { return nil }
        return event.reason ?? "invalid"
    }

    private static func refuseRejected(_ events: CommandEvents) throws(APIError) {
        guard let reason = rejectReason(events) else { return }
        switch reason {
        case "duplicate_id":
            throw APIError(
                status: .conflict,
                code: "duplicate_id",
                message: "the order id is live",
                events: Array(events.texts)
            )
        case "unknown_order":
            throw APIError(
                status: .notFound,
                code: "unknown_order",
                message: "the order is not open",
                events: Array(events.texts)
            )
        default:
            throw APIError(
                status: .badRequest,
                code: "invalid",
                message: "the matcher rejected it: \(reason)",
                events: Array(events.texts)
            )
        }
    }

    private static func idAndEvents(_ id: UInt64, _ events: CommandEvents) -> String {
        var reply = JSONText()
        reply.object { o in
            o.member("id", id)
            o.rawArray("events", events.texts)
        }
        return reply.text
    }

    static func integer(
        _ request: Request,
        _ name: String,
        default value: Int64,
        range: ClosedRange<Int64>
    ) throws(APIError) -> Int64 {
        guard let text = request.uri.queryParameters.get(name) else { return value }
        guard let number = Int64(text), range.contains(number) else {
            throw APIError.invalid("\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    /// The command's time, carried into its events (nanoseconds since the epoch, at millisecond grain).
    private static func now() -> Int64 { wallClockMilliseconds() * 1_000_000 }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text))
        )
    }
}
