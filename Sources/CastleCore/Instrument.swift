/// Trading rules of one symbol: how many decimals its prices and quantities carry, and the steps they
/// must be multiples of. Tick and lot are in units of the last decimal.
public struct Instrument: Sendable, Hashable {
    public var priceDecimals: UInt8
    public var qtyDecimals: UInt8
    public var tick: Int64
    public var lot: Int64

    public init(priceDecimals: UInt8, qtyDecimals: UInt8, tick: Int64 = 1, lot: Int64 = 1) {
        precondition(priceDecimals <= FixedDecimal.maxScale && qtyDecimals <= FixedDecimal.maxScale)
        precondition(tick > 0 && lot > 0)
        self.priceDecimals = priceDecimals
        self.qtyDecimals = qtyDecimals
        self.tick = tick
        self.lot = lot
    }

    /// Any symbol with no instruments file: up to 8 decimal places for price and quantity.
    public static let unrestricted = Instrument(priceDecimals: 8, qtyDecimals: 8)
}
