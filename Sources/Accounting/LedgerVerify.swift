public import CastleSupport
public import Ledger
public import Storage

/// `castle ledger verify`: the stored ledger checked against its own postings.
public enum LedgerVerify {
    public struct Summary: Sendable, Hashable {
        public var entries: Int
        public var balances: Int
    }

    /// Loads the stored entries (in posting order, paged) and the stored projection into a ``Journal`` and
    /// runs ``Journal/verify()`` over them: every entry obeys its rules and balances, keys are unique,
    /// reversals are right, no account is below zero where its kind forbids it after any entry, the
    /// projection equals the sum of the postings, and every asset sums to zero. The store's own
    /// recomputation (``LedgerStore/recomputedLedgerBalances()``) must agree too. Returns the first
    /// failure, naming the offending entry's key.
    public static func run(store: any LedgerStore) async throws(CastleError) -> Result<Summary, VerifyFailure> {
        var entries: [Entry] = []
        var after: Int64 = 0
        while true {
            let page = try await store.readLedgerEntries(LedgerEntryQuery(afterSeq: after, limit: 10_000))
            guard let last = page.last else { break }
            for stored in page {
                switch LedgerRecords.entry(stored.entry) {
                case .success(let entry): entries.append(entry)
                case .failure(let failure): return .failure(failure)
                }
            }
            after = last.seq
        }
        let stored = try await store.ledgerBalances(account: nil, asset: nil)
        var projection: [BalanceKey: Int128] = [:]
        for row in stored {
            do throws(LedgerInputError) {
                let key = BalanceKey(
                    account: try Account(parsing: row.account),
                    asset: try Asset(code: row.asset, scale: row.scale)
                )
                projection[key] = row.balance
            } catch {
                return .failure(
                    VerifyFailure(key: nil, reason: "stored balance of \(row.account) \(row.asset): \(error.reason)")
                )
            }
        }
        if case .failure(let failure) = Journal(entries: entries, balances: projection).verify() {
            return .failure(failure)
        }
        let recomputed = try await store.recomputedLedgerBalances()
        if recomputed != stored {
            return .failure(
                VerifyFailure(key: nil, reason: "the store's sums of the postings differ from its projection")
            )
        }
        return .success(Summary(entries: entries.count, balances: stored.count))
    }
}
