import CastleSupport
public import Logging
import Storage

/// Registers `postgres://` and `postgresql://` with the ``StorageRegistry``.
public enum PostgresPlugin {
    /// `logger` gets the driver's own messages (connections, the pool); castle passes its own, at
    /// `error` level, or `debug` when `CASTLE_DB_DEBUG` is set.
    public static func register(logger: Logger = silentLogger) {
        for scheme in ["postgres", "postgresql"] {
            // A database is made by its administrator, not by castle: `create` changes nothing here.
            StorageRegistry.register(scheme: scheme) { url, _ throws(CastleError) in
                try await PostgresBackend.open(url, logger: logger)
            }
        }
    }
}
