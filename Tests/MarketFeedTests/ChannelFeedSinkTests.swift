import MarketFeed
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import MarketStream

/// The stream's writer on NIO's embedded channel: what it writes when, frame by frame, and where it
/// stops taking messages.
@Suite struct ChannelFeedSinkTests {
    /// The text frames in one write, as a client decodes them (RFC 6455 §5.2, unmasked).
    private func frames(_ write: ByteBuffer) throws -> [String] {
        struct Truncated: Error {}
        var buffer = write
        var texts: [String] = []
        while buffer.readableBytes > 0 {
            guard let first = buffer.readInteger(as: UInt8.self), let mark = buffer.readInteger(as: UInt8.self)
            else { throw Truncated() }
            #expect(first == 0x81, "FIN and text")
            let length: Int?
            switch mark {
            case 126: length = buffer.readInteger(as: UInt16.self).map(Int.init)
            case 127: length = buffer.readInteger(as: UInt64.self).map(Int.init)
            default: length = Int(mark)
            }
            guard let length, let text = buffer.readString(length: length) else { throw Truncated() }
            texts.append(text)
        }
        return texts
    }

    private func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        return channel
    }

    /// What is delivered before the event loop gets to it goes in one write, in order, each message its
    /// own frame (lengths of the three header sizes); what comes after, in the next.
    @Test func messagesDeliveredTogetherShareOneWrite() throws {
        let channel = try channel()
        let sink = ChannelFeedSink(channel: channel, bufferMessagesMax: 16)
        let long = String(repeating: "x", count: 300)
        let huge = String(repeating: "y", count: 70_000)
        #expect(sink.deliver(FeedBatch(["a", long])))
        #expect(sink.deliver(FeedBatch([huge, "b"])))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "written on the event loop, not in deliver")
        channel.embeddedEventLoop.run()
        #expect(try frames(try #require(try channel.readOutbound(as: ByteBuffer.self))) == ["a", long, huge, "b"])
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(sink.deliver(FeedBatch(["later"])))
        channel.embeddedEventLoop.run()
        #expect(try frames(try #require(try channel.readOutbound(as: ByteBuffer.self))) == ["later"])
        _ = try channel.finish()
    }

    /// A batch delivered to several connections is framed once: their writes share one buffer's bytes.
    @Test func aBatchIsFramedOnceForEveryConnection() throws {
        let channels = [try channel(), try channel()]
        let batch = FeedBatch(["one", "two"])
        var writes: [ByteBuffer] = []
        for channel in channels {
            #expect(ChannelFeedSink(channel: channel, bufferMessagesMax: 16).deliver(batch))
            channel.embeddedEventLoop.run()
            writes.append(try #require(try channel.readOutbound(as: ByteBuffer.self)))
        }
        #expect(try frames(writes[0]) == ["one", "two"])
        #expect(writes[0] == writes[1])
        let addresses = writes.map { $0.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } }
        #expect(addresses[0] == addresses[1], "one buffer, not a copy per connection")
        for channel in channels { _ = try channel.finish() }
    }

    /// Messages not yet taken by the socket count against the bound: a batch that would pass it is
    /// refused (the feed then drops the connection); once written, there is room again.
    @Test func theBoundCountsWhatTheSocketHasNotTaken() throws {
        let channel = try channel()
        let sink = ChannelFeedSink(channel: channel, bufferMessagesMax: 3)
        #expect(sink.deliver(FeedBatch(["1", "2"])))
        #expect(!sink.deliver(FeedBatch(["3", "4"])), "two waiting, two more: past three")
        #expect(sink.deliver(FeedBatch(["3"])))
        #expect(!sink.deliver(FeedBatch(["4"])), "three waiting: full")
        channel.embeddedEventLoop.run()
        #expect(try frames(try #require(try channel.readOutbound(as: ByteBuffer.self))) == ["1", "2", "3"])
        #expect(sink.deliver(FeedBatch(["5"])), "written: room again")
        _ = try channel.finish()
    }

    /// `finished()` returns once the feed is done with the connection, also when that came first.
    @Test func finishedReturnsAfterFinish() async throws {
        let sink = ChannelFeedSink(channel: EmbeddedChannel(), bufferMessagesMax: 1)
        sink.finish()
        await sink.finished()
    }
}
