public import CastleSupport
public import Storage
import Streams

#if canImport(Glibc)
import Glibc
#endif

/// A dataset of the store written out as the contract's NDJSON in a temporary file, one row on its
/// source line (missing lines left blank), so a replay of it reports the lines of the file it came from
/// (`castle replay --dataset`). The file is removed by ``remove()`` or, on an interrupt, by ``TemporaryFiles``.
public struct DatasetExport: Sendable {
    public let path: String
    private let slot: Int?

    /// Exports `dataset` of `store` into a new file under `$TMPDIR` (else `/tmp`).
    public init(dataset: String, of store: any Store) async throws(CastleError) {
        let directory = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(directory)/castle-dataset-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw CastleError(.cantCreate, "\(directory): cannot create a temporary file") }
        close(fd)
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        slot = TemporaryFiles.register(path)
        let sink = try OutputSink(path: path)
        do throws(CastleError) {
            var line: Int64 = 0
            var rows = 0
            while true {
                let page = try await store.readDataset(dataset, afterLine: line, limit: 10_000)
                guard let last = page.last else { break }
                for row in page {
                    while line + 1 < row.line {
                        try sink.write("\n")
                        line += 1
                    }
                    try sink.write(row.body)
                    try sink.write("\n")
                    line = row.line
                }
                rows += page.count
                line = last.line
            }
            if rows == 0 { throw CastleError(.noInput, "\(store.displayURL) has no dataset '\(dataset)'") }
            try sink.commit()
        } catch {
            sink.abort()
            unlink(path)
            TemporaryFiles.unregister(slot)
            throw error
        }
    }

    public func remove() {
        unlink(path)
        TemporaryFiles.unregister(slot)
    }
}
