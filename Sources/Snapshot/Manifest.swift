import CastleSupport
public import Storage

/// `manifest.json` (docs/snapshots.md, spec/snapshot.md): what the archive holds and how to check it.
public struct SnapshotManifest: Sendable, Equatable {
    public static let format = "castle-snapshot/1"
    public static let formatVersion = 1

    public struct Table: Sendable, Equatable {
        public var name: String
        /// `tables/NAME.ndjson`.
        public var file: String
        public var encoding: String
        public var columns: [TableColumn]
        public var rows: Int64
        /// Of the member as stored (uncompressed).
        public var bytes: Int64
        public var sha256: String

        public static func file(for name: String) -> String { "tables/\(name).ndjson" }
    }

    /// Where one matcher consumer stood: its queue offset, last event seq, and a hash of its resting orders.
    public struct Matcher: Sendable, Equatable {
        public var consumer: String
        /// `K/N`, from the consumer's name (`match:K/N`).
        public var partition: String
        public var offset: Int64
        public var lastSeq: Int64
        public var bookSha256: String

        /// For messages: where the consumer stands.
        var summary: String { "\(consumer) at offset \(offset), seq \(lastSeq), book \(bookSha256.prefix(12))" }
    }

    /// What a residency policy did to the rows.
    public struct Residency: Sendable, Equatable {
        public var policy: String
        /// `table.column` (or `table.column.member` for a field inside a JSON body).
        public var dropped: [String]
        public var pseudonymised: [String]
    }

    public var castleVersion: String
    public var schemaVersion: Int
    public var region: String
    /// RFC 3339, UTC, seconds.
    public var createdAt: String
    public var sourceBackend: String
    public var residency: Residency?
    public var tables: [Table]
    public var matcher: [Matcher]

    // MARK: JSON

    var json: JSON {
        .object([
            ("format", .string(Self.format)),
            ("castle_version", .string(castleVersion)),
            ("schema_version", .number(String(schemaVersion))),
            ("region", .string(region)),
            ("created_at", .string(createdAt)),
            ("source_backend", .string(sourceBackend)),
            (
                "residency",
                residency.map { residency in
                    .object([
                        ("policy", .string(residency.policy)),
                        ("dropped", .array(residency.dropped.map(JSON.string))),
                        ("pseudonymised", .array(residency.pseudonymised.map(JSON.string))),
                    ])
                } ?? .null
            ),
            (
                "tables",
                .array(
                    tables.map { table in
                        .object([
                            ("name", .string(table.name)),
                            ("file", .string(table.file)),
                            ("encoding", .string(table.encoding)),
                            (
                                "columns",
                                .array(
                                    table.columns.map {
                                        .object([("name", .string($0.name)), ("type", .string($0.type.rawValue))])
                                    }
                                )
                            ),
                            ("rows", .number(String(table.rows))),
                            ("bytes", .number(String(table.bytes))),
                            ("sha256", .string(table.sha256)),
                        ])
                    }
                )
            ),
            (
                "matcher",
                .array(
                    matcher.map { entry in
                        .object([
                            ("consumer", .string(entry.consumer)),
                            ("partition", .string(entry.partition)),
                            ("offset", .number(String(entry.offset))),
                            ("last_seq", .number(String(entry.lastSeq))),
                            ("book_sha256", .string(entry.bookSha256)),
                        ])
                    }
                )
            ),
        ])
    }

    /// The bytes of `manifest.json`.
    public var bytes: [UInt8] { Array(json.prettyText.utf8) }

    /// The compact JSON of `castle snapshot inspect --json`.
    public var compactText: String { json.text }

    /// Parses and checks `manifest.json`; `problem` gets the reason for exit 65.
    public init(parsing bytes: [UInt8]) throws(ManifestError) {
        let json: JSON
        do throws(JSON.SyntaxError) {
            json = try JSON.parse(bytes, limits: .snapshotDocument)
        } catch {
            throw ManifestError("not JSON (\(error))")
        }
        guard case .object = json else { throw ManifestError("not a JSON object") }
        guard let format = json["format"]?.string else { throw ManifestError("no \"format\"") }
        if format != Self.format {
            if format.hasPrefix("castle-snapshot/"), let version = Int(format.dropFirst("castle-snapshot/".count)),
                version > Self.formatVersion
            {
                throw ManifestError(
                    "format \(format) is newer than this castle reads (castle-snapshot/\(Self.formatVersion)); use a newer castle"
                )
            }
            throw ManifestError("unknown format \"\(format)\"")
        }
        func string(_ key: String, in object: JSON = json) throws(ManifestError) -> String {
            guard let value = object[key]?.string else { throw ManifestError("\"\(key)\" is missing or not a string") }
            return value
        }
        func integer(_ key: String, in object: JSON = json) throws(ManifestError) -> Int64 {
            guard let value = object[key]?.int64, value >= 0 else {
                throw ManifestError("\"\(key)\" is missing or not a non-negative integer")
            }
            return value
        }
        castleVersion = try string("castle_version")
        let version = try integer("schema_version")
        guard version <= Int64(Int32.max) else { throw ManifestError("\"schema_version\" is out of range") }
        schemaVersion = Int(version)
        region = try string("region")
        guard isValidRegionName(region) else { throw ManifestError("region \"\(region)\" is not a region name") }
        createdAt = try string("created_at")
        sourceBackend = try string("source_backend")
        switch json["residency"] {
        case nil, .null?:
            residency = nil
        case .object?:
            let object = json["residency"]!
            func names(_ key: String) throws(ManifestError) -> [String] {
                guard let values = object[key]?.array else {
                    throw ManifestError("residency \"\(key)\" is not an array")
                }
                var result: [String] = []
                for value in values {
                    guard let text = value.string else {
                        throw ManifestError("residency \"\(key)\" holds a non-string")
                    }
                    result.append(text)
                }
                return result
            }
            residency = Residency(
                policy: try string("policy", in: object),
                dropped: try names("dropped"),
                pseudonymised: try names("pseudonymised")
            )
        default:
            throw ManifestError("\"residency\" is neither null nor an object")
        }
        guard let tableValues = json["tables"]?.array else {
            throw ManifestError("\"tables\" is missing or not an array")
        }
        var tables: [Table] = []
        for value in tableValues {
            let name = try string("name", in: value)
            guard Self.isTableName(name) else {
                throw ManifestError("table name \"\(name)\" is not a plain identifier")
            }
            guard !tables.contains(where: { $0.name == name }) else {
                throw ManifestError("table \(name) is listed twice")
            }
            let file = try string("file", in: value)
            guard file == Table.file(for: name) else {
                throw ManifestError("table \(name) names file \"\(file)\", not \(Table.file(for: name))")
            }
            let encoding = try string("encoding", in: value)
            guard encoding == "ndjson" else {
                throw ManifestError("table \(name) has encoding \"\(encoding)\", not ndjson")
            }
            guard let columnValues = value["columns"]?.array, !columnValues.isEmpty else {
                throw ManifestError("table \(name) lists no columns")
            }
            var columns: [TableColumn] = []
            for column in columnValues {
                let columnName = try string("name", in: column)
                guard Self.isTableName(columnName), !columns.contains(where: { $0.name == columnName }) else {
                    throw ManifestError("table \(name): column \"\(columnName)\" is not a plain identifier or repeats")
                }
                guard let type = ColumnType(rawValue: try string("type", in: column)) else {
                    throw ManifestError("table \(name): column \(columnName) has an unknown type")
                }
                columns.append(TableColumn(name: columnName, type: type))
            }
            let sha256 = try string("sha256", in: value)
            guard Self.isHexDigest(sha256) else {
                throw ManifestError("table \(name): sha256 is not 64 lowercase hex digits")
            }
            tables.append(
                Table(
                    name: name,
                    file: file,
                    encoding: encoding,
                    columns: columns,
                    rows: try integer("rows", in: value),
                    bytes: try integer("bytes", in: value),
                    sha256: sha256
                )
            )
        }
        self.tables = tables
        guard let matcherValues = json["matcher"]?.array else {
            throw ManifestError("\"matcher\" is missing or not an array")
        }
        var matcher: [Matcher] = []
        for value in matcherValues {
            let book = try string("book_sha256", in: value)
            guard Self.isHexDigest(book) else {
                throw ManifestError("matcher book_sha256 is not 64 lowercase hex digits")
            }
            matcher.append(
                Matcher(
                    consumer: try string("consumer", in: value),
                    partition: try string("partition", in: value),
                    offset: try integer("offset", in: value),
                    lastSeq: try integer("last_seq", in: value),
                    bookSha256: book
                )
            )
        }
        self.matcher = matcher
    }

    public init(
        castleVersion: String,
        schemaVersion: Int,
        region: String,
        createdAt: String,
        sourceBackend: String,
        residency: Residency?,
        tables: [Table],
        matcher: [Matcher]
    ) {
        self.castleVersion = castleVersion
        self.schemaVersion = schemaVersion
        self.region = region
        self.createdAt = createdAt
        self.sourceBackend = sourceBackend
        self.residency = residency
        self.tables = tables
        self.matcher = matcher
    }

    static func isTableName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 63
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }
    }

    static func isHexDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

public struct ManifestError: Error, Sendable {
    public var reason: String
    init(_ reason: String) { self.reason = reason }
}

extension JSON.Limits {
    /// A manifest or a residency policy: small documents, read whole.
    static let snapshotDocument = JSON.Limits(bytes_max: 1 << 24, depth_max: 16, elements_max: 1 << 16)
}
