public import CastleSupport

/// The errors every backend reports the same way, so that a script sees one exit code per meaning
/// whichever backend is behind the URL (sysexits):
///
/// | meaning | kind | exit |
/// |---|---|---|
/// | the server or the network is away, credentials refused | `unavailable` | 69 |
/// | another worker moved a partition's offset: this one lost the partition | `temporaryFailure` | 75 |
/// | a conflict between transactions, a lock held elsewhere | `temporaryFailure` | 75 |
/// | a table of the schema is missing: the store is not migrated | `config` | 78 |
/// | the file is not a database, or it is corrupt | `dataError` | 65 |
/// | any other failure of the store (disk full, I/O, an error the backend does not classify) | `ioError` | 74 |
///
/// `software` (70) stays for castle's own bugs, never for what a store answered.
public enum StoreErrors {
    /// A commit from a worker whose offset is no longer the stored one: another worker took its partition
    /// and wrote. Temporary: the worker stops, and as a standby it may take the partition again.
    public static func offsetMoved(store: String, consumer: String, stored: Int64, expected: Int64) -> CastleError {
        CastleError(
            .temporaryFailure,
            "\(store): consumer \(consumer) is at offset \(stored), not \(expected): another worker is writing it"
        )
    }

    /// A missing table: the schema is older than the binary, or was never made. `context` names the store
    /// and what was being done.
    public static func notMigrated(_ context: String, reason: String) -> CastleError {
        CastleError(.config, "\(context): \(reason); is the schema migrated? run: castle migrate up")
    }
}

/// The ledger's store errors, the same on every backend.
public enum LedgerStoreErrors {
    /// A settlement whose watermark is no longer the stored one: another settle of the consumer wrote.
    public static func watermarkMoved(store: String, consumer: String, stored: Int64, expected: Int64) -> CastleError {
        CastleError(
            .temporaryFailure,
            "\(store): the settlement of consumer \(consumer) is at trade \(stored), not \(expected): another settle is writing it"
        )
    }

    /// A stored row that does not decode: the database was edited or damaged.
    public static func damagedRow(store: String, key: String) -> CastleError {
        CastleError(.dataError, "\(store): ledger entry \"\(key)\" has damaged postings")
    }
}
