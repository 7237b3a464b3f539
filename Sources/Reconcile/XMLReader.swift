public import CastleSupport

/// The elements ``XMLReader`` read, in document order in one flat list, each known by its index: its
/// local name (namespace prefix dropped), attributes, the text directly inside, its children, and its
/// path for messages (`/Document/BkToCstmrStmt/Stmt[2]/Ntry[3]`). There is no object per element: names
/// and plain text stay where they are in the document's bytes, and only text with a reference or in
/// several pieces is copied. An element's descendants follow it in the list, up to its `end`.
public struct XMLTree {
    /// Bytes of the document, or of ``copied``.
    struct Text {
        var range: Range<Int>
        var copied: Bool
    }

    struct Node {
        /// The local name's bytes in the document.
        var name: Range<Int>
        /// The parent's index; -1 for the root.
        var parent: Int
        /// Which of its parent's children of that name it is (1-based), for `Name[n]` in paths.
        var index: Int
        /// Past its last descendant in ``nodes``; `Int.max` while it is open (everything after it is inside).
        var end: Int
        var text: Text
        /// Its attributes in ``attributes``.
        var attributes: Range<Int>
    }

    let document: [UInt8]
    var nodes: [Node] = []
    var attributes: [(name: Range<Int>, value: Text)] = []
    /// Text that is not one plain run of the document: references resolved, pieces joined.
    var copied: [UInt8] = []

    /// The root element (it is always kept).
    public var root: Int { 0 }

    init(document: [UInt8]) {
        self.document = document
    }

    private func bytes(_ text: Text) -> ArraySlice<UInt8> {
        text.copied ? copied[text.range] : document[text.range]
    }

    private func string(_ text: Text) -> String { String(decoding: bytes(text), as: UTF8.self) }

    private func equals(_ range: Range<Int>, _ name: StaticString) -> Bool {
        let pattern = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        return document[range].elementsEqual(pattern)
    }

    public func name(_ element: Int) -> String {
        String(decoding: document[nodes[element].name], as: UTF8.self)
    }

    public func isNamed(_ element: Int, _ name: StaticString) -> Bool { equals(nodes[element].name, name) }

    /// The text directly inside the element (not its children's), references resolved.
    public func text(_ element: Int) -> String { string(nodes[element].text) }

    /// ``text(_:)`` without leading and trailing spaces, tabs and line ends; nil when nothing is left.
    public func trimmedText(_ element: Int) -> String? {
        let text = bytes(nodes[element].text)
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
        guard let first = text.firstIndex(where: { !isSpace($0) }) else { return nil }
        let last = text.lastIndex(where: { !isSpace($0) })!
        return String(decoding: text[first...last], as: UTF8.self)
    }

    public func attribute(_ element: Int, _ name: StaticString) -> String? {
        for attribute in attributes[nodes[element].attributes] where equals(attribute.name, name) {
            return string(attribute.value)
        }
        return nil
    }

    public func attributeValues(_ element: Int) -> [String] {
        attributes[nodes[element].attributes].map { string($0.value) }
    }

    /// The element's children named `name`, in order.
    public func children(_ element: Int, _ name: StaticString) -> Children {
        Children(tree: self, position: element + 1, end: min(nodes[element].end, nodes.count), name: name)
    }

    public struct Children: Sequence, IteratorProtocol {
        let tree: XMLTree
        var position: Int
        let end: Int
        let name: StaticString

        public mutating func next() -> Int? {
            while position < end {
                let child = position
                position = tree.nodes[child].end
                if tree.isNamed(child, name) { return child }
            }
            return nil
        }
    }

    /// The element's first child named `name`.
    public func child(_ element: Int, _ name: StaticString) -> Int? {
        var position = element + 1
        let end = min(nodes[element].end, nodes.count)
        while position < end {
            if isNamed(position, name) { return position }
            position = nodes[position].end
        }
        return nil
    }

    /// The descendant along `names` (the first of each name at each step).
    public func find(_ element: Int, _ names: StaticString...) -> Int? {
        var node: Int? = element
        for name in names { node = node.flatMap { child($0, name) } }
        return node
    }

    /// `/Document/BkToCstmrStmt/Stmt[2]/Ntry[3]`: each ancestor's name, with `[n]` when it is not the first
    /// of its name among its parent's children.
    public func path(_ element: Int) -> String {
        var out: [UInt8] = []
        func append(_ element: Int) {
            let node = nodes[element]
            if node.parent >= 0 { append(node.parent) }
            out.append(UInt8(ascii: "/"))
            out.append(contentsOf: document[node.name])
            if node.index != 1 { out.append(contentsOf: "[\(node.index)]".utf8) }
        }
        append(element)
        return String(decoding: out, as: UTF8.self)
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

    /// What ``parse(_:name:detaching:_:)`` hands over as each detached element ends: the tree so far, the
    /// element and its (still open) parent.
    public typealias Handler = (_ tree: XMLTree, _ element: Int, _ parent: Int) throws(CastleError) -> Void

    /// Parses the whole document. Elements named in `detaching` are handed to `handler` when they end and
    /// are then dropped from the tree: a statement of a million entries holds one entry's elements at a
    /// time.
    public static func parse(
        _ bytes: [UInt8],
        name: String,
        detaching: Set<String> = [],
        _ handler: Handler? = nil
    ) throws(CastleError) -> XMLTree {
        var parser = Parser(bytes: bytes, fileName: name, detaching: detaching, handler: handler)
        try parser.document()
        return parser.tree
    }

    private struct Parser {
        let bytes: [UInt8]
        let fileName: String
        var p = 0
        var tree: XMLTree
        /// The open elements, innermost last.
        var open: [Int] = []
        /// Per open element, the names of its children so far and how many of each (for `Name[n]` in
        /// paths): one list, each open element's part starting at its entry in ``siblingLevels``.
        var siblings: [(name: Range<Int>, count: Int)] = []
        var siblingLevels: [Int] = [0]
        var elementCount = 0
        let detaching: [[UInt8]]
        let handler: Handler?

        init(bytes: [UInt8], fileName: String, detaching: Set<String>, handler: Handler?) {
            self.bytes = bytes
            self.fileName = fileName
            tree = XMLTree(document: bytes)
            self.detaching = detaching.sorted().map { Array($0.utf8) }
            self.handler = handler
        }

        func fail(_ reason: String) -> CastleError {
            let path = open.last.map { tree.path($0) } ?? "/"
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

        /// Where the name at `p` is in the bytes, `p` moved past it.
        mutating func nameRange() throws(CastleError) -> Range<Int> {
            let start = p
            while p < bytes.count, Self.isNameByte(bytes[p]) { p += 1 }
            guard p > start else { throw fail("a name is expected") }
            return start..<p
        }

        /// The local name (after the last `:`) of the name at `range`.
        func localName(_ range: Range<Int>) -> Range<Int> {
            var start = range.lowerBound
            for index in range where bytes[index] == UInt8(ascii: ":") { start = index + 1 }
            return start..<range.upperBound
        }

        mutating func skipSpace() { while p < bytes.count, Self.isSpace(bytes[p]) { p += 1 } }

        /// Text up to the `terminator` byte: its range when it is plain (no reference), else appended to
        /// `out` with its references resolved (and nil returned).
        mutating func characters(until terminator: UInt8, into out: inout [UInt8]) throws(CastleError) -> Range<Int>? {
            let start = p
            while p < bytes.count {
                let byte = bytes[p]
                if byte == terminator || byte == UInt8(ascii: "&") || byte == UInt8(ascii: ">") { break }
                p += 1
            }
            if p == bytes.count || bytes[p] == terminator { return start..<p }
            p = start
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
            return nil
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

        mutating func document() throws(CastleError) {
            do {
                _ = try UTF8Span(validating: bytes.span)
            } catch {
                throw CastleError(.dataError, "\(fileName): not valid UTF-8")
            }
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { p = 3 }
            var hasRoot = false
            while true {
                skipSpace()
                if p >= bytes.count { break }
                guard bytes[p] == UInt8(ascii: "<") else {
                    throw fail(hasRoot ? "text after the root element" : "text before the root element")
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
                    if hasRoot { throw fail("a second root element") }
                    try element()
                    hasRoot = true
                }
            }
            guard hasRoot else { throw CastleError(.dataError, "\(fileName): no root element (an empty file?)") }
        }

        /// The text directly inside an open element, gathered piece by piece: one plain run stays a range
        /// of the document; anything more is joined into bytes of its own.
        struct PendingText {
            var run: Range<Int>?
            var joined: [UInt8]?

            mutating func add(_ range: Range<Int>, of bytes: [UInt8]) {
                if joined != nil {
                    joined!.append(contentsOf: bytes[range])
                } else if let run {
                    joined = Array(bytes[run]) + bytes[range]
                    self.run = nil
                } else {
                    run = range
                }
            }

            /// The bytes so far, to append more to.
            mutating func toJoined(of bytes: [UInt8]) {
                if joined == nil {
                    joined = run.map { Array(bytes[$0]) } ?? []
                    run = nil
                }
            }
        }

        /// One element and everything inside it, added to the tree; `p` is at its `<`.
        mutating func element() throws(CastleError) {
            p += 1
            let qualifiedRange = try nameRange()
            let local = localName(qualifiedRange)
            // Which child of this name it is.
            var index = 1
            let level = siblingLevels[siblingLevels.count - 1]
            if let seen = siblings[level...].firstIndex(where: { bytes[$0.name].elementsEqual(bytes[local]) }) {
                siblings[seen].count += 1
                index = siblings[seen].count
            } else {
                siblings.append((local, 1))
            }
            let node = tree.nodes.count
            let attributesStart = tree.attributes.count
            tree.nodes.append(
                XMLTree.Node(
                    name: local,
                    parent: open.last ?? -1,
                    index: index,
                    end: Int.max,
                    text: XMLTree.Text(range: 0..<0, copied: false),
                    attributes: attributesStart..<attributesStart
                )
            )
            elementCount += 1
            if elementCount > XMLReader.elements_max { throw fail("more than \(XMLReader.elements_max) elements") }
            if open.count >= XMLReader.depth_max { throw fail("nested deeper than \(XMLReader.depth_max)") }
            open.append(node)
            siblingLevels.append(siblings.count)
            defer {
                open.removeLast()
                siblings.removeSubrange(siblingLevels.removeLast()...)
                tree.nodes[node].end = tree.nodes.count
            }
            // Attributes.
            while true {
                let hadSpace = p < bytes.count && Self.isSpace(bytes[p])
                skipSpace()
                guard p < bytes.count else { throw fail("a start tag is never closed (a truncated file?)") }
                if starts(with: "/>") {
                    p += 2
                    return
                }
                if bytes[p] == UInt8(ascii: ">") {
                    p += 1
                    break
                }
                guard hadSpace else { throw fail("attributes are separated by spaces") }
                let attribute = try nameRange()
                skipSpace()
                guard p < bytes.count, bytes[p] == UInt8(ascii: "=") else { throw fail("\"=\" after an attribute") }
                p += 1
                skipSpace()
                guard p < bytes.count, bytes[p] == UInt8(ascii: "\"") || bytes[p] == UInt8(ascii: "'") else {
                    throw fail("an attribute value in quotes")
                }
                let quote = bytes[p]
                p += 1
                var resolved: [UInt8] = []
                var value = XMLTree.Text(range: tree.copied.count..<tree.copied.count, copied: true)
                if let plain = try characters(until: quote, into: &resolved) {
                    value = XMLTree.Text(range: plain, copied: false)
                } else {
                    tree.copied.append(contentsOf: resolved)
                    value.range = value.range.lowerBound..<tree.copied.count
                }
                guard p < bytes.count else { throw fail("an attribute value is never closed") }
                p += 1
                // The name as written is compared with the local names kept: `a:x` and `b:x` are two.
                if tree.attributes[attributesStart...].contains(where: {
                    bytes[$0.name].elementsEqual(bytes[attribute])
                }) {
                    throw fail("the attribute \(String(decoding: bytes[attribute], as: UTF8.self)) appears twice")
                }
                tree.attributes.append((localName(attribute), value))
                tree.nodes[node].attributes = attributesStart..<tree.attributes.count
            }
            // Content.
            var text = PendingText()
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
                    if let joined = text.joined {
                        tree.nodes[node].text = XMLTree.Text(
                            range: tree.copied.count..<(tree.copied.count + joined.count),
                            copied: true
                        )
                        tree.copied.append(contentsOf: joined)
                    } else if let run = text.run {
                        tree.nodes[node].text = XMLTree.Text(range: run, copied: false)
                    }
                    return
                }
                if starts(with: "<!--") {
                    try skip(past: "-->", what: "a comment")
                } else if starts(with: "<![CDATA[") {
                    p += 9
                    let start = p
                    try skip(past: "]]>", what: "a CDATA section")
                    text.add(start..<(p - 3), of: bytes)
                } else if starts(with: "<!") {
                    throw fail("a declaration inside an element is refused")
                } else if starts(with: "<?") {
                    try skip(past: "?>", what: "a processing instruction")
                } else if bytes[p] == UInt8(ascii: "<") {
                    let child = tree.nodes.count
                    let childAttributes = tree.attributes.count
                    let childCopied = tree.copied.count
                    try element()
                    let childName = bytes[tree.nodes[child].name]
                    if let handler, detaching.contains(where: { $0.elementsEqual(childName) }) {
                        try handler(tree, child, node)
                        tree.nodes.removeSubrange(child...)
                        tree.attributes.removeSubrange(childAttributes...)
                        tree.copied.removeSubrange(childCopied...)
                    }
                } else {
                    var resolved: [UInt8] = []
                    if let plain = try characters(until: UInt8(ascii: "<"), into: &resolved) {
                        text.add(plain, of: bytes)
                    } else {
                        text.toJoined(of: bytes)
                        text.joined!.append(contentsOf: resolved)
                    }
                }
            }
        }
    }
}
