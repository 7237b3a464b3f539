import CastleCore
public import CastleSupport
import Codecs
import MarketData
public import Storage
import Streams

/// `castle ingest`: reads an order stream (the contract's NDJSON, CSV, or a LOBSTER message file),
/// validates each row per the contract, and writes the rows into a dataset of the store or into the
/// queue, all in one transaction: over `maxErrors` bad rows, or on any failure, nothing is committed.
/// Rows are keyed by their line in the source, so ingesting the same file twice adds nothing.
///
/// With `commitEvery`, a transaction commits after every that many rows instead, as a live intake
/// (a pipe into stdin) needs for the worker to see its rows before the end: a failure then keeps the
/// transactions committed before it, and a rerun adds only the rows after them.
public enum Ingest {
    public enum Format: String, Sendable, CaseIterable {
        case ndjson, csv, lobster

        /// From the file name, ignoring a compression suffix: `.csv`, LOBSTER's `_message_` files, else NDJSON.
        public static func infer(path: String?) -> Format {
            guard let path else { return .ndjson }
            var name = Substring(path.split(separator: "/").last ?? "")
            for suffix in [".gz", ".zst", ".xz", ".bz2"] where name.hasSuffix(suffix) {
                name = name.dropLast(suffix.count)
            }
            if name.hasSuffix(".csv") && name.contains("_message_") { return .lobster }
            if name.hasSuffix(".csv") { return .csv }
            return .ndjson
        }
    }

    public enum Target: Sendable, Hashable {
        case dataset(String)
        case queue(source: String)
    }

    public struct Options: Sendable {
        public var inputPath: String?
        public var format: Format?
        public var target = Target.dataset("default")
        public var rejectsPath: String?
        public var maxErrors = 0
        public var instrumentsPath: String?
        /// LOBSTER only: the symbol of the file, and its trading day (`YYYY-MM-DD`, times taken as UTC).
        public var lobsterSymbol: String?
        public var lobsterDate: String?
        public var showProgress = true
        public var batchRows = 20_000
        /// Commit after every this many rows (counting rows already stored); nil: one transaction.
        public var commitEvery: Int?

        public init() {}
    }

    public struct Summary: Sendable {
        public var rows = 0
        public var added = 0
        public var rejected = 0
        /// LOBSTER messages that are not orders (hidden executions, cross trades, halts) or that name
        /// orders resting before the file began.
        public var skipped = 0
        public var firstError: String?
        /// Transactions committed (1 without `commitEvery`), and the last line they hold.
        public var commits = 0
        public var committedThroughLine = 0
        public var duplicates: Int { rows - added }
    }

    public static func run(_ options: Options, into backend: any Backend) async throws(CastleError) -> Summary {
        let format = options.format ?? Format.infer(path: options.inputPath)
        let reader: any RowReader =
            switch format {
            case .ndjson: try NDJSONRows(path: options.inputPath)
            case .csv: try CSVRows(path: options.inputPath)
            case .lobster:
                try LobsterRows(path: options.inputPath, symbol: options.lobsterSymbol, date: options.lobsterDate)
            }
        var validator = Validator()
        if let path = options.instrumentsPath {
            validator.instruments = try InstrumentsFile.load(path: path, symbols: &validator.decoder.symbols)
        }
        let rejects = try options.rejectsPath.map { path throws(CastleError) in try OutputSink(path: path) }
        let feed = RowFeed(reader: reader, validator: validator, rejects: rejects, options: options)
        @Sendable func begin() async throws(CastleError) -> any IngestSession {
            switch options.target {
            case .dataset(let name): try await backend.beginIngest(dataset: name)
            case .queue(let source): try await backend.beginEnqueue(source: source)
            }
        }
        // Nil between a commit and the next begin, so that a failure there rolls back nothing.
        var session: (any IngestSession)? = try await begin()
        let progress = ProgressBar(label: "ingest", forceDisabled: !options.showProgress)
        let batchRows = min(options.batchRows, options.commitEvery ?? .max)
        do throws(CastleError) {
            var uncommittedRows = 0
            var lastAppendedLine = 0
            func flush(_ batch: [OrderRow], commit: Bool) async throws(CastleError) {
                guard let open = session else { return }
                if !batch.isEmpty {
                    try await open.append(batch)
                    uncommittedRows += batch.count
                    lastAppendedLine = Int(batch.last!.line)
                }
                guard commit else { return }
                session = nil
                // A session left empty by the last commit (the input ended there) has nothing to commit.
                guard uncommittedRows > 0 || feed.summary.commits == 0 else { return await open.rollback() }
                feed.summary.added += try await open.commit()
                feed.summary.commits += 1
                feed.summary.committedThroughLine = lastAppendedLine
                uncommittedRows = 0
            }
            while !feed.ended {
                // Read on a thread of its own while the store inserts the batch before (one in flight).
                let batch = try await onOwnThread { () throws(CastleError) in try feed.next(upTo: batchRows) }
                if feed.ended {
                    try await flush(batch, commit: true)
                    break
                }
                let commit = options.commitEvery.map { uncommittedRows + batch.count >= $0 } ?? false
                try await flush(batch, commit: commit)
                if commit { session = try await begin() }
                progress.update(
                    done: feed.consumedBytes,
                    total: feed.sizeBytes,
                    status: "\(feed.summary.rows) rows"
                )
            }
            progress.finish()
            try rejects?.commit()
        } catch {
            await session?.rollback()
            progress.finish()
            // The rejects file explains a run stopped by --max-errors; it is kept, complete up to there.
            if error.kind == .dataError { try? rejects?.commit() } else { rejects?.abort() }
            let summary = feed.summary
            guard summary.commits > 0 else { throw error }
            let committed = summary.commits == 1 ? "the transaction" : "the \(summary.commits) transactions"
            throw CastleError(
                error.kind,
                "\(error.message); \(committed) before it stay committed, through line \(summary.committedThroughLine): fix the cause and run again, the lines already stored are skipped"
            )
        }
        return feed.summary
    }
}

/// The reading side of an ingest: rows read, validated, and rejected to the rejects file, a batch at a
/// time on a thread of its own (a pipe into stdin may keep `read(2)` waiting as long as its writer
/// likes, which must not hold a thread of the cooperative pool). One thread at a time uses it: the run
/// awaits each batch before it touches the summary.
final class RowFeed: @unchecked Sendable {
    /// Taken out for the length of a batch, so that the loop works on unique locals (a class's stored
    /// `var` costs an exclusivity check per access, and a copy would copy its buffers on write).
    private var parked: (reader: any RowReader, validator: Validator)?
    private let rejects: OutputSink?
    private let options: Ingest.Options
    var summary = Ingest.Summary()
    /// The input is read to its end.
    private(set) var ended = false
    /// Where the reader stands, for the progress bar.
    private(set) var consumedBytes = 0
    let sizeBytes: Int?

    init(reader: any RowReader, validator: Validator, rejects: OutputSink?, options: Ingest.Options) {
        parked = (reader, validator)
        self.rejects = rejects
        self.options = options
        sizeBytes = reader.source.sizeBytes
    }

    /// The next valid rows, `count` of them unless the input ends first.
    func next(upTo count: Int) throws(CastleError) -> [OrderRow] {
        guard var (reader, validator) = parked.take() else { return [] }
        var summary = self.summary
        defer {
            parked = (reader, validator)
            self.summary = summary
            consumedBytes = reader.source.consumedBytes
        }
        var batch: [OrderRow] = []
        batch.reserveCapacity(count)
        while batch.count < count {
            guard let item = try reader.next() else {
                ended = true
                break
            }
            switch item {
            case .skipped:
                summary.skipped += 1
            case .row(let line, let body):
                switch validator.check(body, line: line) {
                case .valid(let symbol):
                    summary.rows += 1
                    batch.append(OrderRow(line: Int64(line), symbol: symbol, body: body))
                case .invalid(let problem):
                    try reject(problem, line: line, text: body, source: reader.source.name, &summary)
                }
            case .bad(let line, let reason, let text):
                try reject(reason, line: line, text: text, source: reader.source.name, &summary)
            }
        }
        return batch
    }

    private func reject(
        _ reason: String,
        line: Int,
        text: String,
        source: String,
        _ summary: inout Ingest.Summary
    ) throws(CastleError) {
        summary.rejected += 1
        let message = "\(source):\(line): \(reason)"
        if summary.firstError == nil { summary.firstError = message }
        if let rejects {
            try rejects.write("{\"line\":\(line),\"reason\":")
            try rejects.write(jsonStringLiteral(Array(reason.utf8)))
            try rejects.write(",\"input\":")
            try rejects.write(jsonStringLiteral(Array(text.utf8)))
            try rejects.write("}\n")
        }
        if summary.rejected > options.maxErrors {
            let rows = summary.rejected == 1 ? "row" : "rows"
            let lost = options.commitEvery == nil ? "nothing was ingested" : "the open transaction was rolled back"
            throw CastleError(
                .dataError,
                "\(message); \(summary.rejected) bad \(rows), more than --max-errors \(options.maxErrors): \(lost)"
            )
        }
    }
}

/// What a reader produces for one line of its input.
enum RowItem {
    /// A row as the contract's NDJSON, still to be validated.
    case row(line: Int, body: String)
    case bad(line: Int, reason: String, text: String)
    case skipped
}

protocol RowReader {
    var source: InputSource { get }
    mutating func next() throws(CastleError) -> RowItem?
}

/// Validates a row per the contract (the engine's decoder, plus the instruments file when given) and
/// finds its partition key: the symbol, or for a cancel or an amend the symbol of the last `new` with
/// that id (ids are unique among live orders, so that is the order it names).
///
/// The id → symbol map holds only orders that may still rest: a `new` that cannot rest (market, IOC,
/// FOK) is not kept, and a cancel or an amend to zero drops its order. So memory follows the live
/// orders, not the length of the stream, except for orders that end by a fill, which ingest cannot
/// see without matching. A cancel or amend of an order the map no longer holds gets the key "": the
/// engine rejects it (`unknown_order`) in whichever partition it lands.
struct Validator {
    enum Checked {
        /// With the row's partition key.
        case valid(String)
        case invalid(String)
    }

    var decoder = CommandDecoder()
    var instruments: [SymbolID: Instrument] = [:]
    private var symbolNames: [String] = []
    private var symbolOfID: [OrderID: SymbolID] = [:]
    /// How many orders the validator remembers: what its memory grows with.
    var trackedOrders: Int { symbolOfID.count }

    mutating func check(_ body: String, line: Int) -> Checked {
        var text = body
        let decoded = text.withUTF8 { decoder.decode($0, lineNumber: line) }
        switch decoded {
        case .rejected(_, _, let reason, let detail):
            return .invalid("\(reason.name) (\(detail.text))")
        case .command(let command):
            while symbolNames.count < decoder.symbols.count {
                symbolNames.append(decoder.symbols.string(of: SymbolID(symbolNames.count)))
            }
            if command.op == .new {
                if !instruments.isEmpty && instruments[command.symbol] == nil {
                    return .invalid("unknown symbol \(symbolNames[Int(command.symbol)]) (not in the instruments file)")
                }
                if command.type == .limit && (command.tif == .gtc || command.tif == .postOnly) {
                    symbolOfID[command.id] = command.symbol
                } else {
                    // Cannot rest: it is done when its command is, and the id is free again.
                    symbolOfID[command.id] = nil
                }
                return .valid(symbolNames[Int(command.symbol)])
            }
            let symbol: SymbolID?
            if command.op == .cancel || (command.op == .amend && command.qty?.mantissa == 0) {
                symbol = symbolOfID.removeValue(forKey: command.id)
            } else {
                symbol = symbolOfID[command.id]
            }
            return .valid(symbol.map { symbolNames[Int($0)] } ?? "")
        }
    }
}

struct NDJSONRows: RowReader {
    let lines: LineReader
    var source: InputSource { lines.source }

    init(path: String?) throws(CastleError) {
        lines = LineReader(source: try InputSource(path: path))
    }

    mutating func next() throws(CastleError) -> RowItem? {
        while let line = try lines.next() {
            if line.isBlank { continue }
            let text = String(decoding: line.bytes, as: UTF8.self)
            if line.tooLong { return .bad(line: line.number, reason: "line too long", text: String(text.prefix(200))) }
            return .row(line: line.number, body: text)
        }
        return nil
    }
}
