import CastleSupport
public import Storage

/// The behaviour every storage backend must have, as checks that run unchanged against memory, SQLite
/// and PostgreSQL. Each check gets a fresh, migrated backend from the caller and throws
/// ``ConformanceFailure`` when the backend misbehaves.
public enum StorageConformance {
    public typealias Check = @Sendable (any Backend) async throws -> Void

    public static let checks: [(name: String, run: Check)] = [
        ("ingest is idempotent", ingestIsIdempotent),
        ("ingest rollback leaves nothing", ingestRollbackLeavesNothing),
        ("enqueue is idempotent and ordered", enqueueIsIdempotentAndOrdered),
        ("an enqueue of new and known lines keeps append order", enqueueMixedLinesKeepsAppendOrder),
        ("a one-shot enqueue is a session's transaction", oneShotEnqueueIsASessionsTransaction),
        ("partitions split the symbols", partitionsSplitSymbols),
        ("depth counts what no cursor covers", depthCountsWhatNoCursorCovers),
        ("matcher commits read back", matcherCommitsReadBack),
        ("a stale offset is refused", staleOffsetIsRefused),
        ("a partition has one owner", partitionHasOneOwner),
        ("an owner reads its partition as a log", ownerReadsALog),
        ("messages in flight when an owner dies are counted", inFlightMessagesAreCounted),
        ("a read marks in flight only messages never delivered", readMarksOnlyFreshMessages),
        ("a store without its tables is a configuration error", missingTablesAreAConfigurationError),
        ("a client order id is claimed once", clientOrderIDIsClaimedOnce),
        ("reserved lines are given once", reservedLinesAreGivenOnce),
    ]

    public static var checkNames: [String] { checks.map(\.name) }

    public static func run(_ name: String, on backend: any Backend) async throws {
        guard let check = checks.first(where: { $0.name == name }) else {
            throw ConformanceFailure("no conformance check named '\(name)'")
        }
        try await check.run(backend)
    }

    static func rows(_ lines: some Sequence<Int64>, symbol: (Int64) -> String = { _ in "AAPL" }) -> [OrderRow] {
        lines.map { line in
            OrderRow(line: line, symbol: symbol(line), body: #"{"op":"cancel","id":\#(line)}"#)
        }
    }

    static func ingestIsIdempotent(_ backend: any Backend) async throws {
        let first = try await backend.beginIngest(dataset: "day")
        try await first.append(rows(1...3))
        try expect(try await first.commit() == 3, "first ingest adds 3 rows")
        let second = try await backend.beginIngest(dataset: "day")
        try await second.append(rows(1...4))
        try expect(try await second.commit() == 1, "second ingest adds only the new line")
        let read = try await backend.readDataset("day", afterLine: 0, limit: 100)
        try expect(read == rows(1...4), "dataset reads back in line order: \(read.map(\.line))")
        let paged = try await backend.readDataset("day", afterLine: 2, limit: 1)
        try expect(paged.map(\.line) == [3], "paging by line: \(paged.map(\.line))")
        try expect(try await backend.datasets() == [DatasetInfo(name: "day", rows: 4)], "datasets lists the day")
    }

    static func ingestRollbackLeavesNothing(_ backend: any Backend) async throws {
        let session = try await backend.beginIngest(dataset: "day")
        try await session.append(rows(1...10))
        await session.rollback()
        try expect(try await backend.readDataset("day", afterLine: 0, limit: 100).isEmpty, "nothing after rollback")
        let queue = try await backend.beginEnqueue(source: "day")
        try await queue.append(rows(1...10))
        await queue.rollback()
        try expect(try await backend.depth(partition: nil) == 0, "no message after rollback")
    }

    static func enqueueIsIdempotentAndOrdered(_ backend: any Backend) async throws {
        let first = try await backend.beginEnqueue(source: "day")
        try await first.append(rows(1...5))
        try expect(try await first.commit() == 5, "5 enqueued")
        let again = try await backend.beginEnqueue(source: "day")
        try await again.append(rows(1...5))
        try expect(try await again.commit() == 0, "the same lines again add nothing")
        let messages = try await backend.read(partition: .whole, after: 0, limit: 10)
        try expect(messages.map(\.line) == [1, 2, 3, 4, 5], "read in enqueue order: \(messages.map(\.line))")
        try expect(zip(messages, messages.dropFirst()).allSatisfy { $0.id < $1.id }, "ids increase")
        try expect(messages.allSatisfy { $0.attempts == 0 && $0.source == "day" }, "no delivery counted")
        try expect(messages.first?.body == #"{"op":"cancel","id":1}"#, "body kept")
        try await backend.markConsumed(partition: .whole, through: messages[1].id, inFlight: messages[1].id)
        try expect(try await backend.depth(partition: nil) == 3, "consumed messages leave the depth")
        let later = try await backend.beginEnqueue(source: "day")
        try await later.append(rows(1...2))
        try expect(try await later.commit() == 0, "consumed lines are still known: nothing re-enqueued")
        try expect(try await backend.lastLine(source: "day") == 5, "the last line enqueued, consumed or not")
        try expect(try await backend.lastLine(source: "night") == nil, "no line of a source never enqueued")
    }

    /// Lines above the source's highest, in order, and then lines below it or known already (PostgreSQL
    /// copies the first straight into the queue and stages the rest): ids follow the order of the
    /// appends, and a known line is skipped.
    static func enqueueMixedLinesKeepsAppendOrder(_ backend: any Backend) async throws {
        let first = try await backend.beginEnqueue(source: "day")
        try await first.append(rows([1, 2, 3]))
        try expect(try await first.commit() == 3, "3 enqueued")
        let mixed = try await backend.beginEnqueue(source: "day")
        try await mixed.append(rows([10, 11]))
        try await mixed.append(rows([5, 2, 13, 13]))
        try await mixed.append(rows([14]))
        try expect(try await mixed.commit() == 5, "10, 11, 5, 13 and 14 are new; 2 and the second 13 are not")
        let lines = try await backend.read(partition: .whole, after: 0, limit: 100).map(\.line)
        try expect(lines == [1, 2, 3, 10, 11, 5, 13, 14], "messages in append order: \(lines)")
        let empty = try await backend.beginEnqueue(source: "day")
        try expect(try await empty.commit() == 0, "an empty session commits nothing")
        try expect(try await backend.lastLine(source: "day") == 14, "the highest line")
    }

    /// ``MessageQueue/enqueue(_:source:)`` (serve's group commit) as a session of one append: known lines
    /// skipped, the others in order, after what sessions enqueued.
    static func oneShotEnqueueIsASessionsTransaction(_ backend: any Backend) async throws {
        let session = try await backend.beginEnqueue(source: "serve")
        try await session.append(rows(1...2))
        try expect(try await session.commit() == 2, "a session enqueues 2")
        let added = try await backend.enqueue(rows([7, 2, 3, 7]), source: "serve")
        try expect(added == 2, "7 and 3 are new; 2 and the second 7 are not: \(added)")
        try expect(try await backend.enqueue([], source: "serve") == 0, "nothing to enqueue adds nothing")
        let messages = try await backend.read(partition: .whole, after: 0, limit: 100)
        try expect(messages.map(\.line) == [1, 2, 7, 3], "in enqueue order: \(messages.map(\.line))")
        try expect(messages.allSatisfy { $0.source == "serve" }, "the source kept")
        try expect(try await backend.enqueue(rows(1...1), source: "other") == 1, "a line is known per source")
    }

    static func reservedLinesAreGivenOnce(_ backend: any Backend) async throws {
        let first = try await backend.reserveLines(source: "serve", count: 10, above: 0)
        try expect(first == 1...10, "a new source's first range starts at 1: \(first)")
        let second = try await backend.reserveLines(source: "serve", count: 10, above: 0)
        try expect(second == 11...20, "the next range follows the last: \(second)")
        let floored = try await backend.reserveLines(source: "serve", count: 5, above: 1000)
        try expect(floored == 1001...1005, "a range starts above the floor: \(floored)")
        let back = try await backend.reserveLines(source: "serve", count: 5, above: 0)
        try expect(back == 1006...1010, "a lower floor never goes back: \(back)")
        let session = try await backend.beginEnqueue(source: "day")
        try await session.append(rows(1...50))
        _ = try await session.commit()
        let afterQueue = try await backend.reserveLines(source: "day", count: 3, above: 0)
        try expect(afterQueue == 51...53, "a range starts above the source's lines in the queue: \(afterQueue)")
        let other = try await backend.reserveLines(source: "other", count: 1, above: 0)
        try expect(other == 1...1, "each source counts on its own: \(other)")
        // Reservations at once, as from several servers: every line given once.
        let ranges = try await withThrowingTaskGroup(of: ClosedRange<Int64>.self) { group in
            for _ in 0..<8 {
                group.addTask { try await backend.reserveLines(source: "serve", count: 100, above: 0) }
            }
            return try await group.reduce(into: [ClosedRange<Int64>]()) { $0.append($1) }
        }
        let lines = ranges.flatMap { Array($0) }
        try expect(Set(lines).count == 800, "8 ranges at once overlap nowhere: \(ranges)")
        try expect(lines.allSatisfy { $0 > 1010 }, "nor any range given before: \(ranges)")
        do {
            _ = try await backend.reserveLines(source: "serve", count: 0, above: 0)
            throw ConformanceFailure("a range of 0 lines was given")
        } catch let error as CastleError {
            try expect(error.kind == .dataError, "a range of 0 lines is bad input: \(error)")
        }
    }

    static func partitionsSplitSymbols(_ backend: any Backend) async throws {
        let symbols = (0..<20).map { "SYM\($0)" }
        let session = try await backend.beginEnqueue(source: "s")
        try await session.append(rows(1...60) { symbols[Int($0) % 20] })
        _ = try await session.commit()
        var seen: [Int64] = []
        for index in 0..<3 {
            let partition = Partition(index: index, count: 3)
            let depth = try await backend.depth(partition: partition)
            let batch = try await backend.read(partition: partition, after: 0, limit: 100)
            try expect(batch.count == depth, "depth \(depth) of \(partition) matches its messages \(batch.count)")
            try expect(batch.allSatisfy { partition.contains(symbol: $0.symbol) }, "only \(partition)'s symbols")
            try expect(zip(batch, batch.dropFirst()).allSatisfy { $0.id < $1.id }, "in order within \(partition)")
            seen += batch.map(\.line)
        }
        try expect(seen.sorted() == Array(1...60), "the partitions cover every message once")
    }

    /// A message is done when a cursor whose partition holds its symbol reads past it: the whole queue's
    /// cursor, its own partition's, or a cursor of a coarser partitioning (0/2 holds 0/4 and 2/4).
    static func depthCountsWhatNoCursorCovers(_ backend: any Backend) async throws {
        let symbols = (0..<16).map { "SYM\($0)" }
        let session = try await backend.beginEnqueue(source: "s")
        try await session.append(rows(1...80) { symbols[Int($0) % 16] })
        _ = try await session.commit()
        let all = try await backend.read(partition: .whole, after: 0, limit: 100)
        var cursors: [(Partition, Int64)] = []
        func check(_ what: String) async throws {
            for partition in [Partition.whole, Partition(index: 0, count: 2), Partition(index: 1, count: 2)]
                + (0..<4).map({ Partition(index: $0, count: 4) })
            {
                let expected = all.filter { message in
                    partition.contains(symbol: message.symbol)
                        && !cursors.contains { $0.0.contains(symbol: message.symbol) && message.id <= $0.1 }
                }.count
                let depth = try await backend.depth(partition: partition)
                try expect(depth == expected, "\(what): depth of \(partition) is \(depth), not \(expected)")
            }
        }
        try await check("no cursor")
        for (partition, through) in [
            (Partition(index: 0, count: 4), all[40].id), (Partition(index: 0, count: 2), all[20].id),
            (Partition.whole, all[10].id), (Partition(index: 1, count: 2), all[70].id),
        ] {
            try await backend.markConsumed(partition: partition, through: through, inFlight: through)
            cursors.append((partition, through))
            try await check("with \(partition) through \(through)")
        }
    }

    static func order(_ id: UInt64, qty: Int64, priority: Int64) -> RestingOrderRow {
        RestingOrderRow(
            id: id,
            symbol: "AAPL",
            side: 0,
            price: 1_000_000 + Int64(id % 1_000),
            qty: qty,
            account: id % 2 == 0 ? "" : "acct-\(id)",
            postOnly: id % 3 == 0,
            stp: 2,
            priority: priority
        )
    }

    static func matcherCommitsReadBack(_ backend: any Backend) async throws {
        let consumer = "match:0/1"
        try expect(try await backend.loadMatcherState(consumer: consumer) == MatcherState(), "a new consumer is empty")
        let segment = EventSegment(firstSeq: 1, lastSeq: 2, body: Array("{\"seq\":1}\n{\"seq\":2}\n".utf8))
        let trade = TradeRow(
            seq: 2,
            symbol: "AAPL",
            price: 1_500,
            qty: 7,
            maker: UInt64.max,
            taker: 2,
            side: "buy",
            ts: nil
        )
        try await backend.commitMatch(
            MatchCommit(
                consumer: consumer,
                offset: 10,
                lastSeq: 2,
                events: segment,
                trades: [trade],
                upserts: [order(1, qty: 5, priority: 3), order(UInt64.max - 1, qty: 9, priority: 4)]
            ),
            previousOffset: 0
        )
        var state = try await backend.loadMatcherState(consumer: consumer)
        try expect(state.offset == 10 && state.lastSeq == 2, "offset and seq: \(state.offset) \(state.lastSeq)")
        try expect(
            Set(state.orders) == [order(1, qty: 5, priority: 3), order(UInt64.max - 1, qty: 9, priority: 4)],
            "orders read back exactly"
        )
        let segment2 = EventSegment(firstSeq: 3, lastSeq: 3, body: Array("{\"seq\":3}\n".utf8))
        try await backend.commitMatch(
            MatchCommit(
                consumer: consumer,
                offset: 12,
                lastSeq: 3,
                events: segment2,
                upserts: [order(1, qty: 2, priority: 3)],
                deletes: [UInt64.max - 1]
            ),
            previousOffset: 10
        )
        state = try await backend.loadMatcherState(consumer: consumer)
        try expect(state.orders == [order(1, qty: 2, priority: 3)], "update and delete: \(state.orders)")
        try expect(try await backend.eventConsumers() == [consumer], "consumers")
        try expect(
            try await backend.readEvents(consumer: consumer, fromSeq: 1, limit: 10) == [segment, segment2],
            "segments in order"
        )
        try expect(
            try await backend.readEvents(consumer: consumer, fromSeq: 3, limit: 10) == [segment2],
            "from a seq"
        )
        try expect(try await backend.readTrades(consumer: consumer, afterSeq: 0, limit: 10) == [trade], "trades")
    }

    static func staleOffsetIsRefused(_ backend: any Backend) async throws {
        let consumer = "match:0/1"
        try await backend.commitMatch(
            MatchCommit(consumer: consumer, offset: 5, lastSeq: 1, events: nil),
            previousOffset: 0
        )
        do {
            try await backend.commitMatch(
                MatchCommit(
                    consumer: consumer,
                    offset: 9,
                    lastSeq: 4,
                    events: nil,
                    upserts: [order(1, qty: 1, priority: 1)]
                ),
                previousOffset: 0
            )
            throw ConformanceFailure("a commit from a stale offset was accepted")
        } catch let error as CastleError {
            try expect(error.kind == .temporaryFailure, "refused as a lost partition (exit 75): \(error)")
        }
        let state = try await backend.loadMatcherState(consumer: consumer)
        try expect(state.offset == 5 && state.orders.isEmpty, "nothing of the refused commit applied")
    }

    /// Exit codes by meaning, not by backend (``StoreErrors``): a store whose tables are gone answers 78,
    /// "run castle migrate up", on every backend that has a schema.
    static func missingTablesAreAConfigurationError(_ backend: any Backend) async throws {
        guard let schema = backend.schema else { return }
        let migrator = Migrator(database: schema, storeName: backend.displayURL)
        _ = try await migrator.down(to: 0)
        do {
            _ = try await backend.loadMatcherState(consumer: "match:0/1")
            throw ConformanceFailure("a store without tables answered")
        } catch let error as CastleError {
            try expect(error.kind == .config, "a missing table is exit 78: \(error)")
            try expect(error.message.contains("castle migrate up"), "and says what fixes it: \(error)")
        }
        _ = try await migrator.up()
    }

    static func partitionHasOneOwner(_ backend: any Backend) async throws {
        let partition = Partition(index: 1, count: 2)
        guard let lock = try await backend.acquire(partition: partition, wait: false) else {
            throw ConformanceFailure("a free partition could not be acquired")
        }
        try expect(try await backend.acquire(partition: partition, wait: false) == nil, "a second owner is refused")
        let other = try await backend.acquire(partition: Partition(index: 0, count: 2), wait: false)
        try expect(other != nil, "another partition is free")
        await other?.release()
        await lock.release()
        let again = try await backend.acquire(partition: partition, wait: false)
        try expect(again != nil, "free again after release")
        await again?.release()
    }

    static func ownerReadsALog(_ backend: any Backend) async throws {
        let session = try await backend.beginEnqueue(source: "s")
        try await session.append(rows(1...12) { $0 % 2 == 0 ? "EVEN" : "ODD" })
        _ = try await session.commit()
        let partition = Partition(index: Int(Partition.shard(of: "EVEN") % 2), count: 2)
        guard Partition.shard(of: "ODD") % 2 != Partition.shard(of: "EVEN") % 2 else { return }
        let all = try await backend.read(partition: partition, after: 0, limit: 100)
        try expect(all.map(\.line) == [2, 4, 6, 8, 10, 12], "the partition's messages in order: \(all.map(\.line))")
        try expect(all.allSatisfy { $0.attempts == 0 }, "reading records no delivery")
        try expect(try await backend.read(partition: partition, after: 0, limit: 100) == all, "and leases nothing")
        try await backend.markConsumed(partition: partition, through: all[2].id, inFlight: all[3].id)
        let rest = try await backend.read(partition: partition, after: all[2].id, limit: 100)
        try expect(rest.map(\.line) == [8, 10, 12], "read after the offset: \(rest.map(\.line))")
        try expect(try await backend.depth(partition: partition) == 3, "consumed messages leave the depth")
        try expect(try await backend.depth(partition: nil) == 9, "the other partition keeps its 6")
    }

    static func inFlightMessagesAreCounted(_ backend: any Backend) async throws {
        let session = try await backend.beginEnqueue(source: "s")
        try await session.append(rows(1...4))
        _ = try await session.commit()
        let messages = try await backend.read(partition: .whole, after: 0, limit: 100)
        var recovered = try await backend.recoverInFlight(partition: .whole, after: 0, maxAttempts: 2)
        try expect(recovered == (0, 0), "nothing in flight before any cursor")
        // The owner consumed the first message and died with the next two in flight.
        try await backend.markConsumed(partition: .whole, through: messages[0].id, inFlight: messages[2].id)
        recovered = try await backend.recoverInFlight(partition: .whole, after: messages[0].id, maxAttempts: 2)
        try expect(recovered == (messages[2].id, 1), "one delivery counted: \(recovered)")
        let counted = try await backend.read(partition: .whole, after: messages[0].id, limit: 100)
        try expect(counted.map(\.attempts) == [1, 1, 0], "for the messages in flight only: \(counted.map(\.attempts))")
        recovered = try await backend.recoverInFlight(partition: .whole, after: messages[2].id, maxAttempts: 2)
        try expect(recovered == (0, 0), "a committed offset past the range: nothing in flight")
        // The next owner died while starting, before it took them back: that was no delivery.
        recovered = try await backend.recoverInFlight(partition: .whole, after: messages[0].id, maxAttempts: 2)
        try expect(recovered == (0, 0), "a restart that delivered nothing counts nothing: \(recovered)")
        let uncounted = try await backend.read(partition: .whole, after: messages[0].id, limit: 100)
        try expect(uncounted.map(\.attempts) == [1, 1, 0], "still one delivery each: \(uncounted.map(\.attempts))")
        try expect(try await backend.deadLetters().isEmpty, "and nothing is buried for it")
        // The owner after it took them into flight again, and died.
        try await backend.markConsumed(partition: .whole, through: messages[0].id, inFlight: messages[2].id)
        recovered = try await backend.recoverInFlight(partition: .whole, after: messages[0].id, maxAttempts: 2)
        try expect(recovered == (messages[2].id, 0), "the second death of the same range: \(recovered)")
        let dead = try await backend.deadLetters()
        try expect(dead.map(\.line) == [2, 3], "delivered twice without an ack: dead letters \(dead.map(\.line))")
        try expect(dead.allSatisfy { $0.error == "not acknowledged after 2 deliveries" }, "\(dead.map(\.error))")
        let left = try await backend.read(partition: .whole, after: messages[0].id, limit: 100)
        try expect(left.map(\.line) == [4], "the log goes on without them: \(left.map(\.line))")
    }

    static func readMarksOnlyFreshMessages(_ backend: any Backend) async throws {
        let session = try await backend.beginEnqueue(source: "s")
        try await session.append(rows(1...4))
        _ = try await session.commit()
        let fresh = try await backend.readMarkingInFlight(partition: .whole, after: 0, limit: 2, through: 0)
        try expect(fresh.messages.map(\.line) == [1, 2] && fresh.marked, "two fresh messages, marked: \(fresh)")
        // The owner died with them in flight: one delivery each.
        var recovered = try await backend.recoverInFlight(partition: .whole, after: 0, maxAttempts: 5)
        try expect(recovered == (fresh.messages[1].id, 1), "the read's mark counts a delivery: \(recovered)")
        let again = try await backend.readMarkingInFlight(partition: .whole, after: 0, limit: 10, through: 0)
        try expect(again.messages.map(\.attempts) == [1, 1, 0, 0], "\(again.messages.map(\.attempts))")
        try expect(!again.marked, "messages delivered before are not marked by the read")
        recovered = try await backend.recoverInFlight(partition: .whole, after: 0, maxAttempts: 5)
        try expect(recovered == (0, 0), "so nothing more is in flight: \(recovered)")
        let empty = try await backend.readMarkingInFlight(
            partition: .whole,
            after: again.messages[3].id,
            limit: 10,
            through: 0
        )
        try expect(empty.messages.isEmpty && !empty.marked, "nothing read, nothing marked: \(empty)")
    }

    static func clientOrderIDIsClaimedOnce(_ store: any Backend) async throws {
        func claim(_ account: String, _ key: String, _ order: Int64, _ content: String) -> ClientOrderClaim {
            ClientOrderClaim(account: account, clientOrderID: key, orderID: order, content: content)
        }
        let first = [
            claim("alice", "k1", 10, "buy 1"), claim("bob", "k1", 11, "sell 2"), claim("alice", "k1", 12, "x"),
        ]
        let held = try await store.claimClientOrderIDs(first)
        try expect(
            held == [first[0], first[1], first[0]],
            "a new key holds its own claim, per account; a key claimed twice in one batch goes to the first: \(held)"
        )
        let again = try await store.claimClientOrderIDs([
            claim("alice", "k2", 13, "ü \"q\""), claim("alice", "k1", 14, "y"),
        ])
        try expect(
            again == [claim("alice", "k2", 13, "ü \"q\""), first[0]],
            "a later batch gets the earlier claim, content as stored: \(again)"
        )
        let ids = try await store.clientOrderIDs(account: "alice", orderIDs: [10, 11, 13, 14, 99])
        try expect(ids == [10: "k1", 13: "k2"], "only the account's own orders that hold a key: \(ids)")
        try expect(try await store.claimClientOrderIDs([]).isEmpty, "an empty batch claims nothing")
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ConformanceFailure(message()) }
    }
}

public struct ConformanceFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
