import ArgumentParser
import CastleSupport
import Pipeline
import Storage
import Streams

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
            let backend = try await Backends.open(storeOptions.storeURL)
            let consumer: String
            if let partition {
                guard let parsed = Partition(parsing: partition) else {
                    throw CastleError(.usage, "--partition must be K/N with 0 ≤ K < N; got '\(partition)'")
                }
                consumer = EventLog.consumer(of: parsed)
            } else {
                consumer = try await EventLog.onlyConsumer(of: backend)
            }
            let sink = try OutputSink(path: output)
            do throws(CastleError) {
                try await EventLog.write(consumer: consumer, fromSeq: fromSeq, of: backend, to: sink)
                try sink.commit()
            } catch {
                sink.abort()
                throw error
            }
            await backend.close()
        }
    }
}
