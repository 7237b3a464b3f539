import CastleSupport
public import Ledger
public import Storage

/// Entries across the storage seam: the Ledger module's values to the store's plain records and back.
public enum LedgerRecords {
    public static func record(_ entry: Entry) -> LedgerEntryRecord {
        LedgerEntryRecord(
            key: entry.key,
            kind: entry.kind.rawValue,
            ts: entry.ts,
            ref: entry.ref,
            reverses: entry.reverses,
            memo: entry.memo,
            postings: entry.postings.map { posting in
                LedgerPostingRecord(
                    account: posting.account.description,
                    asset: posting.asset.code,
                    scale: posting.asset.scale,
                    amount: posting.amount,
                    mayGoNegative: posting.account.kind.mayGoNegative
                )
            }
        )
    }

    /// A stored record as an entry; a record that is not a valid entry (a row edited by hand) is a data
    /// error naming its key, which `ledger verify` reports as the offending entry.
    public static func entry(_ record: LedgerEntryRecord) -> Result<Entry, VerifyFailure> {
        do throws(LedgerInputError) {
            guard let kind = EntryKind(rawValue: record.kind) else {
                throw LedgerInputError("unknown kind \"\(record.kind)\"")
            }
            var postings: [Posting] = []
            for posting in record.postings {
                let account = try Account(parsing: posting.account)
                if account.kind.mayGoNegative != posting.mayGoNegative {
                    throw LedgerInputError("\(account) is stored with the wrong sign rule")
                }
                postings.append(
                    Posting(
                        account: account,
                        asset: try Asset(code: posting.asset, scale: posting.scale),
                        amount: posting.amount
                    )
                )
            }
            return .success(
                Entry(
                    key: record.key,
                    kind: kind,
                    ts: record.ts,
                    ref: record.ref,
                    reverses: record.reverses,
                    memo: record.memo,
                    postings: postings
                )
            )
        } catch {
            return .failure(VerifyFailure(key: record.key, reason: error.reason))
        }
    }

    /// What the store refused, as the contract's result code and reason.
    public static func message(_ refusal: LedgerRefusal) -> String {
        "entry \"\(refusal.key)\": \(refusal)"
    }
}
