internal import CastleCore
public import CastleSupport
internal import Ledger

/// One matching rule. Rules run in the order of the rules file: a higher one claims first.
public struct MatchRule: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        /// 1:1: a ledger entry whose `ref` is one of the record's references.
        case reference
        /// 1:N: several ledger entries, each carrying one of the record's references, that sum to it.
        case split
        /// N:1: the records of one batch (payout) against the ledger entry whose `ref` is the batch id.
        case batch
        /// 1:1 without a reference: same currency, amount within tolerance, date within the window.
        case amount
    }

    public var name: String
    public var kind: Kind
    /// Absolute tolerance as a decimal in the currency's unit (`"0.01"`), applied at its scale.
    public var tolerance: String = "0"
    /// Relative tolerance in parts per million of the external amount.
    public var tolerancePPM: Int64 = 0
    /// How many days the two dates may differ; further apart is `late` (or no match for `amount`).
    public var windowDays: Int32 = 3

    public init(name: String, kind: Kind, tolerance: String = "0", tolerancePPM: Int64 = 0, windowDays: Int32 = 3) {
        self.name = name
        self.kind = kind
        self.tolerance = tolerance
        self.tolerancePPM = tolerancePPM
        self.windowDays = windowDays
    }
}

/// The rules file: `{"rules": [{"name","match","tolerance"?,"tolerance_relative"?,"window_days"?}, …]}`,
/// or the same as TOML (`[[rules]]` tables), highest priority first; `match` is reference, split, batch
/// or amount; `tolerance` and `tolerance_relative` are decimals written as strings (`"0.001"` is 0.1%).
public struct RuleSet: Sendable, Hashable {
    public var rules: [MatchRule]

    public init(rules: [MatchRule]) {
        self.rules = rules
    }

    public static let standard = RuleSet(rules: [
        MatchRule(name: "exact_ref", kind: .reference, windowDays: 3),
        MatchRule(name: "split_ref", kind: .split, windowDays: 3),
        MatchRule(name: "payout_batch", kind: .batch, windowDays: 3),
        MatchRule(name: "amount_date", kind: .amount, windowDays: 1),
    ])

    public static func parse(_ bytes: [UInt8], name fileName: String) throws(CastleError) -> RuleSet {
        let object = try ConfigObject(bytes, fileName: fileName)
        try object.allowOnly(["rules"])
        guard case .array(let values)? = object["rules"], !values.isEmpty else {
            throw object.fail("\"rules\" is a non-empty array")
        }
        var rules: [MatchRule] = []
        for (index, value) in values.enumerated() {
            guard case .object(let members) = value else { throw object.fail("rule \(index + 1) is not an object") }
            let rule = ConfigObject(members: members, fileName: "\(fileName): rule \(index + 1)")
            try rule.allowOnly(["name", "match", "tolerance", "tolerance_relative", "window_days"])
            guard let name = try rule.string("name"), !name.isEmpty else { throw rule.fail("a rule has a name") }
            if rules.contains(where: { $0.name == name }) { throw rule.fail("the name \"\(name)\" is taken") }
            guard let match = try rule.string("match"), let kind = MatchRule.Kind(rawValue: match) else {
                throw rule.fail("match is reference, split, batch or amount")
            }
            var parsed = MatchRule(name: name, kind: kind)
            if let tolerance = try rule.decimal("tolerance") {
                guard tolerance.first != "-", Asset.isPlainDecimalText(tolerance) else {
                    throw rule.fail("tolerance \"\(tolerance.prefix(20))\" is not a plain non-negative decimal")
                }
                parsed.tolerance = tolerance
            }
            if let relative = try rule.decimal("tolerance_relative") {
                let ppm = try? Asset(code: "PPM", scale: 6).parseAmount(relative).get()
                guard let ppm, ppm >= 0, ppm <= 1_000_000 else {
                    throw rule.fail("tolerance_relative is a decimal fraction from 0 to 1 with at most 6 decimals")
                }
                parsed.tolerancePPM = ppm
            }
            if let window = try rule.integer("window_days") {
                guard (0...3660).contains(window) else { throw rule.fail("window_days is 0 to 3660") }
                parsed.windowDays = Int32(window)
            }
            rules.append(parsed)
        }
        return RuleSet(rules: rules)
    }
}

extension Asset {
    /// Digits, optionally a point and more digits: a tolerance as written.
    static func isPlainDecimalText(_ text: String) -> Bool {
        text.first != "-" && text.utf8.count <= 20 && FixedDecimal.isPlainDecimal(text.utf8)
    }

    /// A plain non-negative decimal in minor units of `scale`, decimals beyond the scale dropped (a
    /// tolerance of 0.005 USD is 0 cents).
    static func minorUnits(ofTolerance text: String, scale: UInt8) -> Int64 {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        var digits = String(parts[0])
        let fraction = parts.count > 1 ? parts[1] : ""
        digits += String(fraction.prefix(Int(scale)))
        digits += String(repeating: "0", count: max(0, Int(scale) - fraction.count))
        return Int64(digits) ?? Int64.max
    }
}
