import ArgumentParser
import CastleSupport
import Pipeline
import Storage
import Streams

struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Show the queue: its depth, and the dead letters as NDJSON on stdout.",
        usage: "castle queue [<options>]",
        discussion: """
            Prints one line a dead letter — {"id":…,"source":…,"line":…,"attempts":…,"error":…,"body":…} — on stdout, and a summary with the depth (messages not yet acknowledged) on stderr. The queue lives in the store's backend: --queue and --store, when both are given, must be the same URL. Exits 0.

            Examples:
              castle queue
              castle queue --store postgres://castle@db:5432/castle --partition 0/2
            """
    )

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var regionOption: RegionOption

    @Option(help: ArgumentHelp("Queue URL, the store's backend (default: the store).", valueName: "url"))
    var queue: String?

    @Option(help: ArgumentHelp("Count only partition K/N, \(partitionHelpText).", valueName: "k/n"))
    var partition: Partition?

    @Option(
        name: [.short, .long],
        help: ArgumentHelp("Write the dead letters here instead of stdout.", valueName: "file")
    )
    var output: String?

    @OptionGroup var quietOption: QuietOption

    func validate() throws {
        if let queue, let store = storeOptions.store, queue != store {
            throw ValidationError(
                "--queue and --store must name the same backend: the queue lives in the store ('\(queue)' is not '\(store)')"
            )
        }
    }

    func run() async throws {
        try await runAsyncJob("queue") { () async throws(CastleError) in
            try await Backends.with(queue ?? storeOptions.storeURL) { (backend) throws(CastleError) in
                let depth = try await backend.depth(partition: partition)
                let dead = try await backend.deadLetters()
                let sink = try OutputSink(path: output)
                for letter in dead { try letter.write(to: sink) }
                try sink.commit()
                if !quietOption.quiet {
                    writeStandardError(
                        "castle queue: \(backend.displayURL): depth \(depth), \(dead.count) dead letters\n"
                    )
                }
            }
        }
    }
}
