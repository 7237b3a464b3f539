public import CastleSupport
import Ledger
public import Storage

/// The ledger side read from the store (``LedgerStore``, migration 0005): every entry, in pages, as the
/// ``LedgerItem``s reconciliation matches; entries that move no money through `clearing` or `bank`
/// accounts are dropped as they are read.
public enum StoredLedger {
    public static let page_max = 50_000

    public static func items(from store: any LedgerStore) async throws(CastleError) -> [LedgerItem] {
        var items: [LedgerItem] = []
        var afterSeq: Int64 = 0
        while true {
            let page = try await store.readLedgerEntries(LedgerEntryQuery(afterSeq: afterSeq, limit: page_max))
            for stored in page {
                if let item = try item(stored.entry) { items.append(item) }
            }
            guard let last = page.last, page.count == page_max else { break }
            afterSeq = last.seq
        }
        return items
    }

    /// As ``LedgerItem/init(_:)`` for an entry as the store keeps it.
    static func item(_ record: LedgerEntryRecord) throws(CastleError) -> LedgerItem? {
        var sum: Int128 = 0
        var asset: Asset?
        for posting in record.postings
        where posting.account.hasPrefix("clearing:") || posting.account.hasPrefix("bank:") {
            let postingAsset: Asset
            do throws(LedgerInputError) {
                postingAsset = try Asset(code: posting.asset, scale: posting.scale)
            } catch {
                throw CastleError(.dataError, "ledger entry \(record.key): \(error.reason)")
            }
            if let asset, asset != postingAsset { return nil }
            asset = postingAsset
            sum += Int128(posting.amount)
        }
        guard let asset, sum != 0, let amount = Int64(exactly: -sum) else { return nil }
        let (money, currency) = LedgerItem.inCurrencyScale(amount, asset)
        return LedgerItem(
            key: record.key,
            ref: record.ref,
            reverses: record.reverses,
            amount: money,
            currency: currency,
            day: Int32(clamping: record.ts / LedgerItem.nanosecondsPerDay)
        )
    }
}
