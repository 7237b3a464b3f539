public import CastleSupport
public import Ledger

/// Bad input to reconciliation, with where it is: `file:line` for CSV and NDJSON, the XML element path
/// for camt.053. Exit 65.
public struct ReconcileInputError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `file:line` or `file: /Document/BkToCstmrStmt/Stmt[2]/Ntry[3]/Amt`.
    public var location: String
    public var reason: String

    public init(_ location: String, _ reason: String) {
        self.location = location
        self.reason = reason
    }

    public var description: String { "\(location): \(reason)" }
    public var castleError: CastleError { CastleError(.dataError, description) }
}

/// What the source says became of a record.
public enum ExternalStatus: String, Sendable, Hashable {
    /// Booked, paid, completed, pending: money that moved or will.
    case ok
    /// Failed, declined, cancelled, returned: no money moved.
    case failed
    /// Reversed or refunded at the source after it moved.
    case reversed
}

/// One record of a processor export or a bank statement, in the source's own sign: money in is positive.
public struct ExternalRecord: Sendable, Hashable {
    /// The source's name as the user gave it (a path), for reports and messages.
    public var source: String
    /// Where in the source: `line 7` or the XML element path; for breaks and messages.
    public var location: String
    /// Its position in the source (the line, or the entry's number): what orders two records of one
    /// source with the same id, whatever order they are handed over in.
    public var ordinal: Int
    /// The source's own id (balance transaction id, AcctSvcrRef, PayPal transaction id); duplicates are
    /// judged by it. Never empty: a source without one gets its location.
    public var id: String
    /// The references a ledger entry's `ref` may carry for it (the charge id, EndToEndId, the id itself).
    public var refs: [String]
    /// The processor payout or bank batch it belongs to, for N:1 matching.
    public var batch: String?
    /// Signed minor units of `currency`.
    public var amount: Int64
    public var currency: Asset
    /// Days since 1970-01-01 (the booking or creation date).
    public var day: Int32
    public var status: ExternalStatus
    /// A copy the source itself marks as a duplicate (camt.053 `CpyDplctInd` DUPL).
    public var markedDuplicate: Bool

    public init(
        source: String,
        location: String,
        ordinal: Int,
        id: String,
        refs: [String],
        batch: String? = nil,
        amount: Int64,
        currency: Asset,
        day: Int32,
        status: ExternalStatus = .ok,
        markedDuplicate: Bool = false
    ) {
        self.source = source
        self.location = location
        self.ordinal = ordinal
        self.id = id
        self.refs = refs
        self.batch = batch
        self.amount = amount
        self.currency = currency
        self.day = day
        self.status = status
        self.markedDuplicate = markedDuplicate
    }
}

/// A ledger entry as reconciliation sees it: the money it moved through the processor or bank accounts
/// (the negated sum of its postings to `clearing` and `bank` accounts, so that a deposit the processor
/// shows as +100 is +100 here too).
public struct LedgerItem: Sendable, Hashable {
    public var key: String
    public var ref: String?
    public var reverses: String?
    public var amount: Int64
    public var currency: Asset
    public var day: Int32

    public init(key: String, ref: String?, reverses: String? = nil, amount: Int64, currency: Asset, day: Int32) {
        self.key = key
        self.ref = ref
        self.reverses = reverses
        self.amount = amount
        self.currency = currency
        self.day = day
    }

    public static let nanosecondsPerDay: Int64 = 86_400_000_000_000

    /// The entry's item, or nil when it moves no money through a `clearing` or `bank` account (a trade, an
    /// internal transfer), or through accounts of several assets, which no single external record can be.
    public init?(_ entry: Entry) {
        var sum: Int128 = 0
        var asset: Asset?
        for posting in entry.postings where posting.account.kind == .clearing || posting.account.kind == .bank {
            if let asset, asset != posting.asset { return nil }
            asset = posting.asset
            sum += Int128(posting.amount)
        }
        guard let asset, sum != 0, let amount = Int64(exactly: -sum) else { return nil }
        self.init(
            key: entry.key,
            ref: entry.ref,
            reverses: entry.reverses,
            amount: amount,
            currency: asset,
            day: Int32(clamping: entry.ts / Self.nanosecondsPerDay)
        )
    }

    /// For a ledger read from the store (an entries file is read at the currency's scale already): an
    /// amount of a ledger kept at more decimals than its currency's (a ledger that settles trades keeps
    /// USD at 6, as the instruments say, while processors and banks speak cents) in the currency's ISO
    /// 4217 scale, which external records use, when that is exact; else as it is (a sub-cent amount then
    /// meets its record as a currency mismatch rather than being rounded).
    public static func inCurrencyScale(_ amount: Int64, _ asset: Asset) -> (Int64, Asset) {
        guard let iso = AssetTable.iso4217.byCode[asset.code], iso.scale < asset.scale else { return (amount, asset) }
        var divisor: Int64 = 1
        for _ in 0..<(asset.scale - iso.scale) { divisor *= 10 }
        guard amount % divisor == 0 else { return (amount, asset) }
        return (amount / divisor, iso)
    }
}

/// Civil dates as days since 1970-01-01 (proleptic Gregorian; Howard Hinnant's algorithm), without
/// Foundation.
public enum CivilDate {
    public static func days(year: Int, month: Int, day: Int) -> Int32? {
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day), (1...9999).contains(year)
        else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return Int32(era * 146_097 + dayOfEra - 719_468)
    }

    public static func components(_ days: Int32) -> (year: Int, month: Int, day: Int) {
        let z = Int(days) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// `YYYY-MM-DD`.
    public static func format(_ days: Int32) -> String {
        let (year, month, day) = components(days)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// `YYYY-MM-DD`, optionally followed by a time (`T…` or ` …`), which is ignored: the date as written.
    public static func parseISO(_ text: Substring) -> Int32? {
        let bytes = Array(text.utf8.prefix(10))
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            let year = Int(String(decoding: bytes[0..<4], as: UTF8.self)),
            let month = Int(String(decoding: bytes[5..<7], as: UTF8.self)),
            let day = Int(String(decoding: bytes[8..<10], as: UTF8.self))
        else { return nil }
        let rest = text.utf8.dropFirst(10)
        if let next = rest.first, next != UInt8(ascii: "T"), next != UInt8(ascii: " ") { return nil }
        return days(year: year, month: month, day: day)
    }

    /// `MM/DD/YYYY` (US exports such as PayPal's).
    public static func parseUS(_ text: Substring) -> Int32? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].count == 4, let month = Int(parts[0]), let day = Int(parts[1]),
            let year = Int(parts[2])
        else { return nil }
        return days(year: year, month: month, day: day)
    }

    /// `DD.MM.YYYY` (European exports).
    public static func parseEuropean(_ text: Substring) -> Int32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].count == 4, let day = Int(parts[0]), let month = Int(parts[1]),
            let year = Int(parts[2])
        else { return nil }
        return days(year: year, month: month, day: day)
    }
}

/// The currency of a code as sources write it (`usd`, `EUR`), from the ISO 4217 table or the assets
/// given; an unknown code is an error, never a guess of its scale.
public func currencyAsset(_ code: Substring, assets: AssetTable) -> Result<Asset, LedgerInputError> {
    let upper = code.uppercased()
    if let asset = assets[upper] ?? AssetTable.iso4217[upper] { return .success(asset) }
    return .failure(
        LedgerInputError("unknown currency \"\(code.prefix(16))\" (not in ISO 4217's table or the instruments)")
    )
}
