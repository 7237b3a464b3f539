import CastleCore
import CastleSupport

/// Writes JSON text in the order members are given, so the same state always answers the same bytes,
/// and embeds already-encoded JSON (the matcher's event lines) without decoding it again. Into one
/// byte buffer, made a `String` once at the end: an order's command and its reply are built on every
/// request, and a `String` grown piece by piece (each key quoted into a `String` of its own first) was
/// about 4% of serve's CPU under load (docs/serve-performance.md).
struct JSONText {
    private var bytes: [UInt8] = []
    /// Whether the next value or key follows another and needs a comma: not right after `{`, `[` or a key.
    private var followsValue = false

    init() {
        bytes.reserveCapacity(256)
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func beginValue() {
        if followsValue { bytes.append(UInt8(ascii: ",")) }
    }

    mutating func object(_ body: (inout JSONText) -> Void) {
        beginValue()
        bytes.append(UInt8(ascii: "{"))
        followsValue = false
        body(&self)
        bytes.append(UInt8(ascii: "}"))
        followsValue = true
    }

    mutating func array(_ body: (inout JSONText) -> Void) {
        beginValue()
        bytes.append(UInt8(ascii: "["))
        followsValue = false
        body(&self)
        bytes.append(UInt8(ascii: "]"))
        followsValue = true
    }

    /// A key inside an object; the value written next belongs to it.
    mutating func key(_ name: String) {
        beginValue()
        appendJSONString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        followsValue = false
    }

    mutating func string(_ value: String) {
        beginValue()
        appendJSONString(value, to: &bytes)
        followsValue = true
    }

    mutating func raw(_ json: String) {
        beginValue()
        bytes.append(contentsOf: json.utf8)
        followsValue = true
    }

    mutating func member(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    /// A fixed name (an enum's, as match.md spells it).
    mutating func member(_ name: String, _ value: StaticString) {
        member(name, value.description)
    }

    mutating func member(_ name: String, _ value: String?) {
        key(name)
        if let value { string(value) } else { raw("null") }
    }

    mutating func member(_ name: String, _ value: some BinaryInteger) {
        key(name)
        if let value = Int64(exactly: value) {
            beginValue()
            appendDecimal(value, decimals: 0, to: &bytes)
            followsValue = true
        } else {
            raw(String(value))
        }
    }

    mutating func member(_ name: String, _ value: Bool) {
        key(name)
        raw(value ? "true" : "false")
    }

    /// An array of already-encoded JSON values (event lines), written as they are.
    mutating func rawArray(_ name: String, _ elements: some Sequence<String>) {
        key(name)
        array { a in
            for element in elements { a.raw(element) }
        }
    }
}
