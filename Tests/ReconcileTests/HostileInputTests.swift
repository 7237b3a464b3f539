import CastleSupport
import Ledger
import Reconcile
import Testing

/// Bad input of every kind: a clear error naming the file and line (or the XML path), exit 65, and no
/// records from a file that fails.
@Suite struct HostileInputTests {
    let header = "id,amount,available_on,created,currency,fee,net,source,status,type,payout_id\n"

    func failure(_ name: String, _ text: String) throws -> CastleError? {
        let dir = try ScratchDirectory()
        let path = try dir.write(name, text)
        return castleError { _ = try readSource(path) }
    }

    @Test func truncatedCSVNamesTheLine() throws {
        let text = header + "txn_1,100,1700000000,1700000000,usd,3,97,ch_1,available,charge,\ntxn_2,200,17000"
        let error = try #require(try failure("cut.csv", text))
        #expect(error.kind == .dataError)
        #expect(error.message.contains("cut.csv:3:"), "\(error.message)")
        #expect(error.message.contains("truncated"))
    }

    @Test func quoteLeftOpenNamesWhereItOpened() throws {
        let text =
            header + "txn_1,100,1700000000,1700000000,usd,3,97,\"ch_1,available,charge,\ntxn_2,1,1,1,usd,0,1,x,y,z,\n"
        let error = try #require(try failure("open.csv", text))
        #expect(error.kind == .dataError)
        #expect(error.message.contains("open.csv:2:"), "\(error.message)")
        #expect(error.message.contains("never closed"))
    }

    @Test func tooManyDecimalsIsRefusedNotRounded() throws {
        let text =
            "id,amount,currency,created,amount_refunded,status,payment_intent_id,transfer\nch_1,12.345,usd,2021-02-03 13:12,0,Paid,pi_1,\n"
        let error = try #require(try failure("decimals.csv", text))
        #expect(error.message.contains("decimals.csv:2:"), "\(error.message)")
        #expect(error.message.contains("more decimals than USD's scale"))
    }

    @Test func unknownCurrencyIsRefused() throws {
        let text = header + "txn_1,100,1700000000,1700000000,xyz,3,97,ch_1,available,charge,\n"
        let error = try #require(try failure("currency.csv", text))
        #expect(error.message.contains("currency.csv:2:"))
        #expect(error.message.contains("unknown currency \"xyz\""))
    }

    @Test func minorUnitsMustBeWholeNumbers() throws {
        let text = header + "txn_1,1.5,1700000000,1700000000,usd,3,97,ch_1,available,charge,\n"
        let error = try #require(try failure("minor.csv", text))
        #expect(error.message.contains("minor.csv:2: amount:"), "\(error.message)")
    }

    @Test func entityBombIsRefusedNotExpanded() throws {
        var bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
        for level in 1...9 {
            bomb +=
                " <!ENTITY lol\(level) \""
                + String(repeating: "&lol\(level - 1 == 0 ? "" : String(level - 1));", count: 10) + "\">\n"
        }
        bomb +=
            "]>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\"><BkToCstmrStmt>&lol9;</BkToCstmrStmt></Document>\n"
        let error = try #require(try failure("bomb.xml", bomb))
        #expect(error.kind == .dataError)
        #expect(error.message.contains("bomb.xml"))
        #expect(error.message.contains("document type declaration"), "\(error.message)")
    }

    @Test func anUndefinedEntityIsAnErrorWithItsPath() throws {
        let xml = CamtSamples.statement(entries: CamtSamples.entry(amount: "1.00", ref: "A&unknown;B"))
        let error = try #require(try failure("entity.xml", xml))
        #expect(error.message.contains("/Document/BkToCstmrStmt/Stmt/Ntry/AcctSvcrRef"), "\(error.message)")
        #expect(error.message.contains("not defined"))
    }

    @Test func badAmountInCamtNamesTheElementPath() throws {
        let xml = CamtSamples.statement(
            entries: CamtSamples.entry(amount: "1.00", ref: "A") + CamtSamples.entry(amount: "2.001", ref: "B")
        )
        let error = try #require(try failure("amount.xml", xml))
        #expect(error.message.contains("amount.xml: /Document/BkToCstmrStmt/Stmt/Ntry[2]/Amt:"), "\(error.message)")
    }

    @Test func truncatedXMLIsAnError() throws {
        let xml = CamtSamples.statement(entries: CamtSamples.entry(amount: "1.00", ref: "A"))
        let error = try #require(try failure("cut.xml", String(xml.prefix(xml.count - 40))))
        #expect(error.message.contains("never closed"), "\(error.message)")
    }

    @Test func statementThatDoesNotAddUpFailsItsProof() throws {
        let dir = try ScratchDirectory()
        let xml = CamtSamples.statement(
            opening: "100.00",
            closing: "150.00",
            entries: CamtSamples.entry(amount: "20.00", ref: "A")
        )
        let (records, proofs) = try readSource(try dir.write("short.xml", xml))
        #expect(records.count == 1)
        #expect(proofs.count == 1)
        #expect(!proofs[0].ok)
        #expect(proofs[0].computedClosing == 12_000)
        #expect(proofs[0].closing == 15_000)
    }

    @Test func unknownMappingMembersAreRefused() {
        let error = castleError {
            _ = try ColumnMapping.parse(
                Array(#"{"id":"a","amount":"b","date":"c","unit":"minor","curency":"x"}"#.utf8),
                name: "m.json"
            )
        }
        #expect(error?.message.contains("unknown member \"curency\"") == true)
    }
}
