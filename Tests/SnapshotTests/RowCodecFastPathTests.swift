import Storage
import Testing

@testable import Snapshot

/// The fast row encoder and decoder against the reference ones: the same bytes out, and for any line the
/// same row or a refusal (the fast decoder declines, the strict one decides).
@Suite("snapshot row fast paths") struct RowCodecFastPathTests {
    static let columns = [
        TableColumn(name: "a", type: .integer), TableColumn(name: "b", type: .text),
        TableColumn(name: "c", type: .blob), TableColumn(name: "d\"q", type: .integer),
    ]

    static let rows: [[RowValue]] = [
        [
            .integer(Int64.min), .text("quote \" back \\ nl \n tab \t nul \u{0} \u{1f} é 🚀 /"), .blob([0, 255, 1]),
            .null,
        ],
        [.integer(Int64.max), .text(""), .blob([]), .integer(0)],
        [.null, .null, .null, .integer(-1)],
        [
            .integer(999_999_999_999_999_999), .text(#"{"op":"new","id":1}"#), .blob([7]),
            .integer(-1_000_000_000_000_000_000),
        ],
        [.integer(10), .text("\\\\\"\""), .null, .integer(100)],
    ]

    @Test func encoderWritesTheReferenceBytes() {
        for row in Self.rows {
            var fast: [UInt8] = []
            var reference: [UInt8] = []
            RowEncoder(columns: Self.columns).encode(row, into: &fast)
            RowCodec.encodeReference(row, columns: Self.columns, into: &reference)
            #expect(fast == reference, "\(row)")
        }
        var fast: [UInt8] = []
        var reference: [UInt8] = []
        RowEncoder(columns: []).encode([], into: &fast)
        RowCodec.encodeReference([], columns: [], into: &reference)
        #expect(fast == reference)
    }

    @Test func decoderAgreesWithTheStrictReader() throws {
        let textColumns = [TableColumn(name: "a", type: .integer), TableColumn(name: "b", type: .text)]
        var lines: [[UInt8]] = []
        for row in Self.rows {
            var line: [UInt8] = []
            RowCodec.encodeReference(row, columns: Self.columns, into: &line)
            lines.append(Array(line.dropLast()))
        }
        let odd = [
            #"{"a":1,"b":"x"}"#, #"{"a":-0,"b":"x"}"#, #"{"a":01,"b":"x"}"#, #"{"a":-,"b":"x"}"#,
            #"{"a":1.5,"b":"x"}"#, #"{"a":1e3,"b":"x"}"#, #"{"a":9223372036854775807,"b":"x"}"#,
            #"{"a":9223372036854775808,"b":"x"}"#, #"{"a":-9223372036854775808,"b":"x"}"#,
            #"{"a": 1,"b":"x"}"#, #"{"a":1 ,"b":"x"}"#, #"{"a":1,"b":"x" }"#, #"{"a":1,"b":"x"} "#,
            #"{"a":null,"b":null}"#, #"{"a":nul,"b":null}"#, #"{"a":nullx,"b":null}"#, #"{"a":true,"b":"x"}"#,
            #"{"a":1,"b":"\u0041\ud83d\ude80"}"#, #"{"a":1,"b":"\ud83d"}"#, #"{"a":1,"b":"\q"}"#,
            #"{"a":1,"b":"\/\b\f\n\r\t\"\\"}"#, #"{"a":1,"b":"x\"#, #"{"a":1,"b":"x"#, #"{"a":1,"b":1}"#,
            #"{"a":"1","b":"x"}"#, #"{"a":1,"b":"x","c":2}"#, #"{"a":1}"#, #"{"b":"x","a":1}"#,
            #"{"\u0061":1,"b":"x"}"#,
            #"{"a":1,"b":"é"}"#, "", "{", "}", #"{"a":1,"b":"x"}}"#, #"{"a":1,"b":["x"]}"#,
        ].map { Array($0.utf8) }
        let raw: [[UInt8]] = [
            Array(#"{"a":1,"b":"tab"#.utf8) + [9] + Array(#""}"#.utf8),
            Array(#"{"a":1,"b":""#.utf8) + [0xff, 0x41] + Array(#""}"#.utf8),
            Array(#"{"a":1,"b":""#.utf8) + [0xc3] + Array(#""}"#.utf8),
        ]
        for line in odd + raw {
            let fast = line.withUnsafeBufferPointer { RowDecoder(columns: textColumns).decodeCanonical($0) }
            let strict = RowCodec.decodeStrict(ArraySlice(line), columns: textColumns)
            switch strict {
            case .success(let row): if let fast { #expect(fast == row, "\(String(decoding: line, as: UTF8.self))") }
            case .failure: #expect(fast == nil, "accepted \(String(decoding: line, as: UTF8.self))")
            }
        }
        for line in lines {
            let strict = try? RowCodec.decodeStrict(ArraySlice(line), columns: Self.columns).get()
            #expect(strict != nil)
            #expect(try RowCodec.decode(ArraySlice(line), columns: Self.columns).get() == strict)
        }
        // The common case takes the fast path.
        let common = Array(#"{"a":42,"b":"{\"op\":\"new\",\"id\":1}"}"#.utf8)
        let fast = common.withUnsafeBufferPointer { RowDecoder(columns: textColumns).decodeCanonical($0) }
        #expect(fast == [.integer(42), .text(#"{"op":"new","id":1}"#)])
    }
}
