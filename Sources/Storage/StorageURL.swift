public import CastleSupport
import Synchronization

/// A parsed store or queue URL: `memory://NAME`, `sqlite://PATH` (`sqlite:///abs/path` or
/// `sqlite://relative/path`), `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
public struct StorageURL: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var user: String?
    public var password: String?
    public var host: String
    public var port: Int?
    /// For sqlite: the file path. For postgres: the database. For memory: the name.
    public var path: String
    public var query: [String: String]

    /// The URL as given, with any password replaced by `***`: safe to log.
    public var description: String {
        var text = "\(scheme)://"
        if let user {
            text += user
            if password != nil { text += ":***" }
            text += "@"
        }
        text += host
        if let port { text += ":\(port)" }
        if scheme == "sqlite" || scheme == "memory" { return text + path }
        return path.isEmpty ? text : text + "/" + path
    }

    public init(parsing text: String) throws(CastleError) {
        guard let separator = Self.schemeSeparator(text) else {
            throw CastleError(.usage, "'\(Self.redact(text))' is not a store URL: expected SCHEME://…")
        }
        scheme = text[..<separator.lowerBound].lowercased()
        var rest = String(text[separator.upperBound...])
        query = [:]
        if let mark = rest.firstIndex(of: "?") {
            // `?a=1&b`, each name once; an empty name (`?=x`, `?&=`) is refused, not guessed at.
            for pair in rest[rest.index(after: mark)...].split(separator: "&") {
                let equals = pair.firstIndex(of: "=") ?? pair.endIndex
                let name = String(pair[..<equals])
                guard !name.isEmpty else {
                    throw CastleError(
                        .usage,
                        "'\(Self.redact(text))' is not a store URL: a query parameter has no name"
                    )
                }
                let value = equals < pair.endIndex ? pair[pair.index(after: equals)...] : ""
                query[name] = Self.percentDecoded(String(value))
            }
            rest = String(rest[..<mark])
        }
        user = nil
        password = nil
        port = nil
        if scheme == "sqlite" || scheme == "memory" {
            host = ""
            path = rest
            if path.isEmpty && scheme == "sqlite" { throw CastleError(.usage, "sqlite:// needs a file path") }
            return
        }
        let slash = rest.firstIndex(of: "/")
        var authority = slash.map { String(rest[..<$0]) } ?? rest
        path = slash.map { String(rest[rest.index(after: $0)...]) } ?? ""
        // `postgres:///user:pw@host/db` has its credentials after a slash, in the database name, where
        // the description would show them: refuse it rather than connect to a database of that name.
        if path.contains("@") {
            throw CastleError(
                .usage,
                "'\(Self.redact(text))' is not a store URL: credentials go before the host, as \(scheme)://USER:PASSWORD@HOST/DB"
            )
        }
        if let at = authority.lastIndex(of: "@") {
            let credentials = authority[..<at]
            authority = String(authority[authority.index(after: at)...])
            if let colon = credentials.firstIndex(of: ":") {
                user = Self.percentDecoded(String(credentials[..<colon]))
                password = Self.percentDecoded(String(credentials[credentials.index(after: colon)...]))
            } else {
                user = Self.percentDecoded(String(credentials))
            }
        }
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), number > 0, number < 65536 else {
                throw CastleError(.usage, "\(scheme)://…: bad port in '\(Self.redact(text))'")
            }
            port = number
            authority = String(authority[..<colon])
        }
        host = authority.hasPrefix("[") ? String(authority.dropFirst().dropLast()) : authority
        if host.isEmpty { host = "localhost" }
    }

    /// `text` with the password of a URL in it replaced, for error messages about unparsable URLs.
    /// A `password=` in the query is hidden too.
    public static func redact(_ text: String) -> String {
        var text = text
        if let mark = text.firstIndex(of: "?") {
            let pairs = text[text.index(after: mark)...].split(separator: "&", omittingEmptySubsequences: false).map {
                $0.lowercased().hasPrefix("password=") ? "password=***" : String($0)
            }
            text = text[...mark] + pairs.joined(separator: "&")
        }
        guard let separator = schemeSeparator(text), let at = text[separator.upperBound...].lastIndex(of: "@")
        else { return text }
        let credentials = text[separator.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }

    /// The range of the first `://`.
    static func schemeSeparator(_ text: String) -> Range<String.Index>? {
        var index = text.startIndex
        while index < text.endIndex {
            if text[index...].hasPrefix("://") { return index..<text.index(index, offsetBy: 3) }
            index = text.index(after: index)
        }
        return nil
    }

    static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A backend: the store and the queue it offers.
public typealias Backend = Store & MessageQueue & LedgerStore & ClientOrderStore

/// From URL scheme to backend. Plugins register themselves at start-up (the CLI does it); nothing here
/// imports a database driver.
public enum StorageRegistry {
    /// Opens a URL's backend. With `create` false a store that does not exist yet is an error that says how
    /// to make one (exit 66), never an empty new store: only `castle migrate up` creates stores.
    public typealias Opener = @Sendable (_ url: StorageURL, _ create: Bool) async throws(CastleError) -> any Backend

    private static let openers = Mutex<[String: Opener]>(["memory": { url, _ in MemoryBackend.named(url.path) }])

    /// Registers `scheme` (lowercase, without `://`).
    public static func register(scheme: String, _ opener: @escaping Opener) {
        openers.withLock { $0[scheme] = opener }
    }

    public static var schemes: [String] { openers.withLock { $0.keys.sorted() } }

    /// The error for a store that is not there yet, with the command that creates it.
    public static func missingStore(_ url: StorageURL) -> CastleError {
        CastleError(.noInput, "\(url): no store there yet; create it with: castle migrate up --store '\(url)'")
    }

    /// The default store: `$CASTLE_STORE`, else `sqlite://castle.db`.
    public static func defaultURL(environment: [String: String]) -> String {
        environment["CASTLE_STORE"].flatMap { $0.isEmpty ? nil : $0 } ?? "sqlite://castle.db"
    }

    /// Opens the backend for `text`, creating its store only if `create` is true (see ``Opener``). An
    /// unknown scheme lists the known ones.
    public static func open(_ text: String, create: Bool = false) async throws(CastleError) -> any Backend {
        let url = try StorageURL(parsing: text)
        guard let opener = openers.withLock({ $0[url.scheme] }) else {
            let known = schemes.map { "\($0)://" }.joined(separator: ", ")
            throw CastleError(.usage, "unknown store scheme '\(url.scheme)://' in \(url): known schemes are \(known)")
        }
        return try await opener(url, create)
    }
}
