/// Splits an input into lines without copying them: each line is a view into the reader's buffer,
/// valid until the next call. A trailing `\r` is dropped; the last line needs no newline. Memory is
/// bounded by `lineBytesMax`: a longer line is reported as too long and skipped.
public import CastleSupport

public final class LineReader {
    public struct Line {
        public var bytes: UnsafeBufferPointer<UInt8>
        /// 1-based.
        public var number: Int
        /// The line was longer than `lineBytesMax`; `bytes` is empty.
        public var tooLong: Bool

        /// Only spaces and tabs (or nothing): skipped by the readers, still counted for line numbers.
        public var isBlank: Bool {
            !tooLong && bytes.allSatisfy { $0 == 0x20 || $0 == 0x09 }
        }
    }

    public let source: InputSource
    public let lineBytesMax: Int
    private let buffer: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private var start = 0
    private var end = 0
    private var atEOF = false
    public private(set) var lineNumber = 0

    public init(source: InputSource, lineBytesMax: Int = 1 << 20) {
        self.source = source
        self.lineBytesMax = lineBytesMax
        capacity = max(lineBytesMax + 2, 1 << 20)
        buffer = .allocate(capacity: capacity)
    }

    deinit { buffer.deallocate() }

    public func next() throws(CastleError) -> Line? {
        var skippingLongLine = false
        while true {
            if start < end, let newline = memchrIndex(from: start) {
                let lineStart = start
                start = newline + 1
                lineNumber += 1
                if skippingLongLine {
                    return Line(bytes: UnsafeBufferPointer(start: buffer, count: 0), number: lineNumber, tooLong: true)
                }
                let bytes = trimmed(lineStart, newline)
                if bytes.count > lineBytesMax {
                    return Line(bytes: UnsafeBufferPointer(start: buffer, count: 0), number: lineNumber, tooLong: true)
                }
                return Line(bytes: bytes, number: lineNumber, tooLong: false)
            }
            if atEOF {
                guard start < end || skippingLongLine else { return nil }
                let lineStart = start
                start = end
                lineNumber += 1
                let bytes = trimmed(lineStart, end)
                if skippingLongLine || bytes.count > lineBytesMax {
                    return Line(bytes: UnsafeBufferPointer(start: buffer, count: 0), number: lineNumber, tooLong: true)
                }
                return Line(bytes: bytes, number: lineNumber, tooLong: false)
            }
            // Keep the partial line, make room, read more.
            // One byte of slack for the `\r` of a CRLF line that is exactly at the limit.
            if end - start > lineBytesMax + 1 {
                skippingLongLine = true
                start = end
            }
            if start > 0 {
                if end > start { (buffer).update(from: buffer + start, count: end - start) }
                end -= start
                start = 0
            }
            let n = try source.readBytes(into: buffer + end, count: capacity - end)
            if n == 0 { atEOF = true } else { end += n }
        }
    }

    @inline(__always)
    private func memchrIndex(from offset: Int) -> Int? {
        guard let found = memchr(buffer + offset, 0x0A, end - offset) else { return nil }
        return buffer.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }

    @inline(__always)
    private func trimmed(_ from: Int, _ to: Int) -> UnsafeBufferPointer<UInt8> {
        var to = to
        if to > from, buffer[to - 1] == 0x0D { to -= 1 }
        return UnsafeBufferPointer(start: buffer + from, count: to - from)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
