/// A synthetic payments history for `castle reconcile` (`castle generate payments`): a ledger of card
/// deposits through Stripe and withdrawals to the bank (entries NDJSON, docs/ledger.md), the Stripe
/// balance-transactions CSV and the camt.053 bank statement that should match it, with known breaks
/// injected on the processor's side and an answer key naming each one and the class the report must
/// give it. Deterministic by seed. Amounts are integer cents, written with two decimals.
public struct PaymentsDay {
    public struct Config: Sendable {
        public var seed: UInt64 = 1
        /// Card deposits; about a third as many withdrawals go to the bank.
        public var count = 1000
        /// The share of deposits given an injected break.
        public var breakRate = 0.02
        /// The first business day, as days since 1970-01-01 (2026-12-01).
        public var firstDay: Int32 = 20788
        public var users = 50

        public init() {}
    }

    /// The injected perturbations and what the report must make of each.
    public enum Break: String, Sendable, CaseIterable {
        /// The processor's row is missing: unmatched_ledger.
        case dropped
        /// The processor's row appears twice: duplicate.
        case duplicated
        /// The processor's amount differs by a few cents: amount_mismatch.
        case amountShifted = "amount_shifted"
        /// The processor dates it a week later: late.
        case dateShifted = "date_shifted"
        /// The ledger posted it as two entries with the same reference: matched by the split rule.
        case split
        /// The processor refunded it and the ledger has no reversal: the refund is unmatched_external.
        case reversed
        /// The processor says failed, the ledger posted it: status_mismatch.
        case failedButPosted = "failed_but_posted"

        public var expectedClass: String {
            switch self {
            case .dropped: "unmatched_ledger"
            case .duplicated: "duplicate"
            case .amountShifted: "amount_mismatch"
            case .dateShifted: "late"
            case .split: "matched"
            case .reversed: "unmatched_external"
            case .failedButPosted: "status_mismatch"
            }
        }
    }

    public struct Output: Sendable {
        /// Entries NDJSON, in posting order.
        public var ledger: String
        public var stripeCSV: String
        public var camt053: String
        /// One line per injected break, sorted:
        /// `{"break","class","external":[ids],"ledger":[keys]}`.
        public var answers: String
    }

    public static let stripeHeader =
        "id,amount,available_on,created,currency,description,fee,net,source,status,type,reporting_category,payout_id"

    public static func generate(_ config: Config) -> Output {
        var random = Xoshiro256(seed: config.seed)
        var ledger = ""
        var stripe = PaymentsDay.stripeHeader + "\n"
        var answers: [String] = []
        var bankEntries: [(amount: Int64, day: Int32, serviceRef: String, endToEnd: [(String, Int64)])] = []
        let nanosPerDay: Int64 = 86_400_000_000_000

        func money(_ cents: Int64) -> String {
            let sign = cents < 0 ? "-" : ""
            let magnitude = cents.magnitude
            let fraction = magnitude % 100
            return "\(sign)\(magnitude / 100).\(fraction < 10 ? "0" : "")\(fraction)"
        }
        func entry(_ key: String, _ kind: String, _ ts: Int64, ref: String, postings: [(String, Int64)]) -> String {
            let legs = postings.map { "{\"account\":\"\($0.0)\",\"asset\":\"USD\",\"amount\":\"\(money($0.1))\"}" }
            return "{\"key\":\"\(key)\",\"kind\":\"\(kind)\",\"ts\":\(ts),\"ref\":\"\(ref)\",\"postings\":["
                + legs.joined(separator: ",") + "]}\n"
        }
        func answer(_ kind: Break, external: [String], ledger: [String]) {
            let ext = external.map { "\"\($0)\"" }.joined(separator: ",")
            let led = ledger.map { "\"\($0)\"" }.joined(separator: ",")
            answers.append(
                "{\"break\":\"\(kind.rawValue)\",\"class\":\"\(kind.expectedClass)\",\"external\":[\(ext)],\"ledger\":[\(led)]}"
            )
        }
        func stripeRow(
            _ id: String,
            _ cents: Int64,
            created: Int64,
            source: String,
            status: String,
            type: String
        )
            -> String
        {
            let fee = type == "charge" ? cents * 29 / 1000 + 30 : 0
            let category = type == "charge" ? "charge" : "refund"
            return "\(id),\(cents),\(created + 2 * 86_400),\(created),usd,,\(fee),\(cents - fee),\(source),\(status),"
                + "\(type),\(category),\n"
        }

        let prefix = "s\(config.seed)"
        for index in 0..<config.count {
            let user = "u\(random.below(config.users) + 1)"
            let cents = Int64(500 + random.below(500_000))
            let day = config.firstDay + Int32(index % 3)
            let seconds = Int64(day) * 86_400 + Int64(random.below(86_400))
            let ts = seconds * 1_000_000_000 + Int64(index % 1000)
            let charge = "ch_\(prefix)_\(index)"
            let transaction = "txn_\(prefix)_\(index)"
            let key = "dep-\(charge)"
            let injected: Break? =
                random.chance(config.breakRate) ? Break.allCases[random.below(Break.allCases.count)] : nil
            // The ledger side.
            if injected == .split {
                let first = 1 + Int64(random.below(Int(cents - 1)))
                ledger += entry(
                    key + "-a",
                    "deposit",
                    ts,
                    ref: charge,
                    postings: [("clearing:stripe", -first), ("available:\(user)", first)]
                )
                ledger += entry(
                    key + "-b",
                    "deposit",
                    ts,
                    ref: charge,
                    postings: [("clearing:stripe", first - cents), ("available:\(user)", cents - first)]
                )
                answer(.split, external: [transaction], ledger: [key + "-a", key + "-b"])
            } else {
                ledger += entry(
                    key,
                    "deposit",
                    ts,
                    ref: charge,
                    postings: [("clearing:stripe", -cents), ("available:\(user)", cents)]
                )
            }
            // The processor's side.
            switch injected {
            case .dropped?:
                answer(.dropped, external: [], ledger: [key])
            case .duplicated?:
                let row = stripeRow(
                    transaction,
                    cents,
                    created: seconds,
                    source: charge,
                    status: "available",
                    type: "charge"
                )
                stripe += row + row
                answer(.duplicated, external: [transaction], ledger: [])
            case .amountShifted?:
                let shifted = cents + Int64(1 + random.below(300)) * (random.chance(0.5) ? 1 : -1)
                stripe += stripeRow(
                    transaction,
                    shifted,
                    created: seconds,
                    source: charge,
                    status: "available",
                    type: "charge"
                )
                answer(.amountShifted, external: [transaction], ledger: [key])
            case .dateShifted?:
                let later = seconds + Int64(5 + random.below(5)) * 86_400
                stripe += stripeRow(
                    transaction,
                    cents,
                    created: later,
                    source: charge,
                    status: "available",
                    type: "charge"
                )
                answer(.dateShifted, external: [transaction], ledger: [key])
            case .reversed?:
                stripe += stripeRow(
                    transaction,
                    cents,
                    created: seconds,
                    source: charge,
                    status: "available",
                    type: "charge"
                )
                let refund = "txn_\(prefix)_\(index)_refund"
                stripe += stripeRow(
                    refund,
                    -cents,
                    created: seconds + 3600,
                    source: charge,
                    status: "available",
                    type: "refund"
                )
                answer(.reversed, external: [refund], ledger: [])
            case .failedButPosted?:
                stripe += stripeRow(
                    transaction,
                    cents,
                    created: seconds,
                    source: charge,
                    status: "failed",
                    type: "charge"
                )
                answer(.failedButPosted, external: [transaction], ledger: [key])
            case .split?, nil:
                stripe += stripeRow(
                    transaction,
                    cents,
                    created: seconds,
                    source: charge,
                    status: "available",
                    type: "charge"
                )
            }
            // Every third deposit is followed by a withdrawal of half of it to the user's bank; every tenth
            // withdrawal the bank books together with the next one, as one batch entry.
            if index % 3 == 2 {
                let amount = max(1, cents / 2)
                let endToEnd = "e2e-\(prefix)-\(index)"
                ledger += entry(
                    "wd-\(prefix)-\(index)",
                    "withdrawal",
                    ts + 1,
                    ref: endToEnd,
                    postings: [("available:\(user)", -amount), ("bank:main", amount)]
                )
                let batched = (index / 3) % 10 == 1 && !bankEntries.isEmpty && bankEntries.last!.endToEnd.count == 1
                if batched {
                    bankEntries[bankEntries.count - 1].amount += amount
                    bankEntries[bankEntries.count - 1].endToEnd.append((endToEnd, amount))
                } else {
                    bankEntries.append((amount, day, "BNK-\(prefix)-\(index)", [(endToEnd, amount)]))
                }
            }
        }
        _ = nanosPerDay

        // The bank statement: opening balance, one DBIT entry per withdrawal (or batch), closing balance.
        // A balance in camt.053 is a magnitude with CdtDbtInd for its sign: an account overdrawn by the
        // withdrawals closes DBIT.
        let opening: Int64 = 100_000_000
        let closing = opening - bankEntries.reduce(0) { $0 + $1.amount }
        func date(_ day: Int32) -> String {
            let z = Int(day) + 719_468
            let era = z / 146_097
            let doe = z - era * 146_097
            let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
            let mp = (5 * doy + 2) / 153
            let d = doy - (153 * mp + 2) / 5 + 1
            let m = mp < 10 ? mp + 3 : mp - 9
            let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
            return "\(y)-\(m < 10 ? "0" : "")\(m)-\(d < 10 ? "0" : "")\(d)"
        }
        let lastDay = config.firstDay + 2
        var camt = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
              <BkToCstmrStmt>
                <GrpHdr><MsgId>castle-\(prefix)</MsgId><CreDtTm>\(date(lastDay))T23:00:00</CreDtTm></GrpHdr>
                <Stmt>
                  <Id>castle-\(prefix)-stmt</Id>
                  <CreDtTm>\(date(lastDay))T23:00:00</CreDtTm>
                  <Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>USD</Ccy></Acct>
                  <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">\(money(opening))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>\(date(config.firstDay))</Dt></Dt></Bal>
                  <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">\(money(Int64(closing.magnitude)))</Amt><CdtDbtInd>\(closing < 0 ? "DBIT" : "CRDT")</CdtDbtInd><Dt><Dt>\(date(lastDay))</Dt></Dt></Bal>

            """
        for bankEntry in bankEntries {
            camt += "      <Ntry><Amt Ccy=\"USD\">\(money(bankEntry.amount))</Amt><CdtDbtInd>DBIT</CdtDbtInd>"
            camt += "<Sts>BOOK</Sts><BookgDt><Dt>\(date(bankEntry.day))</Dt></BookgDt>"
            camt += "<ValDt><Dt>\(date(bankEntry.day))</Dt></ValDt><AcctSvcrRef>\(bankEntry.serviceRef)</AcctSvcrRef>"
            camt += "<BkTxCd/><NtryDtls>"
            if bankEntry.endToEnd.count > 1 { camt += "<Btch><NbOfTxs>\(bankEntry.endToEnd.count)</NbOfTxs></Btch>" }
            for (endToEnd, amount) in bankEntry.endToEnd {
                camt += "<TxDtls><Refs><EndToEndId>\(endToEnd)</EndToEndId></Refs>"
                camt += "<AmtDtls><TxAmt><Amt Ccy=\"USD\">\(money(amount))</Amt></TxAmt></AmtDtls></TxDtls>"
            }
            camt += "</NtryDtls></Ntry>\n"
        }
        camt += "    </Stmt>\n  </BkToCstmrStmt>\n</Document>\n"
        answers.sort()
        return Output(
            ledger: ledger,
            stripeCSV: stripe,
            camt053: camt,
            answers: answers.isEmpty ? "" : answers.joined(separator: "\n") + "\n"
        )
    }
}
