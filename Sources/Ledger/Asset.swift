import CastleCore

/// Bad input to the ledger: an asset code, an account name, an amount or an entry that breaks a rule.
/// `reason` is for people and names what is wrong; the caller adds where (`file:line:`).
public struct LedgerInputError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}

/// An asset: a code of 1–12 characters of `[A-Z0-9]` and a scale, the number of decimals of its minor
/// unit (USD 2, JPY 0, BTC 8). Amounts of it are integer counts of minor units.
public struct Asset: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let code: String
    public let scale: UInt8

    public static let codeLength_max = 12

    public init(code: String, scale: UInt8) throws(LedgerInputError) {
        guard Self.isValidCode(code) else {
            throw LedgerInputError("asset code \(quoted(code)) is not 1–12 characters of A-Z and 0-9")
        }
        guard scale <= FixedDecimal.maxScale else {
            throw LedgerInputError("asset \(code): scale \(scale) is above \(FixedDecimal.maxScale)")
        }
        self.code = code
        self.scale = scale
    }

    public static func isValidCode(_ code: String) -> Bool {
        let bytes = code.utf8
        guard (1...codeLength_max).contains(bytes.count) else { return false }
        return bytes.allSatisfy { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || $0 &- 48 < 10 }
    }

    public var description: String { code }

    public static func < (a: Asset, b: Asset) -> Bool {
        a.code != b.code ? a.code < b.code : a.scale < b.scale
    }

    /// The largest magnitude of one posting: Int64.max minor units (Int64.min is refused so that every
    /// amount can be negated).
    public static let amount_max = Int64.max

    /// Parses a decimal string in this asset's unit (`"100.25"`, `"-3"`, `"0.5"`) into minor units,
    /// exactly: more significant decimals than the scale, an exponent, a `+`, spaces, or a value beyond
    /// ±Int64.max minor units are refused with the reason.
    public func parseAmount(_ text: String) -> Result<Int64, LedgerInputError> {
        guard FixedDecimal.isPlainDecimal(text.utf8) else {
            return .failure(LedgerInputError("amount \(quoted(text)) is not a plain decimal number"))
        }
        guard let decimal = FixedDecimal.parse(text) else {
            // Syntactically a decimal, but FixedDecimal could not hold it: either too many significant
            // decimals (more than 18) or too many digits.
            if FixedDecimal.significantDecimals(text.utf8) > Int(scale) { return .failure(offScale(text)) }
            return .failure(tooLarge(text))
        }
        switch decimal.scaled(to: scale) {
        case .failure(.offScale): return .failure(offScale(text))
        case .failure(.tooLarge): return .failure(tooLarge(text))
        case .success(let units):
            if units == Int64.min { return .failure(tooLarge(text)) }
            return .success(units)
        }
    }

    /// The canonical text of `units` minor units: a `-` when negative, the integer part, and exactly
    /// `scale` decimals (`"100.00"`, `"-0.50"`, `"7"` for a scale of 0). Deterministic, no exponent.
    public func format(_ units: Int64) -> String { format(Int128(units)) }

    /// As ``format(_:)-(Int64)``, for balances and sums.
    public func format(_ units: Int128) -> String {
        var digits = Array(String(units.magnitude).utf8)
        let decimals = Int(scale)
        if digits.count <= decimals {
            digits.insert(contentsOf: repeatElement(UInt8(ascii: "0"), count: decimals + 1 - digits.count), at: 0)
        }
        if decimals > 0 { digits.insert(UInt8(ascii: "."), at: digits.count - decimals) }
        if units < 0 { digits.insert(UInt8(ascii: "-"), at: 0) }
        return String(decoding: digits, as: UTF8.self)
    }

    private func offScale(_ text: String) -> LedgerInputError {
        LedgerInputError("amount \(quoted(text)) has more decimals than \(code)'s scale of \(scale)")
    }

    private func tooLarge(_ text: String) -> LedgerInputError {
        LedgerInputError("amount \(quoted(text)) is too large for \(code) (at most \(format(Self.amount_max)))")
    }
}

/// The assets an input may name, by code, each with its one scale.
public struct AssetTable: Sendable, Hashable {
    public private(set) var byCode: [String: Asset]

    public init(_ assets: [Asset] = []) {
        byCode = [:]
        for asset in assets { byCode[asset.code] = asset }
    }

    public subscript(code: String) -> Asset? { byCode[code] }

    /// Adds or replaces an asset.
    public mutating func insert(_ asset: Asset) { byCode[asset.code] = asset }

    /// ISO 4217 scales of common currencies: what the spec falls back to when the instruments file gives
    /// no scale. Not the whole standard; add assets for the rest.
    public static let iso4217: AssetTable = {
        let scales: [(String, UInt8)] = [
            ("USD", 2), ("EUR", 2), ("GBP", 2), ("CHF", 2), ("CAD", 2), ("AUD", 2), ("NZD", 2), ("CNY", 2),
            ("HKD", 2), ("SGD", 2), ("SEK", 2), ("NOK", 2), ("DKK", 2), ("PLN", 2), ("CZK", 2), ("INR", 2),
            ("MXN", 2), ("BRL", 2), ("ZAR", 2), ("TRY", 2), ("JPY", 0), ("KRW", 0), ("ISK", 0), ("CLP", 0),
            ("VND", 0), ("HUF", 2), ("BHD", 3), ("KWD", 3), ("JOD", 3), ("OMR", 3), ("TND", 3),
        ]
        return AssetTable(scales.map { try! Asset(code: $0.0, scale: $0.1) })
    }()
}

/// `text` in double quotes for messages, cut to 40 characters so that a huge input stays readable.
func quoted(_ text: String) -> String {
    let cut = text.count > 40 ? String(text.prefix(40)) + "…" : text
    return "\""
        + cut.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : $0.escaped(asASCII: true) }
        .joined() + "\""
}
