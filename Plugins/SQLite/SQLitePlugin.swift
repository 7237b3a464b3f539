import CastleSupport
import Storage

/// Registers `sqlite://` with the ``StorageRegistry``.
public enum SQLitePlugin {
    public static func register() {
        StorageRegistry.register(scheme: "sqlite") { url, create throws(CastleError) in
            try await SQLiteBackend.open(url: url, create: create)
        }
    }
}
