public import CastleSupport
public import Ledger
public import Streams

/// One bank statement's balance proof: opening (OPBD, else PRCD) plus the signed sum of its entries
/// equals the closing balance (CLBD).
public struct BalanceProof: Sendable, Hashable {
    public var source: String
    public var statement: String
    public var currency: Asset?
    public var opening: Int64?
    public var entriesNet: Int128
    public var closing: Int64?
    public var detail: String

    public var computedClosing: Int128? { opening.map { Int128($0) + entriesNet } }
    public var ok: Bool {
        guard detail.isEmpty, let computed = computedClosing, let closing else { return false }
        return computed == Int128(closing)
    }
}

/// A parsed camt.053 file: its entries as external records and a balance proof per statement.
public struct Camt053Statements: Sendable {
    public var records: [ExternalRecord] = []
    public var proofs: [BalanceProof] = []
}

/// ISO 20022 camt.053 (BankToCustomerStatement), versions .001.02 to .001.08. Each `Ntry` becomes one
/// record: `Amt@Ccy` signed by `CdtDbtInd` (DBIT negative), `RvslInd` true marks a reversal, `Sts` as a
/// bare code (≤ .04) or `Sts/Cd` (≥ .05), the date from `BookgDt` (else `ValDt`), the id from
/// `AcctSvcrRef` (else `NtryRef`, else the element path), and as references every `EndToEndId`,
/// `AcctSvcrRef`, `InstrId`, `PmtInfId` and `MsgId` of its `NtryDtls/TxDtls` (a batch has several). A
/// statement with `CpyDplctInd` DUPL is a copy: its records are marked duplicate.
public enum Camt053 {
    public static let fileBytes_max = 512 << 20

    /// True when `head` (the first bytes of a file) looks like a camt.053 document.
    public static func sniff(_ head: [UInt8]) -> Bool {
        let text = String(decoding: head, as: UTF8.self)
        return text.contains("<Document") && text.contains("camt.053")
    }

    public static func read(_ source: InputSource, assets: AssetTable) throws(CastleError) -> Camt053Statements {
        var bytes: [UInt8] = []
        let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: 1 << 16)
        defer { chunk.deallocate() }
        while true {
            let n = try source.readBytes(into: chunk, count: 1 << 16)
            if n == 0 { break }
            bytes.append(contentsOf: UnsafeBufferPointer(start: chunk, count: n))
            if bytes.count > fileBytes_max {
                throw CastleError(.dataError, "\(source.name): larger than \(fileBytes_max >> 20) MiB")
            }
        }
        return try parse(bytes, name: source.name, assets: assets)
    }

    public static func parse(
        _ bytes: [UInt8],
        name: String,
        assets: AssetTable
    ) throws(CastleError)
        -> Camt053Statements
    {
        /// What a statement's entries add up to, gathered as they pass.
        struct StatementState {
            let id: String
            let isCopy: Bool
            var entriesNet: Int128 = 0
            var entryCurrencies: [Asset] = []
        }
        var result = Camt053Statements()
        /// By the statement's index in the tree (while it is open).
        var states: [Int: StatementState] = [:]
        func state(of statement: Int, in tree: XMLTree) -> StatementState {
            if let known = states[statement] { return known }
            let made = StatementState(
                id: tree.trimmed(tree.child(statement, "Id")) ?? tree.path(statement),
                isCopy: tree.trimmed(tree.child(statement, "CpyDplctInd")) == "DUPL"
            )
            states[statement] = made
            return made
        }

        func entryEnded(_ entry: Int, in statement: Int, of tree: XMLTree) throws(CastleError) {
            var state = state(of: statement, in: tree)
            let (units, asset) = try tree.amount(name, assets, entry)
            state.entriesNet += Int128(units)
            if !state.entryCurrencies.contains(asset) { state.entryCurrencies.append(asset) }
            states[statement] = state
            let reversal: Bool
            switch tree.trimmed(tree.child(entry, "RvslInd")) {
            case nil, "false", "0": reversal = false
            case "true", "1": reversal = true
            case let other?:
                throw tree.fail(name, tree.child(entry, "RvslInd")!, "RvslInd \"\(other.prefix(20))\" is not a boolean")
            }
            let statusElement = tree.child(entry, "Sts")
            let status =
                tree.trimmed(statusElement.flatMap { tree.child($0, "Cd") })
                ?? tree.trimmed(statusElement.flatMap { tree.child($0, "Prtry") }) ?? tree.trimmed(statusElement)
            let booked = try tree.date(name, tree.child(entry, "BookgDt"))
            let valued = try tree.date(name, tree.child(entry, "ValDt"))
            guard let day = booked ?? valued else {
                throw tree.fail(name, entry, "no <BookgDt> or <ValDt>")
            }
            let serviceRef = tree.trimmed(tree.child(entry, "AcctSvcrRef"))
            let entryRef = tree.trimmed(tree.child(entry, "NtryRef"))
            var refs: [String] = []
            for details in tree.children(entry, "NtryDtls") {
                if let batchRef = tree.trimmed(tree.find(details, "Btch", "PmtInfId")) { refs.append(batchRef) }
                for transaction in tree.children(details, "TxDtls") {
                    guard let transactionRefs = tree.child(transaction, "Refs") else { continue }
                    for field: StaticString in ["EndToEndId", "AcctSvcrRef", "InstrId", "PmtInfId", "MsgId", "TxId"] {
                        if let value = tree.trimmed(tree.child(transactionRefs, field)), value != "NOTPROVIDED" {
                            refs.append(value)
                        }
                    }
                }
            }
            let location = tree.path(entry)
            let id = serviceRef ?? entryRef ?? "\(state.id)#\(location.split(separator: "/").last ?? "")"
            if let serviceRef { refs.append(serviceRef) }
            if let entryRef { refs.append(entryRef) }
            if refs.count > 1 {
                var seen: Set<String> = []
                refs = refs.filter { seen.insert($0).inserted }
            }
            let externalStatus: ExternalStatus =
                switch status {
                case "RJCT", "CANC": .failed
                default: reversal ? .reversed : .ok
                }
            result.records.append(
                ExternalRecord(
                    source: name,
                    location: location,
                    ordinal: result.records.count,
                    id: id,
                    refs: refs,
                    amount: units,
                    currency: asset,
                    day: day,
                    status: externalStatus,
                    markedDuplicate: state.isCopy
                )
            )
        }

        func statementEnded(_ statement: Int, of tree: XMLTree) throws(CastleError) {
            let state = state(of: statement, in: tree)
            states[statement] = nil
            var balances: [String: (Int64, Asset)] = [:]
            for balance in tree.children(statement, "Bal") {
                guard let code = tree.trimmed(tree.find(balance, "Tp", "CdOrPrtry", "Cd")) else { continue }
                if balances[code] == nil { balances[code] = try tree.amount(name, assets, balance) }
            }
            var notes: [String] = []
            let opening = balances["OPBD"] ?? balances["PRCD"]
            let closing = balances["CLBD"]
            let currency = opening?.1 ?? closing?.1
            if opening == nil { notes.append("no opening balance (OPBD or PRCD)") }
            if closing == nil { notes.append("no closing balance (CLBD)") }
            if let opening, let closing, opening.1 != closing.1 {
                notes.append("the opening balance is in \(opening.1.code), the closing in \(closing.1.code)")
            }
            if let currency, let other = state.entryCurrencies.first(where: { $0 != currency }) {
                notes.append("an entry is in \(other.code), the statement in \(currency.code)")
            }
            result.proofs.append(
                BalanceProof(
                    source: name,
                    statement: state.id,
                    currency: currency,
                    opening: opening?.0,
                    entriesNet: state.entriesNet,
                    closing: closing?.0,
                    detail: notes.joined(separator: "; ")
                )
            )
        }

        var statementCount = 0
        let tree = try XMLReader.parse(bytes, name: name, detaching: ["Ntry", "Stmt"]) {
            (tree, element, parent) throws(CastleError) in
            if tree.isNamed(element, "Ntry") && tree.isNamed(parent, "Stmt") {
                try entryEnded(element, in: parent, of: tree)
            } else if tree.isNamed(element, "Stmt") && tree.isNamed(parent, "BkToCstmrStmt") {
                statementCount += 1
                try statementEnded(element, of: tree)
            } else {
                throw tree.fail(name, element, "<\(tree.name(element))> inside <\(tree.name(parent))>")
            }
        }
        let root = tree.root
        guard tree.isNamed(root, "Document") else { throw tree.fail(name, root, "the root element is not <Document>") }
        guard tree.attributeValues(root).contains(where: { $0.contains("camt.053.001.") }) else {
            throw tree.fail(name, root, "not a camt.053 document (no camt.053.001 namespace)")
        }
        guard let body = tree.child(root, "BkToCstmrStmt") else { throw tree.fail(name, root, "no <BkToCstmrStmt>") }
        if statementCount == 0 { throw tree.fail(name, body, "no <Stmt>") }
        return result
    }
}

/// What the statement reader asks of an element.
extension XMLTree {
    fileprivate func fail(_ file: String, _ element: Int, _ reason: String) -> CastleError {
        CastleError(.dataError, "\(file): \(path(element)): \(reason)")
    }

    /// The element's trimmed text; nil without the element or without text.
    fileprivate func trimmed(_ element: Int?) -> String? { element.flatMap { trimmedText($0) } }

    /// The `Amt` (with its `Ccy`) signed by the `CdtDbtInd` of `parent` (an entry or a balance).
    fileprivate func amount(_ file: String, _ assets: AssetTable, _ parent: Int) throws(CastleError) -> (Int64, Asset) {
        guard let element = child(parent, "Amt") else { throw fail(file, parent, "no <Amt>") }
        guard let code = attribute(element, "Ccy") else { throw fail(file, element, "no Ccy attribute") }
        let asset: Asset
        switch currencyAsset(Substring(code), assets: assets) {
        case .success(let found): asset = found
        case .failure(let error): throw fail(file, element, error.reason)
        }
        let value = trimmed(element) ?? ""
        var units: Int64
        switch asset.parseAmount(value) {
        case .success(let parsed): units = parsed
        case .failure(let error): throw fail(file, element, error.reason)
        }
        if units < 0 { throw fail(file, element, "a negative amount (the sign is CdtDbtInd's)") }
        guard let indicator = child(parent, "CdtDbtInd") else { throw fail(file, parent, "no <CdtDbtInd>") }
        switch trimmed(indicator) {
        case "CRDT": break
        case "DBIT": units = -units
        default: throw fail(file, indicator, "CdtDbtInd is neither CRDT nor DBIT")
        }
        return (units, asset)
    }

    /// The day of the `Dt` (else `DtTm`) inside `parent`; nil without `parent`.
    fileprivate func date(_ file: String, _ parent: Int?) throws(CastleError) -> Int32? {
        guard let parent else { return nil }
        guard let element = child(parent, "Dt") ?? child(parent, "DtTm"), let value = trimmed(element) else {
            throw fail(file, parent, "no <Dt> or <DtTm>")
        }
        guard let day = CivilDate.parseISO(Substring(value)) else {
            throw fail(file, element, "\"\(value.prefix(30))\" is not a date (YYYY-MM-DD)")
        }
        return day
    }
}
