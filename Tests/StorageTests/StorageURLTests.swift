import Storage
import Testing

@Suite struct StorageURLTests {
    /// What messages and logs show of a store URL: as given, the password hidden, nothing added (an
    /// unknown scheme's error showed `mysql://x` as `mysql://x/`).
    @Test(arguments: [
        ("sqlite://castle.db", "sqlite://castle.db"),
        ("sqlite:///var/lib/castle/castle.db", "sqlite:///var/lib/castle/castle.db"),
        ("memory://tests", "memory://tests"),
        ("postgres://castle:s3cret@db.example:5432/castle", "postgres://castle:***@db.example:5432/castle"),
        ("postgres://castle@db.example", "postgres://castle@db.example"),
        ("mysql://x", "mysql://x"),
    ])
    func aURLIsShownAsGiven(text: String, shown: String) throws {
        #expect(try StorageURL(parsing: text).description == shown)
    }
}
