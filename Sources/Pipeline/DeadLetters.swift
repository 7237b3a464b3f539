public import CastleSupport
public import Storage
public import Streams

extension DeadLetter {
    /// The dead letter as one NDJSON line of `castle queue`:
    /// `{"id":…,"source":…,"line":…,"attempts":…,"error":…,"body":…}`.
    public func write(to sink: OutputSink) throws(CastleError) {
        try sink.write("{\"id\":\(id),\"source\":")
        try sink.write(jsonStringLiteral(Array(source.utf8)))
        try sink.write(",\"line\":\(line),\"attempts\":\(attempts),\"error\":")
        try sink.write(jsonStringLiteral(Array(error.utf8)))
        try sink.write(",\"body\":")
        try sink.write(jsonStringLiteral(Array(body.utf8)))
        try sink.write("}\n")
    }
}
