// Typed option values (docs/cli.md): ArgumentParser parses and checks them before anything runs, lists
// the valid values in --help and in the usage error, and completes them in the shells. The conformances
// are public because the types are; hence the public imports.
public import ArgumentParser
import CastleCore
public import Pipeline
public import Reconcile
public import Replay
public import Reports
public import Server
public import Snapshot
public import Storage

/// `--partition K/N`, one parser and one message for every subcommand that takes it.
extension Partition: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// The help of `--partition`, which ArgumentParser repeats under a value it cannot parse.
let partitionHelpText = "the symbols whose hash is K modulo N, 0 ≤ K < N ≤ 1024"

extension Ingest.Format: ExpressibleByArgument {}
extension SourceFormat: ExpressibleByArgument {}
extension ReportFormat: ExpressibleByArgument {}
extension ServeOptions.Matcher: ExpressibleByArgument {}
extension ServeOptions.LogFormat: ExpressibleByArgument {}
extension ReplayJob.InputFormat: ExpressibleByArgument {}
extension ReplayJob.Mode: ExpressibleByArgument {}
extension SnapshotCompression: ExpressibleByArgument {}

extension ReplayFormat: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "ndjson": self = .ndjson
        case "csv": self = .csv
        default: return nil
        }
    }
    public static var allValueStrings: [String] { ["ndjson", "csv"] }
    public var defaultValueDescription: String { self == .csv ? "csv" : "ndjson" }
}

/// `--stp`: the self-trade prevention modes by their contract names.
enum STPChoice: String, CaseIterable, ExpressibleByArgument {
    case cancel_taker, cancel_maker, cancel_both, none

    var mode: STPMode {
        switch self {
        case .cancel_taker: .cancelTaker
        case .cancel_maker: .cancelMaker
        case .cancel_both: .cancelBoth
        case .none: .none
        }
    }
}
