public import CastleCore

/// Reads one line of the order-stream contract (`spec/match.md`) into a ``Command``: symbols and
/// accounts interned, decimals kept exact. Syntax and field checks happen here; the rules that need an
/// instrument or the book (tick, lot, scale, duplicate ids) are the engine's.
public struct CommandDecoder {
    public enum Decoded: Equatable {
        case command(Command)
        /// `op` and `id` where they could be read.
        case rejected(op: Op?, id: OrderID?, reason: RejectReason, detail: RejectDetail)
    }

    public var symbols: NameTable
    /// Account ids start at 1: 0 is "no account".
    public var accounts: NameTable
    private var scratch: [UInt8] = []

    public init(symbols: NameTable = NameTable(capacityMax: 100_000), accounts: NameTable = NameTable(firstID: 1)) {
        self.symbols = symbols
        self.accounts = accounts
    }

    private enum Field: Int {
        case op, id, symbol, side, type, price, qty, tif, account, stp, ts
    }

    /// Identifies a key by length and bytes, without hashing.
    @inline(__always)
    private static func field(_ key: JSONValue) -> Field? {
        guard key.kind == .string else { return nil }
        let b = key.bytes
        switch b.count {
        case 2:
            if b[0] == UInt8(ascii: "o") && b[1] == UInt8(ascii: "p") { return .op }
            if b[0] == UInt8(ascii: "i") && b[1] == UInt8(ascii: "d") { return .id }
            if b[0] == UInt8(ascii: "t") && b[1] == UInt8(ascii: "s") { return .ts }
        case 3:
            if key.equals("qty") { return .qty }
            if key.equals("tif") { return .tif }
            if key.equals("stp") { return .stp }
        case 4:
            if key.equals("side") { return .side }
            if key.equals("type") { return .type }
        case 5:
            if key.equals("price") { return .price }
        case 6:
            if key.equals("symbol") { return .symbol }
        case 7:
            if key.equals("account") { return .account }
        default:
            break
        }
        return nil
    }

    public mutating func decode(_ line: UnsafeBufferPointer<UInt8>, lineNumber: Int) -> Decoded {
        var op: JSONValue?
        var id: JSONValue?
        var symbol: JSONValue?
        var side: JSONValue?
        var type: JSONValue?
        var price: JSONValue?
        var qty: JSONValue?
        var tif: JSONValue?
        var account: JSONValue?
        var stp: JSONValue?
        var ts: JSONValue?
        var problem = RejectDetail.none
        let wellFormed = FlatJSON.scan(line) { key, value in
            guard let field = Self.field(key) else {
                if problem == .none { problem = .unknownField }
                return
            }
            func set(_ slot: inout JSONValue?) {
                if slot != nil, problem == .none { problem = .duplicateField }
                slot = value
            }
            switch field {
            case .op: set(&op)
            case .id: set(&id)
            case .symbol: set(&symbol)
            case .side: set(&side)
            case .type: set(&type)
            case .price: set(&price)
            case .qty: set(&qty)
            case .tif: set(&tif)
            case .account: set(&account)
            case .stp: set(&stp)
            case .ts: set(&ts)
            }
        }
        if !wellFormed { return .rejected(op: nil, id: nil, reason: .malformed, detail: .notJSONObject) }

        // What can be echoed in a rejection.
        var parsedOp: Op?
        if let op {
            if op.equals("new") {
                parsedOp = .new
            } else if op.equals("cancel") {
                parsedOp = .cancel
            } else if op.equals("amend") {
                parsedOp = .amend
            }
        }
        let parsedID = id.flatMap(Self.unsigned)
        func invalid(_ detail: RejectDetail) -> Decoded {
            .rejected(op: parsedOp, id: parsedID, reason: .invalid, detail: detail)
        }
        if problem != .none { return invalid(problem) }
        guard op != nil else { return invalid(.missingOp) }
        guard let parsedOp else { return invalid(.unknownOp) }
        guard id != nil else { return invalid(.missingID) }
        guard let parsedID else { return invalid(.badID) }

        var command = Command(op: parsedOp, id: parsedID, line: lineNumber)
        if let ts {
            guard ts.kind == .number, let value = Self.unsigned(ts), value <= UInt64(Int64.max) else {
                return invalid(.badTS)
            }
            command.ts = Int64(value)
        }
        if let side {
            if side.equals("buy") {
                command.side = .buy
            } else if side.equals("sell") {
                command.side = .sell
            } else {
                return invalid(.badSide)
            }
        }
        if let type {
            if type.equals("limit") {
                command.type = .limit
            } else if type.equals("market") {
                command.type = .market
            } else {
                return invalid(.badType)
            }
        }
        if let tif {
            if tif.equals("gtc") {
                command.tif = .gtc
            } else if tif.equals("ioc") {
                command.tif = .ioc
            } else if tif.equals("fok") {
                command.tif = .fok
            } else if tif.equals("post_only") {
                command.tif = .postOnly
            } else {
                return invalid(.badTIF)
            }
        }
        if let stp {
            if stp.equals("cancel_taker") {
                command.stp = .cancelTaker
            } else if stp.equals("cancel_maker") {
                command.stp = .cancelMaker
            } else if stp.equals("cancel_both") {
                command.stp = .cancelBoth
            } else if stp.equals("none") {
                command.stp = STPMode.none
            } else {
                return invalid(.badSTP)
            }
        }
        if let price {
            guard let value = Self.decimal(price) else {
                return invalid(Self.unreadable(price, tooLarge: .priceTooLarge, offScale: .priceOffScale) ?? .badPrice)
            }
            command.price = value
        }
        if let qty {
            guard let value = Self.decimal(qty) else {
                return invalid(Self.unreadable(qty, tooLarge: .qtyTooLarge, offScale: .qtyOffScale) ?? .badQty)
            }
            command.qty = value
        }
        if let account {
            switch Self.intern(account, in: &accounts, scratch: &scratch) {
            case .interned(let value): command.account = value
            case .tableFull: return invalid(.tooManyAccounts)
            case .notAName: return invalid(.badAccount)
            }
        }
        if let symbol {
            switch Self.intern(symbol, in: &symbols, scratch: &scratch) {
            case .interned(let value): command.symbol = value
            case .tableFull: return invalid(.tooManySymbols)
            case .notAName: return invalid(.badSymbol)
            }
        }
        if parsedOp == .new {
            if symbol == nil { return invalid(.missingSymbol) }
            if side == nil { return invalid(.missingSide) }
            if qty == nil { return invalid(.missingQty) }
            if command.type == .limit && price == nil { return invalid(.missingPrice) }
        } else if parsedOp == .amend, price == nil, qty == nil {
            return invalid(.amendWithoutChange)
        }
        return .command(command)
    }

    /// An unsigned 64-bit JSON integer: digits only.
    private static func unsigned(_ value: JSONValue) -> UInt64? {
        value.kind == .number ? FlatJSON.unsigned(value.bytes) : nil
    }

    /// A plain decimal from a JSON string or a JSON number without exponent.
    private static func decimal(_ value: JSONValue) -> FixedDecimal? {
        guard value.kind == .string || value.kind == .number else { return nil }
        return FixedDecimal.parse(value.bytes)
    }

    /// Why a value ``decimal(_:)`` refused does not fit, when it is a plain decimal (nil otherwise).
    private static func unreadable(
        _ value: JSONValue,
        tooLarge: RejectDetail,
        offScale: RejectDetail
    ) -> RejectDetail? {
        guard value.kind == .string || value.kind == .number else { return nil }
        switch FixedDecimal.whyRefused(value.bytes) {
        case .offScale: return offScale
        case .tooLarge: return tooLarge
        case nil: return nil
        }
    }

    private enum Interned {
        case interned(UInt32)
        case tableFull
        case notAName
    }

    /// Names are non-empty strings of at most 64 bytes with no control characters.
    private static func intern(_ value: JSONValue, in table: inout NameTable, scratch: inout [UInt8]) -> Interned {
        let id: UInt32?
        switch value.kind {
        case .string:
            guard (1...64).contains(value.bytes.count) else { return .notAName }
            id = table.intern(value.bytes)
        case .escapedString:
            guard value.decodedString(into: &scratch), (1...64).contains(scratch.count),
                !scratch.contains(where: { $0 < 0x20 })
            else { return .notAName }
            id = scratch.withUnsafeBufferPointer { table.intern($0) }
        default:
            return .notAName
        }
        return id.map(Interned.interned) ?? .tableFull
    }
}
