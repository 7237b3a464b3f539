import MarketFeed
import NIOCore
import NIOWebSocket
import Synchronization

/// One WebSocket connection's end of the fan-out: the feed's messages go straight to the connection's
/// NIO channel as text frames.
///
/// A batch is framed once into one buffer that every connection it goes to shares (``FeedBatch``): a
/// fan-out's messages for a thousand subscribers of one symbol are framed once, not a thousand times.
/// What the feed hands over before the channel's event loop gets to it is written with one flush, one
/// `write` system call, where a frame at a time through hummingbird-websocket's writer cost a `writev`,
/// a flush and a task hop per message (docs/serve-performance.md). The feed calls ``deliver(_:)``
/// under its lock, so it only appends and, for the first batch pending, schedules the write on the
/// event loop.
///
/// Messages are counted as waiting from ``deliver(_:)`` until the kernel has taken their bytes; a batch
/// that would take them past `bufferMessagesMax` is refused and the feed drops the connection as a slow
/// consumer.
final class ChannelFeedSink: FeedSink {
    private let channel: any Channel
    private let bufferMessagesMax: Int
    private let state = Mutex(State())

    private struct State {
        /// Delivered, not yet handed to the channel.
        var pending: [FeedBatch] = []
        var pendingMessages = 0
        /// Handed to the channel, not yet taken by the kernel.
        var writing = 0
        var writeScheduled = false
        var finished = false
        var finishWaiter: CheckedContinuation<Void, Never>?
    }

    init(channel: any Channel, bufferMessagesMax: Int) {
        self.channel = channel
        self.bufferMessagesMax = bufferMessagesMax
    }

    func deliver(_ batch: FeedBatch) -> Bool {
        let (accepted, scheduleWrite) = state.withLock { state -> (Bool, Bool) in
            guard state.pendingMessages + state.writing + batch.messages.count <= bufferMessagesMax else {
                return (false, false)
            }
            state.pending.append(batch)
            state.pendingMessages += batch.messages.count
            defer { state.writeScheduled = true }
            return (true, !state.writeScheduled)
        }
        if scheduleWrite { channel.eventLoop.execute { self.writePending() } }
        return accepted
    }

    func finish() {
        state.withLock { state in
            state.finished = true
            defer { state.finishWaiter = nil }
            return state.finishWaiter
        }?.resume()
    }

    /// Returns once the feed is done with the connection (closed, or dropped: see
    /// ``FeedConnection/dropReason``), or the task is cancelled. Messages already delivered are written
    /// before anything the caller then writes to the channel (the event loop runs tasks in order).
    func finished() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { state in
                    if state.finished || Task.isCancelled { return true }
                    state.finishWaiter = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            finish()
        }
    }

    /// On the event loop: writes the frames of what is pending below the frame encoder (they are
    /// already encoded) and flushes.
    private func writePending() {
        let (batches, count) = state.withLock { state in
            defer {
                state.writing += state.pendingMessages
                state.pending = []
                state.pendingMessages = 0
                state.writeScheduled = false
            }
            return (state.pending, state.pendingMessages)
        }
        guard count > 0 else { return }
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { _ in
            self.state.withLock { $0.writing -= count }
        }
        let encoder: ChannelHandlerContext
        do {
            encoder = try channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        } catch {
            written.fail(error)  // the channel is closing: its handlers are gone
            return
        }
        let frames = batches.map { $0.encoded(Self.textFrames) }
        if frames.count == 1 {
            encoder.write(NIOAny(frames[0]), promise: written)
        } else {
            var buffer = channel.allocator.buffer(capacity: frames.reduce(0) { $0 + $1.readableBytes })
            for frame in frames { buffer.writeImmutableBuffer(frame) }
            encoder.write(NIOAny(buffer), promise: written)
        }
        encoder.flush()
    }

    /// A batch's messages as text frames, one buffer.
    private static func textFrames(_ messages: [String]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: messages.reduce(0) { $0 + $1.utf8.count + 10 })
        for message in messages { writeTextFrame(message, to: &buffer) }
        return buffer
    }

    /// A final, unmasked text frame (RFC 6455 §5.2), as `WebSocketFrameEncoder` writes a server's.
    private static func writeTextFrame(_ text: String, to buffer: inout ByteBuffer) {
        let length = text.utf8.count
        buffer.writeInteger(UInt8(0x81))  // FIN, opcode 1 (text)
        switch length {
        case ..<126: buffer.writeInteger(UInt8(length))
        case ...0xFFFF:
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(length))
        default:
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(length))
        }
        buffer.writeString(text)
    }
}
