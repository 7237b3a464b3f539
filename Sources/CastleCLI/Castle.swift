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
        // An interrupted run leaves no temporary output behind.
        TemporaryFiles.removeOnSignals()
        Backends.registerPlugins()
        await Castle.main()
    }
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
              66  the input cannot be read, or no such dataset
              69  the store or queue is unreachable
              70  internal error
              73  an output file cannot be created
              74  I/O error
              75  try again: a lock is held elsewhere
              78  the store's schema needs `castle migrate`
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
            QueueCommand.self, GenerateCommand.self, BenchCommand.self,
        ]
    )
}
