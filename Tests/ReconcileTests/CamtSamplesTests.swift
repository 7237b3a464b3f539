import CastleSupport
import Ledger
import Reconcile
import Testing

/// camt.053 written by hand from the ISO 20022 schema (BkToCstmrStmt/Stmt/Ntry).
enum CamtSamples {
    static func entry(
        amount: String,
        indicator: String = "CRDT",
        reversal: Bool = false,
        status: String = "<Sts>BOOK</Sts>",
        date: String = "2026-12-01",
        ref: String,
        endToEnd: [String] = []
    ) -> String {
        var text = "<Ntry><Amt Ccy=\"EUR\">\(amount)</Amt><CdtDbtInd>\(indicator)</CdtDbtInd>"
        if reversal { text += "<RvslInd>true</RvslInd>" }
        text += "\(status)<BookgDt><Dt>\(date)</Dt></BookgDt><ValDt><Dt>\(date)</Dt></ValDt>"
        text += "<AcctSvcrRef>\(ref)</AcctSvcrRef>"
        if !endToEnd.isEmpty {
            text += "<NtryDtls>"
            if endToEnd.count > 1 { text += "<Btch><NbOfTxs>\(endToEnd.count)</NbOfTxs></Btch>" }
            for id in endToEnd { text += "<TxDtls><Refs><EndToEndId>\(id)</EndToEndId></Refs></TxDtls>" }
            text += "</NtryDtls>"
        }
        return text + "</Ntry>\n"
    }

    static func statement(
        version: String = "02",
        copy: Bool = false,
        opening: String = "0.00",
        closing: String? = nil,
        entries: String
    ) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.\(version)">
          <BkToCstmrStmt>
            <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-12-01T23:00:00</CreDtTm></GrpHdr>
            <Stmt>
              <Id>S1</Id>\(copy ? "<CpyDplctInd>DUPL</CpyDplctInd>" : "")
              <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">\(opening)</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-01</Dt></Dt></Bal>
              <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">\(closing ?? opening)</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-01</Dt></Dt></Bal>
              \(entries)
            </Stmt>
          </BkToCstmrStmt>
        </Document>
        """
    }

    static func ledgerEntry(_ key: String, ref: String, amount: String, reverses: String? = nil) -> String {
        // Money into the bank is negative on bank:main in these books (the other side of the customer).
        let negated = amount.hasPrefix("-") ? String(amount.dropFirst()) : "-" + amount
        let kind = reverses == nil ? "deposit" : "reversal"
        let reversesMember = reverses.map { ",\"reverses\":\"\($0)\"" } ?? ""
        return """
            {"key":"\(key)","kind":"\(kind)","ts":1796083200000000000,"ref":"\(ref)"\(reversesMember),"postings":[{"account":"bank:main","asset":"EUR","amount":"\(negated)"},{"account":"external:world","asset":"EUR","amount":"\(amount)"}]}
            """
    }
}

@Suite struct CamtSamplesTests {
    func reconcile(_ xml: String, ledger: [String], version: String = "02") throws -> ReconcileReport {
        let dir = try ScratchDirectory()
        let path = try dir.write("bank.xml", xml)
        let (records, proofs) = try readSource(path)
        let items = try ledgerItems(ledger.joined(separator: "\n"))
        return ReconcileJob.reconcile(
            external: records,
            proofs: proofs,
            ledger: items,
            request: ReconcileRequest(sources: [path])
        )
    }

    func classes(_ report: ReconcileReport) -> [String] {
        report.records.filter { $0.resultClass != .balanceProof }.map {
            "\($0.resultClass.rawValue) \($0.external.joined(separator: "+")) \($0.ledger.joined(separator: "+"))"
        }
    }

    @Test func aReversalIsMatchedToTheEntryThatReversesIt() throws {
        let xml = CamtSamples.statement(
            opening: "0.00",
            closing: "0.00",
            entries: CamtSamples.entry(amount: "40.00", ref: "B1", endToEnd: ["E1"])
                + CamtSamples.entry(amount: "40.00", indicator: "DBIT", reversal: true, ref: "B2", endToEnd: ["E1"])
        )
        let report = try reconcile(
            xml,
            ledger: [
                CamtSamples.ledgerEntry("dep-1", ref: "E1", amount: "40.00"),
                CamtSamples.ledgerEntry("rev-dep-1", ref: "E1", amount: "-40.00", reverses: "dep-1"),
            ]
        )
        #expect(classes(report) == ["matched B1 dep-1", "matched B2 rev-dep-1"])
        #expect(report.breaks == 0)
    }

    @Test func aReversalTheLedgerDidNotPostIsAStatusMismatch() throws {
        let xml = CamtSamples.statement(
            entries: CamtSamples.entry(amount: "40.00", indicator: "DBIT", reversal: true, ref: "B2", endToEnd: ["E1"])
        )
        let report = try reconcile(xml, ledger: [CamtSamples.ledgerEntry("wd-1", ref: "E1", amount: "-40.00")])
        #expect(classes(report) == ["status_mismatch B2 wd-1"])
    }

    @Test func aDuplicateCopyIsReportedNeverCountedTwice() throws {
        let entries = CamtSamples.entry(amount: "10.00", ref: "B1", endToEnd: ["E1"])
        let original = CamtSamples.statement(closing: "10.00", entries: entries)
        let copy = CamtSamples.statement(copy: true, closing: "10.00", entries: entries)
        let dir = try ScratchDirectory()
        let first = try readSource(try dir.write("a.xml", original))
        let second = try readSource(try dir.write("b.xml", copy))
        #expect(second.records.allSatisfy { $0.markedDuplicate })
        let report = ReconcileJob.reconcile(
            external: first.records + second.records,
            proofs: first.proofs + second.proofs,
            ledger: try ledgerItems(CamtSamples.ledgerEntry("dep-1", ref: "E1", amount: "10.00")),
            request: ReconcileRequest(sources: [])
        )
        #expect(classes(report) == ["duplicate B1 ", "matched B1 dep-1"])
        #expect(report.records.first { $0.resultClass == .duplicate }?.source.hasSuffix("b.xml") == true)
    }

    @Test func aBatchEntryWithSeveralTxDtlsClaimsEachLedgerEntry() throws {
        let xml = CamtSamples.statement(
            closing: "60.00",
            entries: CamtSamples.entry(amount: "60.00", ref: "BATCH1", endToEnd: ["E1", "E2", "E3"])
        )
        let report = try reconcile(
            xml,
            ledger: [
                CamtSamples.ledgerEntry("dep-1", ref: "E1", amount: "10.00"),
                CamtSamples.ledgerEntry("dep-2", ref: "E2", amount: "20.00"),
                CamtSamples.ledgerEntry("dep-3", ref: "E3", amount: "30.00"),
            ]
        )
        #expect(classes(report) == ["matched BATCH1 dep-1+dep-2+dep-3"])
        #expect(report.records.first { $0.resultClass == .matched }?.rule == "split_ref")
        #expect(report.records.contains { $0.resultClass == .balanceProof && $0.proof?.ok == true })
    }

    @Test func everyVersionFrom02To08Parses() throws {
        for version in ["02", "03", "04", "05", "06", "07", "08"] {
            let status = version >= "05" ? "<Sts><Cd>BOOK</Cd></Sts>" : "<Sts>BOOK</Sts>"
            let xml = CamtSamples.statement(
                version: version,
                closing: "5.00",
                entries: CamtSamples.entry(amount: "5.00", status: status, ref: "R")
            )
            let dir = try ScratchDirectory()
            let (records, proofs) = try readSource(try dir.write("v.xml", xml))
            #expect(records.count == 1 && records[0].amount == 500, "version \(version)")
            #expect(proofs.first?.ok == true, "version \(version)")
        }
    }

    @Test func rejectedEntriesAreFailed() throws {
        let dir = try ScratchDirectory()
        let xml = CamtSamples.statement(
            entries: CamtSamples.entry(amount: "5.00", status: "<Sts><Cd>RJCT</Cd></Sts>", ref: "R")
        )
        let (records, _) = try readSource(try dir.write("r.xml", xml))
        #expect(records.first?.status == .failed)
    }
}
