import ArgumentParser
import Formats

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@main
enum Entry {
    static func main() async {
        // A closed stdout (`| head`) must surface as EPIPE, which castle turns into a quiet exit 0,
        // rather than kill the process with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        Backends.registerPlugins()
        do {
            var command = try await Castle.asyncParseAsRoot()
            // The stop signals (SIGINT, SIGTERM, SIGHUP) have one owner per process, chosen here before
            // anything runs, so nothing depends on which handler was installed last: a service (the durable
            // worker) stops gracefully through swift-service-lifecycle; every other command is a batch job,
            // which removes its temporary outputs and exits 128 + the signal.
            if !stopsGracefully(command) { TemporaryFiles.removeOnSignals() }
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            Castle.exit(withError: error)
        }
    }
}

/// A command that runs as a service when `stopsGracefully` is true: a signal asks it to finish the work in
/// hand and stop, rather than ending the process.
protocol StopsGracefully {
    var stopsGracefully: Bool { get }
}

/// Whether `command` runs as a service (``StopsGracefully``). Outside the main actor, so that the cast
/// finds only the nonisolated conformance.
nonisolated func stopsGracefully(_ command: any ParsableCommand) -> Bool {
    (command as? any StopsGracefully)?.stopsGracefully == true
}

struct Castle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "castle",
        abstract: "A command-line toolkit for exchange workloads.",
        discussion: """
            Data goes to stdout (or -o FILE), logs, progress and summaries to stderr. Exit codes follow
            sysexits: 0 ok, 64 usage, 65 bad input data, 66 input not readable, 69 store unreachable,
            73 output not creatable, 74 I/O error, 75 try again (a lock held elsewhere), 78 the store's
            schema needs `castle migrate`.

            Examples:
              castle generate orders --seed 7 --count 100000 -o day.ndjson
              castle match -i day.ndjson --instruments datasets/instruments.ndjson -o events.ndjson
              castle bench match --messages 2000000
            """,
        subcommands: [
            MatchCommand.self, ReplayCommand.self, IngestCommand.self, MigrateCommand.self, EventsCommand.self,
            QueueCommand.self,
            GenerateCommand.self, BenchCommand.self,
        ]
    )
}
