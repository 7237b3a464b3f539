import ArgumentParser
import Streams

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
        // An interrupted run leaves no temporary output behind.
        TemporaryFiles.removeOnSignals()
        Backends.registerPlugins()
        await Castle.main()
    }
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
