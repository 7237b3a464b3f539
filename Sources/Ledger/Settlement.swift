/// Maker and taker fee rates, in parts per million of what each side receives (100 ppm = 1 basis point).
public struct FeeSchedule: Sendable, Hashable {
    public var makerRate_ppm: Int64
    public var takerRate_ppm: Int64

    /// Rates are 0 to 999,999 ppm: a fee is always less than what it is taken from.
    public static let rate_ppm_max: Int64 = 999_999

    public init(makerRate_ppm: Int64, takerRate_ppm: Int64) {
        self.makerRate_ppm = makerRate_ppm
        self.takerRate_ppm = takerRate_ppm
    }

    /// Rates in basis points; one too large to hold in ppm becomes Int64.max, which settlement refuses.
    public static func basisPoints(maker: Int64, taker: Int64) -> FeeSchedule {
        func ppm(_ bp: Int64) -> Int64 {
            let (value, overflow) = bp.multipliedReportingOverflow(by: 100)
            return overflow ? Int64.max : value
        }
        return FeeSchedule(makerRate_ppm: ppm(maker), takerRate_ppm: ppm(taker))
    }

    public static let free = FeeSchedule(makerRate_ppm: 0, takerRate_ppm: 0)

    /// The first rate outside 0 to ``rate_ppm_max`` (maker's, then taker's), or nil.
    public var invalidRate: Int64? {
        if !(0...Self.rate_ppm_max).contains(makerRate_ppm) { return makerRate_ppm }
        if !(0...Self.rate_ppm_max).contains(takerRate_ppm) { return takerRate_ppm }
        return nil
    }
}

/// One trade to settle, in the instrument's units: `price` is a count of `10^-priceDecimals` quote units
/// per base unit, `qty` a count of `10^-qtyDecimals` base units.
public struct TradeSettlement: Sendable, Hashable {
    /// The consumer that settles (the name in the key `trade:CONSUMER:SEQ`).
    public var consumer: String
    /// The trade's sequence number in that consumer's stream.
    public var seq: UInt64
    public var ts: Int64
    public var base: Asset
    public var quote: Asset
    public var price: Int64
    public var priceDecimals: UInt8
    public var qty: Int64
    public var qtyDecimals: UInt8
    /// The buyer's and the seller's owner names; they settle through their `available` accounts.
    public var buyer: String
    public var seller: String
    /// True when the buyer took (the incoming order was the buy): the buyer pays the taker rate and the
    /// seller the maker rate; false the other way round.
    public var buyerIsTaker: Bool
    public var fees: FeeSchedule

    public init(
        consumer: String,
        seq: UInt64,
        ts: Int64,
        base: Asset,
        quote: Asset,
        price: Int64,
        priceDecimals: UInt8,
        qty: Int64,
        qtyDecimals: UInt8,
        buyer: String,
        seller: String,
        buyerIsTaker: Bool,
        fees: FeeSchedule
    ) {
        self.consumer = consumer
        self.seq = seq
        self.ts = ts
        self.base = base
        self.quote = quote
        self.price = price
        self.priceDecimals = priceDecimals
        self.qty = qty
        self.qtyDecimals = qtyDecimals
        self.buyer = buyer
        self.seller = seller
        self.buyerIsTaker = buyerIsTaker
        self.fees = fees
    }

    /// `trade:CONSUMER:SEQ`.
    public var key: String { "trade:\(consumer):\(seq)" }
}

/// What a trade's settlement moves, in minor units (``Settlement/amounts(price:priceDecimals:qty:qtyDecimals:base:quote:buyerRate_ppm:sellerRate_ppm:)``).
public struct SettlementAmounts: Sendable, Hashable {
    /// price × qty in quote minor units: what the buyer pays.
    public var quoteAmount: Int64
    /// qty in base minor units: what the seller delivers.
    public var baseAmount: Int64
    /// The buyer's fee, in base minor units.
    public var buyerFee: Int64
    /// The seller's fee, in quote minor units.
    public var sellerFee: Int64

    /// ``SettlementLegs/forEachPosting(_:)``. Inlinable: a settler calls it for every trade, and the
    /// closure inlined costs nothing.
    @inlinable
    public func forEachPosting(_ body: (SettlementParty, _ inQuote: Bool, Int64) -> Void) {
        body(.buyer, true, -quoteAmount)
        body(.seller, true, quoteAmount - sellerFee)
        if sellerFee > 0 { body(.exchange, true, sellerFee) }
        body(.seller, false, -baseAmount)
        body(.buyer, false, baseAmount - buyerFee)
        if buyerFee > 0 { body(.exchange, false, buyerFee) }
    }
}

/// Who a settlement posting goes to: the buyer's or the seller's `available` account, or `fees:exchange`.
public enum SettlementParty: Sendable, Hashable {
    case buyer, seller, exchange
}

/// A trade's settlement as checked amounts (``Settlement/legs(for:)``): everything ``Settlement/entry(for:)``
/// posts, without building the entry, so that a settler can write it straight into its own records.
public struct SettlementLegs: Sendable, Hashable {
    /// `trade:CONSUMER:SEQ`, checked as an entry's key.
    public var key: String
    /// The buyer's and the seller's `available` accounts.
    public var buyer: Account
    public var seller: Account
    /// price × qty in quote minor units: what the buyer pays.
    public var quoteAmount: Int64
    /// qty in base minor units: what the seller delivers.
    public var baseAmount: Int64
    /// The buyer's fee, in base minor units (taken from what the buyer receives).
    public var buyerFee: Int64
    /// The seller's fee, in quote minor units (taken from what the seller receives).
    public var sellerFee: Int64

    /// The entry's postings in order, as (who, whether in the quote asset (else the base), amount); a fee
    /// of zero is not posted. Four to six postings, none zero, each asset summing to zero.
    public func forEachPosting(_ body: (SettlementParty, _ inQuote: Bool, Int64) -> Void) {
        amounts.forEachPosting(body)
    }

    public var amounts: SettlementAmounts {
        SettlementAmounts(quoteAmount: quoteAmount, baseAmount: baseAmount, buyerFee: buyerFee, sellerFee: sellerFee)
    }
}

/// Trade settlement as a pure function.
public enum Settlement {
    /// The entry that settles `trade`: the buyer pays the quote amount (price × qty) and receives the
    /// base amount (qty); the seller the other way round; each side's fee is taken from what it receives
    /// and posted to `fees:exchange`.
    ///
    /// Rounding: amounts are exact or refused. price × qty is computed in Int128 and must be a whole
    /// number of the quote asset's minor units (and fit an Int64); qty must be a whole number of the base
    /// asset's minor units. A fee is `floor(received × rate_ppm / 1,000,000)`: rounded down, toward the
    /// user, so the exchange never charges more than its rate and never creates money; the fee and the
    /// net received are both whole minor units, so the postings sum to zero exactly. A zero fee is not
    /// posted.
    public static func entry(for trade: TradeSettlement) -> Result<Entry, LedgerInputError> {
        legs(for: trade).map { legs in
            var postings: [Posting] = []
            postings.reserveCapacity(6)
            legs.forEachPosting { party, inQuote, amount in
                let account =
                    switch party {
                    case .buyer: legs.buyer
                    case .seller: legs.seller
                    case .exchange: Account.exchangeFees
                    }
                postings.append(Posting(account: account, asset: inQuote ? trade.quote : trade.base, amount: amount))
            }
            let entry = Entry(key: legs.key, kind: .trade, ts: trade.ts, postings: postings)
            assert((try? entry.validate()) != nil, "a settlement entry is valid by construction")
            assert(entry.unbalancedAsset == nil, "a settlement entry balances by construction")
            return entry
        }
    }

    /// The checked amounts of ``entry(for:)``'s entry, refused for the same reasons with the same
    /// messages: the postings ``SettlementLegs/forEachPosting(_:)`` gives make a valid, balanced entry
    /// (its key and `ts` checked as ``Entry/validate()`` does).
    public static func legs(for trade: TradeSettlement) -> Result<SettlementLegs, LedgerInputError> {
        let key = trade.key
        do throws(LedgerInputError) {
            return .success(try makeLegs(trade, key: key))
        } catch {
            return .failure(LedgerInputError("trade \(key): \(error.reason)"))
        }
    }

    static func makeLegs(_ t: TradeSettlement, key: String) throws(LedgerInputError) -> SettlementLegs {
        guard t.price > 0 else { throw LedgerInputError("the price is not positive") }
        guard t.qty > 0 else { throw LedgerInputError("the quantity is not positive") }
        guard t.base.code != t.quote.code else { throw LedgerInputError("base and quote are both \(t.base)") }
        guard t.priceDecimals <= 18, t.qtyDecimals <= 18 else { throw LedgerInputError("more than 18 decimals") }
        if let rate = t.fees.invalidRate {
            throw LedgerInputError("fee rate \(rate) ppm is not 0 to \(FeeSchedule.rate_ppm_max)")
        }
        let buyer = try Account(kind: .available, owner: t.buyer)
        let seller = try Account(kind: .available, owner: t.seller)
        let amounts = try amounts(
            price: t.price,
            priceDecimals: t.priceDecimals,
            qty: t.qty,
            qtyDecimals: t.qtyDecimals,
            base: t.base,
            quote: t.quote,
            buyerRate_ppm: t.buyerIsTaker ? t.fees.takerRate_ppm : t.fees.makerRate_ppm,
            sellerRate_ppm: t.buyerIsTaker ? t.fees.makerRate_ppm : t.fees.takerRate_ppm
        ).get()
        // The entry's own rules that its fields could break (Entry.validate, in its order): the key, `ts`.
        try Entry.validateKey(key, field: "key")
        if t.ts < 0 { throw LedgerInputError("ts \(t.ts) is negative") }
        return SettlementLegs(
            key: key,
            buyer: buyer,
            seller: seller,
            quoteAmount: amounts.quoteAmount,
            baseAmount: amounts.baseAmount,
            buyerFee: amounts.buyerFee,
            sellerFee: amounts.sellerFee
        )
    }

    /// The arithmetic of ``legs(for:)``, for a settler that has checked the rest (positive price and qty,
    /// the market, the rates, the owners, the key) once rather than per trade: the base amount (qty in the
    /// base's minor units), the quote amount (price × qty in the quote's), and each side's fee, exact or
    /// refused with ``legs(for:)``'s reason (without its `trade KEY: ` prefix).
    public static func amounts(
        price: Int64,
        priceDecimals: UInt8,
        qty: Int64,
        qtyDecimals: UInt8,
        base: Asset,
        quote: Asset,
        buyerRate_ppm: Int64,
        sellerRate_ppm: Int64
    ) -> Result<SettlementAmounts, LedgerInputError> {
        let baseAmount: Int64
        switch rescale(Int128(qty), from: qtyDecimals, to: base.scale) {
        case .success(let amount): baseAmount = amount
        case .failure(.inexact):
            return .failure(
                LedgerInputError(
                    "qty \(qty)e-\(qtyDecimals) is not a whole number of \(base) minor units (scale \(base.scale))"
                )
            )
        case .failure(.tooLarge):
            return .failure(LedgerInputError("qty \(qty)e-\(qtyDecimals) is too large in \(base) minor units"))
        }
        let quoteAmount: Int64
        switch rescale(Int128(price) * Int128(qty), from: priceDecimals + qtyDecimals, to: quote.scale) {
        case .success(let amount): quoteAmount = amount
        case .failure(.inexact):
            return .failure(
                LedgerInputError("price × qty is not a whole number of \(quote) minor units (scale \(quote.scale))")
            )
        case .failure(.tooLarge):
            return .failure(LedgerInputError("price × qty is too large in \(quote) minor units"))
        }
        return .success(
            SettlementAmounts(
                quoteAmount: quoteAmount,
                baseAmount: baseAmount,
                buyerFee: fee(baseAmount, rate_ppm: buyerRate_ppm),
                sellerFee: fee(quoteAmount, rate_ppm: sellerRate_ppm)
            )
        )
    }

    enum RescaleFailure: Error {
        /// Not a whole number of the target units.
        case inexact
        /// Beyond ±Int64.max target units.
        case tooLarge
    }

    /// `value × 10^-from` as a count of `10^-to` units, when exact and within ±Int64.max.
    static func rescale(_ value: Int128, from: UInt8, to: UInt8) -> Result<Int64, RescaleFailure> {
        var result = value
        if to >= from {
            for _ in 0..<(to - from) {
                let (product, overflow) = result.multipliedReportingOverflow(by: 10)
                if overflow { return .failure(.tooLarge) }
                result = product
            }
        } else {
            for _ in 0..<(from - to) {
                if result % 10 != 0 { return .failure(.inexact) }
                result /= 10
            }
        }
        guard result <= Int128(Int64.max), result >= -Int128(Int64.max) else { return .failure(.tooLarge) }
        return .success(Int64(result))
    }

    /// `floor(amount × rate_ppm / 1,000,000)` for a positive amount; always less than `amount`.
    static func fee(_ amount: Int64, rate_ppm: Int64) -> Int64 {
        precondition(amount > 0 && (0...FeeSchedule.rate_ppm_max).contains(rate_ppm))
        let fee = Int64(Int128(amount) * Int128(rate_ppm) / 1_000_000)
        assert(fee >= 0 && fee < amount)
        return fee
    }
}
