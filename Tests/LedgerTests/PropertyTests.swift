import Ledger
import PropertyBased
import Testing

/// Random entry streams over a deliberately small space (40 keys, 3 assets, 3 users, every account
/// kind, small amounts) so that keys are reused, balances run dry and reversals hit posted, missing and
/// already reversed entries.
enum EntryStreams {
    enum Op: Sendable, CustomStringConvertible {
        case post(Entry)
        /// Reverse the entry posted under `target`, under `key`; `perturb` changes one reversed amount.
        case reverse(key: String, target: String, perturb: Bool)
        /// Post again, unchanged, the entry posted under `target` (a client retrying): `already_posted`.
        case again(target: String)

        var description: String {
            switch self {
            case .post(let entry):
                "post \(entry.key) \(entry.kind) \(entry.postings.map { "\($0.account) \($0.asset) \($0.amount)" })"
            case .reverse(let key, let target, let perturb): "reverse \(target) as \(key)\(perturb ? " perturbed" : "")"
            case .again(let target): "post \(target) again"
            }
        }
    }

    static let users = [Fixture.alice, Fixture.bob, Fixture.carol]
    static let assets = [Fixture.usd, Fixture.btc, Fixture.jpy]

    static func key(_ rng: inout any SeededRandomNumberGenerator) -> String {
        "k\(Int.random(in: 0..<40, using: &rng))"
    }

    static let op = Generator<Op, Shrink.None<Op>> { rng in
        let key = key(&rng)
        let asset = assets.randomElement(using: &rng)!
        let amount = Int64.random(in: 1...500, using: &rng)
        let user = users.randomElement(using: &rng)!
        let other = users.randomElement(using: &rng)!
        let ts = Int64.random(in: 0...1_000_000, using: &rng)
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<30:
            return .post(Fixture.move(key, .deposit, from: Fixture.stripe, to: user, asset, amount * 3, ts: ts))
        case 30..<40:
            return .post(Fixture.move(key, .withdrawal, from: user, to: Fixture.bank, asset, amount, ts: ts))
        case 40..<55:
            return .post(Fixture.move(key, .transfer, from: user, to: other, asset, amount, ts: ts))
        case 55..<62:
            let held = try! Account(kind: .held, owner: user.owner)
            let (from, to) = Bool.random(using: &rng) ? (user, held) : (held, user)
            return .post(Fixture.move(key, .transfer, from: from, to: to, asset, amount, ts: ts))
        case 62..<67:
            return .post(Fixture.move(key, .fee, from: user, to: Fixture.fees, asset, amount / 10 + 1, ts: ts))
        case 67..<72:
            return .post(Fixture.move(key, .adjustment, from: Fixture.world, to: Fixture.bank, asset, amount, ts: ts))
        case 72..<77:
            return .again(target: key)
        case 77..<82:
            // A trade-shaped entry: two assets swap between two users.
            let second = assets.randomElement(using: &rng)!
            let price = Int64.random(in: 1...500, using: &rng)
            return .post(
                Entry(
                    key: key,
                    kind: .trade,
                    ts: ts,
                    postings: [
                        Fixture.posting(user, asset, -amount), Fixture.posting(other, asset, amount),
                        Fixture.posting(other, second, -price), Fixture.posting(user, second, price),
                    ]
                )
            )
        default:
            // An entry cannot reverse itself (that is `invalid`, which the model does not predict).
            var target = EntryStreams.key(&rng)
            if target == key { target = "never-posted" }
            return .reverse(key: key, target: target, perturb: Int.random(in: 0..<4, using: &rng) == 0)
        }
    }

    static let stream = op.array(of: 1...150)

    /// The entry an op posts, given the journal so far (a reversal reads its target from it).
    static func entry(_ op: Op, in journal: Journal) -> Entry {
        switch op {
        case .post(let entry): return entry
        case .again(let target):
            return journal.entry(forKey: target)
                ?? Fixture.move(target, .deposit, from: Fixture.stripe, to: Fixture.alice, Fixture.usd, 1)
        case .reverse(let key, let target, let perturb):
            guard let reversed = journal.entry(forKey: target) else {
                return Entry(
                    key: key,
                    kind: .reversal,
                    ts: 0,
                    reverses: target,
                    postings: Fixture.move(key, from: Fixture.bank, to: Fixture.world, Fixture.usd, 1).postings
                )
            }
            var entry = Fixture.reversal(key, of: reversed)
            if perturb {
                entry.postings[0].amount += 1
                entry.postings[1].amount -= 1
                if entry.postings[0].amount == 0 || entry.postings[1].amount == 0 {
                    entry.postings[0].amount += 1
                    entry.postings[1].amount -= 1
                }
            }
            return entry
        }
    }

    /// What the journal must answer, from a model of its own: the balances and entries as plain dictionaries.
    struct Model {
        var entries: [String: Entry] = [:]
        var balances: [BalanceKey: Int128] = [:]
        var reversed: Set<String> = []

        func expected(_ entry: Entry) -> PostResult {
            if let posted = entries[entry.key] {
                return posted == entry ? .alreadyPosted : .existsWithDifferentContent(key: entry.key)
            }
            if let target = entry.reverses {
                guard let reversedEntry = entries[target] else { return .reversedEntryMissing(key: target) }
                if reversed.contains(target) {
                    return .alreadyReversed(key: target, by: entries.values.first { $0.reverses == target }!.key)
                }
                if entry.postings.sorted() != reversedEntry.negatedPostings.sorted() {
                    return .reversalMismatch(key: target)
                }
            }
            var after = balances
            for posting in entry.postings {
                after[BalanceKey(account: posting.account, asset: posting.asset), default: 0] += Int128(posting.amount)
            }
            for posting in entry.postings where !posting.account.kind.mayGoNegative {
                if after[BalanceKey(account: posting.account, asset: posting.asset)]! < 0 {
                    return .wouldGoNegative(account: posting.account, asset: posting.asset)
                }
            }
            return .posted
        }

        mutating func apply(_ entry: Entry) {
            entries[entry.key] = entry
            if let target = entry.reverses { reversed.insert(target) }
            for posting in entry.postings {
                balances[BalanceKey(account: posting.account, asset: posting.asset), default: 0] += Int128(
                    posting.amount
                )
            }
        }
    }

    /// Runs `ops` through a journal and the model; checks every property after every op. Returns the
    /// journal and the results.
    @discardableResult
    static func run(_ ops: [Op]) -> (Journal, [PostResult]) {
        var journal = Journal()
        var model = Model()
        var results: [PostResult] = []
        for (index, op) in ops.enumerated() {
            let entry = entry(op, in: journal)
            let before = journal
            let expected = model.expected(entry)
            let result = journal.post(entry)
            results.append(result)
            #expect(result == expected, "op #\(index) \(op)")
            if result == .posted {
                model.apply(entry)
                #expect(journal.count == before.count + 1)
            } else {
                // A refused entry (or a no-op) changes nothing.
                #expect(journal.entries == before.entries && journal.balances == before.balances, "op #\(index)")
            }
            #expect(
                journal.balances.filter { $0.value != 0 } == model.balances.filter { $0.value != 0 },
                "op #\(index)"
            )
            #expect(journal.totals.values.allSatisfy { $0 == 0 }, "op #\(index): an asset does not sum to zero")
            #expect(
                journal.balances.allSatisfy { $0.key.account.kind.mayGoNegative || $0.value >= 0 },
                "op #\(index): a forbidden negative"
            )
        }
        if case .failure(let failure) = journal.verify() { Issue.record("verify: \(failure)") }
        return (journal, results)
    }
}

@Suite struct JournalProperties {
    /// Random valid and invalid entry streams: the journal answers as the model does, a refused entry
    /// changes nothing, verify() holds, and every asset sums to zero after every entry.
    @Test func randomStreamsKeepTheBooksBalanced() async {
        await propertyCheck(count: 300, input: EntryStreams.stream) { ops in
            EntryStreams.run(ops)
        }
    }

    /// The generator reaches every result; otherwise the property above proves little. Each result comes
    /// from an op of its own (`again` for `already_posted`), never from a lucky collision of random
    /// content, so 300 streams reach them all on any seed.
    @Test func streamsCoverEveryResult() async {
        var seen = Set<String>()
        await propertyCheck(count: 300, input: EntryStreams.stream) { ops in
            for result in EntryStreams.run(ops).1 { seen.insert(result.code) }
        }
        for code in [
            "posted", "already_posted", "exists_with_different_content", "would_go_negative", "reversed_entry_missing",
            "reversal_mismatch", "already_reversed",
        ] {
            #expect(seen.contains(code), "never seen: \(code)")
        }
    }

    enum Perturbation: CaseIterable, Sendable {
        case postingChanged, keyReusedWithOtherContent, overdraft
    }

    static let perturbation = Generator<Perturbation, Shrink.None<Perturbation>> { rng in
        Perturbation.allCases.randomElement(using: &rng)!
    }

    static let pick = Generator<UInt64, Shrink.None<UInt64>> { rng in UInt64.random(in: 0...UInt64.max, using: &rng) }

    /// On a journal built from a random stream: an entry with a posting changed, a posted key with other
    /// content, an overdraft are each refused and leave the journal exactly as it was. And the same faults
    /// written into stored data are found by verify(), which names the entry.
    @Test func perturbationsAreRefused() async {
        await propertyCheck(count: 200, input: EntryStreams.stream, Self.perturbation, Self.pick) {
            ops,
            perturbation,
            pick in
            let journal = EntryStreams.run(ops).0
            guard journal.count > 0 else { return }
            let victim = journal.entries[Int(pick % UInt64(journal.count))]
            var copy = journal
            var entry = victim
            let expected: PostResult
            switch perturbation {
            case .postingChanged:
                entry.key = "perturbed"
                entry.kind = .adjustment
                entry.reverses = nil
                entry.postings[0].amount += entry.postings[0].amount == -1 ? 2 : 1
                expected = .unbalanced(asset: entry.postings[0].asset)
            case .keyReusedWithOtherContent:
                entry.ts += 1
                expected = .existsWithDifferentContent(key: victim.key)
            case .overdraft:
                let owner = EntryStreams.users[Int(pick % 3)]
                let asset = EntryStreams.assets[Int(pick / 3 % 3)]
                let balance = Int64(journal.balance(of: owner, in: asset))
                entry = Fixture.move("overdraft", from: owner, to: Fixture.bank, asset, balance + 1)
                expected = .wouldGoNegative(account: owner, asset: asset)
            }
            #expect(copy.post(entry) == expected)
            #expect(copy.entries == journal.entries && copy.balances == journal.balances)

            // The same faults in stored data: verify() names the first offending entry.
            var entries = journal.entries
            let index = Int(pick % UInt64(entries.count))
            entries[index].postings[0].amount += entries[index].postings[0].amount == -1 ? 2 : 1
            #expect(Journal(entries: entries, balances: journal.balances).verifyFailure?.key == entries[index].key)
            var balances = journal.balances
            if let some = balances.keys.sorted().first {
                balances[some]! += 1
                #expect(Journal(entries: journal.entries, balances: balances).verifyFailure != nil)
            }
        }
    }
}
