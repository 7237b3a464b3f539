public import CastleSupport
public import Ledger
public import Streams

/// How a CSV layout's columns become ``ExternalRecord``s: which column is the id, the amount, the
/// currency, the date…, and the amount's unit. The known layouts are built in; any other CSV comes with
/// a mapping file (JSON or TOML, docs/reconcile.md).
public struct ColumnMapping: Sendable, Hashable {
    public enum AmountUnit: String, Sendable, Hashable {
        /// Integer minor units (cents): Stripe's API.
        case minor
        /// Decimal major units (`12.50`): dashboards and PayPal.
        case major
    }

    public enum DateFormat: String, Sendable, Hashable {
        /// `YYYY-MM-DD`, optionally with a time after it; Unix seconds are understood too.
        case iso
        /// `MM/DD/YYYY`.
        case us
        /// `DD.MM.YYYY`.
        case european
    }

    public var name: String
    public var id: String
    public var amount: String
    /// The currency column, or nil when every row is in ``fixedCurrency``.
    public var currency: String?
    public var fixedCurrency: String?
    public var date: String
    public var dateFormat: DateFormat = .iso
    public var unit: AmountUnit
    /// A thousands separator to drop from amounts (`"1,250.00"`), or nil.
    public var thousandsSeparator: UInt8?
    /// Columns whose values a ledger entry's `ref` may carry; the id column is always one.
    public var refs: [String] = []
    /// The payout or batch column, for N:1 matching.
    public var batch: String?
    public var status: String?
    /// Status values (compared lowercased) that mean no money moved.
    public var failedStatuses: Set<String> = []
    /// Status values (lowercased) that mean the money moved and was taken back.
    public var reversedStatuses: Set<String> = []

    public init(
        name: String,
        id: String,
        amount: String,
        currency: String?,
        fixedCurrency: String? = nil,
        date: String,
        dateFormat: DateFormat = .iso,
        unit: AmountUnit,
        thousandsSeparator: UInt8? = nil,
        refs: [String] = [],
        batch: String? = nil,
        status: String? = nil,
        failedStatuses: Set<String> = [],
        reversedStatuses: Set<String> = []
    ) {
        self.name = name
        self.id = id
        self.amount = amount
        self.currency = currency
        self.fixedCurrency = fixedCurrency
        self.date = date
        self.dateFormat = dateFormat
        self.unit = unit
        self.thousandsSeparator = thousandsSeparator
        self.refs = refs
        self.batch = batch
        self.status = status
        self.failedStatuses = failedStatuses
        self.reversedStatuses = reversedStatuses
    }

    /// Stripe balance transactions as the API (and Fivetran) name them: amounts in cents.
    public static let stripeBalanceTransactions = ColumnMapping(
        name: "stripe_balance_transactions",
        id: "id",
        amount: "amount",
        currency: "currency",
        date: "created",
        unit: .minor,
        refs: ["source"],
        batch: "payout_id",
        status: "status",
        failedStatuses: ["failed"]
    )

    /// Stripe Dashboard payments export: Dashboard headers, amounts in major units.
    public static let stripePayments = ColumnMapping(
        name: "stripe_payments",
        id: "id",
        amount: "amount",
        currency: "currency",
        date: "created",
        unit: .major,
        refs: ["payment_intent_id"],
        batch: "transfer",
        status: "status",
        failedStatuses: ["failed", "canceled", "cancelled"],
        reversedStatuses: ["refunded"]
    )

    /// Stripe payouts: amounts in cents, dated by arrival.
    public static let stripePayouts = ColumnMapping(
        name: "stripe_payouts",
        id: "id",
        amount: "amount",
        currency: "currency",
        date: "arrival_date",
        unit: .minor,
        refs: ["balance_transaction_id"],
        status: "status",
        failedStatuses: ["failed", "canceled"]
    )

    /// PayPal activity download: US dates, major units with thousands separators.
    public static let paypalActivity = ColumnMapping(
        name: "paypal_activity",
        id: "Transaction ID",
        amount: "Gross",
        currency: "Currency",
        date: "Date",
        dateFormat: .us,
        unit: .major,
        thousandsSeparator: UInt8(ascii: ","),
        status: "Status",
        failedStatuses: ["denied", "failed", "cancelled", "canceled"],
        reversedStatuses: ["reversed", "refunded"]
    )

    public static let builtIn: [ColumnMapping] = [
        stripeBalanceTransactions, stripePayments, stripePayouts, paypalActivity,
    ]

    /// The built-in layout a header belongs to, or nil.
    public static func detect(header: [String]) -> ColumnMapping? {
        let columns = Set(header)
        if columns.isSuperset(of: ["id", "amount", "fee", "net", "available_on"]) { return stripeBalanceTransactions }
        if columns.isSuperset(of: ["id", "amount", "amount_refunded", "currency"]) { return stripePayments }
        if columns.isSuperset(of: ["id", "amount", "arrival_date"]) { return stripePayouts }
        if columns.isSuperset(of: ["Transaction ID", "Gross", "Currency", "Date"]) { return paypalActivity }
        return nil
    }

    /// A mapping file: JSON or TOML with `id`, `amount`, `currency` (or `currency_value`), `date`, `unit`, and
    /// optionally `date_format`, `thousands_separator`, `refs`, `batch`, `status`, `failed_statuses`,
    /// `reversed_statuses`; or `{"layout": NAME}` (`layout = NAME`) for a built-in one.
    public static func parse(_ bytes: [UInt8], name fileName: String) throws(CastleError) -> ColumnMapping {
        let object = try ConfigObject(bytes, fileName: fileName)
        try object.allowOnly([
            "layout", "id", "amount", "currency", "currency_value", "date", "date_format", "unit",
            "thousands_separator", "refs", "batch", "status", "failed_statuses", "reversed_statuses",
        ])
        if let layout = try object.string("layout") {
            guard let mapping = builtIn.first(where: { $0.name == layout }) else {
                throw object.fail("layout \"\(layout)\" is not one of \(builtIn.map(\.name).joined(separator: ", "))")
            }
            return mapping
        }
        guard let id = try object.string("id"), let amount = try object.string("amount"),
            let date = try object.string("date"), let unitText = try object.string("unit")
        else { throw object.fail("a mapping names at least id, amount, date and unit") }
        guard let unit = AmountUnit(rawValue: unitText) else { throw object.fail("unit is \"minor\" or \"major\"") }
        let currency = try object.string("currency")
        let fixed = try object.string("currency_value")
        guard (currency == nil) != (fixed == nil) else {
            throw object.fail("give exactly one of currency (a column) and currency_value (one code for all rows)")
        }
        var mapping = ColumnMapping(
            name: fileName,
            id: id,
            amount: amount,
            currency: currency,
            fixedCurrency: fixed,
            date: date,
            unit: unit
        )
        if let format = try object.string("date_format") {
            guard let parsed = DateFormat(rawValue: format) else {
                throw object.fail("date_format is iso, us or european")
            }
            mapping.dateFormat = parsed
        }
        if let separator = try object.string("thousands_separator") {
            guard separator.utf8.count == 1, let byte = separator.utf8.first, byte != UInt8(ascii: ".") else {
                throw object.fail("thousands_separator is one character other than \".\"")
            }
            mapping.thousandsSeparator = byte
        }
        mapping.refs = try object.strings("refs") ?? []
        mapping.batch = try object.string("batch")
        mapping.status = try object.string("status")
        mapping.failedStatuses = Set((try object.strings("failed_statuses") ?? []).map { $0.lowercased() })
        mapping.reversedStatuses = Set((try object.strings("reversed_statuses") ?? []).map { $0.lowercased() })
        return mapping
    }
}

/// A processor CSV read through a ``ColumnMapping``, strictly: a missing column, a row with another
/// number of fields than the header (a truncated file), an empty id, an amount that is not exact in its
/// currency's scale, an unknown currency or an unreadable date is an error naming `file:line`.
public enum MappedCSV {
    public static func read(
        _ source: InputSource,
        mapping given: ColumnMapping?,
        assets: AssetTable
    ) throws(CastleError) -> [ExternalRecord] {
        let reader = CSVReader(source: source)
        guard let (header, headerLine) = try reader.next() else {
            throw CastleError(.dataError, "\(source.name): empty: a CSV source starts with a header line")
        }
        guard let mapping = given ?? ColumnMapping.detect(header: header) else {
            throw CastleError(
                .dataError,
                "\(source.name):\(headerLine): not a known layout (\(ColumnMapping.builtIn.map(\.name).joined(separator: ", "))); give --mapping FILE"
            )
        }
        func column(_ name: String) throws(CastleError) -> Int {
            guard let index = header.firstIndex(of: name) else {
                throw CastleError(
                    .dataError,
                    "\(source.name):\(headerLine): no column \"\(name)\" (the \(mapping.name) mapping needs it)"
                )
            }
            return index
        }
        let idColumn = try column(mapping.id)
        let amountColumn = try column(mapping.amount)
        let dateColumn = try column(mapping.date)
        var currencyColumn: Int?
        if let currency = mapping.currency { currencyColumn = try column(currency) }
        var refColumns: [Int] = []
        for ref in mapping.refs { refColumns.append(try column(ref)) }
        var batchColumn: Int?
        if let batch = mapping.batch { batchColumn = try column(batch) }
        var statusColumn: Int?
        if let status = mapping.status { statusColumn = try column(status) }
        var fixedAsset: Asset?
        if let code = mapping.fixedCurrency {
            switch currencyAsset(Substring(code), assets: assets) {
            case .success(let asset): fixedAsset = asset
            case .failure(let error): throw CastleError(.dataError, "\(mapping.name): \(error.reason)")
            }
        }

        var records: [ExternalRecord] = []
        var assetCache: [(code: [UInt8], asset: Asset)] = []
        let fieldsWanted = header.count
        while let line = try reader.nextRecord() {
            func fail(_ reason: String) -> CastleError { CastleError(.dataError, "\(source.name):\(line): \(reason)") }
            guard reader.fieldCount == fieldsWanted else {
                throw fail("\(reader.fieldCount) fields, the header has \(header.count) (a truncated file?)")
            }
            let id = reader.string(idColumn)
            guard !id.isEmpty else { throw fail("the id (\(mapping.id)) is empty") }
            var asset: Asset! = fixedAsset
            if asset == nil {
                let code = reader.field(currencyColumn!)
                for cached in assetCache where cached.code.elementsEqual(code) {
                    asset = cached.asset
                    break
                }
                if asset == nil {
                    switch currencyAsset(Substring(String(decoding: code, as: UTF8.self)), assets: assets) {
                    case .success(let found):
                        asset = found
                        if assetCache.count < 64 { assetCache.append((Array(code), found)) }
                    case .failure(let error): throw fail(error.reason)
                    }
                }
            }
            let amount: Int64
            if mapping.unit == .minor, let value = parseMinorUnits(reader.field(amountColumn)) {
                amount = value
            } else {
                switch parseAmount(
                    reader.string(amountColumn),
                    unit: mapping.unit,
                    separator: mapping.thousandsSeparator,
                    asset: asset
                ) {
                case .success(let value): amount = value
                case .failure(let error): throw fail("\(mapping.amount): \(error.reason)")
                }
            }
            guard let day = parseDate(reader.field(dateColumn), format: mapping.dateFormat) else {
                throw fail("\(mapping.date): \"\(reader.string(dateColumn).prefix(30))\" is not a date")
            }
            var refs = [id]
            for index in refColumns where !reader.field(index).isEmpty {
                let ref = reader.string(index)
                if !refs.contains(ref) { refs.append(ref) }
            }
            let batch = batchColumn.flatMap { reader.field($0).isEmpty ? nil : reader.string($0) }
            var status = ExternalStatus.ok
            if let statusColumn {
                let value = reader.string(statusColumn).lowercased()
                if mapping.failedStatuses.contains(value) {
                    status = .failed
                } else if mapping.reversedStatuses.contains(value) {
                    status = .reversed
                }
            }
            records.append(
                ExternalRecord(
                    source: source.name,
                    location: "line \(line)",
                    ordinal: line,
                    id: id,
                    refs: refs,
                    batch: batch,
                    amount: amount,
                    currency: asset,
                    day: day,
                    status: status
                )
            )
        }
        return records
    }

    /// A plain integer of minor units (an optional `-`, 1 to 18 digits), or nil to leave it to
    /// ``parseAmount(_:unit:separator:asset:)`` (which says what is wrong, or reads a longer one).
    static func parseMinorUnits(_ bytes: ArraySlice<UInt8>) -> Int64? {
        var digits = bytes[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard (1...18).contains(digits.count) else { return nil }
        var value: Int64 = 0
        for byte in digits {
            guard byte &- 48 < 10 else { return nil }
            value = value * 10 + Int64(byte &- 48)
        }
        return negative ? -value : value
    }

    /// As ``parseDate(_:format:)-(Substring,_)``, from a field's bytes: Unix seconds and ISO dates
    /// without a `String`.
    static func parseDate(_ bytes: ArraySlice<UInt8>, format: ColumnMapping.DateFormat) -> Int32? {
        if !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy({ $0 &- 48 < 10 }) {
            var seconds: Int64 = 0
            for byte in bytes { seconds = seconds * 10 + Int64(byte &- 48) }
            return Int32(exactly: seconds / 86_400)
        }
        return parseDate(Substring(String(decoding: bytes, as: UTF8.self)), format: format)
    }

    static func parseAmount(
        _ text: String,
        unit: ColumnMapping.AmountUnit,
        separator: UInt8?,
        asset: Asset
    )
        -> Result<Int64, LedgerInputError>
    {
        switch unit {
        case .minor:
            var bytes = text.utf8[...]
            let negative = bytes.first == UInt8(ascii: "-")
            if negative { bytes = bytes.dropFirst() }
            guard !bytes.isEmpty, bytes.allSatisfy({ $0 &- 48 < 10 }), let value = Int64(text), value != Int64.min
            else {
                return .failure(LedgerInputError("\"\(text.prefix(30))\" is not a whole number of minor units"))
            }
            return .success(value)
        case .major:
            var plain = text
            if let separator {
                // Only separators between digit groups: "1,250.00"; "1,25" is refused below by the scale.
                plain = String(decoding: text.utf8.filter { $0 != separator }, as: UTF8.self)
            }
            switch asset.parseAmount(plain) {
            case .success(let value): return .success(value)
            case .failure(let error): return .failure(error)
            }
        }
    }

    static func parseDate(_ text: Substring, format: ColumnMapping.DateFormat) -> Int32? {
        if !text.isEmpty, text.utf8.allSatisfy({ $0 &- 48 < 10 }), let seconds = Int64(text) {
            return Int32(exactly: seconds / 86_400)
        }
        switch format {
        case .iso: return CivilDate.parseISO(text)
        case .us: return CivilDate.parseUS(text)
        case .european: return CivilDate.parseEuropean(text)
        }
    }
}
