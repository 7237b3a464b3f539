import CastleSupport
import Storage
import Testing

@testable import Server

/// serve's order ids come from ranges the store reserves: many requests at once and several servers on
/// one store never get the same id.
@Suite struct OrderIDTests {
    @Test func requestsAtOnceAndTwoServersGetEveryIDOnce() async throws {
        let store = MemoryBackend(displayURL: "memory://order-ids")
        // Small ranges, so that the requests run out of ids and wait for reservations many times.
        let servers = [
            IDGenerator(queue: store, source: "serve", rangeSize: 7),
            IDGenerator(queue: store, source: "serve", rangeSize: 7),
        ]
        let ids = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for task in 0..<16 {
                group.addTask {
                    var ids: [Int64] = []
                    for _ in 0..<100 { ids.append(try await servers[task % 2].next()) }
                    return ids
                }
            }
            return try await group.reduce(into: [Int64]()) { $0 += $1 }
        }
        #expect(ids.count == 1600)
        #expect(Set(ids).count == 1600, "an id given twice")
        let clock = wallClockMilliseconds() * 1000
        #expect(ids.allSatisfy { $0 > clock - 600_000_000 && $0 < clock + 10_000_000 }, "near the clock in µs")
    }

    @Test func idsStartAboveTheQueue() async throws {
        let store = MemoryBackend(displayURL: "memory://order-ids-queue")
        let far = wallClockMilliseconds() * 1000 + 1_000_000_000
        let session = try await store.beginEnqueue(source: "serve")
        try await session.append([OrderRow(line: far, symbol: "S", body: #"{"op":"cancel","id":1}"#)])
        _ = try await session.commit()
        let server = IDGenerator(queue: store, source: "serve")
        #expect(try await server.next() == far + 1, "a server whose clock is behind the queue's lines")
    }
}
