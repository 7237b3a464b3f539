import Ledger

/// A fast reading of one entries NDJSON line in the canonical form `castle` writes
/// (``EntryCodec/encode(_:)``: members in order, no spaces, no escapes), straight into the
/// ``LedgerItem`` reconciliation needs, without building a JSON tree or an ``Entry``.
///
/// It accepts only lines the strict decoder accepts too, with the same item: anything it is not sure of
/// (an escape, a space, another member order, a non-canonical amount, a key that breaks a rule) is
/// `.unsure`, and the caller decodes that line strictly (``EntryCodec``), with its exact error.
enum FastLedgerLine {
    enum Outcome {
        /// The line is a valid entry; its item, or nil when it moves no money through clearing or bank.
        case item(LedgerItem?)
        case unsure
    }

    private static let kinds: [[UInt8]] = EntryKind.allCases.map { Array($0.rawValue.utf8) }

    static func read(_ line: UnsafeBufferPointer<UInt8>, assets: AssetTable, cache: inout AssetCache) -> Outcome {
        var reader = Reader(bytes: line)
        guard reader.literal("{\"key\":"), let key = reader.simpleString(),
            (1...Entry.keyLength_max).contains(key.count), reader.literal(",\"kind\":"),
            let kindBytes = reader.simpleString(),
            let kindIndex = kinds.firstIndex(where: { $0.elementsEqual(kindBytes) }),
            reader.literal(",\"ts\":"), let ts = reader.nonNegativeInteger(), reader.literal(",")
        else { return .unsure }
        let kind = EntryKind.allCases[kindIndex]
        var ref: UnsafeBufferPointer<UInt8>?
        var reverses: UnsafeBufferPointer<UInt8>?
        if reader.literal("\"ref\":") {
            guard let text = reader.simpleString(), (1...Entry.refLength_max).contains(text.count),
                reader.literal(",")
            else { return .unsure }
            ref = text
        }
        if reader.literal("\"reverses\":") {
            guard let text = reader.simpleString(), (1...Entry.keyLength_max).contains(text.count),
                !text.elementsEqual(key), reader.literal(",")
            else { return .unsure }
            reverses = text
        }
        guard (kind == .reversal) == (reverses != nil) else { return .unsure }
        if reader.literal("\"memo\":") {
            guard let text = reader.simpleString(), (1...Entry.memoLength_max).contains(text.count),
                reader.literal(",")
            else { return .unsure }
        }
        guard reader.literal("\"postings\":[") else { return .unsure }
        var postings = 0
        var sum: Int128 = 0
        var asset: Asset?
        var mixed = false
        while true {
            guard reader.literal("{\"account\":"), let account = reader.simpleString(),
                let moves = movesMoney(account), reader.literal(",\"asset\":"), let code = reader.simpleString(),
                let postingAsset = cache.asset(code, assets: assets), reader.literal(",\"amount\":\""),
                let amount = reader.canonicalAmount(scale: postingAsset.scale), reader.literal("}")
            else { return .unsure }
            postings += 1
            if postings > Entry.postings_max { return .unsure }
            if moves {
                if let asset, asset != postingAsset { mixed = true }
                asset = postingAsset
                sum += Int128(amount)
            }
            if reader.literal(",") { continue }
            guard reader.literal("]}"), reader.atEnd, postings >= 2 else { return .unsure }
            break
        }
        guard !mixed, let asset, sum != 0, let amount = Int64(exactly: -sum) else { return .item(nil) }
        return .item(
            LedgerItem(
                key: String(decoding: key, as: UTF8.self),
                ref: ref.map { String(decoding: $0, as: UTF8.self) },
                reverses: reverses.map { String(decoding: $0, as: UTF8.self) },
                amount: amount,
                currency: asset,
                day: Int32(clamping: ts / LedgerItem.nanosecondsPerDay)
            )
        )
    }

    /// `KIND:OWNER` of a valid account: whether it is a clearing or bank account; nil when not sure.
    private static func movesMoney(_ name: UnsafeBufferPointer<UInt8>) -> Bool? {
        guard let colon = name.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let owner = name[(colon + 1)...]
        guard (1...Account.ownerLength_max).contains(owner.count),
            owner.allSatisfy({ byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                    true
                default: false
                }
            })
        else { return nil }
        let kind = name[..<colon]
        for candidate in AccountKind.allCases where candidate.rawValue.utf8.elementsEqual(kind) {
            return candidate == .clearing || candidate == .bank
        }
        return nil
    }

    /// The assets met so far by their code's bytes (a ledger names a handful).
    struct AssetCache {
        private var known: [(code: [UInt8], asset: Asset)] = []

        init() {}

        mutating func asset(_ code: UnsafeBufferPointer<UInt8>, assets: AssetTable) -> Asset? {
            for entry in known where entry.code.elementsEqual(code) { return entry.asset }
            guard (1...Asset.codeLength_max).contains(code.count),
                code.allSatisfy({ (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || $0 &- 48 < 10 }),
                let asset = assets[String(decoding: code, as: UTF8.self)]
            else { return nil }
            if known.count < 64 { known.append((Array(code), asset)) }
            return asset
        }
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var p = 0

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        var atEnd: Bool { p == bytes.count }

        mutating func literal(_ text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard p + count <= bytes.count else { return false }
            let pattern = text.utf8Start
            for i in 0..<count where bytes[p + i] != pattern[i] { return false }
            p += count
            return true
        }

        /// A string of printable ASCII without escapes (so valid UTF-8 without control characters).
        mutating func simpleString() -> UnsafeBufferPointer<UInt8>? {
            guard p < bytes.count, bytes[p] == UInt8(ascii: "\"") else { return nil }
            let start = p + 1
            var q = start
            while q < bytes.count {
                let byte = bytes[q]
                if byte == UInt8(ascii: "\"") {
                    p = q + 1
                    return UnsafeBufferPointer(rebasing: bytes[start..<q])
                }
                if byte < 0x20 || byte > 0x7E || byte == UInt8(ascii: "\\") { return nil }
                q += 1
            }
            return nil
        }

        /// `0` or digits without a leading zero, at most Int64.max.
        mutating func nonNegativeInteger() -> Int64? {
            let start = p
            var value: Int64 = 0
            while p < bytes.count, bytes[p] &- 48 < 10 {
                let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(Int64(bytes[p] &- 48))
                if overflow || overflow2 { return nil }
                value = sum
                p += 1
            }
            guard p > start, bytes[start] != UInt8(ascii: "0") || p - start == 1 else { return nil }
            return value
        }

        /// A canonical amount and its closing quote: an optional `-`, digits without a leading zero (or
        /// one `0`), and exactly `scale` decimals after a point (none and no point for a scale of 0); at
        /// most 18 digits, not zero.
        mutating func canonicalAmount(scale: UInt8) -> Int64? {
            let negative = literal("-")
            let start = p
            var value: Int64 = 0
            var digits = 0
            while p < bytes.count, bytes[p] &- 48 < 10 {
                value = value * 10 + Int64(bytes[p] &- 48)
                p += 1
                digits += 1
                if digits > 18 { return nil }
            }
            let integerDigits = p - start
            guard integerDigits > 0, bytes[start] != UInt8(ascii: "0") || integerDigits == 1 else { return nil }
            if scale > 0 {
                guard literal(".") else { return nil }
                let fractionStart = p
                while p < bytes.count, bytes[p] &- 48 < 10 {
                    value = value * 10 + Int64(bytes[p] &- 48)
                    p += 1
                    digits += 1
                    if digits > 18 { return nil }
                }
                guard p - fractionStart == Int(scale) else { return nil }
            }
            guard literal("\""), value != 0 else { return nil }
            return negative ? -value : value
        }
    }
}
