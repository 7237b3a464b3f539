import ArgumentParser
import Streams

#if canImport(Glibc)
import Glibc
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
    // Paragraphs are single lines: ArgumentParser wraps them to the terminal ($COLUMNS, else 80).
    // Examples stay on lines of their own, short enough not to wrap at 80 columns.
    static let configuration = CommandConfiguration(
        commandName: "castle",
        abstract: "A command-line toolkit for exchange workloads.",
        discussion: """
            Every subcommand follows one grammar (docs/cli.md): the one input is a FILE argument (- or none: stdin; -i FILE is a synonym), data goes to stdout or -o FILE, progress, summaries and errors go to stderr, and --store, --queue, --format, -q, --from/--to mean the same everywhere. The default store is $CASTLE_STORE, else sqlite://castle.db.

            Exit codes (sysexits):
              0   success
              1   an unexpected error castle did not classify (please report it)
              10  migrate status/verify: migrations are pending
              11  migrate status/verify: the database is newer than this castle
              12  migrate status/verify: an applied migration was changed
              64  usage: a bad option, value or combination
              65  bad input data
              66  the input cannot be read, no such dataset, or no store yet
              69  the store or queue is unreachable
              70  internal error (a bug in castle)
              73  an output file cannot be created
              74  I/O error, or a store failure castle does not classify
              75  try again: a lock held elsewhere, a partition lost to another
              78  the store's schema needs `castle migrate` (or a table is missing)
              130 interrupted by SIGINT (143: SIGTERM), temporary output removed;
                  the durable worker instead finishes its batch and exits 0

            Examples:
              castle generate orders --seed 7 --count 100000 -o day.ndjson
              castle match day.ndjson -o events.ndjson
              castle generate orders --count 1000 | castle match - -q
              castle bench match --messages 2000000
              castle --generate-completion-script bash
            """,
        version: BuildInfo.versionLine,
        subcommands: [
            MatchCommand.self, ReplayCommand.self, IngestCommand.self, MigrateCommand.self, EventsCommand.self,
            QueueCommand.self, LedgerCommand.self, ReconcileCommand.self, SnapshotCommand.self, GenerateCommand.self,
            BenchCommand.self, ServeCommand.self,
        ]
    )
}
