/// What an account is for, and so whether its balance may go below zero.
public enum AccountKind: String, Sendable, Hashable, CaseIterable, Comparable {
    /// A user's spendable funds.
    case available
    /// A user's funds reserved by open orders and pending withdrawals.
    case held
    /// Fees earned.
    case fees
    /// Money on its way through a processor (Stripe, a PSP).
    case clearing
    /// The exchange's bank accounts.
    case bank
    /// The world outside the books.
    case external

    /// Users' funds and fees are never below zero; the accounts that mirror the outside world may be.
    public var mayGoNegative: Bool {
        switch self {
        case .available, .held, .fees: false
        case .clearing, .bank, .external: true
        }
    }

    public static func < (a: AccountKind, b: AccountKind) -> Bool { a.rawValue < b.rawValue }
}

/// An account, named `KIND:OWNER` (`available:alice`, `fees:exchange`, `bank:eu-main`). It holds one
/// balance per asset.
public struct Account: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let kind: AccountKind
    public let owner: String

    public static let ownerLength_max = 64

    /// An owner is 1–64 characters of `[A-Za-z0-9._-]`.
    public init(kind: AccountKind, owner: String) throws(LedgerInputError) {
        guard Self.isValidOwner(owner) else {
            throw LedgerInputError(
                "account owner \(quoted(owner)) is not 1–\(Self.ownerLength_max) characters of A-Z, a-z, 0-9, '.', '_', '-'"
            )
        }
        self.kind = kind
        self.owner = owner
    }

    /// Parses `KIND:OWNER`.
    public init(parsing name: String) throws(LedgerInputError) {
        guard let colon = name.utf8.firstIndex(of: UInt8(ascii: ":")) else {
            throw LedgerInputError("account \(quoted(name)) is not KIND:OWNER")
        }
        let kindText = String(name[..<colon])
        guard let kind = AccountKind(rawValue: kindText) else {
            let kinds = AccountKind.allCases.map(\.rawValue).joined(separator: ", ")
            throw LedgerInputError("account \(quoted(name)): kind \(quoted(kindText)) is not one of \(kinds)")
        }
        try self.init(kind: kind, owner: String(name[name.index(after: colon)...]))
    }

    public static func isValidOwner(_ owner: String) -> Bool {
        let bytes = owner.utf8
        guard (1...ownerLength_max).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }

    public var description: String { kind.rawValue + ":" + owner }

    public static func < (a: Account, b: Account) -> Bool {
        a.kind != b.kind ? a.kind < b.kind : a.owner < b.owner
    }

    /// Where trade fees go.
    public static let exchangeFees = try! Account(kind: .fees, owner: "exchange")
}
