public import CastleSupport
import Ledger
public import Storage

/// `castle ledger settle`: the durable matcher's trades into the ledger, exactly once.
public enum LedgerSettle {
    public struct Summary: Sendable, Hashable {
        /// Trades settled by this run.
        public var trades: Int
        /// Entries of those that were in the ledger already (a settlement entry posted by hand, say).
        public var alreadyPosted: Int
        /// The consumer's watermark at the end: the last trade `seq` settled.
        public var through: Int64
    }

    /// Trades read and settled per transaction.
    public static let defaultBatchTrades = 20_000

    /// Settles the trades of `consumer` after its stored watermark, in `seq` order, each as the entry
    /// ``Settlement/entry(for:)`` makes (key `trade:CONSUMER:SEQ`), a batch at a time: the batch's entries
    /// and the new watermark in one transaction, so a run killed at any point and run again settles every
    /// trade once. The consumer is locked for the run (`nil` from the store: another settle holds it, exit
    /// 75).
    ///
    /// An order that named no account settles through `available:UNOWNED` when `unownedAccount` is given
    /// (the house account that such orders trade for); without it, its trades are refused.
    ///
    /// A trade that cannot be settled (its symbol has no market, an order named no account, an inexact
    /// amount, or a buyer or seller without the funds) stops the run: the trades before it are committed
    /// with the watermark, and the error (exit 65) names the trade's key. Fix the cause (post the deposit)
    /// and run again.
    public static func run(
        store: any Backend,
        consumer: String,
        instruments: LedgerInstruments,
        fees: FeeTable,
        unownedAccount: String? = nil,
        batchTrades: Int = defaultBatchTrades,
        postedAt: Int64,
        progress: (Int64) -> Void = { _ in }
    ) async throws(CastleError) -> Summary {
        guard let lock = try await store.acquireSettlementLock(consumer: consumer) else {
            throw CastleError(
                .temporaryFailure,
                "\(store.displayURL): another castle ledger settle is settling consumer \(consumer)"
            )
        }
        do throws(CastleError) {
            let summary = try await settle(
                store: store,
                consumer: consumer,
                instruments: instruments,
                fees: fees,
                unownedAccount: unownedAccount,
                batchTrades: batchTrades,
                postedAt: postedAt,
                progress: progress
            )
            await lock.release()
            return summary
        } catch {
            await lock.release()
            throw error
        }
    }

    /// A batch of trades and their settlement records, up to the first trade that cannot be settled.
    struct Batch: Sendable {
        var trades: [TradeRow]
        var records: [LedgerEntryRecord]
        var failure: CastleError?
    }

    static func settle(
        store: any Backend,
        consumer: String,
        instruments: LedgerInstruments,
        fees: FeeTable,
        unownedAccount: String?,
        batchTrades: Int,
        postedAt: Int64,
        progress: (Int64) -> Void
    ) async throws(CastleError) -> Summary {
        var summary = Summary(
            trades: 0,
            alreadyPosted: 0,
            through: try await store.settlementWatermark(consumer: consumer)
        )
        @Sendable func convert(_ trades: [TradeRow]) -> Batch {
            var batch = Batch(trades: trades, records: [], failure: nil)
            batch.records.reserveCapacity(trades.count)
            for trade in trades {
                switch record(
                    for: trade,
                    consumer: consumer,
                    instruments: instruments,
                    fees: fees,
                    unownedAccount: unownedAccount
                ) {
                case .success(let record): batch.records.append(record)
                case .failure(let error): batch.failure = error
                }
                if batch.failure != nil { break }
            }
            return batch
        }
        var batch = convert(
            try await store.readTrades(consumer: consumer, afterSeq: summary.through, limit: batchTrades)
        )
        while !batch.trades.isEmpty {
            // The next batch is read first (the store reads on the thread it writes with), then turned into
            // records on this process's cores while the store commits this one.
            let upcomingTrades = try await store.readTrades(
                consumer: consumer,
                afterSeq: batch.trades.last!.seq,
                limit: batchTrades
            )
            async let upcoming = convert(upcomingTrades)
            try await commit(&batch, store: store, consumer: consumer, postedAt: postedAt, summary: &summary)
            progress(summary.through)
            batch = await upcoming
        }
        return summary
    }

    /// Posts the batch's records with the watermark; when the store refuses one, posts those before it and
    /// stops there. Throws the batch's failure, if any, once what precedes it is committed.
    static func commit(
        _ batch: inout Batch,
        store: any Backend,
        consumer: String,
        postedAt: Int64,
        summary: inout Summary
    ) async throws(CastleError) {
        while true {
            let through = batch.records.isEmpty ? summary.through : batch.trades[batch.records.count - 1].seq
            let outcome = try await store.postLedgerEntries(
                batch.records,
                postedAt: postedAt,
                watermark: LedgerWatermarkAdvance(consumer: consumer, previous: summary.through, next: through)
            )
            switch outcome {
            case .committed(let posted, let alreadyPosted):
                summary.trades += posted + alreadyPosted
                summary.alreadyPosted += alreadyPosted
                summary.through = through
            case .refused(let refusal):
                batch.failure = CastleError(
                    .dataError,
                    "\(LedgerRecords.message(refusal)) (trade seq \(batch.trades[refusal.index].seq))"
                )
                batch.records.removeSubrange(refusal.index...)
                continue
            }
            break
        }
        if let failure = batch.failure {
            throw CastleError(
                failure.kind,
                "\(failure.message); settled through seq \(summary.through): fix it and run settle again"
            )
        }
    }

    /// The settlement entry of one trade, as the store's record.
    static func record(
        for trade: TradeRow,
        consumer: String,
        instruments: LedgerInstruments,
        fees: FeeTable,
        unownedAccount: String?
    ) -> Result<LedgerEntryRecord, CastleError> {
        let key = "trade:\(consumer):\(trade.seq)"
        func fail(_ reason: String) -> Result<LedgerEntryRecord, CastleError> {
            .failure(CastleError(.dataError, "trade \(key): \(reason)"))
        }
        guard let market = instruments.markets[trade.symbol] else {
            return fail("symbol \(trade.symbol) has no base and quote assets in the instruments file")
        }
        guard let makerAccount = trade.makerAccount ?? unownedAccount,
            let takerAccount = trade.takerAccount ?? unownedAccount
        else {
            return fail(
                "an order of the trade named no account (settle books trades to their orders' accounts; --unowned-account OWNER takes such orders)"
            )
        }
        guard trade.side == "buy" || trade.side == "sell" else {
            return fail("side \"\(trade.side)\" is not buy or sell")
        }
        let buyerIsTaker = trade.side == "buy"
        let settlement = TradeSettlement(
            consumer: consumer,
            seq: UInt64(trade.seq),
            ts: trade.ts ?? 0,
            base: market.base,
            quote: market.quote,
            price: trade.price,
            priceDecimals: market.priceDecimals,
            qty: trade.qty,
            qtyDecimals: market.qtyDecimals,
            buyer: buyerIsTaker ? takerAccount : makerAccount,
            seller: buyerIsTaker ? makerAccount : takerAccount,
            buyerIsTaker: buyerIsTaker,
            fees: fees.schedule(for: trade.symbol)
        )
        switch Settlement.legs(for: settlement) {
        case .success(let legs):
            // Written straight into the store's record, without an `Entry` in between (the legs are the
            // entry's checked postings), and sealed (its content hash and postings text) on this side of
            // the pipeline, while the store writes the previous batch.
            let buyer = legs.buyer.description
            let seller = legs.seller.description
            var postings: [LedgerPostingRecord] = []
            postings.reserveCapacity(6)
            legs.forEachPosting { party, inQuote, amount in
                let asset = inQuote ? market.quote : market.base
                let account =
                    switch party {
                    case .buyer: (buyer, legs.buyer.kind.mayGoNegative)
                    case .seller: (seller, legs.seller.kind.mayGoNegative)
                    case .exchange: (exchangeFees, Account.exchangeFees.kind.mayGoNegative)
                    }
                postings.append(
                    LedgerPostingRecord(
                        account: account.0,
                        asset: asset.code,
                        scale: asset.scale,
                        amount: amount,
                        mayGoNegative: account.1
                    )
                )
            }
            var record = LedgerEntryRecord(key: legs.key, kind: tradeKind, ts: settlement.ts, postings: postings)
            assert(
                (try? Settlement.entry(for: settlement).get()).map(LedgerRecords.record) == record,
                "the settlement record is the settlement entry's"
            )
            record.seal()
            return .success(record)
        case .failure(let error): return .failure(CastleError(.dataError, error.reason))
        }
    }

    private static let exchangeFees = Account.exchangeFees.description
    private static let tradeKind = EntryKind.trade.rawValue
}
