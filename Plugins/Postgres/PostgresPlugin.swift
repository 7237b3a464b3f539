import Formats
import Storage

/// Registers `postgres://` and `postgresql://` with the ``StorageRegistry``.
public enum PostgresPlugin {
    public static func register() {
        for scheme in ["postgres", "postgresql"] {
            StorageRegistry.register(scheme: scheme) { url throws(CastleError) in
                throw CastleError(.unavailable, "\(url): the PostgreSQL backend is not built yet")
            }
        }
    }
}
