public import CastleSupport
public import Ledger
public import Storage
import Streams

/// `castle ledger post`: NDJSON entries from a file or stdin (plain or compressed) into the store.
public enum LedgerPost {
    public struct Summary: Sendable, Hashable {
        /// Entries read from the input.
        public var entries: Int
        /// New entries recorded.
        public var posted: Int
        /// Entries whose key was posted already with the same content (no-ops).
        public var alreadyPosted: Int
    }

    /// Entries in one input, at most: the whole input is one transaction, held in memory until it commits.
    public static let entries_max = 1_000_000

    /// Reads every entry of `path` (nil or `-`: stdin), checks each on its own (the contract's decoder,
    /// balance per asset), then posts them all in **one** transaction: all or nothing, so a file that
    /// fails at line 900 leaves the ledger as it was, and running it again after a fix posts each entry
    /// once (keys already posted with the same content are no-ops). A bad line or an entry the store
    /// refuses is a data error `FILE:LINE: reason` (exit 65).
    public static func run(
        path: String?,
        assets: AssetTable,
        store: any LedgerStore,
        postedAt: Int64
    ) async throws(CastleError) -> Summary {
        let (name, entries, lines) = try await onOwnThread { () throws(CastleError) in
            try read(path: path, assets: assets)
        }
        let records = entries.map(LedgerRecords.record)
        switch try await store.postLedgerEntries(records, postedAt: postedAt, watermark: nil) {
        case .committed(let posted, let alreadyPosted):
            return Summary(entries: entries.count, posted: posted, alreadyPosted: alreadyPosted)
        case .refused(let refusal):
            throw CastleError(.dataError, "\(name):\(lines[refusal.index]): \(LedgerRecords.message(refusal))")
        }
    }

    /// The input's entries and the line of each, checked on their own; the input's name for messages.
    static func read(path: String?, assets: AssetTable) throws(CastleError) -> (String, [Entry], [Int]) {
        let source = try InputSource(path: path)
        let reader = LineReader(source: source, lineBytesMax: EntryCodec.lineBytes_max)
        var entries: [Entry] = []
        var lines: [Int] = []
        while let line = try reader.next() {
            func fail(_ reason: String) -> CastleError {
                CastleError(.dataError, "\(source.name):\(line.number): \(reason)")
            }
            if line.tooLong { throw fail("line longer than \(EntryCodec.lineBytes_max) bytes") }
            if line.isBlank { continue }
            let entry: Entry
            switch EntryCodec.decode(Array(line.bytes), lineNumber: line.number, assets: assets) {
            case .success(let decoded): entry = decoded
            case .failure(let error): throw error.castleError(file: source.name)
            }
            if let asset = entry.unbalancedAsset {
                throw fail("\(PostResult.unbalanced(asset: asset))")
            }
            if entries.count == entries_max {
                throw fail("more than \(entries_max) entries in one input: split it (each file is one transaction)")
            }
            entries.append(entry)
            lines.append(line.number)
        }
        return (source.name, entries, lines)
    }
}
