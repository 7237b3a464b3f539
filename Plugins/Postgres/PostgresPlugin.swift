import Formats
import Storage

/// Registers `postgres://` and `postgresql://` with the ``StorageRegistry``.
public enum PostgresPlugin {
    public static func register() {
        for scheme in ["postgres", "postgresql"] {
            // A database is made by its administrator, not by castle: `create` changes nothing here.
            StorageRegistry.register(scheme: scheme) { url, _ throws(CastleError) in
                try await PostgresBackend.open(url)
            }
        }
    }
}
