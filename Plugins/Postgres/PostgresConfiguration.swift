import CastleSupport
import PostgresNIO
import Storage

/// The connection settings of a `postgres://` URL, made once: for the pool, for the connections of
/// their own (sessions, locks, the listener), and the URL to show.
struct PostgresConfiguration: Sendable {
    /// The URL with the default port and without the password.
    let displayURL: String
    let connection: PostgresConnection.Configuration
    let pool: PostgresClient.Configuration

    init(url: StorageURL, timeoutSeconds: Int) {
        var shown = url
        shown.port = url.port ?? 5432
        displayURL = shown.description
        let user = url.user.flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
        var connection = PostgresConnection.Configuration(
            host: url.host,
            port: url.port ?? 5432,
            username: user,
            password: url.password,
            database: url.path,
            tls: .disable
        )
        connection.options.connectTimeout = .seconds(Int64(timeoutSeconds))
        self.connection = connection
        var pool = PostgresClient.Configuration(
            host: url.host,
            port: url.port ?? 5432,
            username: user,
            password: url.password,
            database: url.path,
            tls: .disable
        )
        pool.options.connectTimeout = .seconds(timeoutSeconds)
        pool.options.maximumConnections = 8
        self.pool = pool
    }

    /// What castle supports of the URL: no TLS yet, a database name.
    static func validate(_ url: StorageURL, displayURL: String) throws(CastleError) {
        if let mode = url.query["sslmode"], !["disable", "allow", "prefer"].contains(mode) {
            throw CastleError(
                .usage,
                "\(displayURL): sslmode=\(mode) is not supported yet (castle connects without TLS)"
            )
        }
        guard !url.path.isEmpty, !url.path.contains("/") else {
            throw CastleError(.usage, "\(displayURL): expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
        }
    }
}
