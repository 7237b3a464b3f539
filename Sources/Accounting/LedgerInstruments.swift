import CastleCore
public import CastleSupport
import Codecs
public import Ledger

/// The assets the ledger knows and the markets trades settle in, from the instruments file.
///
/// An asset's scale is, in order: its `{"asset":…,"scale":…}` line in the instruments file; its ISO 4217
/// scale (USD 2, JPY 0; ``AssetTable/iso4217``); for an asset that is some instrument's base, the most
/// `qty_decimals` of those instruments (so every quantity is a whole number of minor units). Settlement
/// is exact or refused: a quote asset needs at least `price_decimals + qty_decimals` decimals of its
/// instruments for every price × qty to be whole (`datasets/instruments.ndjson` declares USD at 6).
public struct LedgerInstruments: Sendable {
    public struct Market: Sendable, Hashable {
        public var base: Asset
        public var quote: Asset
        public var priceDecimals: UInt8
        public var qtyDecimals: UInt8
    }

    public var assets: AssetTable
    public var markets: [String: Market]

    /// No instruments file: the ISO 4217 currencies, no market.
    public static let isoOnly = LedgerInstruments(assets: .iso4217, markets: [:])

    public init(assets: AssetTable, markets: [String: Market]) {
        self.assets = assets
        self.markets = markets
    }

    public static func load(path: String) throws(CastleError) -> LedgerInstruments {
        var symbols = NameTable(capacityMax: 100_000)
        let catalog = try InstrumentsFile.loadCatalog(path: path, symbols: &symbols)
        func fail(_ reason: String) -> CastleError { CastleError(.dataError, "\(path): \(reason)") }
        var scales = catalog.assetScales
        for (code, asset) in AssetTable.iso4217.byCode where scales[code] == nil { scales[code] = asset.scale }
        var baseScales: [String: UInt8] = [:]
        for (id, market) in catalog.markets where scales[market.base] == nil {
            let decimals = catalog.instruments[id]!.qtyDecimals
            baseScales[market.base] = max(baseScales[market.base] ?? 0, decimals)
        }
        scales.merge(baseScales) { declared, _ in declared }
        var assets = AssetTable()
        for (code, scale) in scales {
            do throws(LedgerInputError) {
                assets.insert(try Asset(code: code, scale: scale))
            } catch {
                throw fail(error.reason)
            }
        }
        var markets: [String: Market] = [:]
        for (id, market) in catalog.markets {
            let symbol = symbols.string(of: id)
            guard let base = assets[market.base], let quote = assets[market.quote] else {
                let missing = assets[market.base] == nil ? market.base : market.quote
                throw fail(
                    "\(symbol): asset \(missing) has no scale; declare it with {\"asset\":\"\(missing)\",\"scale\":N}"
                )
            }
            let instrument = catalog.instruments[id]!
            markets[symbol] = Market(
                base: base,
                quote: quote,
                priceDecimals: instrument.priceDecimals,
                qtyDecimals: instrument.qtyDecimals
            )
        }
        return LedgerInstruments(assets: assets, markets: markets)
    }
}
