/// The schema as versioned SQL, one list per dialect, embedded in the binary. Each migration has a
/// file-like name for messages; its checksum is the SHA-256 of its `up` SQL. Never edit an applied
/// migration: add a new one (``Migrator`` refuses a database whose applied checksums changed).
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    /// Statements, run in order inside one transaction.
    public var up: [String]
    public var down: [String]

    public var checksum: String { sha256Hex(up.joined(separator: ";\n") + ";\n") }

    public init(version: Int, name: String, up: [String], down: [String]) {
        self.version = version
        self.name = name
        self.up = up
        self.down = down
    }
}

extension Migration {
    /// The migration that made `castle_region`, where a store records its region.
    public static let regionVersion = 7

    public static func all(for dialect: SQLDialect) -> [Migration] {
        switch dialect {
        case .sqlite: sqlite
        case .postgres: postgres
        }
    }

    static let sqlite: [Migration] = [
        Migration(
            version: 1,
            name: "0001_datasets_and_queue.sqlite.sql",
            up: [
                """
                CREATE TABLE dataset_orders (
                    dataset TEXT NOT NULL, line INTEGER NOT NULL, symbol TEXT NOT NULL, body TEXT NOT NULL,
                    PRIMARY KEY (dataset, line)) WITHOUT ROWID
                """,
                """
                CREATE TABLE queue_messages (
                    id INTEGER PRIMARY KEY, source TEXT NOT NULL, line INTEGER NOT NULL,
                    symbol TEXT NOT NULL, shard INTEGER NOT NULL, body TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0, lease_until INTEGER NOT NULL DEFAULT 0,
                    state INTEGER NOT NULL DEFAULT 0, last_error TEXT,
                    UNIQUE (source, line))
                """,
                "CREATE INDEX queue_messages_pending ON queue_messages (id) WHERE state = 0",
                """
                CREATE TABLE dead_letters (
                    id INTEGER PRIMARY KEY, source TEXT NOT NULL, line INTEGER NOT NULL, body TEXT NOT NULL,
                    attempts INTEGER NOT NULL, error TEXT NOT NULL)
                """,
            ],
            down: ["DROP TABLE dead_letters", "DROP TABLE queue_messages", "DROP TABLE dataset_orders"]
        ),
        Migration(
            version: 2,
            name: "0002_matcher.sqlite.sql",
            up: [
                """
                CREATE TABLE consumer_offsets (
                    consumer TEXT PRIMARY KEY, applied_offset INTEGER NOT NULL, last_seq INTEGER NOT NULL)
                """,
                """
                CREATE TABLE match_events (
                    consumer TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                    body BLOB NOT NULL, PRIMARY KEY (consumer, first_seq)) WITHOUT ROWID
                """,
                """
                CREATE TABLE trades (
                    consumer TEXT NOT NULL, seq INTEGER NOT NULL, symbol TEXT NOT NULL,
                    price INTEGER NOT NULL, qty INTEGER NOT NULL, maker INTEGER NOT NULL,
                    taker INTEGER NOT NULL, side TEXT NOT NULL, ts INTEGER,
                    PRIMARY KEY (consumer, seq)) WITHOUT ROWID
                """,
                """
                CREATE TABLE resting_orders (
                    consumer TEXT NOT NULL, id INTEGER NOT NULL, symbol TEXT NOT NULL, side INTEGER NOT NULL,
                    price INTEGER NOT NULL, qty INTEGER NOT NULL, account TEXT NOT NULL,
                    post_only INTEGER NOT NULL, stp INTEGER NOT NULL, priority INTEGER NOT NULL,
                    PRIMARY KEY (consumer, id)) WITHOUT ROWID
                """,
            ],
            down: [
                "DROP TABLE resting_orders", "DROP TABLE trades", "DROP TABLE match_events",
                "DROP TABLE consumer_offsets",
            ]
        ),
        Migration(
            version: 3,
            name: "0003_queue_cursors.sqlite.sql",
            up: [
                """
                CREATE TABLE queue_cursors (
                    part_index INTEGER NOT NULL, part_count INTEGER NOT NULL,
                    through INTEGER NOT NULL, in_flight INTEGER NOT NULL,
                    PRIMARY KEY (part_index, part_count))
                """
            ],
            down: ["DROP TABLE queue_cursors"]
        ),
        Migration(
            version: 4,
            name: "0004_no_pending_index.sqlite.sql",
            // The owner reads its partition after its offset along the rowid; nothing reads this index,
            // and every enqueued message paid a third B-tree entry for it.
            up: ["DROP INDEX queue_messages_pending"],
            down: ["CREATE INDEX queue_messages_pending ON queue_messages (id) WHERE state = 0"]
        ),
        Migration(
            version: 5,
            name: "0005_ledger.sqlite.sql",
            // The ledger (LedgerStore): an entry is one row, its postings one text column
            // (LedgerPostingsText), so settling a trade is one insert; `seq` is the posting order. The
            // projection, the assets' scales and each settling consumer's watermark beside it. Trades gain
            // the accounts of their orders, which settlement books them to.
            up: [
                """
                CREATE TABLE ledger_entries (
                    seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, ts INTEGER NOT NULL,
                    ref TEXT, reverses TEXT, memo TEXT, postings TEXT NOT NULL, content_hash BLOB NOT NULL,
                    posted_at INTEGER NOT NULL)
                """,
                "CREATE INDEX ledger_entries_ts ON ledger_entries (ts)",
                "CREATE INDEX ledger_entries_ref ON ledger_entries (ref) WHERE ref IS NOT NULL",
                "CREATE UNIQUE INDEX ledger_entries_reverses ON ledger_entries (reverses) WHERE reverses IS NOT NULL",
                "CREATE TABLE ledger_assets (code TEXT PRIMARY KEY, scale INTEGER NOT NULL) WITHOUT ROWID",
                """
                CREATE TABLE ledger_balances (
                    account TEXT NOT NULL, asset TEXT NOT NULL, balance TEXT NOT NULL,
                    PRIMARY KEY (account, asset)) WITHOUT ROWID
                """,
                """
                CREATE TABLE ledger_watermarks (
                    consumer TEXT PRIMARY KEY, through_seq INTEGER NOT NULL) WITHOUT ROWID
                """,
                "ALTER TABLE trades ADD COLUMN maker_account TEXT",
                "ALTER TABLE trades ADD COLUMN taker_account TEXT",
            ],
            down: [
                "ALTER TABLE trades DROP COLUMN taker_account", "ALTER TABLE trades DROP COLUMN maker_account",
                "DROP TABLE ledger_watermarks", "DROP TABLE ledger_balances", "DROP TABLE ledger_assets",
                "DROP TABLE ledger_entries",
            ]
        ),
        Migration(
            version: 6,
            name: "0006_reconcile.sqlite.sql",
            // `castle reconcile`: runs and their results, each source's watermark, resolved breaks.
            up: [
                """
                CREATE TABLE reconcile_runs (
                    run TEXT PRIMARY KEY, window_from INTEGER, window_to INTEGER, breaks INTEGER NOT NULL)
                """,
                """
                CREATE TABLE reconcile_results (
                    run TEXT NOT NULL, seq INTEGER NOT NULL, class TEXT NOT NULL, record TEXT NOT NULL,
                    ndjson TEXT NOT NULL, csv TEXT NOT NULL, PRIMARY KEY (run, seq)) WITHOUT ROWID
                """,
                "CREATE TABLE reconcile_watermarks (source TEXT PRIMARY KEY, through_day INTEGER NOT NULL)",
                """
                CREATE TABLE reconcile_resolutions (
                    record TEXT PRIMARY KEY, run TEXT NOT NULL, note TEXT NOT NULL)
                """,
            ],
            down: [
                "DROP TABLE reconcile_resolutions", "DROP TABLE reconcile_watermarks", "DROP TABLE reconcile_results",
                "DROP TABLE reconcile_runs",
            ]
        ),
        Migration(
            version: 7,
            name: "0007_region.sqlite.sql",
            // The store's region, one row at most: what `castle snapshot create` writes into its manifest.
            up: ["CREATE TABLE castle_region (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL)"],
            down: ["DROP TABLE castle_region"]
        ),
        Migration(
            version: 8,
            name: "0008_client_order_ids.sqlite.sql",
            // `castle serve`'s idempotency keys (ClientOrderStore): a retry finds the order it placed.
            up: [
                """
                CREATE TABLE client_order_ids (
                    account TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id INTEGER NOT NULL,
                    content TEXT NOT NULL, PRIMARY KEY (account, client_order_id)) WITHOUT ROWID
                """,
                "CREATE INDEX client_order_ids_order ON client_order_ids (order_id)",
            ],
            down: ["DROP TABLE client_order_ids"]
        ),
        Migration(
            version: 9,
            name: "0009_reconcile_claims.sqlite.sql",
            // What each reconcile run claimed, per run's days: a later run over other days claims none of it
            // again (a record seen again is a `duplicate` of that run), a rerun of the same days replaces it.
            up: [
                """
                CREATE TABLE reconcile_claims (
                    window_from INTEGER NOT NULL, window_to INTEGER NOT NULL, side SMALLINT NOT NULL,
                    id TEXT NOT NULL, day INTEGER NOT NULL, run TEXT NOT NULL,
                    PRIMARY KEY (window_from, window_to, side, id)) WITHOUT ROWID
                """,
                "CREATE INDEX reconcile_claims_day ON reconcile_claims (day)",
            ],
            down: ["DROP TABLE reconcile_claims"]
        ),
        Migration(
            version: 10,
            name: "0010_order_ids.sqlite.sql",
            // The next line each producer source may reserve (``MessageQueue/reserveLines``): serve's order ids,
            // unique across every server on the store. Bookkeeping of the store (`castle_*`): not in snapshots.
            up: ["CREATE TABLE castle_order_ids (source TEXT PRIMARY KEY, next_line INTEGER NOT NULL) WITHOUT ROWID"],
            down: ["DROP TABLE castle_order_ids"]
        ),
        Migration(
            version: 11,
            name: "0011_trade_blocks.sqlite.sql",
            // Settled trades a block to a row (SettlementBlock): `castle ledger settle` writes one row per
            // batch of trades instead of one entry row each. The block's entries take the posting sequence
            // numbers first_seq to first_seq + entry_count - 1, between those of `ledger_entries`; the
            // body is last, so that reading the other columns leaves its pages alone.
            up: [
                """
                CREATE TABLE ledger_trade_blocks (
                    first_seq INTEGER PRIMARY KEY, consumer TEXT NOT NULL, first_trade_seq INTEGER NOT NULL,
                    last_trade_seq INTEGER NOT NULL, entry_count INTEGER NOT NULL, min_ts INTEGER NOT NULL,
                    max_ts INTEGER NOT NULL, posted_at INTEGER NOT NULL, content_hash BLOB NOT NULL,
                    body BLOB NOT NULL)
                """,
                "CREATE UNIQUE INDEX ledger_trade_blocks_trades ON ledger_trade_blocks (consumer, first_trade_seq)",
            ],
            down: ["DROP TABLE ledger_trade_blocks"]
        ),
        Migration(
            version: 12,
            name: "0012_event_bodies_out_of_the_key.sqlite.sql",
            // match_events as a rowid table: WITHOUT ROWID keeps each whole row, body and all, in the
            // primary key's b-tree, and SQLite reads a cell's whole payload, overflow pages too, to
            // compare it with a key. Every seek of the event log (serve's follower polls it, the matcher
            // appends to it) read the bodies it passed: measured, a poll that found nothing new read
            // 213 MB of a million orders' log. Here the key index holds keys and rowids only, and the
            // body, last in the row, is read only when selected.
            up: [
                """
                CREATE TABLE match_events_by_rowid (
                    consumer TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                    body BLOB NOT NULL, PRIMARY KEY (consumer, first_seq))
                """,
                """
                INSERT INTO match_events_by_rowid (consumer, first_seq, last_seq, body)
                SELECT consumer, first_seq, last_seq, body FROM match_events ORDER BY consumer, first_seq
                """,
                "DROP TABLE match_events",
                "ALTER TABLE match_events_by_rowid RENAME TO match_events",
            ],
            down: [
                """
                CREATE TABLE match_events_without_rowid (
                    consumer TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                    body BLOB NOT NULL, PRIMARY KEY (consumer, first_seq)) WITHOUT ROWID
                """,
                """
                INSERT INTO match_events_without_rowid (consumer, first_seq, last_seq, body)
                SELECT consumer, first_seq, last_seq, body FROM match_events
                """,
                "DROP TABLE match_events",
                "ALTER TABLE match_events_without_rowid RENAME TO match_events",
            ]
        ),
    ]

    static let postgres: [Migration] = [
        Migration(
            version: 1,
            name: "0001_datasets_and_queue.postgres.sql",
            up: [
                """
                CREATE TABLE dataset_orders (
                    dataset TEXT NOT NULL, line BIGINT NOT NULL, symbol TEXT NOT NULL, body TEXT NOT NULL,
                    PRIMARY KEY (dataset, line))
                """,
                """
                CREATE TABLE queue_messages (
                    id BIGSERIAL PRIMARY KEY, source TEXT NOT NULL, line BIGINT NOT NULL,
                    symbol TEXT NOT NULL, shard BIGINT NOT NULL, body TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0, lease_until BIGINT NOT NULL DEFAULT 0,
                    state SMALLINT NOT NULL DEFAULT 0, last_error TEXT,
                    UNIQUE (source, line)) WITH (fillfactor = 40)
                """,
                "CREATE INDEX queue_messages_pending ON queue_messages (id) WHERE state = 0",
                """
                CREATE TABLE dead_letters (
                    id BIGINT PRIMARY KEY, source TEXT NOT NULL, line BIGINT NOT NULL, body TEXT NOT NULL,
                    attempts INTEGER NOT NULL, error TEXT NOT NULL)
                """,
            ],
            down: ["DROP TABLE dead_letters", "DROP TABLE queue_messages", "DROP TABLE dataset_orders"]
        ),
        Migration(
            version: 2,
            name: "0002_matcher.postgres.sql",
            up: [
                """
                CREATE TABLE consumer_offsets (
                    consumer TEXT PRIMARY KEY, applied_offset BIGINT NOT NULL, last_seq BIGINT NOT NULL)
                """,
                """
                CREATE TABLE match_events (
                    consumer TEXT NOT NULL, first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL,
                    body BYTEA NOT NULL, PRIMARY KEY (consumer, first_seq))
                """,
                """
                CREATE TABLE trades (
                    consumer TEXT NOT NULL, seq BIGINT NOT NULL, symbol TEXT NOT NULL,
                    price BIGINT NOT NULL, qty BIGINT NOT NULL, maker BIGINT NOT NULL,
                    taker BIGINT NOT NULL, side TEXT NOT NULL, ts BIGINT,
                    PRIMARY KEY (consumer, seq))
                """,
                """
                CREATE TABLE resting_orders (
                    consumer TEXT NOT NULL, id BIGINT NOT NULL, symbol TEXT NOT NULL, side SMALLINT NOT NULL,
                    price BIGINT NOT NULL, qty BIGINT NOT NULL, account TEXT NOT NULL,
                    post_only BOOLEAN NOT NULL, stp SMALLINT NOT NULL, priority BIGINT NOT NULL,
                    PRIMARY KEY (consumer, id))
                """,
            ],
            down: [
                "DROP TABLE resting_orders", "DROP TABLE trades", "DROP TABLE match_events",
                "DROP TABLE consumer_offsets",
            ]
        ),
        Migration(
            version: 3,
            name: "0003_queue_cursors.postgres.sql",
            up: [
                """
                CREATE TABLE queue_cursors (
                    part_index INTEGER NOT NULL, part_count INTEGER NOT NULL,
                    through BIGINT NOT NULL, in_flight BIGINT NOT NULL,
                    PRIMARY KEY (part_index, part_count))
                """
            ],
            down: ["DROP TABLE queue_cursors"]
        ),
        Migration(
            version: 4,
            name: "0004_no_pending_index.postgres.sql",
            // The owner reads its partition after its offset along the primary key; nothing reads this
            // index since the leased receive is gone, and every enqueued message paid an entry in it.
            up: ["DROP INDEX queue_messages_pending"],
            down: ["CREATE INDEX queue_messages_pending ON queue_messages (id) WHERE state = 0"]
        ),
        Migration(
            version: 5,
            name: "0005_ledger.postgres.sql",
            // As 0005 on SQLite. `seq` is given under the ledger's transaction-level advisory lock, which
            // serialises posts, so it is dense and in commit order; balances are NUMERIC (sums of Int64s).
            up: [
                """
                CREATE TABLE ledger_entries (
                    seq BIGINT PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, ts BIGINT NOT NULL,
                    ref TEXT, reverses TEXT, memo TEXT, postings TEXT NOT NULL, content_hash BYTEA NOT NULL,
                    posted_at BIGINT NOT NULL)
                """,
                "CREATE INDEX ledger_entries_ts ON ledger_entries (ts)",
                "CREATE INDEX ledger_entries_ref ON ledger_entries (ref) WHERE ref IS NOT NULL",
                "CREATE UNIQUE INDEX ledger_entries_reverses ON ledger_entries (reverses) WHERE reverses IS NOT NULL",
                "CREATE TABLE ledger_assets (code TEXT PRIMARY KEY, scale SMALLINT NOT NULL)",
                """
                CREATE TABLE ledger_balances (
                    account TEXT NOT NULL, asset TEXT NOT NULL, balance NUMERIC(39, 0) NOT NULL,
                    PRIMARY KEY (account, asset))
                """,
                "CREATE TABLE ledger_watermarks (consumer TEXT PRIMARY KEY, through_seq BIGINT NOT NULL)",
                "ALTER TABLE trades ADD COLUMN maker_account TEXT, ADD COLUMN taker_account TEXT",
            ],
            down: [
                "ALTER TABLE trades DROP COLUMN taker_account, DROP COLUMN maker_account",
                "DROP TABLE ledger_watermarks", "DROP TABLE ledger_balances", "DROP TABLE ledger_assets",
                "DROP TABLE ledger_entries",
            ]
        ),
        Migration(
            version: 6,
            name: "0006_reconcile.postgres.sql",
            // `castle reconcile`: runs and their results, each source's watermark, resolved breaks.
            up: [
                """
                CREATE TABLE reconcile_runs (
                    run TEXT PRIMARY KEY, window_from INTEGER, window_to INTEGER, breaks BIGINT NOT NULL)
                """,
                """
                CREATE TABLE reconcile_results (
                    run TEXT NOT NULL, seq BIGINT NOT NULL, class TEXT NOT NULL, record TEXT NOT NULL,
                    ndjson TEXT NOT NULL, csv TEXT NOT NULL, PRIMARY KEY (run, seq))
                """,
                "CREATE TABLE reconcile_watermarks (source TEXT PRIMARY KEY, through_day INTEGER NOT NULL)",
                """
                CREATE TABLE reconcile_resolutions (
                    record TEXT PRIMARY KEY, run TEXT NOT NULL, note TEXT NOT NULL)
                """,
            ],
            down: [
                "DROP TABLE reconcile_resolutions", "DROP TABLE reconcile_watermarks", "DROP TABLE reconcile_results",
                "DROP TABLE reconcile_runs",
            ]
        ),
        Migration(
            version: 7,
            name: "0007_region.postgres.sql",
            // The store's region, one row at most: what `castle snapshot create` writes into its manifest.
            up: ["CREATE TABLE castle_region (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL)"],
            down: ["DROP TABLE castle_region"]
        ),
        Migration(
            version: 8,
            name: "0008_client_order_ids.postgres.sql",
            // `castle serve`'s idempotency keys (ClientOrderStore): a retry finds the order it placed.
            up: [
                """
                CREATE TABLE client_order_ids (
                    account TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id BIGINT NOT NULL,
                    content TEXT NOT NULL, PRIMARY KEY (account, client_order_id))
                """,
                "CREATE INDEX client_order_ids_order ON client_order_ids (order_id)",
            ],
            down: ["DROP TABLE client_order_ids"]
        ),
        Migration(
            version: 9,
            name: "0009_reconcile_claims.postgres.sql",
            // What each reconcile run claimed, per run's days: a later run over other days claims none of it
            // again (a record seen again is a `duplicate` of that run), a rerun of the same days replaces it.
            up: [
                """
                CREATE TABLE reconcile_claims (
                    window_from INTEGER NOT NULL, window_to INTEGER NOT NULL, side SMALLINT NOT NULL,
                    id TEXT NOT NULL, day INTEGER NOT NULL, run TEXT NOT NULL,
                    PRIMARY KEY (window_from, window_to, side, id))
                """,
                "CREATE INDEX reconcile_claims_day ON reconcile_claims (day)",
            ],
            down: ["DROP TABLE reconcile_claims"]
        ),
        Migration(
            version: 10,
            name: "0010_order_ids.postgres.sql",
            // The next line each producer source may reserve (``MessageQueue/reserveLines``): serve's order ids,
            // unique across every server on the store. Bookkeeping of the store (`castle_*`): not in snapshots.
            up: ["CREATE TABLE castle_order_ids (source TEXT PRIMARY KEY, next_line BIGINT NOT NULL)"],
            down: ["DROP TABLE castle_order_ids"]
        ),
        Migration(
            version: 11,
            name: "0011_trade_blocks.postgres.sql",
            // Settled trades a block to a row (SettlementBlock): `castle ledger settle` writes one row per
            // batch of trades instead of one entry row each. The block's entries take the posting sequence
            // numbers first_seq to first_seq + entry_count - 1, between those of `ledger_entries`; the
            // body is last, so that reading the other columns leaves its pages alone.
            up: [
                """
                CREATE TABLE ledger_trade_blocks (
                    first_seq BIGINT PRIMARY KEY, consumer TEXT NOT NULL, first_trade_seq BIGINT NOT NULL,
                    last_trade_seq BIGINT NOT NULL, entry_count BIGINT NOT NULL, min_ts BIGINT NOT NULL,
                    max_ts BIGINT NOT NULL, posted_at BIGINT NOT NULL, content_hash BYTEA NOT NULL,
                    body BYTEA NOT NULL)
                """,
                "CREATE UNIQUE INDEX ledger_trade_blocks_trades ON ledger_trade_blocks (consumer, first_trade_seq)",
            ],
            down: ["DROP TABLE ledger_trade_blocks"]
        ),
        Migration(
            version: 12,
            name: "0012_event_bodies_out_of_the_key.postgres.sql",
            // Nothing to do here: a PostgreSQL table keeps its rows apart from its primary key's index
            // already (SQLite's 0012 makes match_events so). The version is kept in step with SQLite's,
            // as a snapshot's schema_version is migrated to on restore, whichever the backend.
            up: [],
            down: []
        ),
    ]
}
