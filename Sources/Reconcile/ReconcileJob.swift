public import CastleSupport
internal import Crypto
public import Ledger
public import Storage
internal import Streams

/// What a source file is.
public enum SourceFormat: String, Sendable, CaseIterable {
    /// A processor CSV of a built-in layout (Stripe balance transactions, payments, payouts; PayPal).
    case stripe
    case camt053
    /// Any CSV, through a mapping file (or a built-in layout it is detected as).
    case csv
}

/// Where the ledger side comes from: the seam the ledger store implements (after the `ledger-store`
/// branch lands, `castle reconcile --store URL` reads entries through it). ``LedgerEntriesFile`` reads
/// the entries NDJSON of docs/ledger.md.
public protocol LedgerEntrySource {
    /// Calls `body` with every entry that may match, in any order (the job narrows them to the window
    /// itself); one at a time, so that only what reconciliation needs of each is kept.
    func forEachEntry(_ body: (Entry) throws(CastleError) -> Void) throws(CastleError)

    /// Calls `body` with the item of every entry that moves money through clearing or bank accounts
    /// (``LedgerItem/init(_:)``); a source may read them faster than whole entries.
    func forEachItem(_ body: (LedgerItem) throws(CastleError) -> Void) throws(CastleError)
}

extension LedgerEntrySource {
    public func forEachItem(_ body: (LedgerItem) throws(CastleError) -> Void) throws(CastleError) {
        try forEachEntry { (entry) throws(CastleError) in
            if let item = LedgerItem(entry) { try body(item) }
        }
    }
}

/// A ledger as the entries NDJSON that `castle ledger post` reads (docs/ledger.md), decoded strictly.
public struct LedgerEntriesFile: LedgerEntrySource {
    public var path: String
    public var assets: AssetTable

    public init(path: String, assets: AssetTable = .iso4217) {
        self.path = path
        self.assets = assets
    }

    public func forEachEntry(_ body: (Entry) throws(CastleError) -> Void) throws(CastleError) {
        let source = try InputSource(path: path)
        let reader = LineReader(source: source, lineBytesMax: EntryCodec.lineBytes_max)
        while let line = try reader.next() {
            if line.isBlank { continue }
            if line.tooLong {
                throw CastleError(
                    .dataError,
                    "\(source.name):\(line.number): longer than \(EntryCodec.lineBytes_max) bytes"
                )
            }
            switch EntryCodec.decode(Array(line.bytes), lineNumber: line.number, assets: assets) {
            case .success(let entry): try body(entry)
            case .failure(let error): throw error.castleError(file: source.name)
            }
        }
    }

    /// As the protocol's, with each line in castle's canonical form read straight into its item
    /// (``FastLedgerLine``); any other line is decoded strictly, with the same errors.
    public func forEachItem(_ body: (LedgerItem) throws(CastleError) -> Void) throws(CastleError) {
        let source = try InputSource(path: path)
        let reader = LineReader(source: source, lineBytesMax: EntryCodec.lineBytes_max)
        var cache = FastLedgerLine.AssetCache()
        while let line = try reader.next() {
            if line.tooLong {
                throw CastleError(
                    .dataError,
                    "\(source.name):\(line.number): longer than \(EntryCodec.lineBytes_max) bytes"
                )
            }
            if case .item(let item) = FastLedgerLine.read(line.bytes, assets: assets, cache: &cache) {
                if let item { try body(item) }
                continue
            }
            if line.isBlank { continue }
            switch EntryCodec.decode(Array(line.bytes), lineNumber: line.number, assets: assets) {
            case .success(let entry): if let item = LedgerItem(entry) { try body(item) }
            case .failure(let error): throw error.castleError(file: source.name)
            }
        }
    }
}

/// A reconciliation's inputs.
public struct ReconcileRequest: Sendable {
    public var sources: [String]
    public var format: SourceFormat?
    public var mapping: ColumnMapping?
    public var rules: RuleSet
    /// Inclusive days since 1970-01-01; nil: the sources' own range.
    public var window: ClosedRange<Int32>?
    /// `--since-last`: per source, the last day already reconciled; only later records are read.
    public var watermarks: [String: Int32]?
    /// Records people resolved, with their notes: such a break is reported, but no longer counts.
    public var resolutions: [String: String] = [:]
    /// What stored runs over other days claimed (``ReconcileJob/days(_:request:)``): such a source record
    /// is a `duplicate` of that run, such a ledger entry is neither claimed nor reported.
    public var earlier: [ReconcileClaim] = []
    public var assets: AssetTable

    public init(
        sources: [String],
        format: SourceFormat? = nil,
        mapping: ColumnMapping? = nil,
        rules: RuleSet = .standard,
        window: ClosedRange<Int32>? = nil,
        assets: AssetTable = .iso4217
    ) {
        self.sources = sources
        self.format = format
        self.mapping = mapping
        self.rules = rules
        self.window = window
        self.assets = assets
    }
}

/// A finished reconciliation: the records in report order and the run id they are reported under.
public struct ReconcileReport: Sendable {
    public var run: String
    public var records: [ResultRecord]
    public var externalCount: Int
    public var ledgerCount: Int
    /// Per source, the last day of its records: the watermarks `--since-last` starts after next time.
    public var watermarks: [String: Int32] = [:]
    /// The run's days: its window, else the days of the records it read; nil when it read none. Runs over
    /// the same days are reruns of each other; their claims are kept under these days.
    public var days: ClosedRange<Int32>?

    public var breaks: Int { records.count { $0.isBreak } }

    /// `castle reconcile: N records, M matched, B breaks (by class …); run RUN`.
    public var summary: String {
        var byClass: [ResultClass: Int] = [:]
        for record in records where record.isBreak { byClass[record.resultClass, default: 0] += 1 }
        let classes = byClass.keys.sorted().map { "\($0.rawValue) \(byClass[$0]!)" }.joined(separator: ", ")
        let matched = records.count { $0.resultClass == .matched }
        return "castle reconcile: \(records.count) records, \(matched) matched, \(breaks) breaks"
            + (classes.isEmpty ? "" : " (\(classes))") + "; run \(run)"
    }
}

/// What a run reads before it matches: the sources' records and proofs and the ledger's items.
public struct ReconcileInputs: Sendable {
    public var external: [ExternalRecord]
    public var proofs: [BalanceProof]
    public var ledger: [LedgerItem]
    /// Per source, the last day of its records.
    public var watermarks: [String: Int32]
    /// The ledger's references numbered, when the ledger's thread had the time (built beside the sources).
    public var ledgerReferences: LedgerReferences? = nil
}

public enum ReconcileJob {
    /// Reads one source: its records, and for a bank statement its balance proofs.
    public static func read(
        _ path: String,
        format given: SourceFormat?,
        mapping: ColumnMapping?,
        assets: AssetTable
    ) throws(CastleError) -> (records: [ExternalRecord], proofs: [BalanceProof]) {
        let source = try InputSource(path: path)
        var format = given
        if format == nil {
            format = try sniffFormat(path)
        }
        switch format! {
        case .camt053:
            let statements = try Camt053.read(source, assets: assets)
            return (statements.records, statements.proofs)
        case .stripe, .csv:
            return (try MappedCSV.read(source, mapping: mapping, assets: assets), [])
        }
    }

    /// camt.053 when the (decompressed) start of the file is an XML document in its namespace, else CSV.
    static func sniffFormat(_ path: String) throws(CastleError) -> SourceFormat {
        let source = try InputSource(path: path)
        let capacity = 4096
        let head = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { head.deallocate() }
        var count = 0
        while count < capacity {
            let n = try source.readBytes(into: head + count, count: capacity - count)
            if n == 0 { break }
            count += n
        }
        return Camt053.sniff(Array(UnsafeBufferPointer(start: head, count: count))) ? .camt053 : .csv
    }

    public static func run(
        _ request: ReconcileRequest,
        ledger: some LedgerEntrySource
    ) throws(CastleError)
        -> ReconcileReport
    {
        reconcile(try read(request, ledger: ledger), request: request)
    }

    /// Reads the sources and the ledger, the ledger on a thread of its own while the sources are read here.
    public static func read(
        _ request: ReconcileRequest,
        ledger: some LedgerEntrySource
    ) throws(CastleError) -> ReconcileInputs {
        let ledgerRead = BackgroundWork { () throws(CastleError) -> ([LedgerItem], LedgerReferences) in
            var items: [LedgerItem] = []
            try ledger.forEachItem { (item) throws(CastleError) in items.append(item) }
            // The matcher's numbering of the refs needs the ledger alone: done here, while the sources
            // (usually the longer read) are still being read.
            return (items, LedgerReferences(ledger: items))
        }
        let sources: SourcesRead
        do throws(CastleError) {
            sources = try readSources(request)
        } catch {
            // The ledger's error first, as when it was read before the sources.
            _ = try ledgerRead.join()
            throw error
        }
        let (items, references) = try ledgerRead.join()
        return ReconcileInputs(
            external: sources.external,
            proofs: sources.proofs,
            ledger: items,
            watermarks: sources.watermarks,
            ledgerReferences: references
        )
    }

    /// Reads the sources; the ledger's items are already read (from the store: ``StoredLedger``).
    public static func read(
        _ request: ReconcileRequest,
        ledgerItems items: [LedgerItem]
    ) throws(CastleError) -> ReconcileInputs {
        let sources = try readSources(request)
        return ReconcileInputs(
            external: sources.external,
            proofs: sources.proofs,
            ledger: items,
            watermarks: sources.watermarks
        )
    }

    /// The run's days (``ReconcileReport/days``), and the days whose claims by other runs it needs: those
    /// widened by the rules' widest window, as far as the ledger entries it may claim go. Nil when it
    /// reads no record.
    public static func days(
        _ inputs: ReconcileInputs,
        request: ReconcileRequest
    ) -> (days: ClosedRange<Int32>, lookup: ClosedRange<Int32>)? {
        guard let days = scope(inputs.external, request: request) else { return nil }
        let slack = request.rules.rules.map(\.windowDays).max() ?? 0
        return (days, (days.lowerBound &- slack)...(days.upperBound &+ slack))
    }

    /// The window, else the days of the records (read after any watermark).
    static func scope(_ external: [ExternalRecord], request: ReconcileRequest) -> ClosedRange<Int32>? {
        if let window = request.window { return window }
        guard let first = external.map(\.day).min(), let last = external.map(\.day).max() else { return nil }
        return first...last
    }

    /// The matching and the report, from what ``read(_:ledger:)`` read.
    public static func reconcile(_ inputs: ReconcileInputs, request: ReconcileRequest) -> ReconcileReport {
        var report = reconcile(
            external: inputs.external,
            proofs: inputs.proofs,
            ledger: inputs.ledger,
            ledgerReferences: inputs.ledgerReferences,
            request: request
        )
        report.watermarks = inputs.watermarks
        return report
    }

    /// What the report claims, for the store: the source id of every record and the key of every ledger
    /// entry that a result pairs with the other side, each once, with its day, under the report's days.
    public static func claims(_ report: ReconcileReport, inputs: ReconcileInputs) -> [ReconcileClaim] {
        guard let days = report.days else { return [] }
        var externalIDs: Set<String> = []
        var ledgerKeys: Set<String> = []
        for record in report.records where !record.external.isEmpty && !record.ledger.isEmpty {
            externalIDs.formUnion(record.external)
            ledgerKeys.formUnion(record.ledger)
        }
        var claims: [ReconcileClaim] = []
        claims.reserveCapacity(externalIDs.count + ledgerKeys.count)
        for record in inputs.external where externalIDs.remove(record.id) != nil {
            claims.append(ReconcileClaim(side: .external, id: record.id, day: record.day, run: report.run, days: days))
        }
        for item in inputs.ledger where ledgerKeys.remove(item.key) != nil {
            claims.append(ReconcileClaim(side: .ledger, id: item.key, day: item.day, run: report.run, days: days))
        }
        return claims
    }

    typealias SourcesRead = (external: [ExternalRecord], proofs: [BalanceProof], watermarks: [String: Int32])

    /// Sources read at once, each on a thread of its own (a CSV beside a bank statement): a bound on the
    /// threads and on the memory of sources being read.
    static let sourcesAtOnce_max = 3

    /// Reads every source, up to ``sourcesAtOnce_max`` at once, and adds them up in the order given; the
    /// first source (in that order) that fails is the error, as when they were read one after another.
    static func readSources(_ request: ReconcileRequest) throws(CastleError) -> SourcesRead {
        typealias Read = (records: [ExternalRecord], proofs: [BalanceProof])
        let paths = request.sources
        var pending: [BackgroundWork<Read>] = []
        var next = 0
        func startMore() {
            while next < paths.count && pending.count < sourcesAtOnce_max {
                let path = paths[next]
                pending.append(
                    BackgroundWork { () throws(CastleError) -> Read in
                        try read(path, format: request.format, mapping: request.mapping, assets: request.assets)
                    }
                )
                next += 1
            }
        }
        var external: [ExternalRecord] = []
        var proofs: [BalanceProof] = []
        var watermarks: [String: Int32] = [:]
        for path in paths {
            startMore()
            let work = pending.removeFirst()
            var records: [ExternalRecord]
            var statementProofs: [BalanceProof]
            do throws(CastleError) {
                (records, statementProofs) = try work.join()
            } catch {
                // The ones already started end before the error is given.
                for other in pending { _ = try? other.join() }
                throw error
            }
            if let last = records.map(\.day).max() { watermarks[path] = last }
            if let done = request.watermarks?[path] {
                records.removeAll { $0.day <= done }
                if records.isEmpty { statementProofs = [] }
            }
            external += records
            proofs += statementProofs
        }
        return (external, proofs, watermarks)
    }

    /// The matching and the report, from records already read.
    public static func reconcile(
        external allExternal: [ExternalRecord],
        proofs: [BalanceProof],
        ledger allItems: [LedgerItem],
        ledgerReferences: LedgerReferences? = nil,
        request: ReconcileRequest
    ) -> ReconcileReport {
        let slack = request.rules.rules.map(\.windowDays).max() ?? 0
        var external = allExternal
        if let window = request.window { external = external.filter { window.contains($0.day) } }
        let scope = scope(external, request: request)
        // What stored runs over other days claimed: their records are duplicates here, their entries are
        // not candidates. A record claimed by several (of a store older than this rule) names the earliest.
        var earlierRecords: [String: ReconcileClaim] = [:]
        var earlierEntries: Set<String> = []
        for claim in request.earlier {
            switch claim.side {
            case .external:
                if let other = earlierRecords[claim.id],
                    (other.days.lowerBound, other.days.upperBound, other.run)
                        <= (claim.days.lowerBound, claim.days.upperBound, claim.run)
                {
                    continue
                }
                earlierRecords[claim.id] = claim
            case .ledger: earlierEntries.insert(claim.id)
            }
        }
        // Candidates: entries in the window widened by the rules' date slack (a late record still finds its
        // entry); without a window, also every entry that carries a reference.
        let isCandidate = { (item: LedgerItem) -> Bool in
            if !earlierEntries.isEmpty && earlierEntries.contains(item.key) { return false }
            guard let scope else { return request.window == nil && item.ref != nil }
            if item.day >= scope.lowerBound &- slack && item.day <= scope.upperBound &+ slack {
                return request.window == nil || item.ref != nil || scope.contains(item.day)
            }
            return request.window == nil && item.ref != nil
        }
        // Usually every entry is one: then no copy of them all.
        let everyItem = allItems.allSatisfy(isCandidate)
        let candidates = everyItem ? allItems : allItems.filter(isCandidate)
        // With --since-last, the entries up to the sources' oldest watermark were reported before: they
        // may still be claimed (a late record), but are not reported unmatched again.
        var floor: Int32?
        if let marks = request.watermarks, !request.sources.isEmpty {
            let perSource = request.sources.map { marks[$0] }
            if perSource.allSatisfy({ $0 != nil }) { floor = perSource.compactMap { $0 }.min() }
        }
        let reportable: (LedgerItem) -> Bool = { item in
            if let window = request.window { return window.contains(item.day) }
            if let floor { return item.day > floor }
            return true
        }
        var records = Matcher(rules: request.rules).run(
            external: external,
            ledger: candidates,
            earlier: earlierRecords,
            ledgerReferences: everyItem ? ledgerReferences : nil
        )
        if request.window != nil || floor != nil {
            // The unmatched entries' days, looked up by key (only those entries').
            var dayByKey: [String: LedgerItem] = [:]
            let unmatched = Set(records.lazy.filter { $0.resultClass == .unmatchedLedger }.map { $0.ledger[0] })
            for item in candidates where unmatched.contains(item.key) { dayByKey[item.key] = item }
            records.removeAll { $0.resultClass == .unmatchedLedger && !reportable(dayByKey[$0.ledger[0]]!) }
        }
        // The matcher's records are in report order already: each proof goes after every record not
        // after it, as a stable sort of the records and then the proofs puts it.
        let proofRecords = ResultRecord.sortedInReportOrder(
            proofs.map { ResultRecord(resultClass: .balanceProof, source: $0.source, proof: $0) }
        )
        var from = 0
        for proof in proofRecords {
            var low = from
            var high = records.count
            while low < high {
                let middle = (low + high) / 2
                if ResultRecord.ordered(proof, records[middle]) { high = middle } else { low = middle + 1 }
            }
            records.insert(proof, at: low)
            from = low + 1
        }
        if !request.resolutions.isEmpty {
            for index in records.indices where records[index].isBreak {
                records[index].resolution = request.resolutions[records[index].recordID]
            }
        }
        var report = ReconcileReport(
            run: runID(records),
            records: records,
            externalCount: external.count,
            ledgerCount: candidates.count
        )
        report.days = scope
        return report
    }

    /// The run's id: a hash of everything it reports, so the same inputs and ledger give the same id
    /// (and the same bytes) on every rerun. It hashes each record's fields (``RunIDHasher``), not its
    /// report line: the line starts with the id, so hashing lines would make every line twice.
    static func runID(_ records: [ResultRecord]) -> String {
        // Each half hashed on a core of its own; the id is the hash of the two halves' digests.
        let middle = records.count / 2
        let firstHalf = BackgroundWork { () -> [UInt8] in
            var hasher = RunIDHasher()
            for record in records[..<middle] { hasher.add(record) }
            return hasher.finalize()
        }
        var secondHalf = RunIDHasher()
        for record in records[middle...] { secondHalf.add(record) }
        let second = secondHalf.finalize()
        let first = try! firstHalf.join()  // the work does not throw
        return "r-" + hexString(SHA256.hash(data: first + second).prefix(8))
    }
}

/// SHA-256 of a canonical binary form of records: each field in report order, texts with a length
/// prefix, amounts as their 16 bytes and their currency's scale, absent fields as a tag byte, so no two
/// different reports share an input. The run id is `r-` and 16 hex digits of a hash of such digests.
struct RunIDHasher {
    private var sha = SHA256()
    private var buffer: [UInt8] = []

    init() { buffer.reserveCapacity(Self.bufferSize + 4096) }

    private static let bufferSize = 1 << 16

    mutating func add(_ record: ResultRecord) {
        text(record.resultClass.rawValue)
        text(record.source)
        if let proof = record.proof {
            text(proof.statement)
            asset(proof.currency)
            integer(proof.opening.map { Int128($0) })
            integer(proof.entriesNet)
            integer(proof.closing.map { Int128($0) })
            text(proof.detail)
        } else {
            text(record.rule)
            integer(Int128(record.external.count))
            for id in record.external { text(id) }
            integer(Int128(record.ledger.count))
            for id in record.ledger { text(id) }
            asset(record.currency)
            integer(record.externalAmount)
            integer(record.ledgerAmount)
            text(record.detail)
            text(record.earlierRun)
        }
        text(record.resolution)
        if buffer.count >= Self.bufferSize { flush() }
    }

    /// The SHA-256 digest of what was added.
    mutating func finalize() -> [UInt8] {
        flush()
        return Array(sha.finalize())
    }

    private mutating func flush() {
        buffer.withUnsafeBytes { sha.update(bufferPointer: $0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private mutating func text(_ value: String?) {
        guard var value else { return buffer.append(0) }
        buffer.append(1)
        value.withUTF8 { bytes in
            withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { buffer.append(contentsOf: $0) }
            buffer.append(contentsOf: bytes)
        }
    }

    private mutating func integer(_ value: Int128?) {
        guard let value else { return buffer.append(0) }
        buffer.append(1)
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    private mutating func asset(_ value: Asset?) {
        text(value?.code)
        buffer.append(value?.scale ?? 0)
    }
}
