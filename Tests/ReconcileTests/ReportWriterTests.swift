import CastleSupport
import Ledger
import Streams
import Testing

@testable import Reconcile

/// The NDJSON report is made two chunks at a time on two threads, and the run id hashes the records'
/// fields in two halves: neither may change what a report says or depend on how it was cut.
@Suite struct ReportWriterTests {
    static let usd = try! Asset(code: "USD", scale: 2)

    /// Records of every shape the writer knows, more than two chunks of them and not a multiple of one.
    static func records(_ count: Int) -> [ResultRecord] {
        (0..<count).map { index in
            var record = ResultRecord(
                resultClass: index % 3 == 0 ? .matched : .amountMismatch,
                rule: "exact_ref",
                source: "s.csv",
                external: ["txn_\(index)"],
                ledger: index % 5 == 0 ? [] : ["dep-\(index)", "dep-\(index)-b"],
                currency: usd,
                externalAmount: Int128(index) * 101,
                ledgerAmount: index % 7 == 0 ? nil : Int128(index) * 100,
                detail: "line \(index): \"quoted\" \u{1}"
            )
            if index % 11 == 0 { record.resolution = "cleared by ops" }
            return record
        }
    }

    @Test func chunkedNDJSONIsTheLinesInOrder() throws {
        let records = Self.records(ReportWriter.ndjsonChunk * 2 + 1234)
        let sink = OutputSink.inMemory(capacity: 1 << 12)
        try ReportWriter.write(records, run: "r-0123456789abcdef", format: .ndjson, to: sink)
        let written = String(decoding: sink.takeBytes(), as: UTF8.self)
        let expected = records.map { ReportWriter.ndjsonLine($0, run: "r-0123456789abcdef") + "\n" }.joined()
        #expect(written.utf8.count == expected.utf8.count)
        #expect(written == expected)
    }

    @Test func runIDFollowsEveryFieldAndNotTheCut() {
        let records = Self.records(5001)
        let id = ReconcileJob.runID(records)
        #expect(id.hasPrefix("r-") && id.count == 18)
        #expect(ReconcileJob.runID(records) == id)
        // One field of one record, in either half, gives another id.
        for index in [0, 2500, 5000] {
            var changed = records
            changed[index].detail += "."
            #expect(ReconcileJob.runID(changed) != id)
            changed = records
            changed[index].resolution = changed[index].resolution == nil ? "x" : nil
            #expect(ReconcileJob.runID(changed) != id)
        }
        // A text moved from one field to the next is other content (length prefixes).
        var moved = records
        moved[1].external = ["txn_1dep-1"]
        moved[1].ledger = ["dep-1-b"]
        var original = records
        original[1].external = ["txn_1"]
        original[1].ledger = ["dep-1dep-1-b"]
        #expect(ReconcileJob.runID(moved) != ReconcileJob.runID(original))
        #expect(ReconcileJob.runID([]) != ReconcileJob.runID(Array(records.prefix(1))))
    }
}
