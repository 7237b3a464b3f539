import CastleSupport
public import Logging
import PostgresNIO
import Storage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// postgres-nio logs connection internals at debug and trace levels; unless castle passes its logger
/// (``PostgresPlugin/register(logger:)``), the driver gets one that drops everything. Statements always
/// run with this one: their debug messages would carry the bound values.
public let silentLogger = Logger(label: "castle.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

/// Advisory-lock keys: 64-bit FNV-1a of a name, so different purposes never share a key.
enum LockKey {
    static let queue = key("castle:queue")
    static let migrations = key("castle:migrations")

    static func partition(_ partition: Partition) -> Int64 { key("match:\(partition.index)/\(partition.count)") }

    static func key(_ name: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }
}

/// A readable reason for a driver error. postgres-nio hides details behind a generic description so
/// that queries and binds do not leak into logs; castle picks the server's message (which never carries
/// the password) or the socket error.
func describe(_ error: any Error) -> String {
    if let error = error as? CastleError { return error.message }
    if let error = error as? PSQLError {
        if let info = error.serverInfo, let message = info[.message] {
            var text = message
            if let detail = info[.detail] { text += " (\(detail))" }
            if let state = info[.sqlState] { text += " [SQLSTATE \(state)]" }
            return text
        }
        if let underlying = error.underlying { return describe(underlying) }
        switch error.code {
        case .serverClosedConnection: return "the server closed the connection"
        case .clientClosedConnection: return "the connection was closed"
        case .poolClosed: return "the backend is closed"
        case .authMechanismRequiresPassword: return "the server asks for a password and the URL has none"
        case .unsupportedAuthMechanism: return "the server asks for an authentication method castle does not support"
        case .sslUnsupported: return "the server does not support TLS"
        default: return "\(error.code)"
        }
    }
    if let error = error as? PostgresTransactionError {
        if let inner = error.closureError ?? error.beginError ?? error.commitError { return describe(inner) }
    }
    if let error = error as? NIOConnectionError {
        if let first = error.connectionErrors.first { return describe(first.error) }
        if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve the host: \(describe(dns))" }
        return "no address to connect to"
    }
    if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
    if error is ChannelError { return "connection failed (\(error))" }
    return "\(error)"
}

/// The sysexits kind for a driver error: the server or the network being away is `unavailable`, a
/// missing table means the schema is not migrated, a conflict between transactions is temporary.
func kind(of error: any Error) -> CastleError.Kind {
    if let error = error as? CastleError { return error.kind }
    if let error = error as? PostgresTransactionError {
        if let inner = error.closureError ?? error.beginError ?? error.commitError { return kind(of: inner) }
    }
    guard let error = error as? PSQLError else {
        return error is NIOConnectionError || error is IOError || error is ChannelError ? .unavailable : .ioError
    }
    if error.code == .server {
        let state = error.serverInfo?[.sqlState] ?? ""
        if state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") || state.hasPrefix("28")
            || state == "3D000"
        {
            return .unavailable
        }
        if state == "40001" || state == "40P01" || state == "55P03" { return .temporaryFailure }
        if state == "42P01" { return .config }
        return .ioError
    }
    if error.code == .connectionError || error.code == .serverClosedConnection
        || error.code == .clientClosedConnection || error.code == .poolClosed || error.code == .uncleanShutdown
        || error.code == .sslUnsupported
    {
        return .unavailable
    }
    return .ioError
}

/// `error` as a ``CastleError`` about `context` (the redacted URL and what was being done).
func storageError(_ error: any Error, _ context: String) -> CastleError {
    if let error = error as? CastleError { return error }
    if let error = error as? PSQLError, error.serverInfo?[.sqlState] == "42P01" {
        return StoreErrors.notMigrated(context, reason: describe(error))
    }
    return CastleError(kind(of: error), "\(context): \(describe(error))")
}

/// Runs `body`, or gives up after `seconds` with a timeout error.
func withTimeout<T: Sendable>(
    seconds: Int,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw CastleError(.unavailable, "no answer within \(seconds) s")
        }
        return value
    }
}

extension PostgresConnection {
    /// Runs one statement and reads all of its rows, so that errors surface here and the connection is
    /// free for the next statement.
    @discardableResult
    func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await self.query(query, logger: silentLogger).collect()
    }

    /// `SELECT count(*) …` and the like: the first column of the first row.
    func scalar(_ query: PostgresQuery) async throws -> Int64 {
        guard let row = try await rows(query).first else { return 0 }
        return try row.decode(Int64.self)
    }
}

extension ByteBuffer {
    /// `text` as a field of COPY's text format: backslash, tab, newline and carriage return escaped.
    mutating func writeCopyField(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var start = 0
            for index in 0..<bytes.count {
                let escaped: UInt8
                switch bytes[index] {
                case UInt8(ascii: "\\"): escaped = UInt8(ascii: "\\")
                case UInt8(ascii: "\t"): escaped = UInt8(ascii: "t")
                case UInt8(ascii: "\n"): escaped = UInt8(ascii: "n")
                case UInt8(ascii: "\r"): escaped = UInt8(ascii: "r")
                default: continue
                }
                if index > start {
                    writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start..<index])))
                }
                writeInteger(UInt8(ascii: "\\"))
                writeInteger(escaped)
                start = index + 1
            }
            if bytes.count > start {
                writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start..<bytes.count])))
            }
        }
    }

    mutating func writeCopyField(_ value: Int64) {
        writeString(String(value))
    }
}

extension PostgresConnection {
    /// Closes the connection without waiting: for `defer`, `deinit` and cancellation handlers.
    /// The connection stays referenced until it is closed (postgres-nio asserts that it is closed
    /// before it goes).
    func closeSoon() {
        let closed: EventLoopFuture<Void> = close()
        closed.whenComplete { _ in withExtendedLifetime(self) {} }
    }
}
