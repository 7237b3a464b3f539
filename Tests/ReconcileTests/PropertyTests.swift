import CastleSupport
import Foundation
import Ledger
import PropertyBased
import Reconcile
import SyntheticData
import Testing

/// A random payments history with random injected breaks: the report names exactly the injected breaks,
/// no more and no fewer, on every seed; the same inputs in any order give the same bytes.
@Suite struct ReconcilePropertyTests {
    struct Outcome {
        var report: ReconcileReport
        var answers: [String]
        var ledger: [Entry]
    }

    static func reconcile(
        seed: UInt64,
        count: Int,
        breakRate: Double,
        shuffle: UInt64? = nil,
        in directory: ScratchDirectory? = nil
    ) throws -> Outcome {
        var config = PaymentsDay.Config()
        config.seed = seed
        config.count = count
        config.breakRate = breakRate
        let day = PaymentsDay.generate(config)
        let dir = try directory ?? ScratchDirectory()
        let stripe = try readSource(try dir.write("stripe.csv", day.stripeCSV))
        let bank = try readSource(try dir.write("bank.camt053.xml", day.camt053))
        let entries = try EntryCodec.decodeAll(day.ledger, assets: .iso4217).get()
        var external = stripe.records + bank.records
        var items = entries.compactMap(LedgerItem.init)
        if let shuffle {
            var random = Xoshiro256(seed: shuffle)
            external.shuffle(using: &random)
            items.shuffle(using: &random)
        }
        let report = ReconcileJob.reconcile(
            external: external,
            proofs: bank.proofs,
            ledger: items,
            request: ReconcileRequest(sources: [])
        )
        let answers = day.answers.split(separator: "\n").map(String.init)
        return Outcome(report: report, answers: answers, ledger: entries)
    }

    /// The breaks of a report and of an answer key as comparable lines: class, external ids, ledger keys.
    static func breakLines(_ report: ReconcileReport) -> [String] {
        report.records.filter { $0.isBreak }.map {
            "\($0.resultClass.rawValue) [\($0.external.joined(separator: ","))] [\($0.ledger.joined(separator: ","))]"
        }.sorted()
    }

    static func expectedLines(_ answers: [String]) -> (breaks: [String], splits: [String]) {
        var breaks: [String] = []
        var splits: [String] = []
        for line in answers {
            func list(_ name: String) -> String {
                let start = line.range(of: "\"\(name)\":[")!.upperBound
                let body = line[start...].prefix { $0 != "]" }
                return body.replacingOccurrences(of: "\"", with: "")
            }
            let resultClass = line.components(separatedBy: "\"class\":\"")[1].prefix { $0 != "\"" }
            let text = "\(resultClass) [\(list("external"))] [\(list("ledger"))]"
            if resultClass == "matched" { splits.append(text) } else { breaks.append(text) }
        }
        return (breaks.sorted(), splits.sorted())
    }

    @Test func theReportNamesExactlyTheInjectedBreaks() async throws {
        await propertyCheck(count: 60, input: Gen.uint64(in: 1...UInt64.max), Gen.int(in: 20...400)) { seed, count in
            let outcome: Outcome
            do {
                outcome = try Self.reconcile(seed: seed, count: count, breakRate: 0.2)
            } catch {
                Issue.record("seed \(seed), count \(count): \(error)")
                return
            }
            let expected = Self.expectedLines(outcome.answers)
            let got = Self.breakLines(outcome.report)
            #expect(got == expected.breaks, "seed \(seed), count \(count)")
            let matched = outcome.report.records.filter { $0.resultClass == .matched }.map {
                "matched [\($0.external.joined(separator: ","))] [\($0.ledger.joined(separator: ","))]"
            }
            for split in expected.splits { #expect(matched.contains(split), "seed \(seed): \(split)") }
            #expect(outcome.report.records.contains { $0.resultClass == .balanceProof && $0.proof?.ok == true })
        }
    }

    /// Every kind of break is injected and found (a generator that never injected one would prove little).
    @Test func everyKindOfBreakIsInjectedAndFound() throws {
        let outcome = try Self.reconcile(seed: 11, count: 2000, breakRate: 0.1)
        let kinds = Set(outcome.answers.map { $0.components(separatedBy: "\"break\":\"")[1].prefix { $0 != "\"" } })
        #expect(kinds.count == PaymentsDay.Break.allCases.count, "\(kinds)")
        #expect(Self.breakLines(outcome.report) == Self.expectedLines(outcome.answers).breaks)
    }

    @Test func aCleanDayHasNoBreaks() throws {
        let outcome = try Self.reconcile(seed: 3, count: 500, breakRate: 0)
        #expect(outcome.answers.isEmpty)
        #expect(outcome.report.breaks == 0, "\(Self.breakLines(outcome.report).prefix(5))")
        #expect(outcome.report.records.contains { $0.rule == "split_ref" }, "the bank's batch entries")
    }

    @Test func inputOrderDoesNotChangeOneByte() throws {
        let directory = try ScratchDirectory()
        let a = try Self.reconcile(seed: 5, count: 600, breakRate: 0.2, in: directory)
        let b = try Self.reconcile(seed: 5, count: 600, breakRate: 0.2, shuffle: 99, in: directory)
        #expect(firstDifference(ndjson(a.report), ndjson(b.report)) == nil)
        #expect(a.report.run == b.report.run)
    }

    /// The generated ledger is one `castle ledger post` accepts: every entry posts, and verify holds.
    @Test func theGeneratedLedgerPosts() throws {
        let outcome = try Self.reconcile(seed: 8, count: 800, breakRate: 0.2)
        var journal = Journal()
        for entry in outcome.ledger {
            let result = journal.post(entry)
            #expect(result == .posted, "\(entry.key): \(result)")
        }
        if case .failure(let failure) = journal.verify() { Issue.record("verify: \(failure)") }
    }
}
