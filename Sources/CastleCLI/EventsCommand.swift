import ArgumentParser
import Formats
import Storage

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the durable matcher's event log from the store as the contract's NDJSON, in seq order.",
        discussion: """
            What `castle match --queue … --store …` wrote, byte for byte as `castle match` would have
            printed it for the same stream. Each partition (--partition K/N of the worker) has its own log.

            Examples:
              castle events > events.ndjson
              castle events --store postgres://castle@db:5432/castle --from-seq 1000001 | grep '"trade"'
            """
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(name: .customLong("from-seq"), help: ArgumentHelp("First seq to print.", valueName: "n"))
    var fromSeq: Int64 = 1

    @Option(help: ArgumentHelp("The worker partition, K/N (default: the only one there is).", valueName: "k/n"))
    var partition: String?

    @Option(name: [.short, .long], help: ArgumentHelp("Write here instead of stdout.", valueName: "file"))
    var output: String?

    func run() async throws {
        try await runAsyncJob("events") { () async throws(CastleError) in
            try await Backends.with(storeOptions.storeURL) { (backend) throws(CastleError) in
                try await write(backend)
            }
        }
    }

    /// The partition's events, to `--output` or stdout.
    func write(_ backend: any Backend) async throws(CastleError) {
        let consumer: String
        if let partition {
            guard let parsed = Partition(parsing: partition) else {
                throw CastleError(.usage, "--partition must be K/N with 0 ≤ K < N; got '\(partition)'")
            }
            consumer = "match:\(parsed)"
        } else {
            let consumers = try await backend.eventConsumers()
            if consumers.count > 1 {
                let names = consumers.map { String($0.dropFirst("match:".count)) }.joined(separator: ", ")
                throw CastleError(
                    .usage,
                    "\(backend.displayURL) has several partitions (\(names)): pick one with --partition"
                )
            }
            consumer = consumers.first ?? "match:0/1"
        }
        let sink = try OutputSink(path: output)
        do throws(CastleError) {
            var from = fromSeq
            while true {
                let segments = try await backend.readEvents(consumer: consumer, fromSeq: from, limit: 256)
                guard let last = segments.last else { break }
                for segment in segments {
                    if segment.firstSeq >= fromSeq {
                        try sink.write(segment.body)
                    } else {
                        try Self.writeLines(of: segment, from: fromSeq, to: sink)
                    }
                }
                from = last.lastSeq + 1
            }
            try sink.commit()
        } catch {
            sink.abort()
            throw error
        }
    }

    /// The lines of a segment whose seq is at least `from` (lines are `{"seq":N,…`).
    static func writeLines(of segment: EventSegment, from: Int64, to sink: OutputSink) throws(CastleError) {
        var seq = segment.firstSeq
        var start = 0
        for index in segment.body.indices where segment.body[index] == UInt8(ascii: "\n") {
            if seq >= from { try sink.write(segment.body[start...index]) }
            seq += 1
            start = index + 1
        }
    }
}
