import CastleCore
public import CastleSupport
public import MarketData
public import Streams

// Streaming readers for LOBSTER (lobsterdata.com) sample and academic files: the message file
// (`time,type,id,size,price,direction`) and the orderbook file (`askPrice1,askSize1,bidPrice1,bidSize1,…`).
// Both read one line at a time through ``LineReader``, so memory does not depend on the file's length,
// and parse numbers exactly (times to integer nanoseconds, never through a binary float).
//
// Errors are ``CastleError`` `.dataError` with the message `file:line:column: reason`, where `column` is
// the 1-based byte column of the first byte of the offending field (for a line with too few fields: one
// past its last byte; for too many: the first extra field), and the reason names the field. An error
// ends the stream: later calls throw it again.

/// Reads a LOBSTER message file as ``L3Event``s: time in nanoseconds after midnight, prices as written
/// (dollars × 10000, i.e. 4 price decimals), sizes in shares, direction 1 → `.buy`, -1 → `.sell` (the
/// resting order's side). Types 1–7 map to ``L3Event/Kind`` (6, cross trades, does not occur in the
/// samples). A halt (type 7) carries its state in `price`: -1 halted, 0 quoting resumed, 1 trading resumed.
///
/// Errors are `.dataError` with the message `file:line:column: reason`; `column` is the 1-based byte column
/// where the offending field starts (for too few fields: one past the line's end; for too many: the first
/// extra field). A last line cut short is reported as `truncated last line: …`. After an error, every
/// call throws it again.
public final class LobsterMessageReader {
    /// LOBSTER prices are dollars × 10000.
    public static let priceDecimals: UInt8 = 4
    public static let fieldCount = 6

    /// The path as given, or `<stdin>`.
    public let name: String
    private let lines: LineReader
    private var fields = FieldSplitter()
    private var failure: CastleError?

    /// Opens `path` (stdin for nil or `-`; compressed input is decompressed).
    public init(path: String?) throws(CastleError) {
        lines = LineReader(source: try InputSource(path: path), lineBytesMax: 4096)
        name = lines.source.name
    }

    /// Lines read so far.
    public var lineNumber: Int { lines.lineNumber }

    /// The input, for progress reporting.
    public var source: InputSource { lines.source }

    /// The next event, or nil at the end of the file.
    public func next() throws(CastleError) -> L3Event? {
        if let failure { throw failure }
        guard let line = try lines.next() else { return nil }
        if !line.tooLong, let event = Self.parseFast(line.bytes, line: line.number) { return event }
        do throws(FieldProblem) {
            return try parse(line)
        } catch {
            let failure = fail(error, line: line.number, reader: lines, name: name)
            self.failure = failure
            throw failure
        }
    }

    /// The common case, without diagnostics: a well-formed line with numbers of at most 18 digits. Anything
    /// else (nil) goes to ``parse(_:)``, which accepts the rest of the valid lines and explains the invalid.
    @inline(__always)
    private static func parseFast(_ bytes: UnsafeBufferPointer<UInt8>, line: Int) -> L3Event? {
        guard let p = bytes.baseAddress else { return nil }
        let end = bytes.count
        var i = 0
        let (seconds, secondDigits) = scanDigits(p, &i, end)
        guard secondDigits >= 1, secondDigits <= 9 else { return nil }
        var nanos: UInt64 = 0
        if i < end, p[i] == UInt8(ascii: ".") {
            i += 1
            let (fraction, fractionDigits) = scanDigits(p, &i, end)
            guard fractionDigits >= 1, fractionDigits <= 9 else { return nil }
            nanos = fraction
            for _ in fractionDigits..<9 { nanos &*= 10 }
        }
        guard comma(p, &i, end) else { return nil }
        let (type, typeDigits) = scanDigits(p, &i, end)
        guard typeDigits == 1, type >= 1, type <= 7, comma(p, &i, end) else { return nil }
        let (id, idDigits) = scanDigits(p, &i, end)
        guard idDigits >= 1, idDigits <= 19, comma(p, &i, end) else { return nil }
        let (size, sizeDigits) = scanDigits(p, &i, end)
        guard sizeDigits >= 1, sizeDigits <= 18, comma(p, &i, end) else { return nil }
        guard let price = scanSigned(p, &i, end), comma(p, &i, end) else { return nil }
        let side: Side
        if end - i == 1, p[i] == UInt8(ascii: "1") {
            side = .buy
        } else if end - i == 2, p[i] == UInt8(ascii: "-"), p[i + 1] == UInt8(ascii: "1") {
            side = .sell
        } else {
            return nil
        }
        if type == 7 ? !(-1...1).contains(price) : price < 0 { return nil }
        return L3Event(
            timeNs: Int64(seconds &* 1_000_000_000 &+ nanos),
            kind: L3Event.Kind(rawValue: UInt8(type))!,
            orderID: id,
            size: Int64(size),
            price: price,
            side: side,
            line: line
        )
    }

    private func parse(_ line: LineReader.Line) throws(FieldProblem) -> L3Event {
        if line.tooLong { throw FieldProblem(column: 1, reason: "line longer than \(lines.lineBytesMax) bytes") }
        let bytes = line.bytes
        try fields.split(bytes, expected: Self.fieldCount)
        let time = try fields.time(bytes, 0, "time")
        let type = try fields.integer(bytes, 1, "type")
        let kind: L3Event.Kind
        switch type {
        case 1...7: kind = L3Event.Kind(rawValue: UInt8(type))!
        default: throw fields.problem(bytes, 1, "type: unknown message type \(type) (expected 1 to 7)")
        }
        let id = try fields.unsigned(bytes, 2, "id")
        let size = try fields.integer(bytes, 3, "size")
        if size < 0 { throw fields.problem(bytes, 3, "size: negative: \(size)") }
        let price = try fields.integer(bytes, 4, "price")
        if kind == .halt {
            if !(-1...1).contains(price) {
                throw fields.problem(bytes, 4, "price: a halt's state must be -1, 0 or 1, found \(price)")
            }
        } else if price < 0 {
            throw fields.problem(bytes, 4, "price: negative: \(price)")
        }
        let direction = try fields.integer(bytes, 5, "direction")
        let side: Side
        switch direction {
        case 1: side = .buy
        case -1: side = .sell
        default: throw fields.problem(bytes, 5, "direction: must be 1 (buy) or -1 (sell), found \(direction)")
        }
        return L3Event(timeNs: time, kind: kind, orderID: id, size: size, price: price, side: side, line: line.number)
    }
}

/// Reads a LOBSTER orderbook file as ``L2Snapshot``s, best level first, dummy levels (ask price 9999999999
/// or bid price -9999999999, size 0: fewer occupied levels than the file's depth) dropped. The level
/// count is the first row's column count / 4; every row must have as many columns. Rows are checked:
/// sizes positive, prices strictly worse level by level, no occupied level after a dummy one.
/// Rows carry no time: pass the time of the row's message to ``next(timeNs:)``. Errors as for
/// ``LobsterMessageReader``.
public final class LobsterOrderbookReader {
    public let name: String
    /// Levels per side (the file's depth); 0 until the first row has been read.
    public private(set) var levels = 0
    private let lines: LineReader
    private var fields = FieldSplitter()
    private var failure: CastleError?
    private var bids: [L2Level] = []
    private var asks: [L2Level] = []

    /// Opens `path` (stdin for nil or `-`; compressed input is decompressed).
    public init(path: String?) throws(CastleError) {
        lines = LineReader(source: try InputSource(path: path))
        name = lines.source.name
    }

    /// Lines read so far.
    public var lineNumber: Int { lines.lineNumber }

    /// The next row, or nil at the end of the file. The returned arrays are reused by the next call when
    /// the caller no longer holds them, so a loop that drops each row does not allocate.
    public func next(timeNs: Int64 = 0) throws(CastleError) -> L2Snapshot? {
        if let failure { throw failure }
        guard let line = try lines.next() else { return nil }
        if levels > 0, !line.tooLong, parseFast(line.bytes) {
            return L2Snapshot(timeNs: timeNs, bids: bids, asks: asks)
        }
        do throws(FieldProblem) {
            try parse(line)
        } catch {
            let failure = fail(error, line: line.number, reader: lines, name: name)
            self.failure = failure
            throw failure
        }
        return L2Snapshot(timeNs: timeNs, bids: bids, asks: asks)
    }

    /// The common case, without diagnostics (see ``LobsterMessageReader``); false sends the line to
    /// ``parse(_:)``.
    private func parseFast(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let p = bytes.baseAddress else { return false }
        let end = bytes.count
        bids.removeAll(keepingCapacity: true)
        asks.removeAll(keepingCapacity: true)
        var asksEnded = false
        var bidsEnded = false
        var i = 0
        for level in 0..<levels {
            guard let askPrice = scanSigned(p, &i, end), comma(p, &i, end) else { return false }
            let (askSize, askDigits) = scanDigits(p, &i, end)
            guard askDigits >= 1, askDigits <= 18, comma(p, &i, end) else { return false }
            guard let bidPrice = scanSigned(p, &i, end), comma(p, &i, end) else { return false }
            let (bidSize, bidDigits) = scanDigits(p, &i, end)
            guard bidDigits >= 1, bidDigits <= 18, level == levels - 1 ? i == end : comma(p, &i, end) else {
                return false
            }
            guard
                Self.accept(askPrice, Int64(askSize), BookVerification.dummyAskPrice, &asks, &asksEnded, better: <),
                Self.accept(bidPrice, Int64(bidSize), BookVerification.dummyBidPrice, &bids, &bidsEnded, better: >)
            else { return false }
        }
        return true
    }

    @inline(__always)
    private static func accept(
        _ price: Int64,
        _ size: Int64,
        _ dummy: Int64,
        _ side: inout [L2Level],
        _ ended: inout Bool,
        better: (Int64, Int64) -> Bool
    ) -> Bool {
        if price == dummy && size == 0 {
            ended = true
            return true
        }
        if ended || size <= 0 { return false }
        if let last = side.last, !better(last.price, price) { return false }
        side.append(L2Level(price: price, qty: Int128(size)))
        return true
    }

    private func parse(_ line: LineReader.Line) throws(FieldProblem) {
        if line.tooLong { throw FieldProblem(column: 1, reason: "line longer than \(lines.lineBytesMax) bytes") }
        let bytes = line.bytes
        if levels == 0 {
            try fields.split(bytes, expected: nil)
            let count = fields.count
            if count % 4 != 0 || count == 0 {
                throw FieldProblem(
                    column: bytes.count + 1,
                    reason: "expected a multiple of 4 fields, found \(count)",
                    truncatable: true
                )
            }
            levels = count / 4
        } else {
            try fields.split(bytes, expected: levels * 4)
        }
        bids.removeAll(keepingCapacity: true)
        asks.removeAll(keepingCapacity: true)
        var asksEnded = false
        var bidsEnded = false
        for level in 0..<levels {
            let base = level * 4
            let number = level + 1
            let askPrice = try fields.integer(bytes, base, "ask price \(number)")
            let askSize = try fields.integer(bytes, base + 1, "ask size \(number)")
            let bidPrice = try fields.integer(bytes, base + 2, "bid price \(number)")
            let bidSize = try fields.integer(bytes, base + 3, "bid size \(number)")
            try take(
                bytes,
                base,
                number,
                "ask",
                askPrice,
                askSize,
                dummy: BookVerification.dummyAskPrice,
                into: &asks,
                ended: &asksEnded,
                better: <
            )
            try take(
                bytes,
                base + 2,
                number,
                "bid",
                bidPrice,
                bidSize,
                dummy: BookVerification.dummyBidPrice,
                into: &bids,
                ended: &bidsEnded,
                better: >
            )
        }
    }

    private func take(
        _ bytes: UnsafeBufferPointer<UInt8>,
        _ field: Int,
        _ number: Int,
        _ sideName: String,
        _ price: Int64,
        _ size: Int64,
        dummy: Int64,
        into side: inout [L2Level],
        ended: inout Bool,
        better: (Int64, Int64) -> Bool
    ) throws(FieldProblem) {
        if size < 0 { throw fields.problem(bytes, field + 1, "\(sideName) size \(number): negative: \(size)") }
        if price == dummy && size == 0 {
            ended = true
            return
        }
        if ended {
            throw fields.problem(bytes, field, "\(sideName) price \(number): an occupied level after an empty one")
        }
        if size == 0 {
            throw fields.problem(bytes, field + 1, "\(sideName) size \(number): zero at an occupied level")
        }
        if let last = side.last, !better(last.price, price) {
            throw fields.problem(
                bytes,
                field,
                "\(sideName) price \(number): \(price) is not worse than level \(number - 1)'s \(last.price)"
            )
        }
        side.append(L2Level(price: price, qty: Int128(size)))
    }
}

// MARK: - Fields

/// Digits from `i` on (at most 19, so the value fits a UInt64), and how many there were.
@inline(__always)
private func scanDigits(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> (UInt64, Int) {
    let start = i
    var value: UInt64 = 0
    while i < end, i - start < 19 {
        let digit = p[i] &- 48
        if digit >= 10 { break }
        value = value &* 10 &+ UInt64(digit)
        i += 1
    }
    return (value, i - start)
}

/// An optional `-` and 1 to 18 digits.
@inline(__always)
private func scanSigned(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Int64? {
    let negative = i < end && p[i] == UInt8(ascii: "-")
    if negative { i += 1 }
    let (magnitude, digits) = scanDigits(p, &i, end)
    guard digits >= 1, digits <= 18 else { return nil }
    return negative ? -Int64(magnitude) : Int64(magnitude)
}

@inline(__always)
private func comma(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Bool {
    guard i < end, p[i] == UInt8(ascii: ",") else { return false }
    i += 1
    return true
}

/// Why a line was rejected, before it is turned into a message (which needs the line number and whether
/// the line was the last one).
struct FieldProblem: Error {
    var column: Int
    var reason: String
    /// The problem is what a cut-off line looks like (too few fields, or a bad last field): on the last
    /// line of the file it is reported as a truncated last line.
    var truncatable = false
}

/// Builds the error for `problem`. For a truncatable problem it reads one more line to learn whether this
/// was the last one; the stream ends with the error either way.
private func fail(_ problem: FieldProblem, line: Int, reader: LineReader, name: String) -> CastleError {
    var reason = problem.reason
    if problem.truncatable {
        var isLast = false
        do { isLast = try reader.next() == nil } catch {}
        if isLast { reason = "truncated last line: " + reason }
    }
    return CastleError(.dataError, "\(name):\(line):\(problem.column): \(reason)")
}

/// Splits a line at commas into reusable field offsets, and parses fields exactly.
struct FieldSplitter {
    /// Start offset of each field; a field ends one byte before the next field's start, or at the line's end.
    private var starts: [Int] = []
    private var lineEnd = 0

    var count: Int { starts.count }

    /// Splits `bytes`; with `expected`, a different field count is a problem.
    mutating func split(_ bytes: UnsafeBufferPointer<UInt8>, expected: Int?) throws(FieldProblem) {
        starts.removeAll(keepingCapacity: true)
        lineEnd = bytes.count
        starts.append(0)
        for index in 0..<bytes.count where bytes[index] == UInt8(ascii: ",") { starts.append(index + 1) }
        guard let expected, starts.count != expected else { return }
        if bytes.isEmpty { throw FieldProblem(column: 1, reason: "empty line") }
        if starts.count < expected {
            throw FieldProblem(
                column: bytes.count + 1,
                reason: "expected \(expected) fields, found \(starts.count)",
                truncatable: true
            )
        }
        throw FieldProblem(column: starts[expected] + 1, reason: "expected \(expected) fields, found \(starts.count)")
    }

    @inline(__always)
    private func range(_ field: Int) -> (start: Int, end: Int) {
        (starts[field], field + 1 < starts.count ? starts[field + 1] - 1 : lineEnd)
    }

    /// A problem at `field`: truncatable when it is the line's last field and reads as a number cut short
    /// (empty, or a lone `-`); a cut that leaves a valid number cannot be told from a complete line.
    func problem(_ bytes: UnsafeBufferPointer<UInt8>, _ field: Int, _ reason: String) -> FieldProblem {
        let (start, end) = range(field)
        let cutShort = start == end || (end - start == 1 && bytes[start] == UInt8(ascii: "-"))
        return FieldProblem(column: start + 1, reason: reason, truncatable: field == starts.count - 1 && cutShort)
    }

    private func quoted(_ bytes: UnsafeBufferPointer<UInt8>, _ field: Int) -> String {
        let (start, end) = range(field)
        let shown = min(end - start, 40)
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<(start + shown)]), as: UTF8.self)
        return (text + (shown < end - start ? "…" : "")).debugDescription
    }

    /// A signed decimal integer (`-` allowed, nothing else): no spaces, no `+`, no point.
    @inline(__always)
    func integer(_ bytes: UnsafeBufferPointer<UInt8>, _ field: Int, _ name: String) throws(FieldProblem) -> Int64 {
        let (start, end) = range(field)
        var index = start
        let negative = index < end && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        if index == end { throw problem(bytes, field, "\(name): not an integer: \(quoted(bytes, field))") }
        var magnitude: UInt64 = 0
        var overflow = false
        while index < end {
            let digit = bytes[index] &- 48
            if digit >= 10 { throw problem(bytes, field, "\(name): not an integer: \(quoted(bytes, field))") }
            let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(digit))
            overflow = overflow || o1 || o2
            magnitude = m2
            index += 1
        }
        let limit = negative ? UInt64(Int64.max) + 1 : UInt64(Int64.max)
        if overflow || magnitude > limit {
            throw problem(bytes, field, "\(name): out of range: \(quoted(bytes, field))")
        }
        return negative ? Int64(truncatingIfNeeded: 0 &- magnitude) : Int64(magnitude)
    }

    /// An unsigned decimal integer that fits a UInt64.
    func unsigned(_ bytes: UnsafeBufferPointer<UInt8>, _ field: Int, _ name: String) throws(FieldProblem) -> UInt64 {
        let (start, end) = range(field)
        if start == end { throw problem(bytes, field, "\(name): not a non-negative integer: \(quoted(bytes, field))") }
        var value: UInt64 = 0
        var overflow = false
        for index in start..<end {
            let digit = bytes[index] &- 48
            if digit >= 10 {
                throw problem(bytes, field, "\(name): not a non-negative integer: \(quoted(bytes, field))")
            }
            let (m1, o1) = value.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(digit))
            overflow = overflow || o1 || o2
            value = m2
        }
        if overflow { throw problem(bytes, field, "\(name): out of range: \(quoted(bytes, field))") }
        return value
    }

    /// Seconds with up to 9 decimals, as integer nanoseconds: `34200.004241176` → 34_200_004_241_176.
    func time(_ bytes: UnsafeBufferPointer<UInt8>, _ field: Int, _ name: String) throws(FieldProblem) -> Int64 {
        let (start, end) = range(field)
        var index = start
        var seconds: UInt64 = 0
        var overflow = false
        while index < end, bytes[index] &- 48 < 10 {
            let (m1, o1) = seconds.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(bytes[index] &- 48))
            overflow = overflow || o1 || o2
            seconds = m2
            index += 1
        }
        let notDecimal = "\(name): not a non-negative decimal number of seconds: "
        if index == start { throw problem(bytes, field, notDecimal + quoted(bytes, field)) }
        var fraction: UInt64 = 0
        if index < end {
            guard bytes[index] == UInt8(ascii: ".") else {
                throw problem(bytes, field, notDecimal + quoted(bytes, field))
            }
            index += 1
            let fractionStart = index
            while index < end, bytes[index] &- 48 < 10 { index += 1 }
            if index != end || index == fractionStart {
                throw problem(bytes, field, notDecimal + quoted(bytes, field))
            }
            if index - fractionStart > 9 {
                throw problem(bytes, field, "\(name): more than 9 decimals: \(quoted(bytes, field))")
            }
            for position in fractionStart..<(fractionStart + 9) {
                fraction = fraction * 10 + (position < end ? UInt64(bytes[position] &- 48) : 0)
            }
        }
        let (nanos, o1) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, o2) = nanos.addingReportingOverflow(fraction)
        if overflow || o1 || o2 || total > UInt64(Int64.max) {
            throw problem(bytes, field, "\(name): out of range: \(quoted(bytes, field))")
        }
        return Int64(total)
    }
}
