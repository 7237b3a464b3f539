public import CastleSupport
public import Storage
public import Streams

/// The durable matcher's event log as it is stored: one log per consumer (`match:K/N`), read back as the
/// contract's NDJSON, byte for byte what `castle match` prints for the same stream (`castle events`).
public enum EventLog {
    /// The consumer name of the worker of `partition`.
    public static func consumer(of partition: Partition) -> String { "match:\(partition)" }

    /// The consumer to read when the user names no partition: the only log there is (`match:0/1` when
    /// there is none yet); a usage error naming the partitions when there are several.
    public static func onlyConsumer(of store: any Store) async throws(CastleError) -> String {
        let consumers = try await store.eventConsumers()
        if consumers.count > 1 {
            let names = consumers.map { String($0.dropFirst("match:".count)) }.joined(separator: ", ")
            throw CastleError(
                .usage,
                "\(store.displayURL) has several partitions (\(names)): pick one with --partition"
            )
        }
        return consumers.first ?? consumer(of: .whole)
    }

    /// Writes the events of `consumer` with `seq >= fromSeq` to `sink`, in seq order (the caller commits).
    public static func write(
        consumer: String,
        fromSeq: Int64,
        of store: any Store,
        to sink: OutputSink
    ) async throws(CastleError) {
        var from = fromSeq
        while true {
            let segments = try await store.readEvents(consumer: consumer, fromSeq: from, limit: 256)
            guard let last = segments.last else { break }
            for segment in segments {
                if segment.firstSeq >= fromSeq {
                    try sink.write(segment.body)
                } else {
                    try writeLines(of: segment, from: fromSeq, to: sink)
                }
            }
            from = last.lastSeq + 1
        }
    }

    /// The lines of a segment whose seq is at least `from` (lines are `{"seq":N,…`).
    static func writeLines(of segment: EventSegment, from: Int64, to sink: OutputSink) throws(CastleError) {
        var seq = segment.firstSeq
        var start = 0
        for index in segment.body.indices where segment.body[index] == UInt8(ascii: "\n") {
            if seq >= from { try sink.write(segment.body[start...index]) }
            seq += 1
            start = index + 1
        }
    }
}
