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
        // Set to each detached element's tree as it is handed over, and to the whole tree after.
        var tree = XMLTree(document: [])
        func fail(_ element: Int, _ reason: String) -> CastleError {
            CastleError(.dataError, "\(name): \(tree.path(element)): \(reason)")
        }
        func text(_ element: Int?) -> String? { element.flatMap { tree.trimmedText($0) } }

        func amount(_ parent: Int) throws(CastleError) -> (Int64, Asset) {
            guard let element = tree.child(parent, "Amt") else { throw fail(parent, "no <Amt>") }
            guard let code = tree.attribute(element, "Ccy") else { throw fail(element, "no Ccy attribute") }
            let asset: Asset
            switch currencyAsset(Substring(code), assets: assets) {
            case .success(let found): asset = found
            case .failure(let error): throw fail(element, error.reason)
            }
            let value = text(element) ?? ""
            var units: Int64
            switch asset.parseAmount(value) {
            case .success(let parsed): units = parsed
            case .failure(let error): throw fail(element, error.reason)
            }
            if units < 0 { throw fail(element, "a negative amount (the sign is CdtDbtInd's)") }
            guard let indicator = tree.child(parent, "CdtDbtInd") else { throw fail(parent, "no <CdtDbtInd>") }
            switch text(indicator) {
            case "CRDT": break
            case "DBIT": units = -units
            default: throw fail(indicator, "CdtDbtInd is neither CRDT nor DBIT")
            }
            return (units, asset)
        }

        func date(_ parent: Int?) throws(CastleError) -> Int32? {
            guard let parent else { return nil }
            guard let element = tree.child(parent, "Dt") ?? tree.child(parent, "DtTm"), let value = text(element)
            else {
                throw fail(parent, "no <Dt> or <DtTm>")
            }
            guard let day = CivilDate.parseISO(Substring(value)) else {
                throw fail(element, "\"\(value.prefix(30))\" is not a date (YYYY-MM-DD)")
            }
            return day
        }

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
        func state(of statement: Int) -> StatementState {
            if let known = states[statement] { return known }
            let made = StatementState(
                id: text(tree.child(statement, "Id")) ?? tree.path(statement),
                isCopy: text(tree.child(statement, "CpyDplctInd")) == "DUPL"
            )
            states[statement] = made
            return made
        }

        func entryEnded(_ entry: Int, in statement: Int) throws(CastleError) {
            var state = state(of: statement)
            let (units, asset) = try amount(entry)
            state.entriesNet += Int128(units)
            if !state.entryCurrencies.contains(asset) { state.entryCurrencies.append(asset) }
            states[statement] = state
            let reversal: Bool
            switch text(tree.child(entry, "RvslInd")) {
            case nil, "false", "0": reversal = false
            case "true", "1": reversal = true
            case let other?:
                throw fail(tree.child(entry, "RvslInd")!, "RvslInd \"\(other.prefix(20))\" is not a boolean")
            }
            let statusElement = tree.child(entry, "Sts")
            let status =
                text(statusElement.flatMap { tree.child($0, "Cd") })
                ?? text(statusElement.flatMap { tree.child($0, "Prtry") }) ?? text(statusElement)
            let booked = try date(tree.child(entry, "BookgDt"))
            let valued = try date(tree.child(entry, "ValDt"))
            guard let day = booked ?? valued else {
                throw fail(entry, "no <BookgDt> or <ValDt>")
            }
            let serviceRef = text(tree.child(entry, "AcctSvcrRef"))
            let entryRef = text(tree.child(entry, "NtryRef"))
            var refs: [String] = []
            for details in tree.children(entry, "NtryDtls") {
                if let batchRef = text(tree.find(details, "Btch", "PmtInfId")) { refs.append(batchRef) }
                for transaction in tree.children(details, "TxDtls") {
                    guard let transactionRefs = tree.child(transaction, "Refs") else { continue }
                    for field: StaticString in ["EndToEndId", "AcctSvcrRef", "InstrId", "PmtInfId", "MsgId", "TxId"] {
                        if let value = text(tree.child(transactionRefs, field)), value != "NOTPROVIDED" {
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

        func statementEnded(_ statement: Int) throws(CastleError) {
            let state = state(of: statement)
            states[statement] = nil
            var balances: [String: (Int64, Asset)] = [:]
            for balance in tree.children(statement, "Bal") {
                guard let code = text(tree.find(balance, "Tp", "CdOrPrtry", "Cd")) else { continue }
                if balances[code] == nil { balances[code] = try amount(balance) }
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
        tree = try XMLReader.parse(bytes, name: name, detaching: ["Ntry", "Stmt"]) {
            (handed, element, parent) throws(CastleError) in
            tree = handed
            defer { tree = XMLTree(document: []) }
            if handed.isNamed(element, "Ntry") && handed.isNamed(parent, "Stmt") {
                try entryEnded(element, in: parent)
            } else if handed.isNamed(element, "Stmt") && handed.isNamed(parent, "BkToCstmrStmt") {
                statementCount += 1
                try statementEnded(element)
            } else {
                throw fail(element, "<\(handed.name(element))> inside <\(handed.name(parent))>")
            }
        }
        let root = tree.root
        guard tree.isNamed(root, "Document") else { throw fail(root, "the root element is not <Document>") }
        guard tree.attributeValues(root).contains(where: { $0.contains("camt.053.001.") }) else {
            throw fail(root, "not a camt.053 document (no camt.053.001 namespace)")
        }
        guard let body = tree.child(root, "BkToCstmrStmt") else { throw fail(root, "no <BkToCstmrStmt>") }
        if statementCount == 0 { throw fail(body, "no <Stmt>") }
        return result
    }
}
