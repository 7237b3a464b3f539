import SyntheticData

/// Random edits of a valid input, for the mutation fuzz tests of every parser (store URLs, NDJSON
/// commands, LOBSTER and CSV files, ledger entries), from a fixed seed (the order generator's
/// xoshiro256**), so every run makes the same cases.
public struct Mutator: RandomNumberGenerator {
    private var random: Xoshiro256

    public init(seed: UInt64) { random = Xoshiro256(seed: seed) }

    public mutating func next() -> UInt64 { random.next() }

    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// What parsers of text trip on: delimiters, quotes, escapes, signs, exponents, huge and empty numbers,
    /// URL punctuation, fragments of a ledger entry, bytes that are not UTF-8, NUL, a lone CR.
    static let tokens: [[UInt8]] =
        [
            "\"", ",", ":", "{", "}", "[", "]", "\\", "\\u", "\\ud800", "\n", "\r", "\r\n", "-", "+", ".", "e", "E",
            "0", "9", "99999999999999999999999999", "-9223372036854775808", "18446744073709551616", "1e309", "null",
            "true", "%", "%4", "%zz", "@", "/", "?", "&", "=", "://", "[::", "]:", "\"\"", "NaN", "\t", " ",
            "\"key\":\"x\",", "{\"account\":\"held:x\",\"asset\":\"BTC\",\"amount\":\"1\"},",
        ].map { Array($0.utf8) } + [[0x00], [0xFF], [0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98, 0x80]]

    /// `input` with one to `edits` random edits.
    public mutating func mutate(_ input: [UInt8], edits: Int = 3) -> [UInt8] {
        var bytes = input
        for _ in 0...below(edits) {
            let at = bytes.isEmpty ? 0 : below(bytes.count)
            switch below(7) {
            case 0 where !bytes.isEmpty: bytes[at] ^= UInt8(truncatingIfNeeded: 1 << below(8))
            case 1 where !bytes.isEmpty: bytes[at] = UInt8(truncatingIfNeeded: next())
            case 2: bytes.insert(contentsOf: Self.tokens[below(Self.tokens.count)], at: at)
            case 3 where !bytes.isEmpty: bytes.removeSubrange(at..<min(bytes.count, at + 1 + below(8)))
            case 4 where !bytes.isEmpty:
                let end = min(bytes.count, at + 1 + below(16))
                bytes.insert(contentsOf: bytes[at..<end], at: at)
            case 5: bytes = Array(bytes.prefix(at))
            default: bytes.insert(UInt8(truncatingIfNeeded: next()), at: at)
            }
        }
        return bytes
    }
}
