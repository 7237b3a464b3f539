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
        guard let parsed = text.withUTF8({ FixedDecimal.parse($0) }) else { return nil }
        self.init(parsed)
    }

    init(_ decimal: FixedDecimal) {
        var value = Int128(decimal.mantissa)
        for _ in 0..<(Self.scale - Int(decimal.scale)) { value *= 10 }
        units = value
    }

    static func < (a: Amount, b: Amount) -> Bool { a.units < b.units }
    static func + (a: Amount, b: Amount) -> Amount { Amount(units: a.units + b.units) }
    static func - (a: Amount, b: Amount) -> Amount { Amount(units: a.units - b.units) }

    /// Canonical: no exponent, no trailing zeros after the point, as the contract writes decimals.
    /// One division splits the units into the whole part and 18 fraction digits (every reply and
    /// market-data message formats amounts, so this stays off `Int128`'s slow digit-by-digit text).
    var text: String {
        let (whole, fraction) = units.magnitude.quotientAndRemainder(dividingBy: Self.one)
        var text = units < 0 ? "-" : ""
        text += whole <= UInt64.max ? String(UInt64(whole)) : String(whole)
        guard fraction != 0 else { return text }
        var digits = UInt64(fraction)
        var count = Self.scale
        while digits % 10 == 0 {
            digits /= 10
            count -= 1
        }
        let significant = String(digits)
        text += "."
        text += String(repeating: "0", count: count - significant.utf8.count)
        text += significant
        return text
    }

    /// 10^18: one whole unit.
    private static let one: UInt128 = 1_000_000_000_000_000_000
}
