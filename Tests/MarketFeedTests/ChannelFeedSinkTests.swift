import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import MarketStream

/// The stream's writer on NIO's embedded channel, whose clock the test moves: what it writes when, frame
/// by frame, and where it stops taking messages.
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

    /// The first message goes at once; what comes within the interval after a write waits for it and
    /// goes in one write, in order, each message its own frame (lengths of the three header sizes).
    @Test func messagesWithinTheIntervalShareOneWrite() throws {
        let channel = try channel()
        let sink = ChannelFeedSink(channel: channel, bufferMessagesMax: 16, writeInterval: .milliseconds(100))
        #expect(sink.deliver("first"))
        channel.embeddedEventLoop.run()
        #expect(try frames(try #require(try channel.readOutbound(as: ByteBuffer.self))) == ["first"])

        let long = String(repeating: "x", count: 300)
        let huge = String(repeating: "y", count: 70_000)
        for text in ["a", long, huge, "b"] { #expect(sink.deliver(text)) }
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(99))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "not before the interval is over")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try frames(try #require(try channel.readOutbound(as: ByteBuffer.self))) == ["a", long, huge, "b"])
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)

        // After a quiet spell the next message goes at once again.
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(sink.deliver("later"))
        channel.embeddedEventLoop.run()
        #expect(try frames(try #require(try channel.readOutbound(as: ByteBuffer.self))) == ["later"])
        _ = try channel.finish()
    }

    /// Messages not yet taken by the socket count against the bound: past it `deliver` refuses (the feed
    /// then drops the connection); once written, there is room again.
    @Test func theBoundCountsWhatTheSocketHasNotTaken() throws {
        let channel = try channel()
        let sink = ChannelFeedSink(channel: channel, bufferMessagesMax: 3, writeInterval: .zero)
        for text in ["1", "2", "3"] { #expect(sink.deliver(text)) }
        #expect(!sink.deliver("4"), "three waiting: full")
        channel.embeddedEventLoop.run()
        #expect(try frames(try #require(try channel.readOutbound(as: ByteBuffer.self))) == ["1", "2", "3"])
        #expect(sink.deliver("5"), "written: room again")
        _ = try channel.finish()
    }

    /// `finished()` returns once the feed is done with the connection, also when that came first.
    @Test func finishedReturnsAfterFinish() async throws {
        let sink = ChannelFeedSink(channel: EmbeddedChannel(), bufferMessagesMax: 1, writeInterval: .zero)
        sink.finish()
        await sink.finished()
    }
}
