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
        debugPauseAfterBatches: Int? = nil,
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
                debugPauseAfterBatches: debugPauseAfterBatches,
                progress: progress
            )
            await lock.release()
            return summary
        } catch {
            await lock.release()
            throw error
        }
    }

    /// A batch of trades and the block that settles them, up to the first trade that cannot be settled.
    struct Batch: Sendable {
        var trades: [TradeRow]
        var block: SettlementBlock
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
        debugPauseAfterBatches: Int?,
        progress: (Int64) -> Void
    ) async throws(CastleError) -> Summary {
        var summary = Summary(
            trades: 0,
            alreadyPosted: 0,
            through: try await store.settlementWatermark(consumer: consumer)
        )
        @Sendable func convert(_ trades: [TradeRow]) -> Batch {
            block(for: trades, consumer: consumer, instruments: instruments, fees: fees, unownedAccount: unownedAccount)
        }
        var batch = convert(
            try await store.readTrades(consumer: consumer, afterSeq: summary.through, limit: batchTrades)
        )
        var committed = 0
        while !batch.trades.isEmpty {
            // The next batch is read first (the store reads on the thread it writes with), then turned into
            // a block on this process's cores while the store commits this one.
            let upcomingTrades = try await store.readTrades(
                consumer: consumer,
                afterSeq: batch.trades.last!.seq,
                limit: batchTrades
            )
            async let upcoming = convert(upcomingTrades)
            try await commit(&batch, store: store, consumer: consumer, postedAt: postedAt, summary: &summary)
            progress(summary.through)
            committed += 1
            if committed == debugPauseAfterBatches {
                writeStandardError("castle ledger settle: paused after \(committed) batches (debug fault)\n")
                while true { try? await Task.sleep(for: .seconds(3600)) }
            }
            batch = await upcoming
        }
        return summary
    }

    /// Posts the batch's block with the watermark; when the store refuses an entry, posts those before it
    /// and stops there. Throws the batch's failure, if any, once what precedes it is committed.
    static func commit(
        _ batch: inout Batch,
        store: any Backend,
        consumer: String,
        postedAt: Int64,
        summary: inout Summary
    ) async throws(CastleError) {
        while true {
            let through = batch.block.isEmpty ? summary.through : batch.block.lastTradeSeq
            let outcome = try await store.postSettlementBlock(
                batch.block,
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
                    "\(LedgerRecords.message(refusal)) (trade seq \(batch.block.trades[refusal.index].seq))"
                )
                batch.block = batch.block.prefix(refusal.index)
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

    /// The block settling `trades` in order, up to the first that cannot be settled (the batch's failure).
    /// Each trade's entry is the one ``record(for:consumer:instruments:fees:unownedAccount:)`` makes (a debug
    /// build checks it), written straight into the block's tables. What does not change from trade to
    /// trade is checked once: a market (its assets, decimals and rates) per symbol, an owner per name,
    /// and the keys (the longest a `seq` can make); a trade that passes those costs
    /// ``Settlement/amounts(price:priceDecimals:qty:qtyDecimals:base:quote:buyerRate_ppm:sellerRate_ppm:)``
    /// and a few look-ups. Any other trade goes through ``Settlement/legs(for:)`` whole, which refuses it
    /// with the exact reason.
    static func block(
        for trades: [TradeRow],
        consumer: String,
        instruments: LedgerInstruments,
        fees: FeeTable,
        unownedAccount: String?
    ) -> Batch {
        struct Market {
            var market: LedgerInstruments.Market
            var fees: FeeSchedule
            var base: Int32
            var quote: Int32
            /// Whether every per-market check of ``Settlement/legs(for:)`` passes.
            var valid: Bool
        }
        var builder = SettlementBlock.Builder(consumer: consumer)
        var failure: CastleError?
        var markets: [String: Market] = [:]
        // Per owner: the block's index of its `available` account, nil when the name is not a valid owner.
        var owners: [String: Int32?] = [:]
        let exchange = builder.account(exchangeFees, mayGoNegative: Account.exchangeFees.kind.mayGoNegative)
        let keysValid = Entry.isValidKey(SettlementBlock.tradeKey(consumer: consumer, seq: .max))
        func owner(_ name: String) -> Int32? {
            if let known = owners[name] { return known }
            let index = (try? Account(kind: .available, owner: name)).map {
                builder.account($0.description, mayGoNegative: $0.kind.mayGoNegative)
            }
            owners[name] = index
            return index
        }
        for trade in trades {
            func fail(_ reason: String) {
                failure = CastleError(
                    .dataError,
                    "trade \(SettlementBlock.tradeKey(consumer: consumer, seq: trade.seq)): \(reason)"
                )
            }
            let market: Market
            if let known = markets[trade.symbol] {
                market = known
            } else {
                guard let found = instruments.markets[trade.symbol] else {
                    fail("symbol \(trade.symbol) has no base and quote assets in the instruments file")
                    break
                }
                let schedule = fees.schedule(for: trade.symbol)
                market = Market(
                    market: found,
                    fees: schedule,
                    base: builder.asset(found.base.code, scale: found.base.scale),
                    quote: builder.asset(found.quote.code, scale: found.quote.scale),
                    valid: found.base.code != found.quote.code && found.priceDecimals <= 18
                        && found.qtyDecimals <= 18 && schedule.invalidRate == nil
                )
                markets[trade.symbol] = market
            }
            guard let makerAccount = trade.makerAccount ?? unownedAccount,
                let takerAccount = trade.takerAccount ?? unownedAccount
            else {
                fail(
                    "an order of the trade named no account (settle books trades to their orders' accounts; --unowned-account OWNER takes such orders)"
                )
                break
            }
            guard trade.side == "buy" || trade.side == "sell" else {
                fail("side \"\(trade.side)\" is not buy or sell")
                break
            }
            let buyerIsTaker = trade.side == "buy"
            let ts = trade.ts ?? 0
            let buyerName = buyerIsTaker ? takerAccount : makerAccount
            let sellerName = buyerIsTaker ? makerAccount : takerAccount
            let buyerRate = buyerIsTaker ? market.fees.takerRate_ppm : market.fees.makerRate_ppm
            let sellerRate = buyerIsTaker ? market.fees.makerRate_ppm : market.fees.takerRate_ppm
            let amounts: SettlementAmounts
            let buyer: Int32
            let seller: Int32
            if trade.price > 0, trade.qty > 0, market.valid, keysValid, ts >= 0, let buyerIndex = owner(buyerName),
                let sellerIndex = owner(sellerName),
                case .success(let checked) = Settlement.amounts(
                    price: trade.price,
                    priceDecimals: market.market.priceDecimals,
                    qty: trade.qty,
                    qtyDecimals: market.market.qtyDecimals,
                    base: market.market.base,
                    quote: market.market.quote,
                    buyerRate_ppm: buyerRate,
                    sellerRate_ppm: sellerRate
                )
            {
                (amounts, buyer, seller) = (checked, buyerIndex, sellerIndex)
            } else {
                let settlement = TradeSettlement(
                    consumer: consumer,
                    seq: UInt64(trade.seq),
                    ts: ts,
                    base: market.market.base,
                    quote: market.market.quote,
                    price: trade.price,
                    priceDecimals: market.market.priceDecimals,
                    qty: trade.qty,
                    qtyDecimals: market.market.qtyDecimals,
                    buyer: buyerName,
                    seller: sellerName,
                    buyerIsTaker: buyerIsTaker,
                    fees: market.fees
                )
                let checked = Settlement.legs(for: settlement)
                guard case .success(let legs) = checked else {
                    if case .failure(let error) = checked { failure = CastleError(.dataError, error.reason) }
                    break
                }
                amounts = legs.amounts
                buyer = builder.account(legs.buyer.description, mayGoNegative: legs.buyer.kind.mayGoNegative)
                seller = builder.account(legs.seller.description, mayGoNegative: legs.seller.kind.mayGoNegative)
            }
            amounts.forEachPosting { party, inQuote, amount in
                let account =
                    switch party {
                    case .buyer: buyer
                    case .seller: seller
                    case .exchange: exchange
                    }
                builder.posting(
                    pair: builder.pair(account: account, asset: inQuote ? market.quote : market.base),
                    amount: amount
                )
            }
            builder.endTrade(seq: trade.seq, ts: ts)
        }
        let block = builder.build()
        assert(
            block.records()
                == trades.prefix(block.count).map {
                    try! record(
                        for: $0,
                        consumer: consumer,
                        instruments: instruments,
                        fees: fees,
                        unownedAccount: unownedAccount
                    ).get()
                },
            "the block's entries are the settlement entries"
        )
        return Batch(trades: trades, block: block, failure: failure)
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
