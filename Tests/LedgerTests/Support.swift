import Ledger

/// The assets, accounts and entries the tests share.
enum Fixture {
    static let usd = try! Asset(code: "USD", scale: 2)
    static let btc = try! Asset(code: "BTC", scale: 8)
    static let jpy = try! Asset(code: "JPY", scale: 0)
    static let assets = AssetTable([usd, btc, jpy])

    static func account(_ name: String) -> Account { try! Account(parsing: name) }

    static let alice = account("available:alice")
    static let bob = account("available:bob")
    static let carol = account("available:carol")
    static let aliceHeld = account("held:alice")
    static let fees = account("fees:exchange")
    static let stripe = account("clearing:stripe")
    static let bank = account("bank:eu-main")
    static let world = account("external:world")

    static func posting(_ account: Account, _ asset: Asset, _ amount: Int64) -> Posting {
        Posting(account: account, asset: asset, amount: amount)
    }

    /// `amount` minor units from `from` to `to`.
    static func move(
        _ key: String,
        _ kind: EntryKind = .transfer,
        from: Account,
        to: Account,
        _ asset: Asset,
        _ amount: Int64,
        ts: Int64 = 1_719_561_600_000_000_000
    ) -> Entry {
        Entry(
            key: key,
            kind: kind,
            ts: ts,
            postings: [posting(from, asset, -amount), posting(to, asset, amount)]
        )
    }

    static func deposit(_ key: String, to: Account, _ asset: Asset, _ amount: Int64) -> Entry {
        move(key, .deposit, from: stripe, to: to, asset, amount)
    }

    static func reversal(_ key: String, of entry: Entry) -> Entry {
        Entry(key: key, kind: .reversal, ts: entry.ts + 1, reverses: entry.key, postings: entry.negatedPostings)
    }
}

extension Journal {
    /// Every asset's balances summed over all accounts.
    var totals: [Asset: Int128] {
        var totals: [Asset: Int128] = [:]
        for (key, balance) in balances { totals[key.asset, default: 0] += balance }
        return totals
    }

    var isVerified: Bool {
        if case .success = verify() { return true }
        return false
    }

    var verifyFailure: VerifyFailure? {
        if case .failure(let failure) = verify() { return failure }
        return nil
    }
}
