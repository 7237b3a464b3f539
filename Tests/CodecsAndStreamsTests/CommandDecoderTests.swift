import CastleCore
import Codecs
import Testing

func decode(_ text: String, with decoder: inout CommandDecoder, line: Int = 1) -> CommandDecoder.Decoded {
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBufferPointer { decoder.decode($0, lineNumber: line) }
}

func decode(_ text: String, line: Int = 1) -> CommandDecoder.Decoded {
    var decoder = CommandDecoder()
    return decode(text, with: &decoder, line: line)
}

func dec(_ text: String) -> FixedDecimal {
    guard let value = FixedDecimal.parse(text) else { fatalError("bad decimal literal \(text)") }
    return value
}

/// A valid `new` with one field replaced (or added), for checking one field at a time.
func newLine(_ overrides: [String: String] = [:], dropping: Set<String> = []) -> String {
    var fields: [(String, String)] = [
        ("op", #""new""#), ("id", "5"), ("symbol", #""BTC-USD""#), ("side", #""buy""#), ("price", #""101.25""#),
        ("qty", #""2""#),
    ]
    for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
        if let index = fields.firstIndex(where: { $0.0 == key }) {
            fields[index].1 = value
        } else {
            fields.append((key, value))
        }
    }
    fields.removeAll { dropping.contains($0.0) }
    return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
}

@Suite struct CommandDecoderRejections {
    struct Case: Sendable, CustomTestStringConvertible {
        var line: String
        var op: Op?
        var id: OrderID?
        var reason: RejectReason
        var detail: RejectDetail
        var testDescription: String { line }

        init(_ line: String, _ op: Op?, _ id: OrderID?, _ reason: RejectReason = .invalid, _ detail: RejectDetail) {
            self.line = line
            self.op = op
            self.id = id
            self.reason = reason
            self.detail = detail
        }
    }

    static let cases: [Case] = [
        // Not a JSON object: nothing echoed, even when op and id were scanned before the error.
        Case("not json", nil, nil, .malformed, .notJSONObject),
        Case("", nil, nil, .malformed, .notJSONObject),
        Case("[]", nil, nil, .malformed, .notJSONObject),
        Case("null", nil, nil, .malformed, .notJSONObject),
        Case(#"{"op":"cancel","id":1"#, nil, nil, .malformed, .notJSONObject),
        Case(#"{"op":"cancel","id":1,}"#, nil, nil, .malformed, .notJSONObject),
        Case(#"{"op":"cancel","id":1} x"#, nil, nil, .malformed, .notJSONObject),
        Case(#"{"op":"cancel","id":01}"#, nil, nil, .malformed, .notJSONObject),
        // Unknown and duplicate fields echo what can be read.
        Case(newLine(["foo": "1"]), .new, 5, .invalid, .unknownField),
        Case(#"{"op":"cancel","id":3,"Op":"x"}"#, .cancel, 3, .invalid, .unknownField),
        Case(#"{"op":"cancel","id":"x","foo":1}"#, .cancel, nil, .invalid, .unknownField),
        Case(#"{"op":"cancel","id":3,"ts":1,"ts":2}"#, .cancel, 3, .invalid, .duplicateField),
        Case(
            #"{"op":"new","id":5,"symbol":"BTC-USD","side":"buy","price":"101.25","qty":"2","qty":"1"}"#,
            .new,
            5,
            .invalid,
            .duplicateField
        ),
        // op.
        Case(#"{"id":3}"#, nil, 3, .invalid, .missingOp),
        Case(#"{"op":"explode","id":3}"#, nil, 3, .invalid, .unknownOp),
        Case(#"{"op":"NEW","id":3}"#, nil, 3, .invalid, .unknownOp),
        Case(#"{"op":1,"id":3}"#, nil, 3, .invalid, .unknownOp),
        Case(#"{"op":null,"id":3}"#, nil, 3, .invalid, .unknownOp),
        Case(#"{"op":"explode"}"#, nil, nil, .invalid, .unknownOp),
        // id.
        Case(#"{"op":"cancel"}"#, .cancel, nil, .invalid, .missingID),
        Case(#"{"op":"cancel","id":"7"}"#, .cancel, nil, .invalid, .badID),
        Case(#"{"op":"cancel","id":-1}"#, .cancel, nil, .invalid, .badID),
        Case(#"{"op":"cancel","id":1.5}"#, .cancel, nil, .invalid, .badID),
        Case(#"{"op":"cancel","id":1.0}"#, .cancel, nil, .invalid, .badID),
        Case(#"{"op":"cancel","id":1e3}"#, .cancel, nil, .invalid, .badID),
        Case(#"{"op":"cancel","id":null}"#, .cancel, nil, .invalid, .badID),
        Case(#"{"op":"cancel","id":true}"#, .cancel, nil, .invalid, .badID),
        Case(#"{"op":"cancel","id":18446744073709551616}"#, .cancel, nil, .invalid, .badID),
        Case(#"{"op":"cancel","id":99999999999999999999999}"#, .cancel, nil, .invalid, .badID),
        // ts.
        Case(#"{"op":"cancel","id":3,"ts":-5}"#, .cancel, 3, .invalid, .badTS),
        Case(#"{"op":"cancel","id":3,"ts":1.5}"#, .cancel, 3, .invalid, .badTS),
        Case(#"{"op":"cancel","id":3,"ts":1e9}"#, .cancel, 3, .invalid, .badTS),
        Case(#"{"op":"cancel","id":3,"ts":"5"}"#, .cancel, 3, .invalid, .badTS),
        Case(#"{"op":"cancel","id":3,"ts":9223372036854775808}"#, .cancel, 3, .invalid, .badTS),
        // side, type, tif, stp.
        Case(newLine(["side": #""BUY""#]), .new, 5, .invalid, .badSide),
        Case(newLine(["side": "1"]), .new, 5, .invalid, .badSide),
        Case(newLine(["type": #""stop""#]), .new, 5, .invalid, .badType),
        Case(newLine(["tif": #""day""#]), .new, 5, .invalid, .badTIF),
        Case(newLine(["tif": #""postonly""#]), .new, 5, .invalid, .badTIF),
        Case(newLine(["stp": #""cancel""#]), .new, 5, .invalid, .badSTP),
        Case(newLine(["stp": "null"]), .new, 5, .invalid, .badSTP),
        // price, qty.
        Case(newLine(["price": #""abc""#]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": "1e5"]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": #""1e5""#]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": "1.5E2"]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": #"".5""#]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": #""+1""#]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": #"" 1""#]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": "true"]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": "null"]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": "[1]"]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": #""1\u002e5""#]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": #""99999999999999999999""#]), .new, 5, .invalid, .priceTooLarge),
        Case(newLine(["price": "-99999999999999999999.5"]), .new, 5, .invalid, .priceTooLarge),
        Case(newLine(["price": #""1.""#]), .new, 5, .invalid, .badPrice),
        Case(newLine(["price": #""-""#]), .new, 5, .invalid, .badPrice),
        Case(newLine(["qty": #""99999999999999999999.00000000000000000000000""#]), .new, 5, .invalid, .qtyTooLarge),
        Case(newLine(["qty": #""1.0000000000000000001000""#]), .new, 5, .invalid, .qtyOffScale),
        Case(newLine(["qty": #""""#]), .new, 5, .invalid, .badQty),
        Case(newLine(["qty": "2e1"]), .new, 5, .invalid, .badQty),
        Case(newLine(["qty": #""0.0000000000000000001""#]), .new, 5, .invalid, .qtyOffScale),
        // account, symbol.
        Case(newLine(["account": #""""#]), .new, 5, .invalid, .badAccount),
        Case(newLine(["account": "7"]), .new, 5, .invalid, .badAccount),
        Case(newLine(["account": "\"" + String(repeating: "a", count: 65) + "\""]), .new, 5, .invalid, .badAccount),
        Case(newLine(["account": #""a\u0001b""#]), .new, 5, .invalid, .badAccount),
        Case(newLine(["account": #""\ud800""#]), .new, 5, .invalid, .badAccount),
        Case(newLine(["symbol": #""""#]), .new, 5, .invalid, .badSymbol),
        Case(newLine(["symbol": "1"]), .new, 5, .invalid, .badSymbol),
        Case(newLine(["symbol": "\"" + String(repeating: "S", count: 65) + "\""]), .new, 5, .invalid, .badSymbol),
        Case(newLine(["symbol": #""\n""#]), .new, 5, .invalid, .badSymbol),
        // Missing fields of a new order.
        Case(newLine(dropping: ["symbol"]), .new, 5, .invalid, .missingSymbol),
        Case(newLine(dropping: ["side"]), .new, 5, .invalid, .missingSide),
        Case(newLine(dropping: ["qty"]), .new, 5, .invalid, .missingQty),
        Case(newLine(dropping: ["price"]), .new, 5, .invalid, .missingPrice),
        Case(newLine(["type": #""limit""#], dropping: ["price"]), .new, 5, .invalid, .missingPrice),
        // Amend without change.
        Case(#"{"op":"amend","id":8}"#, .amend, 8, .invalid, .amendWithoutChange),
        Case(#"{"op":"amend","id":8,"ts":4}"#, .amend, 8, .invalid, .amendWithoutChange),
    ]

    @Test(arguments: cases)
    func rejected(_ c: Case) {
        #expect(decode(c.line) == .rejected(op: c.op, id: c.id, reason: c.reason, detail: c.detail))
    }

    @Test func tooManySymbols() {
        var decoder = CommandDecoder(symbols: NameTable(capacityMax: 1))
        guard case .command = decode(newLine(["symbol": #""A""#]), with: &decoder) else {
            Issue.record("first symbol rejected")
            return
        }
        guard case .command = decode(newLine(["symbol": #""A""#]), with: &decoder) else {
            Issue.record("known symbol rejected in a full table")
            return
        }
        #expect(
            decode(newLine(["symbol": #""B""#]), with: &decoder)
                == .rejected(op: .new, id: 5, reason: .invalid, detail: .tooManySymbols)
        )
    }

    @Test func tooManyAccounts() {
        var decoder = CommandDecoder(accounts: NameTable(firstID: 1, capacityMax: 2))
        for name in ["a", "b", "a", "b"] {
            guard case .command(let command) = decode(newLine(["account": "\"\(name)\""]), with: &decoder) else {
                Issue.record("account \(name) rejected")
                return
            }
            #expect(command.account == (name == "a" ? 1 : 2))
        }
        #expect(
            decode(newLine(["account": #""c""#]), with: &decoder)
                == .rejected(op: .new, id: 5, reason: .invalid, detail: .tooManyAccounts)
        )
    }

    @Test func firstProblemWins() {
        // Unknown field before a bad side: the unknown field is reported.
        #expect(
            decode(newLine(["zzz": "1", "side": #""up""#]))
                == .rejected(op: .new, id: 5, reason: .invalid, detail: .unknownField)
        )
        // Bad id before a missing symbol.
        #expect(
            decode(#"{"op":"new","id":"5"}"#) == .rejected(op: .new, id: nil, reason: .invalid, detail: .badID)
        )
    }
}

@Suite struct CommandDecoderCommands {
    @Test func fullNewOrder() {
        let line =
            #"{"op":"new","id":42,"symbol":"BTC-USD","side":"sell","type":"limit","price":"101.25","qty":0.5,"tif":"post_only","account":"alice","stp":"cancel_both","ts":1700000000000000000}"#
        #expect(
            decode(line, line: 17)
                == .command(
                    Command(
                        op: .new,
                        id: 42,
                        symbol: 0,
                        side: .sell,
                        type: .limit,
                        tif: .postOnly,
                        stp: .cancelBoth,
                        account: 1,
                        price: FixedDecimal(mantissa: 10125, scale: 2),
                        qty: FixedDecimal(mantissa: 5, scale: 1),
                        ts: 1_700_000_000_000_000_000,
                        line: 17
                    )
                )
        )
    }

    @Test func defaults() {
        // No type, tif, stp, account or ts: limit, gtc, the engine's stp, no account, no time.
        #expect(
            decode(newLine(), line: 3)
                == .command(
                    .new(id: 5, symbol: 0, side: .buy, price: dec("101.25"), qty: dec("2"), line: 3)
                )
        )
    }

    @Test func fieldOrderAndWhitespaceDoNotMatter() {
        let a = decode(#"{"op":"new","id":5,"symbol":"BTC-USD","side":"buy","price":"101.25","qty":"2"}"#)
        let b = decode(#"  { "qty" : "2" , "price":"101.25","side":"buy" ,"symbol":"BTC-USD","id":5,"op":"new"}  "#)
        #expect(a == b)
        guard case .command = a else {
            Issue.record("not decoded: \(a)")
            return
        }
    }

    @Test(arguments: [
        (#""101.25""#, "101.25"), ("101.25", "101.25"), ("101.250", "101.25"), (#""0101.25""#, "101.25"),
        ("7", "7"), (#""7.0""#, "7"), ("0.00000001", "0.00000001"),
    ])
    func priceAsStringOrNumber(json: String, expected: String) {
        guard case .command(let command) = decode(newLine(["price": json])) else {
            Issue.record("price \(json) rejected")
            return
        }
        #expect(command.price == dec(expected))
    }

    @Test func qtyAsStringOrNumber() {
        guard case .command(let a) = decode(newLine(["qty": #""0.25""#])),
            case .command(let b) = decode(newLine(["qty": "0.25"]))
        else {
            Issue.record("qty rejected")
            return
        }
        #expect(a.qty == FixedDecimal(mantissa: 25, scale: 2))
        #expect(a == b)
    }

    @Test(arguments: [
        (#""gtc""#, TimeInForce.gtc), (#""ioc""#, .ioc), (#""fok""#, .fok), (#""post_only""#, .postOnly),
    ])
    func tif(json: String, expected: TimeInForce) {
        guard case .command(let command) = decode(newLine(["tif": json])) else {
            Issue.record("tif \(json) rejected")
            return
        }
        #expect(command.tif == expected)
    }

    @Test(arguments: [
        (#""cancel_taker""#, STPMode.cancelTaker), (#""cancel_maker""#, .cancelMaker),
        (#""cancel_both""#, .cancelBoth), (#""none""#, STPMode.none),
    ])
    func stp(json: String, expected: STPMode) {
        guard case .command(let command) = decode(newLine(["stp": json])) else {
            Issue.record("stp \(json) rejected")
            return
        }
        #expect(command.stp == expected)
    }

    @Test func sideAndType() {
        guard case .command(let sell) = decode(newLine(["side": #""sell""#])),
            case .command(let limit) = decode(newLine(["type": #""limit""#]))
        else {
            Issue.record("rejected")
            return
        }
        #expect(sell.side == .sell)
        #expect(limit.type == .limit)
    }

    @Test func marketOrderWithoutPrice() {
        let decoded = decode(
            #"{"op":"new","id":9,"symbol":"ETH-USD","side":"sell","type":"market","qty":"3"}"#,
            line: 2
        )
        #expect(
            decoded == .command(.new(id: 9, symbol: 0, side: .sell, price: nil, qty: dec("3"), type: .market, line: 2))
        )
    }

    @Test func marketOrderWithPriceIsLeftToTheEngine() {
        // The decoder accepts it; the engine rejects it with marketWithPrice.
        guard case .command(let command) = decode(newLine(["type": #""market""#])) else {
            Issue.record("rejected")
            return
        }
        #expect(command.type == .market)
        #expect(command.price == dec("101.25"))
    }

    @Test func cancel() {
        #expect(decode(#"{"op":"cancel","id":7}"#, line: 4) == .command(.cancel(id: 7, line: 4)))
        #expect(decode(#"{"op":"cancel","id":7,"ts":0}"#) == .command(.cancel(id: 7, ts: 0, line: 1)))
        #expect(
            decode(#"{"op":"cancel","id":18446744073709551615,"ts":9223372036854775807}"#)
                == .command(.cancel(id: UInt64.max, ts: Int64.max, line: 1))
        )
        #expect(decode(#"{"op":"cancel","id":0}"#) == .command(.cancel(id: 0, line: 1)))
    }

    @Test func amend() {
        #expect(
            decode(#"{"op":"amend","id":8,"price":"99.5"}"#) == .command(.amend(id: 8, price: dec("99.5"), line: 1))
        )
        #expect(decode(#"{"op":"amend","id":8,"qty":"0"}"#) == .command(.amend(id: 8, qty: dec("0"), line: 1)))
        #expect(
            decode(#"{"op":"amend","id":8,"price":1,"qty":"2.5","ts":9}"#)
                == .command(.amend(id: 8, price: dec("1"), qty: dec("2.5"), ts: 9, line: 1))
        )
    }

    @Test func symbolInterning() {
        var decoder = CommandDecoder()
        func symbol(_ json: String) -> SymbolID? {
            guard case .command(let command) = decode(newLine(["symbol": json]), with: &decoder) else { return nil }
            return command.symbol
        }
        #expect(symbol(#""BTC-USD""#) == 0)
        #expect(symbol(#""ETH-USD""#) == 1)
        #expect(symbol(#""BTC-USD""#) == 0)
        // Escaped names are decoded before interning.
        #expect(symbol(#""BTC\u002dUSD""#) == 0)
        #expect(symbol(#""\u0045TH-USD""#) == 1)
        #expect(symbol(#""we\"ird\\sym""#) == 2)
        #expect(symbol(#""we\u0022ird\u005csym""#) == 2)
        #expect(symbol(#""caf\u00e9""#) == 3)
        #expect(symbol(#""café""#) == 3)
        #expect(decoder.symbols.count == 4)
        #expect(decoder.symbols.string(of: 2) == #"we"ird\sym"#)
        #expect(decoder.symbols.string(of: 3) == "café")
        #expect(decoder.symbols.lookup("ETH-USD") == 1)
        // 64 bytes is the limit, counted after decoding.
        #expect(symbol("\"" + String(repeating: "x", count: 64) + "\"") == 4)
        #expect(symbol("\"" + String(repeating: #"\u0078"#, count: 64) + "\"") == 4)
        #expect(symbol("\"" + String(repeating: #"\u0078"#, count: 65) + "\"") == nil)
    }

    @Test func accountInterning() {
        var decoder = CommandDecoder()
        func account(_ json: String?) -> AccountID? {
            let line = json.map { newLine(["account": $0]) } ?? newLine()
            guard case .command(let command) = decode(line, with: &decoder) else { return nil }
            return command.account
        }
        #expect(account(nil) == AccountID.none)
        #expect(account(#""alice""#) == 1)
        #expect(account(#""bob""#) == 2)
        #expect(account(#""alice""#) == 1)
        #expect(account(#""\u0061lice""#) == 1)
        #expect(account(#""bob\/x""#) == 3)
        #expect(account(#""bob/x""#) == 3)
        #expect(decoder.accounts.string(of: 3) == "bob/x")
        // Symbols and accounts are separate tables.
        guard
            case .command(let command) = decode(
                newLine(["symbol": #""alice""#, "account": #""alice""#]),
                with: &decoder
            )
        else {
            Issue.record("rejected")
            return
        }
        #expect(command.symbol == 1)
        #expect(command.account == 1)
    }

    @Test func decoderIsReusableAfterRejections() {
        var decoder = CommandDecoder()
        _ = decode("garbage", with: &decoder)
        _ = decode(#"{"op":"new","id":1,"symbol":"\ud800","side":"buy","price":"1","qty":"1"}"#, with: &decoder)
        _ = decode(newLine(["account": #""a\u0001""#]), with: &decoder)
        #expect(decoder.accounts.count == 0)
        #expect(
            decode(newLine(["account": #""z""#]), with: &decoder, line: 9)
                == .command(
                    .new(id: 5, symbol: 0, side: .buy, price: dec("101.25"), qty: dec("2"), account: 1, line: 9)
                )
        )
    }
}
