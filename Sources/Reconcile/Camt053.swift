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
        func fail(_ element: XMLElement, _ reason: String) -> CastleError {
            CastleError(.dataError, "\(name): \(element.path): \(reason)")
        }
        func text(_ element: XMLElement?) -> String? {
            guard let element else { return nil }
            let trimmed = element.text.trimmingSpaces
            return trimmed.isEmpty ? nil : trimmed
        }

        func amount(_ parent: XMLElement) throws(CastleError) -> (Int64, Asset) {
            guard let element = parent.child("Amt") else { throw fail(parent, "no <Amt>") }
            guard let code = element.attribute("Ccy") else { throw fail(element, "no Ccy attribute") }
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
            guard let indicator = parent.child("CdtDbtInd") else { throw fail(parent, "no <CdtDbtInd>") }
            switch text(indicator) {
            case "CRDT": break
            case "DBIT": units = -units
            default: throw fail(indicator, "CdtDbtInd is neither CRDT nor DBIT")
            }
            return (units, asset)
        }

        func date(_ parent: XMLElement?) throws(CastleError) -> Int32? {
            guard let parent else { return nil }
            guard let element = parent.child("Dt") ?? parent.child("DtTm"), let value = text(element) else {
                throw fail(parent, "no <Dt> or <DtTm>")
            }
            guard let day = CivilDate.parseISO(Substring(value)) else {
                throw fail(element, "\"\(value.prefix(30))\" is not a date (YYYY-MM-DD)")
            }
            return day
        }

        /// What a statement's entries add up to, gathered as they pass.
        final class StatementState {
            let id: String
            let isCopy: Bool
            var entriesNet: Int128 = 0
            var entryCurrencies: [Asset] = []

            init(id: String, isCopy: Bool) {
                self.id = id
                self.isCopy = isCopy
            }
        }
        var result = Camt053Statements()
        var states: [ObjectIdentifier: StatementState] = [:]
        func state(of statement: XMLElement) -> StatementState {
            if let known = states[ObjectIdentifier(statement)] { return known }
            let made = StatementState(
                id: text(statement.child("Id")) ?? statement.path,
                isCopy: text(statement.child("CpyDplctInd")) == "DUPL"
            )
            states[ObjectIdentifier(statement)] = made
            return made
        }

        func entryEnded(_ entry: XMLElement, in statement: XMLElement) throws(CastleError) {
            let state = state(of: statement)
            let (units, asset) = try amount(entry)
            state.entriesNet += Int128(units)
            if !state.entryCurrencies.contains(asset) { state.entryCurrencies.append(asset) }
            let reversal: Bool
            switch text(entry.child("RvslInd")) {
            case nil, "false", "0": reversal = false
            case "true", "1": reversal = true
            case let other?: throw fail(entry.child("RvslInd")!, "RvslInd \"\(other.prefix(20))\" is not a boolean")
            }
            let statusElement = entry.child("Sts")
            let status =
                text(statusElement?.child("Cd")) ?? text(statusElement?.child("Prtry")) ?? text(statusElement)
            let booked = try date(entry.child("BookgDt"))
            let valued = try date(entry.child("ValDt"))
            guard let day = booked ?? valued else {
                throw fail(entry, "no <BookgDt> or <ValDt>")
            }
            let serviceRef = text(entry.child("AcctSvcrRef"))
            let entryRef = text(entry.child("NtryRef"))
            var refs: [String] = []
            for details in entry.children("NtryDtls") {
                if let batchRef = text(details.find("Btch", "PmtInfId")) { refs.append(batchRef) }
                for transaction in details.children("TxDtls") {
                    guard let transactionRefs = transaction.child("Refs") else { continue }
                    for field in ["EndToEndId", "AcctSvcrRef", "InstrId", "PmtInfId", "MsgId", "TxId"] {
                        if let value = text(transactionRefs.child(field)), value != "NOTPROVIDED" {
                            refs.append(value)
                        }
                    }
                }
            }
            let id = serviceRef ?? entryRef ?? "\(state.id)#\(entry.path.split(separator: "/").last ?? "")"
            if let serviceRef { refs.append(serviceRef) }
            if let entryRef { refs.append(entryRef) }
            var seen: Set<String> = []
            refs = refs.filter { seen.insert($0).inserted }
            let externalStatus: ExternalStatus =
                switch status {
                case "RJCT", "CANC": .failed
                default: reversal ? .reversed : .ok
                }
            result.records.append(
                ExternalRecord(
                    source: name,
                    location: entry.path,
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

        func statementEnded(_ statement: XMLElement) throws(CastleError) {
            let state = state(of: statement)
            states[ObjectIdentifier(statement)] = nil
            var balances: [String: (Int64, Asset)] = [:]
            for balance in statement.children("Bal") {
                guard let code = text(balance.find("Tp", "CdOrPrtry", "Cd")) else { continue }
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
        let root = try XMLReader.parse(bytes, name: name, detaching: ["Ntry", "Stmt"]) {
            (element, parent) throws(CastleError) in
            switch (element.name, parent.name) {
            case ("Ntry", "Stmt"): try entryEnded(element, in: parent)
            case ("Stmt", "BkToCstmrStmt"):
                statementCount += 1
                try statementEnded(element)
            default: throw fail(element, "<\(element.name)> inside <\(parent.name)>")
            }
        }
        guard root.name == "Document" else { throw fail(root, "the root element is not <Document>") }
        guard root.attributes.contains(where: { $0.value.contains("camt.053.001.") }) else {
            throw fail(root, "not a camt.053 document (no camt.053.001 namespace)")
        }
        guard let body = root.child("BkToCstmrStmt") else { throw fail(root, "no <BkToCstmrStmt>") }
        if statementCount == 0 { throw fail(body, "no <Stmt>") }
        return result
    }
}

extension String {
    /// Without leading and trailing spaces, tabs and line ends (no Foundation).
    var trimmingSpaces: String {
        let bytes = utf8
        guard let first = bytes.firstIndex(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }) else {
            return ""
        }
        let last = bytes.lastIndex(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D })!
        return String(self[first...last])
    }
}
