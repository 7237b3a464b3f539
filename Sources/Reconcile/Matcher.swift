internal import CastleSupport
public import Ledger
public import Storage

/// The class each record ends in (spec/reconcile.md).
public enum ResultClass: String, Sendable, Hashable, CaseIterable, Comparable {
    case amountMismatch = "amount_mismatch"
    case balanceProof = "balance_proof"
    case currencyMismatch = "currency_mismatch"
    case duplicate
    case late
    case matched
    case statusMismatch = "status_mismatch"
    case unmatchedExternal = "unmatched_external"
    case unmatchedLedger = "unmatched_ledger"

    public static func < (a: ResultClass, b: ResultClass) -> Bool { a.rawValue < b.rawValue }
}

/// One line of the report: a match, a break, or a statement's balance proof.
public struct ResultRecord: Sendable, Hashable {
    public var resultClass: ResultClass
    /// The rule that matched, or for a break the one that came closest; empty when none did.
    public var rule: String
    public var source: String
    public var external: [String]
    public var ledger: [String]
    public var currency: Asset?
    public var externalAmount: Int128?
    public var ledgerAmount: Int128?
    public var detail: String
    /// A statement's balance proof (class `balance_proof` only). Kept boxed: a report holds a million
    /// records and a handful of proofs.
    public var proof: BalanceProof? {
        get { proofBox?.proof }
        set { proofBox = newValue.map(ProofBox.init) }
    }
    private var proofBox: ProofBox?
    /// A person's note from `castle reconcile resolve`: the break is cleared for good.
    public var resolution: String?
    /// For a `duplicate` of a record an earlier stored run (over other days) claimed: that run.
    public var earlierRun: String?

    public init(
        resultClass: ResultClass,
        rule: String = "",
        source: String = "",
        external: [String] = [],
        ledger: [String] = [],
        currency: Asset? = nil,
        externalAmount: Int128? = nil,
        ledgerAmount: Int128? = nil,
        detail: String = "",
        proof: BalanceProof? = nil
    ) {
        self.resultClass = resultClass
        self.rule = rule
        self.source = source
        self.external = external
        self.ledger = ledger
        self.currency = currency
        self.externalAmount = externalAmount
        self.ledgerAmount = ledgerAmount
        self.detail = detail
        self.proof = proof
    }

    /// What a person names to resolve it: the first external id, else the first ledger key, else the
    /// statement.
    public var recordID: String { external.first ?? ledger.first ?? proof?.statement ?? "" }

    public var isBreak: Bool {
        if resolution != nil { return false }
        return switch resultClass {
        case .matched: false
        case .balanceProof: proof?.ok != true
        default: true
        }
    }

    /// `records` in ``ordered(_:_:)``'s order, stably (equal records keep their order), as
    /// `sorted(by: ordered)` gives them: indices are sorted, so that the large records move only once.
    static func sortedInReportOrder(_ records: [ResultRecord]) -> [ResultRecord] {
        var sorted = records
        sortInReportOrder(&sorted)
        return sorted
    }

    /// As ``sortedInReportOrder(_:)``, in place: the records are put in their places by following the
    /// permutation's cycles, without a second array of them.
    static func sortInReportOrder(_ records: inout [ResultRecord]) {
        let order = reportOrder(records)
        var placed = [Bool](repeating: false, count: records.count)
        // Swapped in the buffer: moved, not copied (no reference counting of their fields).
        records.withUnsafeMutableBufferPointer { records in
            for start in 0..<records.count where !placed[start] {
                // Position i takes the record at order[i]: walk the cycle through start.
                var position = start
                placed[start] = true
                while order[position] != start {
                    records.swapAt(position, order[position])
                    let next = order[position]
                    placed[next] = true
                    position = next
                }
            }
        }
    }

    /// The indices of `records` in report order.
    private static func reportOrder(_ records: [ResultRecord]) -> [Int] {
        var firsts: [String] = []
        firsts.reserveCapacity(records.count)
        for record in records {
            firsts.append(record.external.first ?? record.ledger.first ?? record.proof?.statement ?? "")
        }
        var order = Array(0..<records.count)
        order.withUnsafeMutableBufferPointer { order in
            records.withUnsafeBufferPointer { records in
                order.sort { i, j in
                    if records[i].resultClass != records[j].resultClass {
                        return records[i].resultClass < records[j].resultClass
                    }
                    if records[i].source != records[j].source { return records[i].source < records[j].source }
                    if firsts[i] != firsts[j] { return firsts[i] < firsts[j] }
                    if records[i].external != records[j].external {
                        return records[i].external.lexicographicallyPrecedes(records[j].external)
                    }
                    if records[i].ledger != records[j].ledger {
                        return records[i].ledger.lexicographicallyPrecedes(records[j].ledger)
                    }
                    return i < j
                }
            }
        }
        return order
    }

    /// The report's order: class, then source, then the first external id or ledger key.
    static func ordered(_ a: ResultRecord, _ b: ResultRecord) -> Bool {
        if a.resultClass != b.resultClass { return a.resultClass < b.resultClass }
        if a.source != b.source { return a.source < b.source }
        let firstA = a.external.first ?? a.ledger.first ?? a.proof?.statement ?? ""
        let firstB = b.external.first ?? b.ledger.first ?? b.proof?.statement ?? ""
        if firstA != firstB { return firstA < firstB }
        if a.external != b.external { return a.external.lexicographicallyPrecedes(b.external) }
        return a.ledger.lexicographicallyPrecedes(b.ledger)
    }
}

/// A balance proof on the heap, compared by value.
private final class ProofBox: Sendable, Hashable {
    let proof: BalanceProof

    init(_ proof: BalanceProof) {
        self.proof = proof
    }

    static func == (a: ProofBox, b: ProofBox) -> Bool { a.proof == b.proof }
    func hash(into hasher: inout Hasher) { hasher.combine(proof) }
}

/// Deterministic matching of external records against ledger items. Each record and each item is
/// claimed at most once; rules run in priority order, and within a rule the records in a stable order
/// (source, id, then input order); among a record's candidates the closest wins (the reversal side
/// agreeing, then the smallest amount difference, then the fewest days apart, then the smallest key).
/// Hash indexes by reference and sorted amounts per currency: no quadratic scan.
public struct Matcher {
    public let rules: RuleSet

    public init(rules: RuleSet) {
        self.rules = rules
    }

    /// Candidates an amount-rule scan looks at around the record's amount, at most: a bound on the work
    /// per record however many ledger items share an amount.
    static let amountScan_max = 256

    /// `earlier`: the source ids stored runs over other days claimed (``ReconcileClaim``), each with the
    /// claim: such a record is a `duplicate` of that run and claims nothing here.
    public func run(
        external: [ExternalRecord],
        ledger: [LedgerItem],
        earlier: [String: ReconcileClaim] = [:],
        ledgerReferences: LedgerReferences? = nil
    ) -> [ResultRecord] {
        var state = State(external: external, ledger: ledger, ledgerReferences: ledgerReferences)
        state.markDuplicates(earlier: earlier)
        for rule in rules.rules {
            switch rule.kind {
            case .reference: state.matchByReference(rule)
            case .split: state.matchSplits(rule)
            case .batch: state.matchBatches(rule)
            case .amount: state.matchByAmount(rule)
            }
        }
        let closestRule = rules.rules.first { $0.kind == .reference }?.name ?? ""
        state.classifyLeftovers(referenceRule: closestRule)
        var results = state.results
        state = State(external: [], ledger: [], ledgerReferences: nil)
        ResultRecord.sortInReportOrder(&results)
        return results
    }

    struct State {
        let external: [ExternalRecord]
        let ledger: [LedgerItem]
        var externalClaimed: [Bool]
        var ledgerClaimed: [Bool]
        /// External indices in the stable order every rule walks.
        let order: [Int]
        /// The references, as numbers.
        let refs: References
        var results: [ResultRecord] = []

        init(external: [ExternalRecord], ledger: [LedgerItem], ledgerReferences: LedgerReferences?) {
            self.external = external
            self.ledger = ledger
            externalClaimed = Array(repeating: false, count: external.count)
            ledgerClaimed = Array(repeating: false, count: ledger.count)
            // At most one result per record and per entry: no regrowing (pages never touched cost nothing).
            results.reserveCapacity(external.count + ledger.count)
            order = external.indices.sorted { a, b in
                let x = external[a]
                let y = external[b]
                if x.source != y.source { return x.source < y.source }
                if x.id != y.id { return x.id < y.id }
                if x.ordinal != y.ordinal { return x.ordinal < y.ordinal }
                return a < b
            }
            let ledgerSide = ledgerReferences ?? LedgerReferences(ledger: ledger)
            precondition(ledgerSide.itemCount == ledger.count, "the ledger's references index another ledger")
            refs = References(external: external, ledger: ledgerSide)
        }

        mutating func markDuplicates(earlier: [String: ReconcileClaim]) {
            // `order` puts the records of one source and id next to each other: the first of them is the first
            // time.
            for (position, index) in order.enumerated() {
                let record = external[index]
                let before = position > 0 ? order[position - 1] : nil
                let firstTime =
                    before.map { external[$0].source != record.source || external[$0].id != record.id } ?? true
                let claim = earlier.isEmpty ? nil : earlier[record.id]
                guard !firstTime || record.markedDuplicate || claim != nil else { continue }
                externalClaimed[index] = true
                var duplicate = ResultRecord(
                    resultClass: .duplicate,
                    source: record.source,
                    external: [record.id],
                    currency: record.currency,
                    externalAmount: Int128(record.amount)
                )
                if record.markedDuplicate {
                    duplicate.detail =
                        "\(record.location): the statement is marked a duplicate copy (CpyDplctInd DUPL)"
                } else if !firstTime {
                    duplicate.detail = "\(record.location): id \(record.id) already seen in \(record.source)"
                } else if let claim {
                    duplicate.detail =
                        "\(record.location): id \(record.id) already claimed by run \(claim.run) (days "
                        + "\(CivilDate.format(claim.days.lowerBound)) to \(CivilDate.format(claim.days.upperBound)))"
                    duplicate.earlierRun = claim.run
                }
                results.append(duplicate)
            }
        }

        /// Unclaimed ledger items carrying one of the record's references, each once, in key order.
        func referenceCandidates(_ record: Int) -> [Int] {
            var found: [Int] = []
            for ref in refs.ofRecord(record) {
                for index in refs.items(ref) where !ledgerClaimed[index] && !found.contains(index) {
                    found.append(index)
                }
            }
            return found
        }

        /// Smaller is closer: the reversal side agreeing, the amount difference, the days apart, the key.
        func closeness(_ record: ExternalRecord, _ item: LedgerItem) -> (Int, UInt64, UInt32, String) {
            let reversalDisagrees = (record.status == .reversed) != (item.reverses != nil) ? 1 : 0
            let currencyDiffers = record.currency == item.currency ? 0 : 1
            return (
                reversalDisagrees + 2 * currencyDiffers, (record.amount &- item.amount).magnitude,
                (record.day &- item.day).magnitude, item.key
            )
        }

        func closest(_ record: ExternalRecord, among candidates: [Int]) -> Int? {
            candidates.min { closeness(record, ledger[$0]) < closeness(record, ledger[$1]) }
        }

        /// Matched, or the break a match still is: the source failed or reversed what the ledger posted,
        /// or the dates are further apart than the window.
        func matchedClass(_ record: ExternalRecord, _ items: [LedgerItem], window: Int32) -> (ResultClass, String) {
            let ledgerReverses = items.allSatisfy { $0.reverses != nil }
            if record.status == .failed {
                return (.statusMismatch, "\(record.location): the source says failed, the ledger posted it")
            }
            if record.status == .reversed && !ledgerReverses {
                return (.statusMismatch, "\(record.location): the source says reversed, the ledger posted it")
            }
            let days = items.map { (record.day &- $0.day).magnitude }.max() ?? 0
            if days > window.magnitude {
                return (.late, "\(record.location): \(days) days from the ledger, the window is \(window)")
            }
            return (.matched, "")
        }

        mutating func claim(
            _ records: [Int],
            _ items: [Int],
            rule: String,
            resultClass: ResultClass,
            detail: String
        ) {
            for index in records { externalClaimed[index] = true }
            for index in items { ledgerClaimed[index] = true }
            let first = external[records[0]]
            results.append(
                ResultRecord(
                    resultClass: resultClass,
                    rule: rule,
                    source: first.source,
                    external: records.map { external[$0].id },
                    ledger: items.map { ledger[$0].key },
                    currency: first.currency,
                    externalAmount: records.reduce(0) { $0 + Int128(external[$1].amount) },
                    ledgerAmount: items.isEmpty ? nil : items.reduce(0) { $0 + Int128(ledger[$1].amount) },
                    detail: detail
                )
            )
        }

        /// Whether `a` is closer to `record` than `b` (``closeness(_:_:)``'s order), without building
        /// either tuple.
        func isCloser(_ record: ExternalRecord, _ a: LedgerItem, than b: LedgerItem) -> Bool {
            let reversed = record.status == .reversed
            let rankA =
                ((reversed != (a.reverses != nil)) ? 1 : 0) + (record.currency == a.currency ? 0 : 2)
            let rankB =
                ((reversed != (b.reverses != nil)) ? 1 : 0) + (record.currency == b.currency ? 0 : 2)
            if rankA != rankB { return rankA < rankB }
            let amountA = (record.amount &- a.amount).magnitude
            let amountB = (record.amount &- b.amount).magnitude
            if amountA != amountB { return amountA < amountB }
            let daysA = (record.day &- a.day).magnitude
            let daysB = (record.day &- b.day).magnitude
            if daysA != daysB { return daysA < daysB }
            return a.key < b.key
        }

        mutating func matchByReference(_ rule: MatchRule) {
            let tolerance = Tolerance(rule)
            for index in order where !externalClaimed[index] {
                let record = external[index]
                let limit = tolerance.of(record)
                // The closest unclaimed entry of the record's references (the first of equals, in the order
                // of ``referenceCandidates(_:)``), without collecting them.
                var best: Int?
                for ref in refs.ofRecord(index) {
                    for candidate in refs.items(ref) where !ledgerClaimed[candidate] {
                        let item = ledger[candidate]
                        guard item.currency == record.currency, (record.amount &- item.amount).magnitude <= limit
                        else { continue }
                        if let current = best, !isCloser(record, item, than: ledger[current]) { continue }
                        best = candidate
                    }
                }
                guard let best else { continue }
                let (resultClass, detail) = matchedClass(record, [ledger[best]], window: rule.windowDays)
                claim([index], [best], rule: rule.name, resultClass: resultClass, detail: detail)
            }
        }

        mutating func matchSplits(_ rule: MatchRule) {
            let tolerance = Tolerance(rule)
            for index in order where !externalClaimed[index] {
                let record = external[index]
                let candidates = referenceCandidates(index).filter { ledger[$0].currency == record.currency }
                guard candidates.count >= 2 else { continue }
                let sum = candidates.reduce(Int128(0)) { $0 + Int128(ledger[$1].amount) }
                guard (Int128(record.amount) - sum).magnitude <= UInt128(tolerance.of(record)) else { continue }
                let (resultClass, detail) = matchedClass(record, candidates.map { ledger[$0] }, window: rule.windowDays)
                claim([index], candidates, rule: rule.name, resultClass: resultClass, detail: detail)
            }
        }

        mutating func matchBatches(_ rule: MatchRule) {
            let tolerance = Tolerance(rule)
            var batches: [String: [Int]] = [:]
            for index in order where !externalClaimed[index] {
                if let batch = external[index].batch { batches[batch, default: []].append(index) }
            }
            for batch in batches.keys.sorted() {
                let members = batches[batch]!
                let first = external[members[0]]
                guard members.allSatisfy({ external[$0].currency == first.currency }), let ref = refs.numbers[batch]
                else { continue }
                let items = refs.items(ref).filter { !ledgerClaimed[$0] && ledger[$0].currency == first.currency }
                let sum = members.reduce(Int128(0)) { $0 + Int128(external[$1].amount) }
                var total = first
                total.amount = Int64(clamping: sum)
                let limit = UInt128(tolerance.of(total))
                let fitting = items.filter { (Int128(ledger[$0].amount) - sum).magnitude <= limit }
                guard let best = closest(total, among: fitting) else { continue }
                let late = members.contains {
                    (external[$0].day &- ledger[best].day).magnitude > rule.windowDays.magnitude
                }
                claim(
                    members,
                    [best],
                    rule: rule.name,
                    resultClass: late ? .late : .matched,
                    detail: late ? "batch \(batch): a record is outside the \(rule.windowDays)-day window" : ""
                )
            }
        }

        mutating func matchByAmount(_ rule: MatchRule) {
            let tolerance = Tolerance(rule)
            // Only records no ledger entry references and entries no record references: a reference, where
            // there is one, says more than an equal amount.
            var referenced = [Bool](repeating: false, count: refs.numbers.count)
            for index in order where !externalClaimed[index] {
                for ref in refs.ofRecord(index) { referenced[Int(ref)] = true }
            }
            var byCurrency: [Asset: [Int]] = [:]
            for index in ledger.indices where !ledgerClaimed[index] {
                if let ref = refs.ofItem[index], referenced[Int(ref)] { continue }
                byCurrency[ledger[index].currency, default: []].append(index)
            }
            for key in byCurrency.keys {
                byCurrency[key]!.sort { (ledger[$0].amount, ledger[$0].key) < (ledger[$1].amount, ledger[$1].key) }
            }
            for index in order where !externalClaimed[index] {
                let record = external[index]
                guard refs.ofRecord(index).isEmpty, let sorted = byCurrency[record.currency]
                else { continue }
                let limit = tolerance.of(record)
                let low = record.amount.subtractingReportingOverflow(limit).partialValue
                var position = lowerBound(sorted, low)
                var candidates: [Int] = []
                while position < sorted.count, candidates.count < Matcher.amountScan_max {
                    let item = ledger[sorted[position]]
                    if item.amount > record.amount.addingReportingOverflow(limit).partialValue { break }
                    if !ledgerClaimed[sorted[position]]
                        && (record.day &- item.day).magnitude <= rule.windowDays.magnitude
                    {
                        candidates.append(sorted[position])
                    }
                    position += 1
                }
                guard let best = closest(record, among: candidates) else { continue }
                let (resultClass, detail) = matchedClass(record, [ledger[best]], window: rule.windowDays)
                claim([index], [best], rule: rule.name, resultClass: resultClass, detail: detail)
            }
        }

        func lowerBound(_ sorted: [Int], _ amount: Int64) -> Int {
            var low = 0
            var high = sorted.count
            while low < high {
                let middle = (low + high) / 2
                if ledger[sorted[middle]].amount < amount { low = middle + 1 } else { high = middle }
            }
            return low
        }

        /// What no rule claimed: a record with a referenced entry left is an amount or currency mismatch
        /// against the closest such entry; a failed record nobody posted is as it should be; the rest is
        /// unmatched on its side.
        mutating func classifyLeftovers(referenceRule: String) {
            for index in order where !externalClaimed[index] {
                let record = external[index]
                if let best = closest(record, among: referenceCandidates(index)) {
                    let item = ledger[best]
                    let resultClass: ResultClass =
                        item.currency == record.currency ? .amountMismatch : .currencyMismatch
                    let detail =
                        resultClass == .currencyMismatch
                        ? "\(record.location): \(record.currency.code) at the source, \(item.currency.code) in the ledger"
                        : "\(record.location): by reference, the amounts differ beyond the tolerance"
                    claim([index], [best], rule: referenceRule, resultClass: resultClass, detail: detail)
                } else if record.status == .failed {
                    claim(
                        [index],
                        [],
                        rule: "status",
                        resultClass: .matched,
                        detail: "\(record.location): failed at the source and not in the ledger"
                    )
                } else {
                    claim(
                        [index],
                        [],
                        rule: "",
                        resultClass: .unmatchedExternal,
                        detail: "\(record.location): no ledger entry carries \(record.refs.joined(separator: " or "))"
                    )
                }
            }
            for index in ledger.indices where !ledgerClaimed[index] {
                let item = ledger[index]
                results.append(
                    ResultRecord(
                        resultClass: .unmatchedLedger,
                        ledger: [item.key],
                        currency: item.currency,
                        ledgerAmount: Int128(item.amount),
                        detail: item.ref.map { "no source record carries \($0)" } ?? "no source record matches it"
                    )
                )
            }
        }
    }

    /// A rule's tolerance for a record: the larger of its absolute one (the decimal read once per currency
    /// scale) and its relative one.
    struct Tolerance {
        let ppm: Int64
        let text: String
        /// By scale, 0 to 18.
        let absolute: [Int64]

        init(_ rule: MatchRule) {
            ppm = rule.tolerancePPM
            text = rule.tolerance
            absolute = (0...UInt8(18)).map { Asset.minorUnits(ofTolerance: rule.tolerance, scale: $0) }
        }

        func of(_ record: ExternalRecord) -> Int64 {
            let scale = record.currency.scale
            let absolute =
                Int(scale) < absolute.count
                ? absolute[Int(scale)] : Asset.minorUnits(ofTolerance: text, scale: scale)
            let relative = Int64(clamping: Int128(record.amount.magnitude) * Int128(ppm) / 1_000_000)
            return max(absolute, relative)
        }
    }

    /// The ledger's references as numbers, each distinct `ref` once, with the items carrying it in key
    /// order; and each record's references that an item carries, as those numbers (a reference no item
    /// carries can match nothing). Each reference is hashed once, here.
    struct References {
        let ledgerSide: LedgerReferences
        /// Per ledger `ref`, its number.
        var numbers: [String: Int32] { ledgerSide.numbers }
        /// Per ledger item, its ref's number.
        var ofItem: [Int32?] { ledgerSide.ofItem }
        /// The refs of record i are `recordRefs[recordStarts[i]..<recordStarts[i + 1]]`, in its order.
        private let recordStarts: [Int]
        private let recordRefs: [Int32]

        init(external: [ExternalRecord], ledger: LedgerReferences) {
            ledgerSide = ledger
            /// The numbers of `records`' refs, and where each record's end (from 0).
            func lookUp(_ records: ArraySlice<ExternalRecord>) -> (ends: [Int], refs: [Int32]) {
                var ends: [Int] = []
                ends.reserveCapacity(records.count)
                var refs: [Int32] = []
                refs.reserveCapacity(records.count)
                for record in records {
                    for ref in record.refs {
                        if let number = ledger.numbers[ref] { refs.append(number) }
                    }
                    ends.append(refs.count)
                }
                return (ends, refs)
            }
            // A million look-ups in a table of a million refs: half of them on a thread of its own (the
            // table is only read).
            let middle = external.count / 2
            let secondHalf = BackgroundWork { lookUp(external[middle...]) }
            let first = lookUp(external[..<middle])
            let second = try! secondHalf.join()  // the work does not throw
            var recordStarts = [0]
            recordStarts.reserveCapacity(external.count + 1)
            recordStarts += first.ends
            recordStarts += second.ends.lazy.map { $0 + first.refs.count }
            self.recordStarts = recordStarts
            self.recordRefs = first.refs + second.refs
        }

        /// The items carrying ref `number`, in key order.
        func items(_ number: Int32) -> ArraySlice<Int> { ledgerSide.items(number) }

        /// Record `index`'s references that an item carries.
        func ofRecord(_ index: Int) -> ArraySlice<Int32> {
            recordRefs[recordStarts[index]..<recordStarts[index + 1]]
        }
    }
}

/// The ledger's half of the matcher's reference index: each distinct `ref` numbered once, and the items of
/// each. It depends on the ledger alone, so ``ReconcileJob/read(_:ledger:)`` builds it on the thread that
/// read the ledger, beside the sources still being read.
public struct LedgerReferences: Sendable {
    /// The ledger it numbers, by count: an index is only used with the items it was built from.
    let itemCount: Int
    /// Per ledger `ref`, its number.
    let numbers: [String: Int32]
    /// Per ledger item, its ref's number.
    let ofItem: [Int32?]
    /// The items of ref n are `itemsByRef[itemStarts[n]..<itemStarts[n + 1]]`.
    private let itemStarts: [Int]
    private let itemsByRef: [Int]

    public init(ledger: [LedgerItem]) {
        itemCount = ledger.count
        var numbers: [String: Int32] = [:]
        numbers.reserveCapacity(ledger.count)
        var ofItem = [Int32?](repeating: nil, count: ledger.count)
        var counts: [Int] = []
        /// The value at an entry of `numbers`, inserting the default when it is new (one hash).
        func value(_ entry: inout Int32) -> Int32 { entry }
        for (index, item) in ledger.enumerated() {
            guard let ref = item.ref else { continue }
            let fresh = Int32(counts.count)
            let number = value(&numbers[ref, default: fresh])
            if number == fresh { counts.append(0) }
            counts[Int(number)] += 1
            ofItem[index] = number
        }
        // Each ref's items: counted, placed in input order, then each ref's few put in key order.
        var itemStarts = [0]
        itemStarts.reserveCapacity(counts.count + 1)
        for count in counts { itemStarts.append(itemStarts[itemStarts.count - 1] + count) }
        var itemsByRef = [Int](repeating: 0, count: itemStarts[itemStarts.count - 1])
        var next = itemStarts
        for index in ledger.indices {
            guard let number = ofItem[index] else { continue }
            itemsByRef[next[Int(number)]] = index
            next[Int(number)] += 1
        }
        for number in counts.indices where counts[number] > 1 {
            itemsByRef[itemStarts[number]..<itemStarts[number + 1]].sort { ledger[$0].key < ledger[$1].key }
        }
        self.numbers = numbers
        self.ofItem = ofItem
        self.itemStarts = itemStarts
        self.itemsByRef = itemsByRef
    }

    /// The items carrying ref `number`, in key order.
    func items(_ number: Int32) -> ArraySlice<Int> {
        itemsByRef[itemStarts[Int(number)]..<itemStarts[Int(number) + 1]]
    }
}
