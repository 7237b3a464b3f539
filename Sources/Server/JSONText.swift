import CastleSupport

/// Writes JSON text in the order members are given, so the same state always answers the same bytes,
/// and embeds already-encoded JSON (the matcher's event lines) without decoding it again.
struct JSONText {
    private(set) var text = ""
    private var first = [true]

    private mutating func separate() {
        if first[first.count - 1] {
            first[first.count - 1] = false
        } else {
            text += ","
        }
    }

    mutating func object(_ body: (inout JSONText) -> Void) {
        separateValue()
        text += "{"
        first.append(true)
        body(&self)
        first.removeLast()
        text += "}"
    }

    mutating func array(_ body: (inout JSONText) -> Void) {
        separateValue()
        text += "["
        first.append(true)
        body(&self)
        first.removeLast()
        text += "]"
    }

    /// A key inside an object; the value written next belongs to it.
    mutating func key(_ name: String) {
        separate()
        text += jsonStringLiteral(name) + ":"
        // The value that follows belongs to the key: no comma before it.
        pendingKey = true
    }

    private var pendingKey = false

    mutating func string(_ value: String) {
        separateValue()
        text += jsonStringLiteral(value)
    }

    mutating func raw(_ json: String) {
        separateValue()
        text += json
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

    mutating func rawArray(_ name: String, _ elements: [String]) {
        key(name)
        raw("[" + elements.joined(separator: ",") + "]")
    }

    private mutating func separateValue() {
        if pendingKey {
            pendingKey = false
        } else {
            separate()
        }
    }
}
