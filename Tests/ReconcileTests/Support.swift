import CastleSupport
import Foundation
import Ledger
import Reconcile
import Streams

/// The public payment samples beside the project (../shared/datasets/payments); tests that need them
/// skip when they are absent.
enum SharedPayments {
    static let folder: String? = {
        var candidates: [String] = []
        if let path = ProcessInfo.processInfo.environment["CASTLE_SHARED_DATASETS"] { candidates.append(path) }
        candidates.append(
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets").path
        )
        for base in candidates where FileManager.default.fileExists(atPath: base + "/payments/README.md") {
            return base + "/payments"
        }
        return nil
    }()
}

/// A directory of its own under /tmp, removed when the value goes.
final class ScratchDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "castle-reconcile-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    func write(_ name: String, bytes: [UInt8]) throws -> String {
        let file = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }
}

/// Reads a source the way `castle reconcile` does.
func readSource(
    _ path: String,
    mapping: ColumnMapping? = nil
) throws -> (records: [ExternalRecord], proofs: [BalanceProof]) {
    try ReconcileJob.read(path, format: nil, mapping: mapping, assets: .iso4217)
}

/// The CastleError a throwing call ends in, or nil when it returns.
func castleError(_ body: () throws -> Void) -> CastleError? {
    do {
        try body()
        return nil
    } catch let error as CastleError {
        return error
    } catch {
        return CastleError(.software, "not a CastleError: \(error)")
    }
}

/// A ledger of entries NDJSON as items.
func ledgerItems(_ ndjson: String) throws -> [LedgerItem] {
    try EntryCodec.decodeAll(ndjson, assets: .iso4217).get().compactMap(LedgerItem.init)
}

/// The report's NDJSON, for byte comparisons.
func ndjson(_ report: ReconcileReport) -> String {
    report.records.map { ReportWriter.ndjsonLine($0, run: report.run) }.joined(separator: "\n")
}

/// Where two long texts first differ, or nil: Swift Testing's diff of large values is slow.
func firstDifference(_ a: String, _ b: String) -> String? {
    let x = a.split(separator: "\n", omittingEmptySubsequences: false)
    let y = b.split(separator: "\n", omittingEmptySubsequences: false)
    for index in 0..<max(x.count, y.count) {
        let left = index < x.count ? String(x[index]) : "<end>"
        let right = index < y.count ? String(y[index]) : "<end>"
        if left != right { return "line \(index + 1): \(left) | \(right)" }
    }
    return nil
}

enum FileManagerList {
    static func files(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasPrefix(".") }.sorted()
    }
}
