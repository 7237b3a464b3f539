import CastleSupport
import Foundation
import Reconcile
import Testing

/// Rules and mapping files in TOML and in JSON: the same value, the same validation, the same report; and
/// hostile TOML refused naming the file and the key.
@Suite struct ConfigFileTests {
    static let rulesJSON = """
        {"rules": [
          {"name": "exact_ref", "match": "reference", "tolerance": "5.00", "window_days": 3},
          {"name": "split_ref", "match": "split", "window_days": 3},
          {"name": "payout_batch", "match": "batch", "tolerance_relative": "0.001", "window_days": 2},
          {"name": "amount_date", "match": "amount", "tolerance": "1.00", "window_days": 1}
        ]}
        """

    static let rulesTOML = """
        # The same rules as rulesJSON.
        [[rules]]
        name = "exact_ref"
        match = "reference"
        tolerance = "5.00"
        window_days = 3

        [[rules]]
        name = "split_ref"
        match = "split"
        window_days = 3

        [[rules]]
        name = "payout_batch"
        match = "batch"
        tolerance_relative = "0.001"
        window_days = 2

        [[rules]]
        window_days = 1   # keys in any order
        name = "amount_date"
        match = "amount"
        tolerance = '1.00'
        """

    /// datasets/payments-sample in the repository.
    static let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("datasets/payments-sample").path

    func report(rules: RuleSet) throws -> [UInt8] {
        var request = ReconcileRequest(sources: ["\(Self.sample)/stripe.csv", "\(Self.sample)/bank.camt053.xml"])
        request.rules = rules
        let report = try ReconcileJob.run(request, ledger: LedgerEntriesFile(path: "\(Self.sample)/ledger.ndjson"))
        var out: [UInt8] = []
        for record in report.records {
            ReportWriter.appendNDJSON(record, run: report.run, to: &out)
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    @Test func theSameRulesInTOMLAndJSONGiveTheSameReport() throws {
        let json = try RuleSet.parse(Array(Self.rulesJSON.utf8), name: "rules.json")
        let toml = try RuleSet.parse(Array(Self.rulesTOML.utf8), name: "rules.toml")
        #expect(json == toml)
        #expect(json != RuleSet.standard, "rules that differ from the built-in ones, so the check can fail")
        // Without an extension, the content says which: `{` is JSON, anything else TOML.
        #expect(try RuleSet.parse(Array(Self.rulesTOML.utf8), name: "rules") == json)
        #expect(try RuleSet.parse(Array(Self.rulesJSON.utf8), name: "rules.conf") == json)
        let fromJSON = try report(rules: json)
        let fromTOML = try report(rules: toml)
        #expect(!fromJSON.isEmpty)
        #expect(fromJSON == fromTOML, "byte-identical reports")
        #expect(fromJSON != (try report(rules: .standard)), "the rules change the report")
    }

    @Test func theSameMappingInTOMLAndJSON() throws {
        let json = try ColumnMapping.parse(
            Array(
                #"""
                {"id": "Reference", "amount": "Amount", "currency_value": "EUR", "date": "Booked",
                 "date_format": "european", "unit": "major", "thousands_separator": ",",
                 "refs": ["End to end id"], "batch": "Batch", "status": "State",
                 "failed_statuses": ["Rejected"], "reversed_statuses": ["returned"]}
                """#.utf8
            ),
            name: "bank.json"
        )
        let toml = try ColumnMapping.parse(
            Array(
                """
                id = "Reference"
                amount = "Amount"
                currency_value = "EUR"
                date = "Booked"
                date_format = "european"
                unit = "major"
                thousands_separator = ","
                refs = ["End to end id"]
                batch = "Batch"
                status = "State"
                failed_statuses = ["Rejected"]
                reversed_statuses = ["returned"]
                """.utf8
            ),
            name: "bank.toml"
        )
        #expect(toml.id == json.id && toml.refs == json.refs && toml.failedStatuses == ["rejected"])
        #expect(toml.fixedCurrency == "EUR" && toml.dateFormat == .european && toml.thousandsSeparator == 44)
        var expected = json
        expected.name = toml.name
        #expect(toml == expected)
        let layout = try ColumnMapping.parse(Array(#"layout = "paypal_activity""#.utf8), name: "m.toml")
        #expect(layout == ColumnMapping.paypalActivity)
    }

    func rulesError(_ text: String, name: String = "rules.toml") -> CastleError? {
        castleError { _ = try RuleSet.parse(Array(text.utf8), name: name) }
    }

    @Test func aTOMLSyntaxErrorNamesTheFileLineAndColumn() throws {
        let error = try #require(rulesError("[[rules]]\nname = \"exact_ref\"\nmatch = \n"))
        #expect(error.kind == .dataError)
        #expect(error.message.hasPrefix("rules.toml:3:"), "\(error.message)")
    }

    @Test func anUnknownKeyIsRefused() throws {
        let error = try #require(rulesError("[[rules]]\nname = \"x\"\nmatch = \"reference\"\nwindow = 3\n"))
        #expect(error.kind == .dataError)
        #expect(error.message.contains("rules.toml: rule 1: unknown member \"window\""), "\(error.message)")
        let top = try #require(rulesError("rule = 1\n[[rules]]\nname = \"x\"\nmatch = \"reference\"\n"))
        #expect(top.message.contains("rules.toml: unknown member \"rule\""), "\(top.message)")
    }

    @Test func aFloatToleranceIsRefusedWithHowToWriteIt() throws {
        for key in ["tolerance", "tolerance_relative"] {
            let error = try #require(rulesError("[[rules]]\nname = \"x\"\nmatch = \"amount\"\n\(key) = 0.01\n"))
            #expect(error.kind == .dataError)
            #expect(error.message.contains("rules.toml: rule 1: \(key) is a number"), "\(error.message)")
            #expect(error.message.contains("as a string"), "\(error.message)")
            // The same mistake in JSON, the same message.
            let json = try #require(
                rulesError(#"{"rules": [{"name": "x", "match": "amount", "\#(key)": 0.01}]}"#, name: "rules.json")
            )
            #expect(json.message == error.message.replacingOccurrences(of: "rules.toml", with: "rules.json"))
        }
        let integer = try #require(rulesError("[[rules]]\nname = \"x\"\nmatch = \"amount\"\ntolerance = 1\n"))
        #expect(integer.message.contains("tolerance is a number"), "\(integer.message)")
    }

    @Test func wrongTypesAreRefusedNamingTheKey() throws {
        let window = try #require(rulesError("[[rules]]\nname = \"x\"\nmatch = \"amount\"\nwindow_days = \"3\"\n"))
        #expect(window.message.contains("rules.toml: rule 1: window_days is not an integer"), "\(window.message)")
        let float = try #require(rulesError("[[rules]]\nname = \"x\"\nmatch = \"amount\"\nwindow_days = 3.0\n"))
        #expect(float.message.contains("rule 1: window_days is not an integer"), "\(float.message)")
        let name = try #require(rulesError("[[rules]]\nname = 7\nmatch = \"amount\"\n"))
        #expect(name.message.contains("rule 1: name is a number, not a string"), "\(name.message)")
        let notArray = try #require(rulesError("rules = \"all\"\n"))
        #expect(notArray.message.contains("\"rules\" is a non-empty array"), "\(notArray.message)")
        let date = try #require(rulesError("[[rules]]\nname = \"x\"\nmatch = \"amount\"\nwindow_days = 2026-12-01\n"))
        #expect(date.message.contains("rules.toml: rules.1.window_days is a TOML date"), "\(date.message)")
        let mapping = castleError {
            _ = try ColumnMapping.parse(
                Array("id = \"a\"\namount = \"b\"\ndate = \"c\"\nunit = 1\n".utf8),
                name: "m.toml"
            )
        }
        #expect(
            mapping?.message.contains("m.toml: unit is a number, not a string") == true,
            "\(String(describing: mapping))"
        )
    }

    @Test func notUTF8OrANULIsRefused() throws {
        let nul = castleError { _ = try RuleSet.parse(Array("[[rules]]\nname = \"x\"\0\n".utf8), name: "r.toml") }
        #expect(nul?.message == "r.toml: not UTF-8 text")
        let latin1 = castleError { _ = try RuleSet.parse([0x6E, 0x3D, 0x22, 0xE9, 0x22], name: "r.toml") }
        #expect(latin1?.message == "r.toml: not UTF-8 text")
    }
}
