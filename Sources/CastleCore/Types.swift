/// An order id: unique among live orders; a finished order's id may be reused.
public typealias OrderID = UInt64

/// Order ids that castle makes up itself. Ids below 2^63 belong to the input; the upper half is castle's,
/// split in two so that its two kinds of made-up id never meet:
/// - `2^63 + line`: the taker of a LOBSTER execution, which `castle ingest` turns into an IOC order;
/// - `2^63 + 2^62 + id`: an order that `castle replay --inject` adds to a recorded stream.
public enum SyntheticOrderID {
    /// The first id of the injected orders' range.
    public static let injectedBase: OrderID = 1 << 63 | 1 << 62
    /// The largest id a user may give an injected order.
    public static let injectedIDMax: OrderID = (1 << 62) - 1

    /// The taker id of the LOBSTER execution at `line`.
    public static func lobsterTaker(line: Int) -> OrderID { 1 << 63 | OrderID(line) }

    /// The id an injected order with the user's `id` (at most ``injectedIDMax``) gets in the replay.
    public static func injected(_ id: OrderID) -> OrderID { injectedBase | id }

    /// Whether `id` lies in the injected orders' range.
    public static func isInjected(_ id: OrderID) -> Bool { id & injectedBase == injectedBase }
}

/// Index of an interned symbol name (see ``NameTable``).
public typealias SymbolID = UInt32

/// Index of an interned account name; ``AccountID/none`` (0) means "no account".
public typealias AccountID = UInt32

extension AccountID {
    /// The account of an order that named none: self-trade prevention never applies to it.
    public static let none: AccountID = 0
}

/// Nanoseconds since the Unix epoch.
public typealias Timestamp = Int64

public enum Side: UInt8, Sendable, Hashable, CaseIterable {
    case buy
    case sell

    public var opposite: Side { self == .buy ? .sell : .buy }
    public var name: StaticString { self == .buy ? "buy" : "sell" }

    /// The side `name` names (match.md), nil for any other text.
    public init?(name: String) {
        switch name {
        case "buy": self = .buy
        case "sell": self = .sell
        default: return nil
        }
    }
}

public enum OrderType: UInt8, Sendable, Hashable {
    case limit
    case market

    public var name: StaticString { self == .limit ? "limit" : "market" }

    /// The type `name` names (match.md), nil for any other text.
    public init?(name: String) {
        switch name {
        case "limit": self = .limit
        case "market": self = .market
        default: return nil
        }
    }
}

public enum TimeInForce: UInt8, Sendable, Hashable {
    case gtc
    case ioc
    case fok
    case postOnly

    public var name: StaticString {
        switch self {
        case .gtc: "gtc"
        case .ioc: "ioc"
        case .fok: "fok"
        case .postOnly: "post_only"
        }
    }

    /// The time in force `name` names (match.md), nil for any other text.
    public init?(name: String) {
        switch name {
        case "gtc": self = .gtc
        case "ioc": self = .ioc
        case "fok": self = .fok
        case "post_only": self = .postOnly
        default: return nil
        }
    }
}

/// Self-trade prevention: what happens when a taker meets a maker of the same account.
public enum STPMode: UInt8, Sendable, Hashable, CaseIterable {
    case cancelTaker
    case cancelMaker
    case cancelBoth
    case none

    public var name: StaticString {
        switch self {
        case .cancelTaker: "cancel_taker"
        case .cancelMaker: "cancel_maker"
        case .cancelBoth: "cancel_both"
        case .none: "none"
        }
    }
}

public enum Op: UInt8, Sendable, Hashable {
    case new
    case cancel
    case amend

    public var name: StaticString {
        switch self {
        case .new: "new"
        case .cancel: "cancel"
        case .amend: "amend"
        }
    }
}

public enum CancelReason: UInt8, Sendable, Hashable {
    case user
    case ioc
    case fok
    case postOnly
    case market
    case stp

    public var name: StaticString {
        switch self {
        case .user: "user"
        case .ioc: "ioc"
        case .fok: "fok"
        case .postOnly: "post_only"
        case .market: "market"
        case .stp: "stp"
        }
    }
}

public enum RejectReason: UInt8, Sendable, Hashable {
    /// The line is not a JSON object.
    case malformed
    /// A JSON object with a missing, unknown or out-of-range field.
    case invalid
    /// Cancel or amend of an order that is not resting.
    case unknownOrder
    /// A new order whose id is live.
    case duplicateID

    public var name: StaticString {
        switch self {
        case .malformed: "malformed"
        case .invalid: "invalid"
        case .unknownOrder: "unknown_order"
        case .duplicateID: "duplicate_id"
        }
    }
}

/// Why a command was rejected, in words for people (stderr, `--strict`); the wire carries only the reason.
public enum RejectDetail: UInt8, Sendable, Hashable, Error {
    case none
    case notJSONObject
    case lineTooLong
    case unknownField
    case duplicateField
    case missingOp
    case unknownOp
    case missingID
    case badID
    case missingSymbol
    case badSymbol
    case unknownSymbol
    case tooManySymbols
    case missingSide
    case badSide
    case badType
    case missingPrice
    case marketWithPrice
    case badPrice
    case priceTooLarge
    case priceOffScale
    case priceOffTick
    case missingQty
    case badQty
    case qtyTooLarge
    case qtyOffScale
    case qtyOffLot
    case badTIF
    case marketPostOnly
    case badAccount
    case tooManyAccounts
    case badSTP
    case badTS
    case amendWithoutChange
    case notResting
    case idLive

    public var text: String {
        switch self {
        case .none: ""
        case .notJSONObject: "not a JSON object"
        case .lineTooLong: "line longer than the limit"
        case .unknownField: "unknown field"
        case .duplicateField: "field given twice"
        case .missingOp: "missing op"
        case .unknownOp: "op is not new, cancel or amend"
        case .missingID: "missing id"
        case .badID: "id is not an unsigned 64-bit integer"
        case .missingSymbol: "missing symbol"
        case .badSymbol: "symbol is not a non-empty string of at most 64 bytes"
        case .unknownSymbol: "symbol is not in the instruments file"
        case .tooManySymbols: "too many distinct symbols"
        case .missingSide: "missing side"
        case .badSide: "side is not buy or sell"
        case .badType: "type is not limit or market"
        case .missingPrice: "limit order without price"
        case .marketWithPrice: "market order with a price"
        case .badPrice: "price is not a positive plain decimal"
        case .priceTooLarge: "price too large for the instrument's scale"
        case .priceOffScale: "price has more decimals than the instrument allows"
        case .priceOffTick: "price is not a multiple of the tick size"
        case .missingQty: "missing qty"
        case .badQty: "qty is not a positive plain decimal"
        case .qtyTooLarge: "qty too large for the instrument's scale"
        case .qtyOffScale: "qty has more decimals than the instrument allows"
        case .qtyOffLot: "qty is not a multiple of the lot size"
        case .badTIF: "tif is not gtc, ioc, fok or post_only"
        case .marketPostOnly: "market order cannot be post_only"
        case .badAccount: "account is not a non-empty string of at most 64 bytes"
        case .tooManyAccounts: "too many distinct accounts"
        case .badSTP: "stp is not cancel_taker, cancel_maker, cancel_both or none"
        case .badTS: "ts is not a non-negative 64-bit integer"
        case .amendWithoutChange: "amend carries neither price nor qty"
        case .notResting: "order is not resting"
        case .idLive: "id belongs to a live order"
        }
    }
}
