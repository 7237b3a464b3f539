import ArgumentParser
import CastleSupport
import Pipeline
import Storage
import Streams

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the durable matcher's event log from the store as the contract's NDJSON, in seq order.",
        usage: "castle events [<options>]",
        discussion: """
            What the durable worker (`castle match --queue …`) wrote, byte for byte as `castle match` would have printed it for the same stream. Each partition (--partition K/N of the worker) has its own log.

            Examples:
              castle events > events.ndjson
              castle events --store postgres://castle@db/castle --from-seq 1000001
            """
    )

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var regionOption: RegionOption

    @Option(name: .customLong("from-seq"), help: ArgumentHelp("First seq to print.", valueName: "n"))
    var fromSeq: Int64 = 1

    @Option(
        help: ArgumentHelp("The log of partition K/N, \(partitionHelpText) (default: the only one).", valueName: "k/n")
    )
    var partition: Partition?

    @Option(name: [.short, .long], help: ArgumentHelp("Write here instead of stdout.", valueName: "file"))
    var output: String?

    func run() async throws {
        try await runAsyncJob("events") { () async throws(CastleError) in
            try await Backends.with(storeOptions.storeURL) { (backend) throws(CastleError) in
                let consumer: String
                if let partition {
                    consumer = EventLog.consumer(of: partition)
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
            }
        }
    }
}
