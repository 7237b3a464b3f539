import CastleCore
import CastleSupport
import Codecs
import Foundation
import MarketData
import Testing

/// A fresh directory under the system temp directory, removed when the value goes away.
private final class LobsterTempDir {
    let path: String

    init() {
        path = FileManager.default.temporaryDirectory.path + "/castle-lobster-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) -> String {
        let target = path + "/" + name
        precondition(FileManager.default.createFile(atPath: target, contents: Data(text.utf8)))
        return target
    }
}

private func readMessages(_ path: String) throws(CastleError) -> [L3Event] {
    let reader = try LobsterMessageReader(path: path)
    var events: [L3Event] = []
    while let event = try reader.next() { events.append(event) }
    return events
}

private func readRows(_ path: String) throws(CastleError) -> (levels: Int, rows: [L2Snapshot]) {
    let reader = try LobsterOrderbookReader(path: path)
    var rows: [L2Snapshot] = []
    while let row = try reader.next() { rows.append(row) }
    return (reader.levels, rows)
}

/// The message of the error reading all of `content` throws, with the file's path replaced by `F`.
private func messageError(_ content: String) -> String? {
    let dir = LobsterTempDir()
    let path = dir.write("m.csv", content)
    do {
        _ = try readMessages(path)
        return nil
    } catch {
        #expect(error.kind == .dataError)
        return error.message.replacingOccurrences(of: path, with: "F")
    }
}

private func orderbookError(_ content: String) -> String? {
    let dir = LobsterTempDir()
    let path = dir.write("o.csv", content)
    do {
        _ = try readRows(path)
        return nil
    } catch {
        #expect(error.kind == .dataError)
        return error.message.replacingOccurrences(of: path, with: "F")
    }
}

private func lv(_ price: Int64, _ qty: Int128) -> L2Level { L2Level(price: price, qty: qty) }

@Suite struct LobsterMessageReaderTests {
    @Test func parsesEveryTypeExactly() throws {
        let dir = LobsterTempDir()
        let path = dir.write(
            "m.csv",
            """
            34200.004241176,1,16113575,18,5853300,1
            34200.5,2,16113575,8,5853300,1\r
            34201,3,16113575,10,5853300,1
            34201.000000001,4,7,100,5853400,-1
            34202.1,5,0,1,5795100,-1
            34203,6,0,100,5850000,1
            36023,7,0,0,-1,-1
            36323,7,0,0,0,-1
            36723,7,0,0,1,-1
            9223372036.854775807,1,18446744073709551615,9223372036854775807,9223372036854775807,1
            """
        )  // no final newline
        let events = try readMessages(path)
        let expected: [L3Event] = [
            L3Event(
                timeNs: 34_200_004_241_176,
                kind: .add,
                orderID: 16_113_575,
                size: 18,
                price: 5_853_300,
                side: .buy,
                line: 1
            ),
            L3Event(
                timeNs: 34_200_500_000_000,
                kind: .cancel,
                orderID: 16_113_575,
                size: 8,
                price: 5_853_300,
                side: .buy,
                line: 2
            ),
            L3Event(
                timeNs: 34_201_000_000_000,
                kind: .delete,
                orderID: 16_113_575,
                size: 10,
                price: 5_853_300,
                side: .buy,
                line: 3
            ),
            L3Event(
                timeNs: 34_201_000_000_001,
                kind: .execute,
                orderID: 7,
                size: 100,
                price: 5_853_400,
                side: .sell,
                line: 4
            ),
            L3Event(
                timeNs: 34_202_100_000_000,
                kind: .executeHidden,
                orderID: 0,
                size: 1,
                price: 5_795_100,
                side: .sell,
                line: 5
            ),
            L3Event(
                timeNs: 34_203_000_000_000,
                kind: .cross,
                orderID: 0,
                size: 100,
                price: 5_850_000,
                side: .buy,
                line: 6
            ),
            L3Event(timeNs: 36_023_000_000_000, kind: .halt, orderID: 0, size: 0, price: -1, side: .sell, line: 7),
            L3Event(timeNs: 36_323_000_000_000, kind: .halt, orderID: 0, size: 0, price: 0, side: .sell, line: 8),
            L3Event(timeNs: 36_723_000_000_000, kind: .halt, orderID: 0, size: 0, price: 1, side: .sell, line: 9),
            L3Event(timeNs: .max, kind: .add, orderID: .max, size: .max, price: .max, side: .buy, line: 10),
        ]
        #expect(events == expected)
        #expect(LobsterMessageReader.priceDecimals == 4)
    }

    @Test func emptyFileHasNoEvents() throws {
        let dir = LobsterTempDir()
        #expect(try readMessages(dir.write("m.csv", "")).isEmpty)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var content: String
        var error: String
        var testDescription: String { content.debugDescription }
    }

    static let good = "34200.1,1,5,10,585000,1\n"

    static let cases: [Case] = [
        Case(content: "34200.1,1,5,10,585000\n" + good, error: "F:1:22: expected 6 fields, found 5"),
        Case(content: good + "34200.2,1,6,1", error: "F:2:14: truncated last line: expected 6 fields, found 4"),
        Case(content: good + "34200.2,1,6,1\n", error: "F:2:14: truncated last line: expected 6 fields, found 4"),
        Case(content: good + "34200.2,1,6,1\n" + good, error: "F:2:14: expected 6 fields, found 4"),
        Case(content: good + "34", error: "F:2:3: truncated last line: expected 6 fields, found 1"),
        Case(
            content: "34200.1,1,5,10,585000,-",
            error: "F:1:23: truncated last line: direction: not an integer: \"-\""
        ),
        Case(content: "34200.1,1,5,10,585000,", error: "F:1:23: truncated last line: direction: not an integer: \"\""),
        Case(content: "34200.1,1,5,10,585000,-\n" + good, error: "F:1:23: direction: not an integer: \"-\""),
        Case(content: "34200.1,1,5,10,585000,1,9\n", error: "F:1:25: expected 6 fields, found 7"),
        Case(content: good + "\n" + good, error: "F:2:1: empty line"),
        Case(content: "34200.1,1,5,1x,585000,1\n", error: "F:1:13: size: not an integer: \"1x\""),
        Case(content: "34200.1,1,5, 10,585000,1\n", error: "F:1:13: size: not an integer: \" 10\""),
        Case(content: "34200.1,1,5,+10,585000,1\n", error: "F:1:13: size: not an integer: \"+10\""),
        Case(content: "34200.1,1,5,10,585000.5,1\n", error: "F:1:16: price: not an integer: \"585000.5\""),
        Case(content: "34200.1,x,5,10,585000,1\n", error: "F:1:9: type: not an integer: \"x\""),
        Case(content: "34200.1,8,5,10,585000,1\n", error: "F:1:9: type: unknown message type 8 (expected 1 to 7)"),
        Case(content: "34200.1,0,5,10,585000,1\n", error: "F:1:9: type: unknown message type 0 (expected 1 to 7)"),
        Case(content: "34200.1,2,5,-10,585000,1\n", error: "F:1:13: size: negative: -10"),
        Case(content: "34200.1,2,-5,10,585000,1\n", error: "F:1:11: id: not a non-negative integer: \"-5\""),
        Case(
            content: "34200.1,1,18446744073709551616,10,585000,1",
            error: "F:1:11: id: out of range: \"18446744073709551616\""
        ),
        Case(
            content: "34200.1,1,5,10,9223372036854775808,1\n",
            error: "F:1:16: price: out of range: \"9223372036854775808\""
        ),
        Case(
            content: "34200.1,1,5,99999999999999999999999999999999999999999999,1,1\n",
            error: "F:1:13: size: out of range: \"9999999999999999999999999999999999999999…\""
        ),
        Case(content: "34200.1,1,5,10,-585000,1\n", error: "F:1:16: price: negative: -585000"),
        Case(
            content: "34200.0000000001,1,5,10,585000,1\n",
            error: "F:1:1: time: more than 9 decimals: \"34200.0000000001\""
        ),
        Case(content: "9223372037,1,5,10,585000,1\n", error: "F:1:1: time: out of range: \"9223372037\""),
        Case(
            content: "9223372036.854775808,1,5,10,585000,1\n",
            error: "F:1:1: time: out of range: \"9223372036.854775808\""
        ),
        Case(
            content: "34200.,1,5,10,585000,1\n",
            error: "F:1:1: time: not a non-negative decimal number of seconds: \"34200.\""
        ),
        Case(
            content: "-1.5,1,5,10,585000,1\n",
            error: "F:1:1: time: not a non-negative decimal number of seconds: \"-1.5\""
        ),
        Case(
            content: "3.4e4,1,5,10,585000,1\n",
            error: "F:1:1: time: not a non-negative decimal number of seconds: \"3.4e4\""
        ),
        Case(content: "34200.1,1,5,10,585000,0\n", error: "F:1:23: direction: must be 1 (buy) or -1 (sell), found 0"),
        Case(
            content: "34200.1,1,5,10,585000,99999999999999999999\n",
            error: "F:1:23: direction: out of range: \"99999999999999999999\""
        ),
        Case(content: "36023,7,0,0,5,-1\n", error: "F:1:13: price: a halt's state must be -1, 0 or 1, found 5"),
        Case(content: "36023,7,0,0,-2,-1\n", error: "F:1:13: price: a halt's state must be -1, 0 or 1, found -2"),
        Case(content: "a,b\u{00e9},c", error: "F:1:8: truncated last line: expected 6 fields, found 3"),
    ]

    @Test(arguments: cases)
    func errorsNameFileLineAndColumn(_ c: Case) {
        #expect(messageError(c.content) == c.error)
    }

    @Test func tooLongLineIsAnError() {
        #expect(messageError(String(repeating: "1", count: 5000) + "\n") == "F:1:1: line longer than 4096 bytes")
    }

    @Test func errorsAreSticky() throws {
        let dir = LobsterTempDir()
        let reader = try LobsterMessageReader(path: dir.write("m.csv", "x\n" + Self.good))
        var first: CastleError?
        do { _ = try reader.next() } catch { first = error }
        var second: CastleError?
        do { _ = try reader.next() } catch { second = error }
        #expect(first != nil)
        #expect(first?.message == second?.message)
    }

    @Test func missingFileIsNoInput() {
        do {
            _ = try LobsterMessageReader(path: "/nonexistent/castle/m.csv")
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .noInput)
        }
    }
}

@Suite struct LobsterOrderbookReaderTests {
    @Test func infersLevelsAndDropsDummies() throws {
        let dir = LobsterTempDir()
        let path = dir.write(
            "o.csv",
            """
            5859400,200,5853300,18,5859800,200,5853000,150
            5859400,200,5853300,18,9999999999,0,-9999999999,0
            9999999999,0,5853300,18,9999999999,0,-9999999999,0\r
            9999999999,0,-9999999999,0,9999999999,0,-9999999999,0
            """
        )
        let (levels, rows) = try readRows(path)
        #expect(levels == 2)
        #expect(
            rows == [
                L2Snapshot(
                    timeNs: 0,
                    bids: [lv(5_853_300, 18), lv(5_853_000, 150)],
                    asks: [lv(5_859_400, 200), lv(5_859_800, 200)]
                ),
                L2Snapshot(timeNs: 0, bids: [lv(5_853_300, 18)], asks: [lv(5_859_400, 200)]),
                L2Snapshot(timeNs: 0, bids: [lv(5_853_300, 18)], asks: []),
                L2Snapshot(timeNs: 0, bids: [], asks: []),
            ]
        )
    }

    @Test func rowsCarryTheGivenTime() throws {
        let dir = LobsterTempDir()
        let reader = try LobsterOrderbookReader(path: dir.write("o.csv", "5,1,4,1\n"))
        #expect(reader.levels == 0)
        #expect(try reader.next(timeNs: 77)?.timeNs == 77)
        #expect(reader.levels == 1)
        #expect(try reader.next() == nil)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var content: String
        var error: String
        var testDescription: String { content.debugDescription }
    }

    static let good = "5859400,200,5853300,18,5859800,200,5853000,150\n"

    static let cases: [Case] = [
        Case(
            content: "5859400,200,5853300,18,5859800,200\n" + good,
            error: "F:1:35: expected a multiple of 4 fields, found 6"
        ),
        Case(
            content: "5859400,200,5853300,18,5859800,200",
            error: "F:1:35: truncated last line: expected a multiple of 4 fields, found 6"
        ),
        Case(content: "\n" + good, error: "F:1:1: expected a multiple of 4 fields, found 1"),
        Case(
            content: good + "5859400,200,5853300,18,5859800,200,5853000\n" + good,
            error: "F:2:43: expected 8 fields, found 7"
        ),
        Case(content: good + "5859400,200,5853", error: "F:2:17: truncated last line: expected 8 fields, found 3"),
        Case(
            content: good + "5859400,200,5853300,18,5859800,200,5853000,-",
            error: "F:2:44: truncated last line: bid size 2: not an integer: \"-\""
        ),
        Case(
            content: good + "5859400,200,5853300,18,5859800,200,5853000,150,1\n",
            error: "F:2:48: expected 8 fields, found 9"
        ),
        Case(
            content: "5859800,200,5853300,18,5859400,200,5853000,150\n",
            error: "F:1:24: ask price 2: 5859400 is not worse than level 1's 5859800"
        ),
        Case(
            content: "5859400,200,5853000,18,5859800,200,5853300,150\n",
            error: "F:1:36: bid price 2: 5853300 is not worse than level 1's 5853000"
        ),
        Case(
            content: "9999999999,0,5853300,18,5859800,200,5853000,150\n",
            error: "F:1:25: ask price 2: an occupied level after an empty one"
        ),
        Case(
            content: "5859400,0,5853300,18,5859800,200,5853000,150\n",
            error: "F:1:9: ask size 1: zero at an occupied level"
        ),
        Case(content: "5859400,200,5853300,-18,5859800,200,5853000,150\n", error: "F:1:21: bid size 1: negative: -18"),
        Case(
            content: "99999999999999999999,200,5853300,18,5859800,200,5853000,150\n",
            error: "F:1:1: ask price 1: out of range: \"99999999999999999999\""
        ),
        Case(
            content: "5859400,2x0,5853300,18,5859800,200,5853000,150\n",
            error: "F:1:9: ask size 1: not an integer: \"2x0\""
        ),
    ]

    @Test(arguments: cases)
    func errorsNameFileLineAndColumn(_ c: Case) {
        #expect(orderbookError(c.content) == c.error)
    }
}

// MARK: - The LOBSTER sample files

/// `$CASTLE_SHARED_DATASETS/lobster`, or `<package root>/../shared/datasets/lobster`; nil when absent.
private let lobsterDirectory: String? = {
    let base: String
    if let shared = ProcessInfo.processInfo.environment["CASTLE_SHARED_DATASETS"], !shared.isEmpty {
        base = shared
    } else {
        // #filePath is <root>/Tests/MarketDataTests/LobsterTests.swift.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        base = root.deletingLastPathComponent().appendingPathComponent("shared/datasets").path
    }
    let directory = base + "/lobster"
    return FileManager.default.fileExists(atPath: directory) ? directory : nil
}()

private let googMessages = "GOOG_2012-06-21_34200000_57600000_message_1.csv"
private let googOrderbook = "GOOG_2012-06-21_34200000_57600000_orderbook_1.csv"
private let aaplMessages = "AAPL_2012-06-21_34200000_57600000_message_10.first999.csv"
private let aaplOrderbook = "AAPL_2012-06-21_34200000_57600000_orderbook_10.first999.csv"

private func samplesPresent(_ names: String...) -> Bool {
    guard let lobsterDirectory else { return false }
    return names.allSatisfy { FileManager.default.fileExists(atPath: lobsterDirectory + "/" + $0) }
}

private struct ReplayResult {
    var levels = 0
    var messages = 0
    var check = BookVerification(depth: 1)
    var counters = L3Counters()
    var trades = 0
    var tradedQty: Int64 = 0
}

/// The replay that checks a LOBSTER day: the state before message 1 is row 1 with message 1 reverted
/// (seeded as anonymous liquidity); message 1 is applied and row 1 learned (not compared: it made the
/// seed). Then for each later row k: apply message k, compare with row k, learn from row k.
/// `alter` may change a message before it is applied (to show that the comparison catches it).
private func replay(
    _ messagesName: String,
    _ orderbookName: String,
    alter: (inout L3Event) -> Void = { _ in }
) throws -> ReplayResult {
    let messages = try LobsterMessageReader(path: lobsterDirectory! + "/" + messagesName)
    let rows = try LobsterOrderbookReader(path: lobsterDirectory! + "/" + orderbookName)
    var result = ReplayResult()
    guard var first = try messages.next(), let firstRow = try rows.next(timeNs: first.timeNs) else {
        Issue.record("empty sample")
        return result
    }
    alter(&first)
    result.levels = rows.levels
    var book = L3Book(viewDepth: rows.levels)
    var check = BookVerification(depth: rows.levels)
    book.seed(firstRow.reverting(first))
    func note(_ outcome: L3Outcome) {
        if let trade = outcome.trade {
            result.trades += 1
            result.tradedQty += trade.qty
        }
    }
    note(book.apply(first))
    book.learn(from: firstRow)
    result.messages = 1
    while var message = try messages.next() {
        guard let row = try rows.next(timeNs: message.timeNs) else {
            Issue.record("orderbook file shorter than the message file")
            break
        }
        alter(&message)
        result.messages += 1
        note(book.apply(message))
        check.compare(book, with: row, line: rows.lineNumber)
        book.learn(from: row)
        #expect(!book.isCrossed)
    }
    #expect(try rows.next() == nil, "orderbook file longer than the message file")
    result.check = check
    result.counters = book.counters
    return result
}

private func describe(_ name: String, _ r: ReplayResult) -> String {
    let c = r.counters
    return "\(name): \(r.messages) messages, depth \(r.levels); rows compared \(r.check.rowsCompared), "
        + "rows equal \(r.check.rowsEqual), rows revealing levels \(r.check.rowsRevealingLevels); "
        + "trades \(r.trades) (\(r.tradedQty) shares); attributed to pre-existing \(c.attributedToPreexisting), "
        + "unknown \(c.unknownOrders), size exceeds order \(c.sizeExceedsOrder), duplicates \(c.duplicateIDs), "
        + "mismatches \(c.orderMismatches), invalid \(c.invalidEvents), halts \(c.halts); "
        + "levels learned \(c.levelsLearned), forgotten \(c.levelsForgotten) with \(c.ordersForgotten) orders"
}

@Suite struct LobsterSampleTests {
    @Test(.enabled(if: samplesPresent(googMessages, googOrderbook), "LOBSTER GOOG sample not found"))
    func googLevel1AgreesOnEveryRow() throws {
        let r = try replay(googMessages, googOrderbook)
        print(describe("GOOG level 1", r))
        #expect(r.levels == 1)
        #expect(r.messages == 49_482)
        #expect(r.check.rowsCompared == 49_481)
        #expect(r.check.rowsEqual == 49_481)
        #expect(r.check.firstDisagreement == nil)
        #expect(r.check.rowsRevealingLevels == 11_207)
        #expect(r.trades == 11_678)
        #expect(r.tradedQty == 706_125)
        #expect(r.counters.attributedToPreexisting == 6_667)
        #expect(r.counters.levelsLearned == 11_207)
        #expect(r.counters.levelsForgotten == 12_877)
        #expect(r.counters.ordersForgotten == 10_993)
        #expect(r.counters.unknownOrders == 0)
        #expect(r.counters.sizeExceedsOrder == 0)
        #expect(r.counters.duplicateIDs == 0)
        #expect(r.counters.orderMismatches == 0)
        #expect(r.counters.invalidEvents == 0)
    }

    @Test(.enabled(if: samplesPresent(aaplMessages, aaplOrderbook), "LOBSTER AAPL sample not found"))
    func aaplLevel10AgreesOnEveryRow() throws {
        let r = try replay(aaplMessages, aaplOrderbook)
        print(describe("AAPL level 10", r))
        #expect(r.levels == 10)
        #expect(r.messages == 999)
        #expect(r.check.rowsCompared == 998)
        #expect(r.check.rowsEqual == 998)
        #expect(r.check.firstDisagreement == nil)
        #expect(r.check.rowsRevealingLevels == 318)
        #expect(r.trades == 159)
        #expect(r.tradedQty == 10_592)
        #expect(r.counters.attributedToPreexisting == 16)
        #expect(r.counters.levelsLearned == 318)
        #expect(r.counters.levelsForgotten == 328)
        #expect(r.counters.ordersForgotten == 31)
        #expect(r.counters.unknownOrders == 0)
        #expect(r.counters.sizeExceedsOrder == 0)
        #expect(r.counters.duplicateIDs == 0)
        #expect(r.counters.orderMismatches == 0)
        #expect(r.counters.invalidEvents == 0)
    }

    /// The comparison is not circular: one wrong message shows at its own row.
    @Test(.enabled(if: samplesPresent(aaplMessages, aaplOrderbook), "LOBSTER AAPL sample not found"))
    func anAlteredMessageIsCaughtAtItsRow() throws {
        var alteredLine = 0
        let r = try replay(aaplMessages, aaplOrderbook) { event in
            if alteredLine == 0, event.line >= 500, event.kind == .add {
                alteredLine = event.line
                event.size += 1
            }
        }
        #expect(alteredLine > 0)
        #expect(r.check.firstDisagreement?.line == alteredLine)
        #expect(r.check.rowsEqual < r.check.rowsCompared)
    }
}
