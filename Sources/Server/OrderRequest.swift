import HTTPTypes

/// An HTTP/1.1 `POST /v1/orders` read straight from a connection's bytes (``OrderChannelHandler``): the
/// account header's values and the body.
///
/// It takes only the plain form of that request, and only what it understands exactly:
/// - the request line `POST /v1/orders HTTP/1.1`, byte for byte;
/// - header lines of a token, a colon, and a value of visible characters, spaces and tabs (and bytes
///   over 0x7F, as RFC 9110's obs-text), each ended by CRLF, at most ``fieldsMax`` of them and
///   ``headBytesMax`` bytes in all;
/// - one `Content-Length` of decimal digits, at most ``ServerLimits/bodyBytesMax``, and account values,
///   each with no space or tab after it;
/// - no `Transfer-Encoding`, `Connection`, `Expect` or `Upgrade`.
///
/// Anything else is ``Parsed/other``: the connection's bytes then go, unread, to NIO's HTTP codec and
/// Hummingbird, which answer them as they answer every other request (an error included). So no
/// request is understood here otherwise than there: what is taken here is a request that NIO's parser
/// reads the same way (a property test checks it, `OrderRequestTests`).
struct OrderRequest: Equatable {
    /// The values of the `X-Castle-Account` header lines, in order (``AccountMiddleware/account(_:)``
    /// wants exactly one).
    var accounts: [String]
    var body: [UInt8]
    /// The request's length in bytes, head and body.
    var length: Int

    enum Parsed: Equatable {
        /// The bytes so far are the start of such a request.
        case incomplete
        /// Not such a request: for NIO's HTTP codec.
        case other
        case order(OrderRequest)
    }

    static let requestLine = Array("POST /v1/orders HTTP/1.1\r\n".utf8)
    static let headBytesMax = 8 * 1024
    static let fieldsMax = 64

    private static let contentLength = Array("content-length".utf8)
    private static let account = Array(AccountMiddleware.header.canonicalName.utf8)
    private static let refused = ["transfer-encoding", "connection", "expect", "upgrade"].map { Array($0.utf8) }

    /// The request at the start of `bytes`.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Parsed {
        let count = bytes.count
        for index in 0..<min(count, requestLine.count) where bytes[index] != requestLine[index] { return .other }
        if count < requestLine.count { return .incomplete }
        var accounts: [String] = []
        var bodyLength: Int?
        var fields = 0
        var line = requestLine.count
        while true {
            // The line's end: CRLF. Any other control character (a bare CR or LF among them) is not ours.
            var end = line
            while end < count, bytes[end] != 13 {
                let byte = bytes[end]
                if (byte < 32 && byte != 9) || byte == 127 { return .other }
                end += 1
            }
            if end + 1 >= count { return count > headBytesMax ? .other : .incomplete }
            if bytes[end + 1] != 10 || end + 2 > headBytesMax { return .other }
            if end == line { break }  // the empty line: the head's end
            fields += 1
            if fields > fieldsMax { return .other }
            // The name: a token right up to the colon (no space before it, and no folded line).
            var colon = line
            while colon < end, isTokenCharacter(bytes[colon]) { colon += 1 }
            if colon == line || colon == end || bytes[colon] != 58 { return .other }
            // The value: leading spaces and tabs are not part of it. Trailing ones are, for NIO's parser
            // (a tab at least): a value of ours ends with neither.
            var valueStart = colon + 1
            while valueStart < end, bytes[valueStart] == 32 || bytes[valueStart] == 9 { valueStart += 1 }
            let name = UnsafeRawBufferPointer(rebasing: bytes[line..<colon])
            let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<end])
            if matches(name, contentLength) {
                guard bodyLength == nil, let length = decimal(value), length <= ServerLimits.bodyBytesMax else {
                    return .other
                }
                bodyLength = length
            } else if matches(name, account) {
                if let last = value.last, last == 32 || last == 9 { return .other }
                accounts.append(String(decoding: value, as: UTF8.self))
            } else if refused.contains(where: { matches(name, $0) }) {
                return .other
            }
            line = end + 2
        }
        guard let bodyLength else { return .other }
        let bodyStart = line + 2
        if count < bodyStart + bodyLength { return .incomplete }
        return .order(
            OrderRequest(
                accounts: accounts,
                body: Array(bytes[bodyStart..<bodyStart + bodyLength]),
                length: bodyStart + bodyLength
            )
        )
    }

    /// RFC 9110's tchar.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool { tokenCharacters[Int(byte)] }

    private static let tokenCharacters: [Bool] = (0..<256).map { byte in
        let character = Character(Unicode.Scalar(UInt8(byte)))
        return byte < 128 && (character.isLetter || character.isNumber || "!#$%&'*+-.^_`|~".contains(character))
    }

    /// Whether a header name is `lowercased`, in any case.
    private static func matches(_ name: UnsafeRawBufferPointer, _ lowercased: [UInt8]) -> Bool {
        guard name.count == lowercased.count else { return false }
        for index in 0..<name.count {
            var byte = name[index]
            if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { byte += 32 }
            if byte != lowercased[index] { return false }
        }
        return true
    }

    /// 1 to 7 decimal digits (a body cap of 64 KiB needs 5).
    private static func decimal(_ text: UnsafeRawBufferPointer) -> Int? {
        guard (1...7).contains(text.count) else { return nil }
        var value = 0
        for byte in text {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
