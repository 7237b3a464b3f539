public import CastleSupport
public import Streams

/// A strict, streaming RFC 4180 reader: fields separated by commas, records by LF or CRLF, a field in
/// double quotes may hold commas, newlines and doubled quotes. A quote inside an unquoted field, text
/// after a closing quote, or a quote left open at the end of the input is an error naming the line. A
/// leading UTF-8 byte order mark is skipped; blank lines are skipped. Memory is bounded by the longest
/// record (at most `recordBytes_max`).
public final class CSVReader {
    public let source: InputSource
    public static let recordBytes_max = 1 << 20
    public static let fields_max = 512

    private let buffer: UnsafeMutablePointer<UInt8>
    private let capacity = 1 << 16
    private var position = 0
    private var end = 0
    private var atEOF = false
    private var started = false
    /// The line the next record starts on (1-based).
    private var line = 1

    public init(source: InputSource) {
        self.source = source
        buffer = .allocate(capacity: capacity)
    }

    deinit { buffer.deallocate() }

    private func fail(_ line: Int, _ reason: String) -> CastleError {
        ReconcileInputError("\(source.name):\(line)", reason).castleError
    }

    /// Refills the buffer; false at the end of the input.
    private func refill() throws(CastleError) -> Bool {
        if atEOF { return false }
        position = 0
        end = try source.readBytes(into: buffer, count: capacity)
        if end == 0 { atEOF = true }
        return end > 0
    }

    @inline(__always)
    private func nextByte() throws(CastleError) -> UInt8? {
        if position == end, try !refill() { return nil }
        let byte = buffer[position]
        position += 1
        return byte
    }

    @inline(__always)
    private func peekByte() throws(CastleError) -> UInt8? {
        if position == end, try !refill() { return nil }
        return buffer[position]
    }

    /// The fields of the last record ``nextRecord()`` read: their bytes, one after another, and where
    /// each ends. Valid until the next call.
    public private(set) var recordBytes: [UInt8] = []
    public private(set) var fieldEnds: [Int] = []

    /// The number of fields of the last record.
    public var fieldCount: Int { fieldEnds.count }

    /// Field `index` of the last record, as bytes.
    @inline(__always)
    public func field(_ index: Int) -> ArraySlice<UInt8> {
        recordBytes[(index == 0 ? 0 : fieldEnds[index - 1])..<fieldEnds[index]]
    }

    /// Field `index` of the last record (valid UTF-8: ``nextRecord()`` checked it).
    public func string(_ index: Int) -> String { String(decoding: field(index), as: UTF8.self) }

    /// The next non-blank record and the line it starts on, or nil at the end of the input.
    public func next() throws(CastleError) -> (fields: [String], line: Int)? {
        guard let line = try nextRecord() else { return nil }
        return ((0..<fieldCount).map(string), line)
    }

    /// Reads the next non-blank record into ``recordBytes`` and ``fieldEnds``, checking every field is
    /// valid UTF-8; returns the line it starts on, or nil at the end of the input.
    public func nextRecord() throws(CastleError) -> Int? {
        if !started {
            started = true
            if try peekByte() == 0xEF {
                for expected: UInt8 in [0xEF, 0xBB, 0xBF] {
                    if try nextByte() != expected { throw fail(1, "a byte order mark that is not UTF-8's") }
                }
            }
        }
        while true {
            guard let first = try peekByte() else { return nil }
            if first == 0x0A || first == 0x0D {
                _ = try nextByte()
                if first == 0x0A { line += 1 }
                continue
            }
            break
        }
        let startLine = line
        recordBytes.removeAll(keepingCapacity: true)
        fieldEnds.removeAll(keepingCapacity: true)
        var recordLength = 0
        while true {
            // One field.
            let fieldStart = recordBytes.count
            var quoted = false
            if try peekByte() == UInt8(ascii: "\"") {
                quoted = true
                _ = try nextByte()
                let openedOn = line
                while true {
                    guard let byte = try nextByte() else {
                        throw fail(openedOn, "a quoted field opened here is never closed (a truncated file?)")
                    }
                    recordLength += 1
                    if recordLength > Self.recordBytes_max {
                        throw fail(startLine, "a record longer than \(Self.recordBytes_max) bytes")
                    }
                    if byte == UInt8(ascii: "\"") {
                        if try peekByte() == UInt8(ascii: "\"") {
                            _ = try nextByte()
                            recordBytes.append(byte)
                            continue
                        }
                        break
                    }
                    if byte == 0x0A { line += 1 }
                    recordBytes.append(byte)
                }
            }
            // After a quoted field: a separator, a line end or the end. Unquoted: bytes up to one of those.
            var endOfRecord = false
            var ascii = true
            scan: while true {
                if !quoted {
                    // The plain bytes of an unquoted field, straight from the buffer.
                    var q = position
                    while q < end {
                        let byte = buffer[q]
                        if byte == UInt8(ascii: ",") || byte == 0x0A || byte == 0x0D || byte == UInt8(ascii: "\"") {
                            break
                        }
                        q += 1
                    }
                    if q > position {
                        recordLength += q - position
                        if recordLength > Self.recordBytes_max {
                            throw fail(startLine, "a record longer than \(Self.recordBytes_max) bytes")
                        }
                        recordBytes.append(
                            contentsOf: UnsafeBufferPointer(start: buffer + position, count: q - position)
                        )
                        position = q
                    }
                }
                guard let byte = try nextByte() else {
                    endOfRecord = true
                    break
                }
                switch byte {
                case UInt8(ascii: ","): break scan
                case 0x0A:
                    line += 1
                    endOfRecord = true
                    break scan
                case 0x0D:
                    if try peekByte() == 0x0A {
                        _ = try nextByte()
                        line += 1
                        endOfRecord = true
                        break scan
                    }
                    throw fail(line, "a carriage return inside an unquoted field")
                default: break
                }
                if quoted { throw fail(line, "text after the closing quote of a field (quote it whole)") }
                if byte == UInt8(ascii: "\"") { throw fail(line, "a quote inside an unquoted field") }
                // Only reached at the end of the buffer: the loop above takes every other plain byte.
                recordLength += 1
                if recordLength > Self.recordBytes_max {
                    throw fail(startLine, "a record longer than \(Self.recordBytes_max) bytes")
                }
                recordBytes.append(byte)
            }
            for index in fieldStart..<recordBytes.count where recordBytes[index] >= 0x80 {
                ascii = false
                break
            }
            if !ascii {
                let valid = recordBytes[fieldStart...].withUnsafeBufferPointer {
                    String(validating: $0, as: UTF8.self) != nil
                }
                guard valid else { throw fail(line, "field \(fieldEnds.count + 1) is not valid UTF-8") }
            }
            fieldEnds.append(recordBytes.count)
            if fieldEnds.count > Self.fields_max { throw fail(startLine, "more than \(Self.fields_max) fields") }
            if endOfRecord { return startLine }
        }
    }
}
