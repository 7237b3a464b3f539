public import CastleSupport

/// An XML element as the camt.053 reader needs it: the local name (namespace prefix dropped), attributes,
/// the text directly inside, the children in order, and the element's path for messages
/// (`/Document/BkToCstmrStmt/Stmt[2]/Ntry[3]`).
public final class XMLElement {
    public let name: String
    /// Where the element is, made into ``path`` only when asked (an error, a record's location).
    let place: XMLPlace
    public var attributes: [(name: String, value: String)] = []
    public var text = ""
    public var children: [XMLElement] = []

    public var path: String { place.path }

    init(name: String, place: XMLPlace) {
        self.name = name
        self.place = place
    }

    public func attribute(_ name: String) -> String? { attributes.first { $0.name == name }?.value }
    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    public func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }

    /// The descendant along `names` (first match at each step).
    public func find(_ names: String...) -> XMLElement? {
        var node: XMLElement? = self
        for name in names { node = node?.child(name) }
        return node
    }
}

/// An element's place in the document: its parent's place, its name and which of its parent's children
/// of that name it is. The path text is built once, when first asked for.
final class XMLPlace {
    let parent: XMLPlace?
    let name: String
    let index: Int
    private var built: String?

    init(parent: XMLPlace?, name: String, index: Int) {
        self.parent = parent
        self.name = name
        self.index = index
    }

    var path: String {
        if let built { return built }
        let parentPath = parent?.path ?? ""
        let made = index == 1 ? "\(parentPath)/\(name)" : "\(parentPath)/\(name)[\(index)]"
        built = made
        return made
    }
}

/// A small strict XML reader of its own, so that nothing can expand an entity: a document type
/// declaration (`<!DOCTYPE`, and with it every `<!ENTITY`) is refused outright, and only the five
/// predefined entities and character references are understood. Well-formedness is checked (every
/// start tag closed by its own end tag, one root, attributes quoted); anything else is an error naming
/// the byte offset and the element path. Bounded: input size, depth, element count.
public enum XMLReader {
    public static let depth_max = 64
    public static let elements_max = 20_000_000

    /// What ``parse(_:name:detaching:_:)`` hands over as each detached element ends.
    public typealias Handler = (_ element: XMLElement, _ parent: XMLElement) throws(CastleError) -> Void

    /// Parses the whole document. Elements named in `detaching` are handed to `handler` when they end,
    /// with their (still open) parent, and are not kept in the tree: a statement of a million entries
    /// holds one entry's elements at a time.
    public static func parse(
        _ bytes: [UInt8],
        name: String,
        detaching: Set<String> = [],
        _ handler: Handler? = nil
    ) throws(CastleError) -> XMLElement {
        var parser = Parser(bytes: bytes, fileName: name, detaching: detaching, handler: handler)
        return try parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        let fileName: String
        var p = 0
        var stack: [XMLElement] = []
        /// Per open element, how many children of each name it has had so far (for `Name[n]` in paths).
        var siblingCounts: [[(name: String, count: Int)]] = [[]]
        var elementCount = 0
        let detaching: [String]
        let handler: Handler?

        init(bytes: [UInt8], fileName: String, detaching: Set<String>, handler: Handler?) {
            self.bytes = bytes
            self.fileName = fileName
            self.detaching = detaching.sorted()
            self.handler = handler
        }

        func fail(_ reason: String) -> CastleError {
            let path = stack.last?.path ?? "/"
            return CastleError(.dataError, "\(fileName): \(path) (byte \(p + 1)): \(reason)")
        }

        func starts(with text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard p + count <= bytes.count else { return false }
            let pattern = UnsafeBufferPointer(start: text.utf8Start, count: count)
            for i in 0..<count where bytes[p + i] != pattern[i] { return false }
            return true
        }

        mutating func skip(past terminator: StaticString, what: String) throws(CastleError) {
            while p < bytes.count {
                if starts(with: terminator) {
                    p += terminator.utf8CodeUnitCount
                    return
                }
                p += 1
            }
            throw fail("\(what) is never closed (a truncated file?)")
        }

        static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

        static func isNameByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: ":"):
                true
            default: byte >= 0x80
            }
        }

        mutating func name() throws(CastleError) -> String {
            let range = try nameRange()
            return String(decoding: bytes[range], as: UTF8.self)
        }

        /// Where the name at `p` is in the bytes, `p` moved past it.
        mutating func nameRange() throws(CastleError) -> Range<Int> {
            let start = p
            while p < bytes.count, Self.isNameByte(bytes[p]) { p += 1 }
            guard p > start else { throw fail("a name is expected") }
            return start..<p
        }

        /// The local name (after the last `:`) of the name at `range`.
        func localName(_ range: Range<Int>) -> String {
            var start = range.lowerBound
            for index in range where bytes[index] == UInt8(ascii: ":") { start = index + 1 }
            return String(decoding: bytes[start..<range.upperBound], as: UTF8.self)
        }

        static func localName(_ qualified: String) -> String {
            guard let colon = qualified.lastIndex(of: ":") else { return qualified }
            return String(qualified[qualified.index(after: colon)...])
        }

        mutating func skipSpace() { while p < bytes.count, Self.isSpace(bytes[p]) { p += 1 } }

        /// Text up to `terminator` byte with references resolved.
        mutating func characters(until terminator: UInt8) throws(CastleError) -> String {
            // Plain text (no reference, no `>`) is taken as it is.
            let start = p
            while p < bytes.count {
                let byte = bytes[p]
                if byte == terminator || byte == UInt8(ascii: "&") || byte == UInt8(ascii: ">") { break }
                p += 1
            }
            if p == bytes.count || bytes[p] == terminator { return String(decoding: bytes[start..<p], as: UTF8.self) }
            p = start
            var out: [UInt8] = []
            while p < bytes.count, bytes[p] != terminator {
                let byte = bytes[p]
                if byte == UInt8(ascii: "&") {
                    try reference(into: &out)
                    continue
                }
                if terminator == UInt8(ascii: "<") && byte == UInt8(ascii: ">") && starts(with: "]]>") {
                    throw fail("\"]]>\" in text")
                }
                out.append(byte)
                p += 1
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func reference(into out: inout [UInt8]) throws(CastleError) {
            let start = p
            guard let semicolon = bytes[p...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else {
                throw fail("a \"&\" that starts no reference (write &amp;)")
            }
            let body = String(decoding: bytes[(start + 1)..<semicolon], as: UTF8.self)
            p = semicolon + 1
            switch body {
            case "lt": out.append(UInt8(ascii: "<"))
            case "gt": out.append(UInt8(ascii: ">"))
            case "amp": out.append(UInt8(ascii: "&"))
            case "apos": out.append(UInt8(ascii: "'"))
            case "quot": out.append(UInt8(ascii: "\""))
            default:
                var value: UInt32?
                if body.hasPrefix("#x") {
                    value = UInt32(body.dropFirst(2), radix: 16)
                } else if body.hasPrefix("#") {
                    value = UInt32(body.dropFirst(), radix: 10)
                }
                guard let value, let scalar = Unicode.Scalar(value), value != 0 else {
                    throw fail("the entity \"&\(body.prefix(20));\" is not defined (castle expands no entities)")
                }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            }
        }

        mutating func document() throws(CastleError) -> XMLElement {
            guard String(validating: bytes, as: UTF8.self) != nil else {
                throw CastleError(.dataError, "\(fileName): not valid UTF-8")
            }
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { p = 3 }
            var root: XMLElement?
            while true {
                skipSpace()
                if p >= bytes.count { break }
                guard bytes[p] == UInt8(ascii: "<") else {
                    throw fail(root == nil ? "text before the root element" : "text after the root element")
                }
                if starts(with: "<?") {
                    try skip(past: "?>", what: "a processing instruction")
                } else if starts(with: "<!--") {
                    try skip(past: "-->", what: "a comment")
                } else if starts(with: "<!") {
                    throw fail(
                        "a document type declaration (<!DOCTYPE or <!ENTITY) is refused: castle expands no entities"
                    )
                } else {
                    if root != nil { throw fail("a second root element") }
                    root = try element()
                }
            }
            guard let root else { throw CastleError(.dataError, "\(fileName): no root element (an empty file?)") }
            return root
        }

        /// One element and everything inside it; `p` is at its `<`.
        mutating func element() throws(CastleError) -> XMLElement {
            p += 1
            let qualifiedRange = try nameRange()
            let local = localName(qualifiedRange)
            var index = 1
            let level = siblingCounts.count - 1
            if let seen = siblingCounts[level].firstIndex(where: { $0.name == local }) {
                siblingCounts[level][seen].count += 1
                index = siblingCounts[level][seen].count
            } else {
                siblingCounts[level].append((local, 1))
            }
            let node = XMLElement(name: local, place: XMLPlace(parent: stack.last?.place, name: local, index: index))
            elementCount += 1
            if elementCount > XMLReader.elements_max { throw fail("more than \(XMLReader.elements_max) elements") }
            if stack.count >= XMLReader.depth_max { throw fail("nested deeper than \(XMLReader.depth_max)") }
            stack.append(node)
            siblingCounts.append([])
            defer {
                stack.removeLast()
                siblingCounts.removeLast()
            }
            // Attributes.
            while true {
                let hadSpace = p < bytes.count && Self.isSpace(bytes[p])
                skipSpace()
                guard p < bytes.count else { throw fail("a start tag is never closed (a truncated file?)") }
                if starts(with: "/>") {
                    p += 2
                    return node
                }
                if bytes[p] == UInt8(ascii: ">") {
                    p += 1
                    break
                }
                guard hadSpace else { throw fail("attributes are separated by spaces") }
                let attribute = try name()
                skipSpace()
                guard p < bytes.count, bytes[p] == UInt8(ascii: "=") else { throw fail("\"=\" after an attribute") }
                p += 1
                skipSpace()
                guard p < bytes.count, bytes[p] == UInt8(ascii: "\"") || bytes[p] == UInt8(ascii: "'") else {
                    throw fail("an attribute value in quotes")
                }
                let quote = bytes[p]
                p += 1
                let value = try characters(until: quote)
                guard p < bytes.count else { throw fail("an attribute value is never closed") }
                p += 1
                if node.attributes.contains(where: { $0.name == attribute }) {
                    throw fail("the attribute \(attribute) appears twice")
                }
                node.attributes.append((Self.localName(attribute), value))
            }
            // Content.
            var text = ""
            while true {
                guard p < bytes.count else {
                    throw fail(
                        "<\(String(decoding: bytes[qualifiedRange], as: UTF8.self))> is never closed (a truncated file?)"
                    )
                }
                if starts(with: "</") {
                    p += 2
                    let closing = try nameRange()
                    skipSpace()
                    guard p < bytes.count, bytes[p] == UInt8(ascii: ">") else { throw fail("an end tag without \">\"") }
                    p += 1
                    guard bytes[closing].elementsEqual(bytes[qualifiedRange]) else {
                        throw fail(
                            "</\(String(decoding: bytes[closing], as: UTF8.self))> closes <\(String(decoding: bytes[qualifiedRange], as: UTF8.self))>"
                        )
                    }
                    node.text = text
                    return node
                }
                if starts(with: "<!--") {
                    try skip(past: "-->", what: "a comment")
                } else if starts(with: "<![CDATA[") {
                    p += 9
                    let start = p
                    try skip(past: "]]>", what: "a CDATA section")
                    text += String(decoding: bytes[start..<(p - 3)], as: UTF8.self)
                } else if starts(with: "<!") {
                    throw fail("a declaration inside an element is refused")
                } else if starts(with: "<?") {
                    try skip(past: "?>", what: "a processing instruction")
                } else if bytes[p] == UInt8(ascii: "<") {
                    let child = try element()
                    if let handler, detaching.contains(where: { $0 == child.name }) {
                        try handler(child, node)
                    } else {
                        node.children.append(child)
                    }
                } else {
                    text += try characters(until: UInt8(ascii: "<"))
                }
            }
        }
    }
}
