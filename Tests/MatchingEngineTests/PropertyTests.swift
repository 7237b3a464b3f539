import CastleCore
import CastleTesting
import MatchingEngine
import PropertyBased
import Testing

/// Random command streams over a deliberately small space (2 symbols, ids 1...30, a band of 9 ticks,
/// 1...10 lots, accounts none/1/2, every op, tif, type and STP mode, some invalid values) so that ids
/// collide, orders cross, and cancels and amends hit both live and finished orders.
enum Streams {
    /// Symbol 0: price 2 decimals with tick 0.05, qty 3 decimals with lot 0.01. Symbol 1: whole numbers.
    static let declared: [SymbolID: Instrument] = [
        0: Instrument(priceDecimals: 2, qtyDecimals: 3, tick: 5, lot: 10),
        1: Instrument(priceDecimals: 0, qtyDecimals: 0),
    ]

    static func pick<T>(_ choices: [(Int, T)], _ rng: inout any SeededRandomNumberGenerator) -> T {
        let total = choices.reduce(0) { $0 + $1.0 }
        var roll = Int.random(in: 0..<total, using: &rng)
        for (weight, value) in choices {
            if roll < weight { return value }
            roll -= weight
        }
        return choices[choices.count - 1].1
    }

    /// `units × 10^-decimals` in canonical form (no trailing fraction zeros), as the parser would give it.
    static func decimal(_ units: Int64, _ decimals: UInt8) -> FixedDecimal {
        var mantissa = units
        var scale = decimals
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10
            scale -= 1
        }
        return FixedDecimal(mantissa: mantissa, scale: scale)
    }

    /// A price near 100 on the symbol's grid, or now and then an invalid one.
    static func genPrice(_ symbol: SymbolID, _ rng: inout any SeededRandomNumberGenerator) -> FixedDecimal? {
        let k = Int64.random(in: -4...4, using: &rng)
        let valid = symbol == 0 ? decimal(10_000 + 5 * k, 2) : decimal(100 + k, 0)
        return pick(
            [
                (90, valid),
                (2, symbol == 0 ? decimal(10_001 + 5 * k, 2) : decimal(1_005 + 10 * k, 1)),  // off tick / off scale
                (2, FixedDecimal.zero),
                (1, decimal(-100, 0)),
                (1, decimal(99_999_999_999_999, 0)),  // too large for 8 decimals
                (1, decimal(1, 9)),  // off scale everywhere
                (3, nil),
            ],
            &rng
        )
    }

    /// 1...10 lots, or now and then an invalid quantity.
    static func genQty(_ symbol: SymbolID, _ rng: inout any SeededRandomNumberGenerator) -> FixedDecimal? {
        let n = Int64.random(in: 1...10, using: &rng)
        let valid = symbol == 0 ? decimal(10 * n, 3) : decimal(n, 0)
        return pick(
            [
                (92, valid),
                (2, FixedDecimal.zero),
                (1, decimal(-n, 0)),
                (2, symbol == 0 ? decimal(5, 3) : decimal(15, 1)),  // off lot / off scale
                (1, decimal(99_999_999_999_999, 0)),
                (2, nil),
            ],
            &rng
        )
    }

    static let command = Generator<Command, Shrink.None<Command>> { rng in
        let id = OrderID.random(in: 1...30, using: &rng)
        let ts: Timestamp? = Bool.random(using: &rng) ? Int64.random(in: 0...1_000_000, using: &rng) : nil
        let line = Int.random(in: 1...10_000, using: &rng)
        let op = pick([(60, Op.new), (15, .cancel), (25, .amend)], &rng)
        switch op {
        case .cancel:
            return .cancel(id: id, ts: ts, line: line)
        case .amend:
            // The amend's decimals follow symbol 0 or 1 at random: wrong ones are part of the test.
            let grid = SymbolID.random(in: 0...1, using: &rng)
            let which = pick([(40, 0), (40, 1), (15, 2), (5, 3)], &rng)
            var price = which == 0 || which == 2 ? Streams.genPrice(grid, &rng) : nil
            var qty = which == 1 || which == 2 ? Streams.genQty(grid, &rng) : nil
            if which != 3 && price == nil && qty == nil { price = Streams.genPrice(grid, &rng) }
            if which == 1, Int.random(in: 0..<8, using: &rng) == 0 { qty = .zero }
            return .amend(id: id, price: price, qty: qty, ts: ts, line: line)
        case .new:
            let symbol = pick([(48, SymbolID(0)), (48, 1), (4, 2)], &rng)
            let side: Side = Bool.random(using: &rng) ? .buy : .sell
            let type = pick([(88, OrderType.limit), (12, .market)], &rng)
            let tif = pick([(40, TimeInForce.gtc), (20, .ioc), (20, .fok), (20, .postOnly)], &rng)
            var price = Streams.genPrice(symbol, &rng)
            if type == .market, Int.random(in: 0..<10, using: &rng) != 0 { price = nil }
            let account = pick([(30, AccountID.none), (35, 1), (35, 2)], &rng)
            let stp = pick(
                [(40, STPMode?.none), (15, .cancelTaker), (15, .cancelMaker), (15, .cancelBoth), (15, STPMode.none)],
                &rng
            )
            return Command(
                op: .new,
                id: id,
                symbol: symbol,
                side: side,
                type: type,
                tif: tif,
                stp: stp,
                account: account,
                price: price,
                qty: Streams.genQty(symbol, &rng),
                ts: ts,
                line: line
            )
        }
    }

    static let stream = command.array(of: 1...200)

    /// Per order: submitted (moved by amends) = filled + canceled + resting.
    struct Ledger {
        var submitted: Int64
        var filled: Int64 = 0
        var canceled: Int64 = 0
    }

    static func levels(_ engine: Exchange, _ symbol: SymbolID, _ side: Side) -> [BookLevel] {
        engine.levels(of: symbol, side: side)
    }

    /// Runs `commands` through the engine and the model and checks every property. Returns the engine's events.
    @discardableResult
    static func check(
        _ commands: [Command],
        instruments: [SymbolID: Instrument],
        stp: STPMode
    ) -> [Event] {
        var engine = Exchange(instruments: instruments, defaultSTP: stp)
        var model = ModelBook(instruments: instruments, defaultSTP: stp)
        var ledgers: [OrderID: Ledger] = [:]
        var all: [Event] = []
        var events: [Event] = []
        var modelEvents: [Event] = []
        for (index, command) in commands.enumerated() {
            events.removeAll(keepingCapacity: true)
            modelEvents.removeAll(keepingCapacity: true)
            engine.apply(command, into: &events)
            model.apply(command, into: &modelEvents)
            // (a) the same events as the model.
            guard events == modelEvents else {
                Issue.record("command #\(index) \(command):\n engine \(events)\n model  \(modelEvents)")
                return all
            }
            all += events

            // (b) quantity conservation per order, from the events alone.
            for event in events {
                switch event {
                case .accepted(let id, let symbol, _, _, _, _, let acceptedQty, _, _):
                    #expect(ledgers[id] == nil, "command #\(index): id \(id) accepted while live")
                    let instrument = instruments.isEmpty ? Instrument.unrestricted : instruments[symbol]!
                    guard case .success(let qty) = command.qty!.scaled(to: instrument.qtyDecimals) else {
                        Issue.record("command #\(index): accepted with an invalid qty")
                        return all
                    }
                    #expect(acceptedQty == qty, "command #\(index): accepted carries the submitted qty")
                    ledgers[id] = Ledger(submitted: qty)
                case .trade(let trade, _):
                    #expect(trade.qty > 0)
                    #expect(
                        ledgers[trade.maker] != nil && ledgers[trade.taker] != nil,
                        "command #\(index): trade of unknown order"
                    )
                    ledgers[trade.maker]?.filled += trade.qty
                    ledgers[trade.taker]?.filled += trade.qty
                case .canceled(let id, _, _, _, let qty, _, _):
                    #expect(qty > 0)
                    #expect(ledgers[id] != nil, "command #\(index): cancel of unknown order \(id)")
                    ledgers[id]?.canceled += qty
                case .amended(let id, _, _, _, let qty, _, let prevQty, _, _):
                    guard let ledger = ledgers[id] else {
                        Issue.record("command #\(index): amend of unknown order \(id)")
                        return all
                    }
                    #expect(qty > 0)
                    let before = ledger.submitted - ledger.filled - ledger.canceled
                    #expect(prevQty == before, "command #\(index): amended's prev_qty is what was resting")
                    ledgers[id]!.submitted += qty - before
                case .rejected: break
                }
            }
            for (id, ledger) in ledgers {
                let resting = engine.liveOrder(id)?.qty ?? 0
                #expect(
                    ledger.submitted == ledger.filled + ledger.canceled + resting,
                    "command #\(index): order \(id) \(ledger) resting \(resting)"
                )
                #expect(ledger.filled >= 0 && ledger.canceled >= 0 && resting >= 0)
                if resting == 0 { ledgers[id] = nil }
            }
            #expect(engine.liveOrderCount == ledgers.count, "command #\(index): untracked resting orders")

            // (c) never a crossed book at rest.
            for symbol: SymbolID in 0...2 {
                let bid = engine.best(of: symbol, side: .buy)
                let ask = engine.best(of: symbol, side: .sell)
                if let bid, let ask {
                    #expect(bid.price < ask.price, "command #\(index): crossed book on \(symbol)")
                }
                #expect(bid?.price == model.best(of: symbol, side: .buy)?.price)
                #expect(ask?.price == model.best(of: symbol, side: .sell)?.price)
            }
        }
        // (a) the same final book.
        for symbol: SymbolID in 0...2 {
            for side in Side.allCases {
                #expect(
                    engine.levels(of: symbol, side: side) == model.bookLevels(of: symbol, side: side),
                    "final \(side) book of \(symbol)"
                )
            }
        }
        #expect(engine.symbolsWithOrders == model.symbolsWithOrders)
        #expect(engine.liveOrderCount == model.liveOrderCount)
        return all
    }
}

@Suite struct Properties {
    struct Config: Sendable, CustomTestStringConvertible {
        var declared: Bool
        var stp: STPMode
        var testDescription: String { "\(declared ? "declared" : "unrestricted") instruments, default \(stp.name)" }
        var instruments: [SymbolID: Instrument] { declared ? Streams.declared : [:] }
    }

    static let configs = [
        Config(declared: false, stp: .cancelTaker),
        Config(declared: true, stp: .cancelMaker),
        Config(declared: true, stp: .cancelBoth),
    ]

    /// (a) engine = model, event for event and in the final book; (b) quantity conserved per order;
    /// (c) no crossed book at rest.
    @Test(arguments: configs)
    func engineAgreesWithModel(config: Config) async {
        await propertyCheck(count: 200, input: Streams.stream) { commands in
            Streams.check(commands, instruments: config.instruments, stp: config.stp)
        }
    }

    /// (d) the same stream twice gives the same events.
    @Test func sameStreamSameEvents() async {
        await propertyCheck(count: 50, input: Streams.stream) { commands in
            var first = Exchange(instruments: Streams.declared)
            var second = Exchange(instruments: Streams.declared)
            var a: [Event] = []
            var b: [Event] = []
            for command in commands { first.apply(command, into: &a) }
            for command in commands { second.apply(command, into: &b) }
            #expect(a == b)
            // Every command says something: accepted, rejected, canceled or amended.
            #expect(a.count >= commands.count)
        }
    }

    /// The generator really reaches the interesting cases; otherwise the properties above prove little.
    @Test func streamsCoverTheRules() async {
        var seen = Set<String>()
        await propertyCheck(count: 40, input: Streams.stream) { commands in
            for event in Streams.check(commands, instruments: Streams.declared, stp: .cancelMaker) {
                switch event {
                case .accepted: seen.insert("accepted")
                case .trade: seen.insert("trade")
                case .canceled(_, _, _, _, _, let reason, _): seen.insert("canceled \(reason.name)")
                case .amended: seen.insert("amended")
                case .rejected(_, _, let reason, _, _, _): seen.insert("rejected \(reason.name)")
                }
            }
        }
        let wanted: Set<String> = [
            "accepted", "trade", "amended", "canceled user", "canceled ioc", "canceled fok", "canceled post_only",
            "canceled market", "canceled stp", "rejected invalid", "rejected unknown_order", "rejected duplicate_id",
        ]
        #expect(wanted.subtracting(seen).isEmpty, "never produced: \(wanted.subtracting(seen).sorted())")
    }
}
