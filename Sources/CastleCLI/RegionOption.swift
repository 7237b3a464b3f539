import ArgumentParser
import CastleSupport
import Storage

/// `--region NAME`, which every subcommand takes (docs/cli.md): the region the command acts for. The
/// default is `$CASTLE_REGION`, else `local`. `castle migrate up` records it in a store that has none;
/// `castle snapshot create` writes the store's region into the manifest (and refuses a --region that
/// differs from the store's); `castle snapshot restore` records it in the target.
struct RegionOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The region this command acts for: letters, digits, - _ . (default: $CASTLE_REGION, else local).",
            valueName: "name"
        )
    )
    var region: String?

    func validate() throws {
        if let region, !isValidRegionName(region) {
            throw ValidationError("--region '\(region)' is not a region name: 1 to 64 letters, digits, -, _ or .")
        }
        if region == nil, let fromEnvironment = Self.environmentRegion, !isValidRegionName(fromEnvironment) {
            throw ValidationError(
                "CASTLE_REGION='\(fromEnvironment)' is not a region name: 1 to 64 letters, digits, -, _ or ."
            )
        }
    }

    private static var environmentRegion: String? {
        environment()["CASTLE_REGION"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The region: `--region`, else `$CASTLE_REGION`, else `local`.
    var name: String { region ?? Self.environmentRegion ?? "local" }

    /// Whether the user named a region (by option or environment) rather than taking the default.
    var isGiven: Bool { region != nil || Self.environmentRegion != nil }

    /// Records the region in a store that has none; refuses a named region that differs from the store's.
    func record(in backend: any Backend) async throws(CastleError) {
        guard let store = backend as? any TableStore else { return }
        if let stored = try await store.storedRegion() {
            if isGiven && stored != name {
                throw CastleError(.usage, "\(backend.displayURL) is region \(stored), not \(name)")
            }
            return
        }
        try await store.recordRegion(name)
    }
}
