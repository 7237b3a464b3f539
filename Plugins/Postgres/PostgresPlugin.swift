import CastleSupport
import Storage

/// Registers `postgres://` and `postgresql://` with the ``StorageRegistry``.
public enum PostgresPlugin {
    public static func register() {
        for scheme in ["postgres", "postgresql"] {
            StorageRegistry.register(scheme: scheme) { url throws(CastleError) in
                try await PostgresBackend.open(url)
            }
        }
    }
}
