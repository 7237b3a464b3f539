public import CastleCore
public import CastleSupport
public import Streams

/// Reads and decodes an order stream on a thread of its own, a bounded number of batches ahead of the
/// consumer, so that decoding (about half the work of `castle match`) runs beside matching on a second
/// core. Items come out in input order; blank lines are skipped. Read errors arrive in order too.
public final class DecodingReader: @unchecked Sendable {
    public enum Item {
        case command(Command)
        case rejected(op: Op?, id: OrderID?, reason: RejectReason, detail: RejectDetail, line: Int)
    }

    /// A run of decoded lines, with the names the decoder interned while decoding them.
    public struct Batch {
        public var items: [Item] = []
        /// Symbols and accounts first seen in this batch, in id order (append them to your copies).
        public var newSymbols: [[UInt8]] = []
        public var newAccounts: [[UInt8]] = []
        /// Bytes of input consumed so far, for progress.
        public var consumedBytes = 0
    }

    public let source: InputSource
    private let reader: LineReader
    private var decoder: CommandDecoder
    private let batchItems: Int
    private let batchesAhead: Int
    private let lock = ConditionLock()
    // Guarded by `lock`.
    private var ready: [Batch] = []
    private var finished = false
    private var failure: CastleError?
    private var cancelled = false
    private var thread: JoinableThread?
    private var started = false

    /// `decoder` may already hold names (instruments, the user's symbols): ids stay as it gave them.
    public init(source: InputSource, decoder: CommandDecoder, batchItems: Int = 4096, batchesAhead: Int = 4) {
        self.source = source
        reader = LineReader(source: source)
        self.decoder = decoder
        self.batchItems = batchItems
        self.batchesAhead = batchesAhead
    }

    deinit { close() }

    /// The next batch, or nil at the end of the input.
    public func next() throws(CastleError) -> Batch? {
        if !started {
            thread = try startThread(name: "castle-decode") { [self] in produce() }
            started = true
        }
        lock.lock()
        while ready.isEmpty && !finished && failure == nil { lock.wait() }
        defer { lock.unlock() }
        if !ready.isEmpty {
            let batch = ready.removeFirst()
            lock.broadcast()
            return batch
        }
        if let failure { throw failure }
        return nil
    }

    /// Stops the decoding thread (when the consumer stops early) and waits for it.
    public func close() {
        guard started else { return }
        lock.lock()
        cancelled = true
        lock.broadcast()
        lock.unlock()
        thread?.join()
        started = false
    }

    private func produce() {
        var batch = Batch()
        batch.items.reserveCapacity(batchItems)
        var symbolsSent = decoder.symbols.count
        var accountsSent = decoder.accounts.count
        func handOver(_ last: Bool) -> Bool {
            if decoder.symbols.count > symbolsSent {
                batch.newSymbols = Array(decoder.symbols.names[symbolsSent...])
                symbolsSent = decoder.symbols.count
            }
            if decoder.accounts.count > accountsSent {
                batch.newAccounts = Array(decoder.accounts.names[accountsSent...])
                accountsSent = decoder.accounts.count
            }
            batch.consumedBytes = source.consumedBytes
            lock.lock()
            while ready.count >= batchesAhead && !cancelled { lock.wait() }
            let keepGoing = !cancelled
            if keepGoing && !(last && batch.items.isEmpty && batch.newSymbols.isEmpty && batch.newAccounts.isEmpty) {
                ready.append(batch)
            }
            if last { finished = true }
            lock.broadcast()
            lock.unlock()
            batch = Batch()
            batch.items.reserveCapacity(batchItems)
            return keepGoing
        }
        do throws(CastleError) {
            while let line = try reader.next() {
                if line.tooLong {
                    batch.items.append(
                        .rejected(op: nil, id: nil, reason: .malformed, detail: .lineTooLong, line: line.number)
                    )
                } else if line.isBlank {
                    continue
                } else {
                    switch decoder.decode(line.bytes, lineNumber: line.number) {
                    case .command(let command):
                        batch.items.append(.command(command))
                    case .rejected(let op, let id, let reason, let detail):
                        batch.items.append(.rejected(op: op, id: id, reason: reason, detail: detail, line: line.number))
                    }
                }
                if batch.items.count >= batchItems, !handOver(false) { return }
            }
            _ = handOver(true)
        } catch {
            // What was decoded before the error is delivered first.
            _ = handOver(false)
            lock.lock()
            failure = error
            lock.broadcast()
            lock.unlock()
        }
    }
}
