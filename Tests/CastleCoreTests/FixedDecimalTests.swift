import CastleCore
import Testing

/// SplitMix64: a small seeded generator so the property loops are reproducible without a package.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct FixedDecimalParse {
    struct Valid: Sendable, CustomTestStringConvertible {
        var text: String
        var mantissa: Int64
        var scale: UInt8
        var testDescription: String { "\"\(text)\"" }
    }

    static let valid: [Valid] = [
        Valid(text: "0", mantissa: 0, scale: 0),
        Valid(text: "7", mantissa: 7, scale: 0),
        Valid(text: "100", mantissa: 100, scale: 0),
        Valid(text: "101.25", mantissa: 10125, scale: 2),
        Valid(text: "0.5", mantissa: 5, scale: 1),
        Valid(text: "-0.5", mantissa: -5, scale: 1),
        Valid(text: "-42", mantissa: -42, scale: 0),
        Valid(text: "-101.25", mantissa: -10125, scale: 2),
        Valid(text: "007", mantissa: 7, scale: 0),
        Valid(text: "00.25", mantissa: 25, scale: 2),
        Valid(text: "1.0", mantissa: 1, scale: 0),
        Valid(text: "1.50", mantissa: 15, scale: 1),
        Valid(text: "1.50000000000000000000", mantissa: 15, scale: 1),
        Valid(text: "0.000", mantissa: 0, scale: 0),
        Valid(text: "-0", mantissa: 0, scale: 0),
        Valid(text: "1.05", mantissa: 105, scale: 2),
        Valid(text: "0.00000001", mantissa: 1, scale: 8),
        Valid(text: "0.000000000000000001", mantissa: 1, scale: 18),
        Valid(text: "0.123456789012345678", mantissa: 123_456_789_012_345_678, scale: 18),
        Valid(text: "9223372036854775807", mantissa: Int64.max, scale: 0),
        Valid(text: "-9223372036854775807", mantissa: -Int64.max, scale: 0),
        Valid(text: "922337203685477580.7", mantissa: Int64.max, scale: 1),
        Valid(text: "9.223372036854775807", mantissa: Int64.max, scale: 18),
        Valid(text: "9223372036854775807.000", mantissa: Int64.max, scale: 0),
    ]

    @Test(arguments: valid)
    func parsesPlainDecimals(_ c: Valid) {
        #expect(FixedDecimal.parse(c.text) == FixedDecimal(mantissa: c.mantissa, scale: c.scale))
    }

    @Test(arguments: [
        "", "-", "--1", "+1", ".5", "5.", "-.5", "1.2.3", "1e5", "1E5", "1.5e2", " 1", "1 ", "1 2", "1,5", "0x10",
        "abc", "1a", "NaN", "inf", "-inf",
        // Integer part beyond Int64.
        "9223372036854775808", "99999999999999999999", "-9223372036854775809",
        // Significant digits beyond Int64 through the fraction.
        "922337203685477580.8", "1.0000000000000000001",
        // Scale beyond 18.
        "0.0000000000000000001", "0.1234567890123456789",
    ])
    func rejects(_ text: String) {
        #expect(FixedDecimal.parse(text) == nil)
    }

    @Test func parsesFromBytesWithoutTerminator() {
        // The bytes overload must honour the buffer's count, not look past it.
        let bytes: [UInt8] = Array("12.5xyz".utf8)
        let value = bytes.withUnsafeBufferPointer { FixedDecimal.parse(UnsafeBufferPointer(rebasing: $0[0..<4])) }
        #expect(value == FixedDecimal(mantissa: 125, scale: 1))
        let empty = bytes.withUnsafeBufferPointer { FixedDecimal.parse(UnsafeBufferPointer(rebasing: $0[0..<0])) }
        #expect(empty == nil)
    }

    @Test
    func parsesInt64Min() {
        #expect(FixedDecimal.parse("-9223372036854775808") == FixedDecimal(mantissa: Int64.min, scale: 0))
        #expect(FixedDecimal.parse("-922337203685477580.8") == FixedDecimal(mantissa: Int64.min, scale: 1))
    }
}

@Suite struct FixedDecimalScaling {
    struct Case: Sendable, CustomTestStringConvertible {
        var mantissa: Int64
        var scale: UInt8
        var to: UInt8
        /// nil: expect failure `error`.
        var expected: Int64?
        var error: FixedDecimal.ScalingError?
        var testDescription: String { "\(mantissa)e-\(scale) to \(to)" }
    }

    static let cases: [Case] = [
        Case(mantissa: 10125, scale: 2, to: 2, expected: 10125),
        Case(mantissa: 10125, scale: 2, to: 8, expected: 10_125_000_000),
        Case(mantissa: -5, scale: 1, to: 4, expected: -5000),
        Case(mantissa: 0, scale: 0, to: 18, expected: 0),
        Case(mantissa: 1, scale: 0, to: 18, expected: 1_000_000_000_000_000_000),
        Case(mantissa: 9, scale: 0, to: 18, expected: 9_000_000_000_000_000_000),
        Case(mantissa: 10, scale: 0, to: 18, error: .tooLarge),
        Case(mantissa: -9, scale: 0, to: 18, expected: -9_000_000_000_000_000_000),
        Case(mantissa: -10, scale: 0, to: 18, error: .tooLarge),
        Case(mantissa: Int64.max, scale: 0, to: 0, expected: Int64.max),
        Case(mantissa: Int64.max, scale: 0, to: 1, error: .tooLarge),
        Case(mantissa: Int64.min, scale: 0, to: 0, expected: Int64.min),
        Case(mantissa: Int64.min, scale: 0, to: 1, error: .tooLarge),
        Case(mantissa: Int64.max, scale: 18, to: 18, expected: Int64.max),
        Case(mantissa: 922_337_203_685_477_580, scale: 0, to: 1, expected: 9_223_372_036_854_775_800),
        Case(mantissa: 922_337_203_685_477_581, scale: 0, to: 1, error: .tooLarge),
        Case(mantissa: -922_337_203_685_477_580, scale: 0, to: 1, expected: -9_223_372_036_854_775_800),
        Case(mantissa: -922_337_203_685_477_581, scale: 0, to: 1, error: .tooLarge),
        Case(mantissa: 123, scale: 3, to: 2, error: .offScale),
        Case(mantissa: 1, scale: 18, to: 17, error: .offScale),
        Case(mantissa: 1, scale: 18, to: 18, expected: 1),
        Case(mantissa: Int64.max, scale: 3, to: 2, error: .offScale),
    ]

    @Test(arguments: cases)
    func scaled(_ c: Case) {
        let result = FixedDecimal(mantissa: c.mantissa, scale: c.scale).scaled(to: c.to)
        switch result {
        case .success(let value):
            #expect(c.expected == value)
        case .failure(let error):
            #expect(c.error == error)
        }
    }

    @Test func powersOfTenTable() {
        #expect(powersOfTen.count == 19)
        #expect(powersOfTen.first == 1)
        #expect(powersOfTen.last == 1_000_000_000_000_000_000)
        for k in 1..<powersOfTen.count { #expect(powersOfTen[k] == powersOfTen[k - 1] * 10) }
    }
}

@Suite struct FormatDecimal {
    struct Case: Sendable, CustomTestStringConvertible {
        var value: Int64
        var decimals: UInt8
        var text: String
        var testDescription: String { "\(value) at \(decimals) → \(text)" }
    }

    static let cases: [Case] = [
        Case(value: 0, decimals: 0, text: "0"),
        Case(value: 0, decimals: 2, text: "0"),
        Case(value: 0, decimals: 18, text: "0"),
        Case(value: 10125, decimals: 2, text: "101.25"),
        Case(value: 10120, decimals: 2, text: "101.2"),
        Case(value: 10100, decimals: 2, text: "101"),
        Case(value: 100, decimals: 0, text: "100"),
        Case(value: 5, decimals: 1, text: "0.5"),
        Case(value: 5, decimals: 4, text: "0.0005"),
        Case(value: 50, decimals: 4, text: "0.005"),
        Case(value: 1, decimals: 8, text: "0.00000001"),
        Case(value: 100_000_000, decimals: 8, text: "1"),
        Case(value: -5, decimals: 1, text: "-0.5"),
        Case(value: -10125, decimals: 2, text: "-101.25"),
        Case(value: -100, decimals: 2, text: "-1"),
        Case(value: -7, decimals: 0, text: "-7"),
        Case(value: 1, decimals: 18, text: "0.000000000000000001"),
        Case(value: Int64.max, decimals: 0, text: "9223372036854775807"),
        Case(value: Int64.max, decimals: 1, text: "922337203685477580.7"),
        Case(value: Int64.max, decimals: 8, text: "92233720368.54775807"),
        Case(value: Int64.max, decimals: 18, text: "9.223372036854775807"),
        Case(value: Int64.min, decimals: 0, text: "-9223372036854775808"),
        Case(value: Int64.min, decimals: 1, text: "-922337203685477580.8"),
        Case(value: Int64.min, decimals: 8, text: "-92233720368.54775808"),
        Case(value: Int64.min, decimals: 18, text: "-9.223372036854775808"),
        Case(value: Int64.min + 8, decimals: 1, text: "-922337203685477580"),
        Case(value: 1_000_000_000_000_000_000, decimals: 18, text: "1"),
        Case(value: -1_000_000_000_000_000_000, decimals: 18, text: "-1"),
    ]

    @Test(arguments: cases)
    func canonicalText(_ c: Case) {
        #expect(formatDecimal(c.value, decimals: c.decimals) == c.text)
    }

    @Test func appendDecimalAppends() {
        var bytes: [UInt8] = Array("x=".utf8)
        appendDecimal(-2550, decimals: 3, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "x=-2.55")
    }

    /// parse(formatDecimal(v, d)).scaled(to: d) == v for random values at every scale.
    @Test func roundTripProperty() {
        var random = SplitMix64(seed: 0xC0FFEE)
        var checked = 0
        for round in 0..<20_000 {
            let raw = Int64(bitPattern: random.next())
            // Mix full-width values with short ones so small magnitudes and trailing zeros appear.
            let value: Int64
            switch round % 4 {
            case 0: value = raw
            case 1: value = raw >> Int64(random.next() % 63)
            case 2: value = (raw % 1_000_000) * powersOfTen[Int(random.next() % 13)]
            default: value = raw % 1000
            }
            let decimals = UInt8(random.next() % 19)
            let text = formatDecimal(value, decimals: decimals)
            guard let parsed = FixedDecimal.parse(text) else {
                Issue.record("\(text) (\(value) at \(decimals)) did not parse")
                continue
            }
            // Canonical: never a trailing zero after the point, never a bare point.
            #expect(!(text.contains(".") && (text.hasSuffix("0") || text.hasSuffix("."))), "\(text)")
            #expect(parsed.scale <= decimals)
            let back = parsed.scaled(to: decimals)
            #expect(back == .success(value), "\(text) at \(decimals)")
            checked += 1
        }
        #expect(checked > 19_000)
    }
}
