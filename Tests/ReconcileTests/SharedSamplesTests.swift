import CastleSupport
import Ledger
import Reconcile
import Testing

/// Every public sample in ../shared/datasets/payments parses, and each statement's balance proof comes
/// out as that folder's README says, including the ones that do not add up on purpose.
@Suite(.enabled(if: SharedPayments.folder != nil, "../shared/datasets/payments is absent (set CASTLE_SHARED_DATASETS)"))
struct SharedSamplesTests {
    let folder = SharedPayments.folder ?? ""

    func camt(_ name: String) throws -> (records: [ExternalRecord], proofs: [BalanceProof]) {
        try readSource("\(folder)/camt053/\(name)")
    }

    func units(_ text: String, _ code: String = "EUR") -> Int64 {
        try! AssetTable.iso4217[code]!.parseAmount(text).get()
    }

    @Test func finnishSampleAddsUp() throws {
        let (records, proofs) = try camt("FI_camt_053_sample.xml")
        #expect(records.count == 10)
        #expect(proofs.count == 1)
        #expect(proofs[0].opening == units("10000.00"))
        #expect(proofs[0].closing == units("23644.83"))
        #expect(proofs[0].ok)
        #expect(records.allSatisfy { $0.currency.code == "EUR" })
    }

    @Test func postFinanceIsOffByTheValueDatedCredit() throws {
        let (records, proofs) = try camt("postfinance_camt053_v04_20201124.xml")
        #expect(records.count == 5)
        #expect(records.allSatisfy { $0.currency.code == "CHF" && !$0.id.isEmpty })
        #expect(proofs.count == 1)
        #expect(!proofs[0].ok)
        let closing = try #require(proofs[0].closing)
        #expect(proofs[0].computedClosing! - Int128(closing) == Int128(units("1537.00", "CHF")))
    }

    @Test func genkgoTwoStatementsChain() throws {
        let (records, proofs) = try camt("genkgo_camt053.v2.multi.statement.xml")
        #expect(records.count == 2)
        #expect(proofs.count == 2)
        #expect(proofs.allSatisfy { $0.ok })
        #expect(proofs[1].opening == proofs[0].closing)
    }

    @Test func genkgoVersion8ParsesButItsBalancesAreUnrelated() throws {
        let (records, proofs) = try camt("genkgo_camt053.v8.xml")
        #expect(records.count == 1)
        #expect(records[0].amount.magnitude == UInt64(units("8.85")))
        #expect(records[0].currency.code == "EUR")
        #expect(proofs.count == 1)
        #expect(!proofs[0].ok)
        #expect(proofs[0].detail.contains("SEK"))
    }

    @Test func camtParserExampleAddsUp() throws {
        let (records, proofs) = try camt("camt_parser_valid_example.xml")
        #expect(records.count == 4)
        #expect(records.count { $0.amount > 0 } == 1)
        #expect(proofs[0].opening == units("33.06"))
        #expect(proofs[0].closing == units("23.06"))
        #expect(proofs[0].ok)
    }

    @Test func ingExampleAddsUpWithItsReversal() throws {
        let (records, proofs) = try camt("ing_example_camt.xml")
        #expect(records.count == 9)
        #expect(records.filter { $0.amount > 0 }.reduce(0) { $0 + $1.amount } == units("990.00"))
        #expect(records.filter { $0.amount < 0 }.reduce(0) { $0 - $1.amount } == units("385.00"))
        #expect(records.count { $0.status == .reversed } == 1)
        #expect(proofs[0].opening == units("1000.00"))
        #expect(proofs[0].closing == units("1605.00"))
        #expect(proofs[0].ok)
    }

    @Test func stripeDashboardPaymentsInMajorUnits() throws {
        let (records, _) = try readSource("\(folder)/stripe/csv2ofx_stripe-all.csv")
        #expect(records.count == 5)
        #expect(records.allSatisfy { $0.currency.code == "CAD" })
        #expect(records.reduce(0) { $0 + $1.amount } == units("112.50", "CAD"))
    }

    @Test func stripeBalanceTransactionsInCents() throws {
        let (records, _) = try readSource("\(folder)/stripe/dbt_stripe_balance_transaction_data.csv")
        #expect(records.count == 9)
        #expect(records.allSatisfy { $0.currency.code == "USD" })
        #expect(records.contains { $0.amount == 2_040_000 && $0.refs.contains("ch_0IDYghig6peNXzgDhuOFKdTS") })
        #expect(records.count { $0.batch != nil } == 7)
    }

    @Test func stripePayouts() throws {
        let (records, _) = try readSource("\(folder)/stripe/dbt_stripe_payout_data.csv")
        #expect(records.count == 15)
        #expect(records.count { $0.amount < 0 } == 1)
    }

    @Test func paypalWithThousandsSeparators() throws {
        let (records, _) = try readSource("\(folder)/paypal/gnucashr_sample-paypal.csv")
        #expect(records.count == 5)
        #expect(records[0].amount == 125_000)
        #expect(records[0].id == "TXN89ABC123DEF")
        #expect(records.count { $0.currency.code == "EUR" } == 1)
        #expect(records.contains { $0.amount == -5_000 })
    }

    /// Every file of the folder parses, whatever its name.
    @Test func everyFileParses() throws {
        for sub in ["camt053", "stripe", "paypal"] {
            let names = try FileManagerList.files("\(folder)/\(sub)")
            #expect(!names.isEmpty)
            for name in names {
                let (records, _) = try readSource("\(folder)/\(sub)/\(name)")
                #expect(!records.isEmpty, "\(sub)/\(name)")
            }
        }
    }
}
