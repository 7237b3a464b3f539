import ArgumentParser
import CastleSupport
import Pipeline
import Storage
import Streams

struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Show the queue: its depth, and the dead letters as NDJSON on stdout.",
        discussion: """
            Prints one line a dead letter — {"id":…,"source":…,"line":…,"attempts":…,"error":…,"body":…} —
            and a summary with the depth (messages not yet acknowledged) on stderr. Exits 0.

            Examples:
              castle queue
              castle queue --store postgres://castle@db:5432/castle --partition 0/2
            """
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(help: ArgumentHelp("Queue URL (default: the store).", valueName: "url"))
    var queue: String?

    @Option(help: ArgumentHelp("Count only partition K/N.", valueName: "k/n"))
    var partition: String?

    func run() async throws {
        try await runAsyncJob("queue") { () async throws(CastleError) in
            let backend = try await Backends.open(queue ?? storeOptions.storeURL)
            var selected: Partition?
            if let partition {
                guard let parsed = Partition(parsing: partition) else {
                    throw CastleError(.usage, "--partition must be K/N with 0 ≤ K < N; got '\(partition)'")
                }
                selected = parsed
            }
            let depth = try await backend.depth(partition: selected)
            let dead = try await backend.deadLetters()
            let sink = try OutputSink(path: nil)
            for letter in dead { try letter.write(to: sink) }
            try sink.commit()
            writeStandardError("castle queue: \(backend.displayURL): depth \(depth), \(dead.count) dead letters\n")
            await backend.close()
        }
    }
}
