import CastleSupport

/// Writes JSON text in the order members are given, so the same state always answers the same bytes,
/// and embeds already-encoded JSON (the matcher's event lines) without decoding it again.
struct JSONText {
    private(set) var text = ""
    /// Whether the next value or key follows another and needs a comma: not right after `{`, `[` or a key.
    private var followsValue = false

    private mutating func beginValue() {
        if followsValue { text += "," }
    }

    mutating func object(_ body: (inout JSONText) -> Void) {
        beginValue()
        text += "{"
        followsValue = false
        body(&self)
        text += "}"
        followsValue = true
    }

    mutating func array(_ body: (inout JSONText) -> Void) {
        beginValue()
        text += "["
        followsValue = false
        body(&self)
        text += "]"
        followsValue = true
    }

    /// A key inside an object; the value written next belongs to it.
    mutating func key(_ name: String) {
        beginValue()
        text += jsonStringLiteral(name)
        text += ":"
        followsValue = false
    }

    mutating func string(_ value: String) {
        beginValue()
        text += jsonStringLiteral(value)
        followsValue = true
    }

    mutating func raw(_ json: String) {
        beginValue()
        text += json
        followsValue = true
    }

    mutating func member(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    mutating func member(_ name: String, _ value: String?) {
        key(name)
        if let value { string(value) } else { raw("null") }
    }

    mutating func member(_ name: String, _ value: some BinaryInteger) {
        key(name)
        raw(String(value))
    }

    mutating func member(_ name: String, _ value: Bool) {
        key(name)
        raw(value ? "true" : "false")
    }

    /// An array of already-encoded JSON values (event lines), written as they are.
    mutating func rawArray(_ name: String, _ elements: [String]) {
        key(name)
        array { a in
            for element in elements { a.raw(element) }
        }
    }
}
