import CBuildInfo
import Storage

/// What `castle --version` prints: the version, the git commit the binary was built from (baked in at
/// build time from $CASTLE_GIT_COMMIT, which bin/castle and bin/test set; `unknown` otherwise, e.g. in a
/// build from a tarball), and the schema version this binary migrates stores to.
enum BuildInfo {
    static let version = "0.1.0"

    static var commit: String {
        let text = String(cString: castle_git_commit())
        return text.isEmpty ? "unknown" : text
    }

    /// The latest migration, the same for every dialect.
    static var schemaVersion: Int { Migration.all(for: .sqlite).map(\.version).max() ?? 0 }

    static var versionLine: String { "castle \(version) (commit \(commit), schema \(schemaVersion))" }
}
