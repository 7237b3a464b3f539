import Codecs
import Testing

/// One member as the scanner reported it, copied out of the line.
struct Member: Equatable, CustomStringConvertible {
    var key: String
    var keyKind: JSONValue.Kind
    var kind: JSONValue.Kind
    var value: String

    init(_ key: String, _ kind: JSONValue.Kind, _ value: String, keyKind: JSONValue.Kind = .string) {
        self.key = key
        self.keyKind = keyKind
        self.kind = kind
        self.value = value
    }

    var description: String { "\(key)=\(kind):\(value)" }
}

func scan(_ text: String) -> (ok: Bool, members: [Member]) {
    let bytes = Array(text.utf8)
    var members: [Member] = []
    let ok = bytes.withUnsafeBufferPointer { buffer in
        FlatJSON.scan(buffer) { key, value in
            members.append(
                Member(
                    String(decoding: key.bytes, as: UTF8.self),
                    value.kind,
                    String(decoding: value.bytes, as: UTF8.self),
                    keyKind: key.kind
                )
            )
        }
    }
    return (ok, members)
}

/// Decodes the first member's value with ``JSONValue/decodedString(into:)``.
func decodedFirstValue(_ text: String) -> (ok: Bool, bytes: [UInt8])? {
    let bytes = Array(text.utf8)
    var result: (Bool, [UInt8])?
    let ok = bytes.withUnsafeBufferPointer { buffer in
        FlatJSON.scan(buffer) { _, value in
            guard result == nil else { return }
            var out: [UInt8] = [0xAA]  // must be cleared first
            let decoded = value.decodedString(into: &out)
            result = (decoded, out)
        }
    }
    guard ok else { return nil }
    return result
}

@Suite struct FlatJSONScan {
    @Test func membersInOrderWithKinds() {
        let (ok, members) = scan(#"{"op":"new","id":42,"price":-1.5e+3,"a":true,"b":false,"c":null,"s":""}"#)
        #expect(ok)
        #expect(
            members == [
                Member("op", .string, "new"),
                Member("id", .number, "42"),
                Member("price", .number, "-1.5e+3"),
                Member("a", .other, "true"),
                Member("b", .other, "false"),
                Member("c", .other, "null"),
                Member("s", .string, ""),
            ]
        )
    }

    @Test func whitespaceEverywhere() {
        let (ok, members) = scan(" \t{ \"op\" :\t\"new\" ,\r\n \"id\"  :  7 } \t\r\n")
        #expect(ok)
        #expect(members == [Member("op", .string, "new"), Member("id", .number, "7")])
    }

    @Test func emptyObject() {
        let (ok, members) = scan("{}")
        #expect(ok)
        #expect(members.isEmpty)
        #expect(scan("  {  }  ").ok)
    }

    @Test func nestedValuesAreCheckedAndSkipped() {
        let (ok, members) = scan(#"{"a":{"x":[1,2,{"y":"z"}],"w":{}},"b":[],"c":[ [ ] , { } ],"d":1}"#)
        #expect(ok)
        #expect(members.map(\.key) == ["a", "b", "c", "d"])
        #expect(members[0].kind == .other)
        #expect(members[0].value == #"{"x":[1,2,{"y":"z"}],"w":{}}"#)
        #expect(members[1] == Member("b", .other, "[]"))
        #expect(members[2] == Member("c", .other, "[ [ ] , { } ]"))
        #expect(members[3] == Member("d", .number, "1"))
    }

    @Test func deeplyNestedIsRejectedNotCrashing() {
        let depth = 200
        let text = "{\"a\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        #expect(!scan(text).ok)
        let shallow = "{\"a\":" + String(repeating: "[", count: 10) + String(repeating: "]", count: 10) + "}"
        #expect(scan(shallow).ok)
    }

    @Test func escapedStringsAreMarked() {
        let (ok, members) = scan(#"{"plain":"abc","esc":"a\"b","k\u0065y":"v"}"#)
        #expect(ok)
        #expect(members[0] == Member("plain", .string, "abc"))
        #expect(members[1] == Member("esc", .escapedString, #"a\"b"#))
        #expect(members[2] == Member(#"k\u0065y"#, .string, "v", keyKind: .escapedString))
    }

    /// JSON text is UTF-8 (RFC 8259): a string's bytes outside ASCII must each be part of a well-formed
    /// character, in the scanner's eight-bytes-at-a-time path (`long`) and in its tail.
    @Test(arguments: [false, true]) func stringsMustBeUTF8(long: Bool) {
        let pad = long ? Array("padding-".utf8) : []
        func scans(_ content: [UInt8]) -> Bool {
            let line = Array(#"{"k":""#.utf8) + pad + content + pad + Array(#""}"#.utf8)
            return line.withUnsafeBufferPointer { FlatJSON.scan($0) { _, _ in } }
        }
        for good in ["é", "€", "𝄞", "aé€𝄞b", "\u{10FFFF}", "\u{FFFD}", "\u{E000}"] {
            #expect(scans(Array(good.utf8)), "\(good)")
        }
        let bad: [[UInt8]] = [
            [0x80], [0xBF], [0xFF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],
            [0xED, 0xA0, 0x80], [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],
            [0xE2, 0x82], [0xC3], [0xC3, 0x41], [0xF0, 0x9D, 0x84],
        ]
        for bytes in bad { #expect(!scans(bytes), "\(bytes)") }
        // A key too.
        let key = Array(#"{""#.utf8) + [0xFF] + Array(#"":1}"#.utf8)
        #expect(!key.withUnsafeBufferPointer { FlatJSON.scan($0) { _, _ in } })
    }

    @Test func equalsMatchesOnlyUnescapedExactStrings() {
        let bytes = Array(#"{"a":"new","b":"ne\u0077","c":"newer","d":5}"#.utf8)
        var results: [Bool] = []
        let ok = bytes.withUnsafeBufferPointer { buffer in
            FlatJSON.scan(buffer) { _, value in results.append(value.equals("new")) }
        }
        #expect(ok)
        #expect(results == [true, false, false, false])
    }

    struct Decode: Sendable, CustomTestStringConvertible {
        var json: String
        var expected: [UInt8]
        var testDescription: String { json }
    }

    static let decodes: [Decode] = [
        Decode(json: #"{"k":"a\"b"}"#, expected: Array("a\"b".utf8)),
        Decode(json: #"{"k":"a\\b"}"#, expected: Array("a\\b".utf8)),
        Decode(json: #"{"k":"a\/b"}"#, expected: Array("a/b".utf8)),
        Decode(json: #"{"k":"\b\f\n\r\t"}"#, expected: [0x08, 0x0C, 0x0A, 0x0D, 0x09]),
        Decode(json: #"{"k":"\u0041\u00e9"}"#, expected: Array("Aé".utf8)),
        Decode(json: #"{"k":"\u20AC"}"#, expected: Array("€".utf8)),
        Decode(json: #"{"k":"x\u00E9y"}"#, expected: Array("xéy".utf8)),
        Decode(json: #"{"k":"\ud83d\ude00"}"#, expected: Array("😀".utf8)),
        Decode(json: #"{"k":"\uD834\uDD1E!"}"#, expected: Array("𝄞!".utf8)),
        Decode(json: #"{"k":"\u0000"}"#, expected: [0]),
        Decode(json: #"{"k":"é\n"}"#, expected: Array("é\n".utf8)),
    ]

    @Test(arguments: decodes)
    func decodedString(_ c: Decode) {
        let result = decodedFirstValue(c.json)
        #expect(result?.ok == true)
        #expect(result?.bytes == c.expected)
    }

    @Test(arguments: [
        #"{"k":"\ud83d"}"#,  // lone high surrogate
        #"{"k":"\ud83dx"}"#,
        #"{"k":"\ud83d\u0041"}"#,  // high surrogate then not a low one
        #"{"k":"\ude00"}"#,  // lone low surrogate
    ])
    func badSurrogatesDoNotDecode(_ json: String) {
        // Syntactically fine JSON strings, but not Unicode scalars.
        #expect(scan(json).ok)
        #expect(decodedFirstValue(json)?.ok == false)
    }

    @Test(arguments: [
        "",
        " ",
        "[]",
        "null",
        "\"op\"",
        "42",
        "{",
        "}",
        #"{"a":1"#,
        #"{"a":1}x"#,
        #"{"a":1}}"#,
        #"{"a":1} {"b":2}"#,
        #"{"a" 1}"#,
        #"{"a"1}"#,
        #"{"a":}"#,
        #"{"a":1 "b":2}"#,
        #"{"a":1,}"#,
        #"{,"a":1}"#,
        #"{"a":1,,"b":2}"#,
        #"{a:1}"#,
        #"{'a':1}"#,
        #"{1:1}"#,
        #"{"a":"unterminated}"#,
        #"{"a":"x"#,
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"nl\nhere\"}",
        "{\"a\":\"nul\u{0}\"}",
        #"{"a":"bad\x"}"#,
        #"{"a":"bad\u12"}"#,
        #"{"a":"bad\u12G4"}"#,
        #"{"a":"bad\"#,
        #"{"a":01}"#,
        #"{"a":-01}"#,
        #"{"a":1.}"#,
        #"{"a":-}"#,
        #"{"a":.5}"#,
        #"{"a":+1}"#,
        #"{"a":1e}"#,
        #"{"a":1e+}"#,
        #"{"a":1.e5}"#,
        #"{"a":0x10}"#,
        #"{"a":NaN}"#,
        #"{"a":tru}"#,
        #"{"a":True}"#,
        #"{"a":nul}"#,
        #"{"a":[1,]}"#,
        #"{"a":[1 2]}"#,
        #"{"a":{"b"}}"#,
        #"{"a":{"b":1,}}"#,
        #"{"a":[}"#,
        #"{"a":{]}"#,
    ])
    func malformed(_ text: String) {
        #expect(!scan(text).ok)
    }

    @Test(arguments: [
        #"{"a":0}"#, #"{"a":-0}"#, #"{"a":0.5}"#, #"{"a":-0.5e-7}"#, #"{"a":1E5}"#, #"{"a":10}"#,
        #"{"a":123456789012345678901234567890}"#,
    ])
    func validNumbers(_ text: String) {
        let (ok, members) = scan(text)
        #expect(ok)
        #expect(members.first?.kind == .number)
    }

    @Test func numberTextIsExactlyAsWritten() {
        let (ok, members) = scan(#"{"a":-0.000120,"b":1E+5}"#)
        #expect(ok)
        #expect(members == [Member("a", .number, "-0.000120"), Member("b", .number, "1E+5")])
    }

    @Test func emptyBufferIsMalformed() {
        let ok = FlatJSON.scan(UnsafeBufferPointer(start: nil, count: 0)) { _, _ in }
        #expect(!ok)
    }

    @Test func scanStopsAtBufferEnd() {
        // A valid object followed by garbage outside the buffer handed in.
        let bytes = Array(#"{"a":1}garbage"#.utf8)
        let ok = bytes.withUnsafeBufferPointer { FlatJSON.scan(UnsafeBufferPointer(rebasing: $0[0..<7])) { _, _ in } }
        #expect(ok)
    }
}
