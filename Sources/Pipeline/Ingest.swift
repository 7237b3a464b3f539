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
        var reader: any RowReader =
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
        @Sendable func begin() async throws(CastleError) -> any IngestSession {
            switch options.target {
            case .dataset(let name): try await backend.beginIngest(dataset: name)
            case .queue(let source): try await backend.beginEnqueue(source: source)
            }
        }
        // Nil between a commit and the next begin, so that a failure there rolls back nothing.
        var session: (any IngestSession)? = try await begin()
        var summary = Summary()
        let progress = ProgressBar(label: "ingest", forceDisabled: !options.showProgress)
        let batchRows = min(options.batchRows, options.commitEvery ?? .max)
        do throws(CastleError) {
            var batch: [OrderRow] = []
            batch.reserveCapacity(batchRows)
            var uncommittedRows = 0
            var lastAppendedLine = 0
            func flush(commit: Bool) async throws(CastleError) {
                guard let open = session else { return }
                if !batch.isEmpty {
                    try await open.append(batch)
                    uncommittedRows += batch.count
                    lastAppendedLine = Int(batch.last!.line)
                    batch.removeAll(keepingCapacity: true)
                }
                guard commit else { return }
                session = nil
                // A session left empty by the last commit (the input ended there) has nothing to commit.
                guard uncommittedRows > 0 || summary.commits == 0 else { return await open.rollback() }
                summary.added += try await open.commit()
                summary.commits += 1
                summary.committedThroughLine = lastAppendedLine
                uncommittedRows = 0
            }
            while let item = try reader.next() {
                switch item {
                case .skipped:
                    summary.skipped += 1
                    continue
                case .row(let line, let body):
                    switch validator.check(body, line: line) {
                    case .valid(let symbol):
                        summary.rows += 1
                        batch.append(OrderRow(line: Int64(line), symbol: symbol, body: body))
                    case .invalid(let problem):
                        try reject(problem, line: line, text: body, reader: reader, rejects: rejects, &summary, options)
                    }
                case .bad(let line, let reason, let text):
                    try reject(reason, line: line, text: text, reader: reader, rejects: rejects, &summary, options)
                }
                if batch.count >= batchRows {
                    let commit = options.commitEvery.map { uncommittedRows + batch.count >= $0 } ?? false
                    try await flush(commit: commit)
                    if commit { session = try await begin() }
                    progress.update(
                        done: reader.source.consumedBytes,
                        total: reader.source.sizeBytes,
                        status: "\(summary.rows) rows"
                    )
                }
            }
            try await flush(commit: true)
            progress.finish()
            try rejects?.commit()
        } catch {
            await session?.rollback()
            progress.finish()
            // The rejects file explains a run stopped by --max-errors; it is kept, complete up to there.
            if error.kind == .dataError { try? rejects?.commit() } else { rejects?.abort() }
            guard summary.commits > 0 else { throw error }
            let committed = summary.commits == 1 ? "the transaction" : "the \(summary.commits) transactions"
            throw CastleError(
                error.kind,
                "\(error.message); \(committed) before it stay committed, through line \(summary.committedThroughLine): fix the cause and run again, the lines already stored are skipped"
            )
        }
        return summary
    }

    private static func reject(
        _ reason: String,
        line: Int,
        text: String,
        reader: any RowReader,
        rejects: OutputSink?,
        _ summary: inout Summary,
        _ options: Options
    ) throws(CastleError) {
        summary.rejected += 1
        let message = "\(reader.source.name):\(line): \(reason)"
        if summary.firstError == nil { summary.firstError = message }
        if let rejects {
            try rejects.write("{\"line\":\(line),\"reason\":")
            try rejects.write(jsonStringLiteral(Array(reason.utf8)))
            try rejects.write(",\"input\":")
            try rejects.write(jsonStringLiteral(Array(text.utf8)))
            try rejects.write("}\n")
        }
        if summary.rejected > options.maxErrors {
            throw CastleError(
                .dataError,
                "\(message); \(summary.rejected) bad \(summary.rejected == 1 ? "row" : "rows"), more than --max-errors \(options.maxErrors): \(options.commitEvery == nil ? "nothing was ingested" : "the open transaction was rolled back")"
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
