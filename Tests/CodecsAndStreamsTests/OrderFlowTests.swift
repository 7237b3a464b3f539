import CastleCore
import Codecs
import Pipeline
import SyntheticData
import Testing

func generate(seed: UInt64, count: Int, timestamps: Bool = true, symbols: [OrderFlow.Symbol]? = nil) -> [[UInt8]] {
    var config = OrderFlow.Config()
    config.seed = seed
    config.count = count
    config.timestamps = timestamps
    if let symbols { config.symbols = symbols }
    var flow = OrderFlow(config)
    var lines: [[UInt8]] = []
    var line: [UInt8] = []
    while flow.next(into: &line) { lines.append(line) }
    // Done stays done.
    let more = flow.next(into: &line)
    #expect(!more)
    return lines
}

@Suite struct OrderFlowTests {
    @Test func sameSeedSameLines() {
        let a = generate(seed: 7, count: 3000)
        let b = generate(seed: 7, count: 3000)
        #expect(a.count == 3000)
        #expect(a == b)
    }

    @Test func differentSeedDifferentLines() {
        let a = generate(seed: 7, count: 500)
        let b = generate(seed: 8, count: 500)
        #expect(a != b)
        // Not only a few lines apart.
        let same = zip(a, b).filter { $0 == $1 }.count
        #expect(same < 50)
    }

    @Test(arguments: [0, 1, 2, 17, 1000])
    func countIsHonoured(_ count: Int) {
        #expect(generate(seed: 3, count: count).count == count)
    }

    @Test func prefixIsStableAcrossCounts() {
        // The first lines do not depend on how many are asked for.
        let short = generate(seed: 11, count: 200)
        let long = generate(seed: 11, count: 1000)
        #expect(Array(long.prefix(200)) == short)
    }

    @Test func everyLineDecodesAsACommand() {
        var decoder = CommandDecoder()
        var ops: [Op: Int] = [:]
        var markets = 0
        var rejected: [String] = []
        for (n, line) in generate(seed: 42, count: 20_000).enumerated() {
            let decoded = line.withUnsafeBufferPointer { decoder.decode($0, lineNumber: n + 1) }
            switch decoded {
            case .command(let command):
                ops[command.op, default: 0] += 1
                if command.type == .market {
                    markets += 1
                    #expect(command.price == nil)
                }
                #expect(command.line == n + 1)
                #expect(command.ts != nil)
            case .rejected:
                if rejected.count < 5 { rejected.append(String(decoding: line, as: UTF8.self)) }
            }
        }
        #expect(rejected.isEmpty, "\(rejected)")
        // The flow carries every op and some market orders.
        #expect(ops[.new, default: 0] > 0)
        #expect(ops[.cancel, default: 0] > 0)
        #expect(ops[.amend, default: 0] > 0)
        #expect(markets > 0)
        // Only the default symbols, and accounts named a1, a2, ….
        #expect(decoder.symbols.count == OrderFlow.defaultSymbols.count)
        for symbol in OrderFlow.defaultSymbols { #expect(decoder.symbols.lookup(symbol.name) != nil) }
        #expect(decoder.accounts.count > 1)
        for id in 1...UInt32(decoder.accounts.count) { #expect(decoder.accounts.string(of: id).hasPrefix("a")) }
    }

    @Test func timestampsAreNonDecreasingFromStart() {
        var decoder = CommandDecoder()
        var last: Timestamp = OrderFlow.Config().startNs
        var decreases = 0
        var count = 0
        for line in generate(seed: 5, count: 20_000) {
            guard case .command(let command) = line.withUnsafeBufferPointer({ decoder.decode($0, lineNumber: 1) }),
                let ts = command.ts
            else {
                Issue.record("line without a command or ts: \(String(decoding: line, as: UTF8.self))")
                continue
            }
            if ts < last { decreases += 1 }
            last = ts
            count += 1
        }
        #expect(count == 20_000)
        #expect(decreases == 0)
        #expect(last > OrderFlow.Config().startNs)
    }

    @Test func withoutTimestampsNoTS() {
        var decoder = CommandDecoder()
        for line in generate(seed: 5, count: 2000, timestamps: false) {
            guard case .command(let command) = line.withUnsafeBufferPointer({ decoder.decode($0, lineNumber: 1) })
            else {
                Issue.record("not a command: \(String(decoding: line, as: UTF8.self))")
                return
            }
            #expect(command.ts == nil)
        }
    }

    @Test func pricesAndQuantitiesFitTheInstruments() throws {
        // Every line passes the instruments file the generator describes: no invalid rejections.
        let dir = TempDir()
        let instruments = dir.write(
            "instruments.ndjson",
            OrderFlow.defaultSymbols.map(\.instrumentsLine).joined(separator: "\n") + "\n"
        )
        let text = generate(seed: 9, count: 5000).map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n")
        let input = dir.write("orders.ndjson", text + "\n")
        let summary = try MatchStream.run(
            matchOptions(input: input, output: dir.file("events.ndjson"), instruments: instruments, strict: true)
        )
        #expect(summary.commands == 5000)
        #expect(summary.firstInputError == nil)
        #expect(summary.trades > 0)
    }

    @Test func instrumentsLine() {
        let symbol = OrderFlow.Symbol(name: "BTC-USD", startPrice: 30_000, tick: "0.010", lot: "0.0001")
        #expect(symbol.instrumentsLine == #"{"symbol":"BTC-USD","tick":"0.01","lot":"0.0001"}"#)
    }

    @Test func customSymbolsOnly() {
        let symbols = [OrderFlow.Symbol(name: "X-Y", startPrice: 50, tick: "0.5", lot: "2")]
        var decoder = CommandDecoder()
        for line in generate(seed: 1, count: 1000, symbols: symbols) {
            guard case .command(let command) = line.withUnsafeBufferPointer({ decoder.decode($0, lineNumber: 1) })
            else {
                Issue.record("not a command: \(String(decoding: line, as: UTF8.self))")
                return
            }
            if command.op == .new {
                #expect(command.symbol == 0)
                if let qty = command.qty {
                    // Multiples of the lot of 2.
                    #expect(qty.scale == 0 && qty.mantissa % 2 == 0, "\(qty)")
                }
            }
        }
        #expect(decoder.symbols.count == 1)
        #expect(decoder.symbols.string(of: 0) == "X-Y")
    }
}
