import MarketFeed
import NIOCore
import NIOWebSocket
import Synchronization

/// One WebSocket connection's end of the fan-out: the feed's messages go straight to the connection's
/// NIO channel as text frames.
///
/// Everything the feed hands over before the channel's event loop gets to it (a whole fan-out, see
/// ``MarketFeed/run(pace:)``) is framed into one buffer and written with one flush, one `write` system
/// call, where a frame at a time through hummingbird-websocket's writer cost a `writev`, a flush and a
/// task hop per message (docs/serve.md, "Performance"). The feed calls ``deliver(_:)`` under its lock,
/// so it only appends and, for the first message pending, schedules the write on the event loop.
///
/// Messages are counted as waiting from ``deliver(_:)`` until the kernel has taken their bytes; past
/// `bufferMessagesMax` the connection is full and the feed drops it as a slow consumer.
final class ChannelFeedSink: FeedSink {
    private let channel: any Channel
    private let bufferMessagesMax: Int
    private let state = Mutex(State())

    private struct State {
        /// Delivered, not yet handed to the channel.
        var pending: [String] = []
        var pendingBytes = 0
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

    func deliver(_ message: String) -> Bool {
        let (accepted, scheduleWrite) = state.withLock { state -> (Bool, Bool) in
            guard state.pending.count + state.writing < bufferMessagesMax else { return (false, false) }
            state.pending.append(message)
            state.pendingBytes += message.utf8.count
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

    /// On the event loop: frames what is pending into one buffer, writes it below the frame encoder
    /// (the frames are already encoded) and flushes.
    private func writePending() {
        let (messages, bytes) = state.withLock { state in
            defer {
                state.writing += state.pending.count
                state.pending = []
                state.pendingBytes = 0
                state.writeScheduled = false
            }
            return (state.pending, state.pendingBytes)
        }
        guard !messages.isEmpty else { return }
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { _ in
            self.state.withLock { $0.writing -= messages.count }
        }
        let encoder: ChannelHandlerContext
        do {
            encoder = try channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        } catch {
            written.fail(error)  // the channel is closing: its handlers are gone
            return
        }
        var buffer = channel.allocator.buffer(capacity: bytes + messages.count * 10)
        for message in messages { Self.writeTextFrame(message, to: &buffer) }
        encoder.write(NIOAny(buffer), promise: written)
        encoder.flush()
    }

    /// A final, unmasked text frame (RFC 6455 §5.2), as `WebSocketFrameEncoder` writes a server's.
    static func writeTextFrame(_ text: String, to buffer: inout ByteBuffer) {
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
