import CastleCore

/// A price or quantity read from the events' canonical decimal strings, as an integer count of 10^-18
/// (FixedDecimal's largest scale), so that any instrument's decimals add and compare exactly.
struct Amount: Hashable, Comparable, Sendable {
    var units: Int128

    static let zero = Amount(units: 0)
    private static let scale = Int(FixedDecimal.maxScale)

    init(units: Int128) {
        self.units = units
    }

    init?(_ text: some StringProtocol) {
        var text = String(text)
        let parsed = text.withUTF8 { FixedDecimal.parse($0) }
        guard let parsed else { return nil }
        var value = Int128(parsed.mantissa)
        for _ in 0..<(Self.scale - Int(parsed.scale)) { value *= 10 }
        units = value
    }

    static func < (a: Amount, b: Amount) -> Bool { a.units < b.units }
    static func + (a: Amount, b: Amount) -> Amount { Amount(units: a.units + b.units) }
    static func - (a: Amount, b: Amount) -> Amount { Amount(units: a.units - b.units) }

    /// Canonical: no exponent, no trailing zeros after the point, as the contract writes decimals.
    var text: String {
        let negative = units < 0
        let magnitude = negative ? -units : units
        var digits = String(magnitude)
        if digits.count <= Self.scale { digits = String(repeating: "0", count: Self.scale - digits.count + 1) + digits }
        var whole = String(digits.dropLast(Self.scale))
        var fraction = String(digits.suffix(Self.scale))
        while fraction.hasSuffix("0") { fraction.removeLast() }
        if whole.isEmpty { whole = "0" }
        return (negative ? "-" : "") + whole + (fraction.isEmpty ? "" : "." + fraction)
    }
}
