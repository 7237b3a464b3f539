import CastleCore
import MarketData
import Testing

private func event(
    _ kind: L3Event.Kind,
    _ id: UInt64,
    _ size: Int64,
    _ price: Int64,
    _ side: Side,
    at time: Int64 = 1
) -> L3Event {
    L3Event(timeNs: time, kind: kind, orderID: id, size: size, price: price, side: side, line: 0)
}

private func lv(_ price: Int64, _ qty: Int128) -> L2Level { L2Level(price: price, qty: qty) }

private func row(bids: [L2Level], asks: [L2Level]) -> L2Snapshot { L2Snapshot(timeNs: 0, bids: bids, asks: asks) }

/// bids 100 × 10 (id 1), 99 × 5 (id 2); asks 101 × 7 (id 3), 102 × 4 (id 4).
private func smallBook() -> L3Book {
    var book = L3Book()
    _ = book.apply(event(.add, 1, 10, 100, .buy))
    _ = book.apply(event(.add, 2, 5, 99, .buy))
    _ = book.apply(event(.add, 3, 7, 101, .sell))
    _ = book.apply(event(.add, 4, 4, 102, .sell))
    return book
}

@Suite struct L3BookEventTests {
    @Test func addsAggregateByLevelBestFirst() {
        var book = smallBook()
        let outcome1 = book.apply(event(.add, 5, 3, 100, .buy))
        #expect(outcome1 == L3Outcome())
        let snap = book.snapshot(levels: 5, timeNs: 42)
        #expect(snap == L2Snapshot(timeNs: 42, bids: [lv(100, 13), lv(99, 5)], asks: [lv(101, 7), lv(102, 4)]))
        #expect(book.snapshot(levels: 1, timeNs: 0).bids == [lv(100, 13)])
        #expect(book.snapshot(levels: 0, timeNs: 0) == row(bids: [], asks: []))
        #expect(book.bestBid == lv(100, 13))
        #expect(book.bestAsk == lv(101, 7))
        #expect(book.level(.buy, 1) == lv(99, 5))
        #expect(book.level(.buy, 2) == nil)
        #expect(book.level(.sell, -1) == nil)
        #expect(book.levelCount(.sell) == 2)
        #expect(book.orderCount == 5)
        #expect(book.order(5) == L3Order(side: .buy, price: 100, remaining: 3))
        #expect(!book.isCrossed)
        #expect(book.counters.events == 5)
    }

    @Test func partialCancelThenDelete() {
        var book = smallBook()
        let outcome2 = book.apply(event(.cancel, 1, 4, 100, .buy))
        #expect(outcome2 == L3Outcome())
        #expect(book.order(1)?.remaining == 6)
        #expect(book.bestBid == lv(100, 6))
        let outcome3 = book.apply(event(.delete, 1, 6, 100, .buy))
        #expect(outcome3 == L3Outcome())
        #expect(book.order(1) == nil)
        #expect(book.bestBid == lv(99, 5))
        #expect(book.levelCount(.buy) == 1)
        #expect(book.orderCount == 3)
    }

    @Test func executionPrintsTradeWithOppositeAggressor() {
        var book = smallBook()
        let partial = book.apply(event(.execute, 3, 2, 101, .sell, at: 7))
        #expect(partial.trade == TradePrint(timeNs: 7, price: 101, qty: 2, aggressor: .buy))
        #expect(partial.anomaly == nil)
        #expect(book.bestAsk == lv(101, 5))
        let full = book.apply(event(.execute, 1, 10, 100, .buy, at: 8))
        #expect(full.trade == TradePrint(timeNs: 8, price: 100, qty: 10, aggressor: .sell))
        #expect(book.order(1) == nil)
        #expect(book.bestBid == lv(99, 5))
        #expect(book.counters.trades == 2)
    }

    @Test func hiddenExecutionAndCrossTradeLeaveTheBook() {
        var book = smallBook()
        let before = book.snapshot(levels: 10, timeNs: 0)
        let hidden = book.apply(event(.executeHidden, 0, 9, 1005, .sell, at: 3))
        #expect(hidden == L3Outcome(trade: TradePrint(timeNs: 3, price: 1005, qty: 9, aggressor: .buy)))
        let cross = book.apply(event(.cross, 0, 50, 100, .buy, at: 4))
        #expect(cross == L3Outcome(trade: TradePrint(timeNs: 4, price: 100, qty: 50, aggressor: .sell)))
        #expect(book.snapshot(levels: 10, timeNs: 0) == before)
        let outcome4 = book.apply(event(.executeHidden, 0, 0, 100, .buy))
        #expect(outcome4.anomaly == .invalidEvent)
    }

    @Test func haltsReportTheirState() {
        var book = smallBook()
        #expect(book.haltState == .trading)
        let outcome5 = book.apply(event(.halt, 0, 0, -1, .sell))
        #expect(outcome5 == L3Outcome(halt: .halted))
        #expect(book.haltState == .halted)
        let outcome6 = book.apply(event(.halt, 0, 0, 0, .sell))
        #expect(outcome6 == L3Outcome(halt: .quoting))
        #expect(book.haltState == .quoting)
        let outcome7 = book.apply(event(.halt, 0, 0, 1, .sell))
        #expect(outcome7 == L3Outcome(halt: .trading))
        let outcome8 = book.apply(event(.halt, 0, 0, 2, .sell))
        #expect(outcome8 == L3Outcome(anomaly: .invalidEvent))
        let outcome9 = book.apply(event(.halt, 0, 0, 256 - 1, .sell))
        #expect(outcome9.anomaly == .invalidEvent)
        let outcome10 = book.apply(event(.halt, 0, 0, Int64.min, .sell))
        #expect(outcome10.anomaly == .invalidEvent)
        #expect(book.haltState == .trading)
        #expect(book.counters.halts == 3)
        #expect(book.snapshot(levels: 10, timeNs: 0) == smallBook().snapshot(levels: 10, timeNs: 0))
    }

    @Test func unknownIDsDrawOnAnonymousLiquidity() {
        var book = L3Book()
        book.seed(row(bids: [lv(100, 50)], asks: [lv(101, 30)]))
        _ = book.apply(event(.add, 1, 10, 100, .buy))
        // Known order 1 (10) and anonymous 50 at 100.
        let outcome11 = book.apply(event(.cancel, 77, 20, 100, .buy))
        #expect(outcome11.anomaly == .attributedToPreexisting)
        #expect(book.anonymousQuantity(.buy, at: 100) == 30)
        #expect(book.bestBid == lv(100, 40))
        let execute = book.apply(event(.execute, 78, 30, 100, .buy))
        #expect(execute.anomaly == .attributedToPreexisting)
        #expect(execute.trade?.qty == 30)
        #expect(book.bestBid == lv(100, 10))
        #expect(book.order(1)?.remaining == 10)
        // Not enough anonymous: what there is is taken, the rest is reported.
        let outcome12 = book.apply(event(.delete, 79, 50, 101, .sell))
        #expect(outcome12.anomaly == .unknownOrder(unexplained: 20))
        #expect(book.bestAsk == nil)
        // No level at all.
        let orphan = book.apply(event(.execute, 80, 5, 105, .sell))
        #expect(orphan.anomaly == .unknownOrder(unexplained: 5))
        #expect(orphan.trade == TradePrint(timeNs: 1, price: 105, qty: 5, aggressor: .buy))
        // The wrong side does not match the anonymous bid quantity.
        let outcome13 = book.apply(event(.cancel, 81, 1, 100, .sell))
        #expect(outcome13.anomaly == .unknownOrder(unexplained: 1))
        #expect(book.counters.attributedToPreexisting == 2)
        #expect(book.counters.unknownOrders == 3)
        #expect(book.snapshot(levels: 5, timeNs: 0) == row(bids: [lv(100, 10)], asks: []))
    }

    @Test func oversizedReductionsAreClampedAndReported() {
        var book = smallBook()
        let outcome14 = book.apply(event(.cancel, 1, 15, 100, .buy))
        #expect(outcome14.anomaly == .sizeExceedsOrder(excess: 5))
        #expect(book.order(1) == nil)
        #expect(book.bestBid == lv(99, 5))
        let execute = book.apply(event(.execute, 3, 9, 101, .sell))
        #expect(execute.anomaly == .sizeExceedsOrder(excess: 2))
        // The trade is the feed's statement, not clamped.
        #expect(execute.trade?.qty == 9)
        #expect(book.bestAsk == lv(102, 4))
        // A delete removes the whole order whatever size it states.
        let outcome15 = book.apply(event(.delete, 2, 3, 99, .buy))
        #expect(outcome15.anomaly == .sizeExceedsOrder(excess: -2))
        #expect(book.levelCount(.buy) == 0)
        let outcome16 = book.apply(event(.delete, 4, 9, 102, .sell))
        #expect(outcome16.anomaly == .sizeExceedsOrder(excess: 5))
        #expect(book.counters.sizeExceedsOrder == 4)
        #expect(book.orderCount == 0)
    }

    @Test func duplicateAddReplacesTheOrder() {
        var book = smallBook()
        let outcome17 = book.apply(event(.add, 1, 3, 98, .buy))
        #expect(outcome17.anomaly == .duplicateID)
        #expect(book.order(1) == L3Order(side: .buy, price: 98, remaining: 3))
        #expect(book.snapshot(levels: 5, timeNs: 0).bids == [lv(99, 5), lv(98, 3)])
        #expect(book.counters.duplicateIDs == 1)
    }

    @Test func mismatchedPriceOrSideUsesTheOrdersOwn() {
        var book = smallBook()
        let outcome18 = book.apply(event(.cancel, 1, 2, 105, .buy))
        #expect(outcome18.anomaly == .orderMismatch)
        let outcome19 = book.apply(event(.cancel, 1, 2, 100, .sell))
        #expect(outcome19.anomaly == .orderMismatch)
        #expect(book.bestBid == lv(100, 6))
        #expect(book.bestAsk == lv(101, 7))
        #expect(book.counters.orderMismatches == 2)
    }

    @Test func nonPositiveSizesAreIgnored() {
        var book = smallBook()
        let before = book.snapshot(levels: 10, timeNs: 0)
        for kind in [L3Event.Kind.add, .cancel, .delete, .execute, .executeHidden, .cross] {
            let outcome20 = book.apply(event(kind, 1, 0, 100, .buy))
            #expect(outcome20 == L3Outcome(anomaly: .invalidEvent))
            let outcome21 = book.apply(event(kind, 9, -5, 100, .buy))
            #expect(outcome21 == L3Outcome(anomaly: .invalidEvent))
        }
        #expect(book.snapshot(levels: 10, timeNs: 0) == before)
        #expect(book.counters.invalidEvents == 12)
    }

    @Test func extremeValuesDoNotTrap() {
        var book = L3Book()
        for (index, price) in [Int64.min, Int64.max, 0, -1].enumerated() {
            let outcome22 = book.apply(event(.add, UInt64(2 * index + 1), .max, price, .sell))
            #expect(outcome22 == L3Outcome())
            let outcome23 = book.apply(event(.add, UInt64(2 * index + 2), .max, price, .buy))
            #expect(outcome23 == L3Outcome())
        }
        _ = book.apply(event(.add, .max, .max, Int64.max, .sell))
        #expect(book.level(.sell, 3) == lv(.max, 2 * Int128(Int64.max)))
        #expect(book.bestAsk == lv(.min, Int128(Int64.max)))
        #expect(book.bestBid == lv(.max, Int128(Int64.max)))
        #expect(book.isCrossed)
        let outcome24 = book.apply(event(.cancel, .max, .max, Int64.max, .sell))
        #expect(outcome24 == L3Outcome())
        let outcome25 = book.apply(event(.execute, 12345, .max, Int64.min, .buy))
        #expect(outcome25.anomaly == .unknownOrder(unexplained: .max))
        book.seed(row(bids: [lv(5, .max)], asks: [lv(6, .min)]))
        #expect(book.anonymousQuantity(.buy, at: 5) == L3Book.anonymousMax)
        #expect(book.anonymousQuantity(.sell, at: 6) == 0)
        _ = book.apply(event(.add, 999, .max, 5, .buy))
        let outcome26 = book.apply(event(.cancel, 998, .max, 5, .buy))
        #expect(outcome26.anomaly == .attributedToPreexisting)
    }
}

@Suite struct L3BookSeedLearnTests {
    @Test func seedSetsAnonymousQuantityOnly() {
        var book = L3Book()
        _ = book.apply(event(.add, 1, 10, 100, .buy))
        book.seed(row(bids: [lv(100, 5), lv(99, 7)], asks: [lv(101, 3)]))
        #expect(book.snapshot(levels: 5, timeNs: 0) == row(bids: [lv(100, 15), lv(99, 7)], asks: [lv(101, 3)]))
        #expect(book.anonymousQuantity(.buy, at: 100) == 5)
        // Setting, not adding; zero removes an anonymous-only level but not a level with known orders.
        book.seed(row(bids: [lv(100, 0), lv(99, 0)], asks: [lv(101, 4)]))
        #expect(book.snapshot(levels: 5, timeNs: 0) == row(bids: [lv(100, 10)], asks: [lv(101, 4)]))
        #expect(book.view(.buy) == .unknown)
    }

    @Test func firstLearnAddsOnlyLevelsTheBookDoesNotHold() {
        var book = L3Book(viewDepth: 2)
        _ = book.apply(event(.add, 1, 10, 100, .buy))
        // The row says 12 at 100: the book keeps its 10 (no overwrite), learns 99 and the asks.
        let learned = book.learn(from: row(bids: [lv(100, 12), lv(99, 4)], asks: [lv(101, 3)]))
        #expect(learned == 2)
        #expect(book.snapshot(levels: 5, timeNs: 0) == row(bids: [lv(100, 10), lv(99, 4)], asks: [lv(101, 3)]))
        #expect(book.view(.buy) == .through(99))
        #expect(book.view(.sell) == .whole)
        #expect(book.counters.levelsLearned == 2)
    }

    @Test func levelsInsideThePreviousViewAreNeverOverwritten() {
        var book = L3Book(viewDepth: 2)
        book.learn(from: row(bids: [lv(100, 10), lv(99, 4)], asks: [lv(101, 3), lv(103, 2)]))
        // The rows disagree with the book everywhere inside the previous view: nothing changes.
        // (102 is inside the ask view too: a level there must come from a message.)
        let learned27 = book.learn(from: row(bids: [lv(100, 11), lv(99, 5)], asks: [lv(101, 1), lv(102, 1)]))
        #expect(learned27 == 0)
        // 103 is beyond the new ask view (through 102), so it is forgotten.
        #expect(book.snapshot(levels: 5, timeNs: 0) == row(bids: [lv(100, 10), lv(99, 4)], asks: [lv(101, 3)]))
    }

    @Test func levelsComingIntoViewAreLearnedAndLeavingOnesForgotten() {
        var book = L3Book(viewDepth: 2)
        book.learn(from: row(bids: [lv(100, 10), lv(99, 4)], asks: []))
        _ = book.apply(event(.add, 1, 6, 99, .buy))  // 99 now 10: 4 anonymous + order 1
        // The best bid empties; the row shows 98, which was beyond the view.
        _ = book.apply(event(.execute, 50, 10, 100, .buy))
        let learned28 = book.learn(from: row(bids: [lv(99, 10), lv(98, 8)], asks: []))
        #expect(learned28 == 1)
        #expect(book.snapshot(levels: 5, timeNs: 0).bids == [lv(99, 10), lv(98, 8)])
        #expect(book.anonymousQuantity(.buy, at: 98) == 8)
        #expect(book.view(.buy) == .through(98))
        // A better bid pushes 98 out of view: it is forgotten.
        _ = book.apply(event(.add, 2, 1, 101, .buy))
        book.learn(from: row(bids: [lv(101, 1), lv(99, 10)], asks: []))
        #expect(book.snapshot(levels: 5, timeNs: 0).bids == [lv(101, 1), lv(99, 10)])
        #expect(book.counters.levelsForgotten == 1)
        // Another pushes 99, with known order 1, out of view.
        _ = book.apply(event(.add, 3, 1, 102, .buy))
        book.learn(from: row(bids: [lv(102, 1), lv(101, 1)], asks: []))
        #expect(book.order(1) == nil)
        #expect(book.orderCount == 2)
        #expect(book.counters.ordersForgotten == 1)
        // 99 comes back with a different quantity: learned afresh; order 1 is now anonymous liquidity.
        _ = book.apply(event(.delete, 3, 1, 102, .buy))
        book.learn(from: row(bids: [lv(101, 1), lv(99, 9)], asks: []))
        #expect(book.snapshot(levels: 5, timeNs: 0).bids == [lv(101, 1), lv(99, 9)])
        let outcome29 = book.apply(event(.execute, 1, 6, 99, .buy))
        #expect(outcome29.anomaly == .attributedToPreexisting)
        #expect(book.bestBid == lv(101, 1))
        #expect(book.level(.buy, 1) == lv(99, 3))
    }

    @Test func aRowShowingTheWholeSideRevealsNothing() {
        var book = L3Book(viewDepth: 3)
        book.learn(from: row(bids: [lv(100, 1)], asks: []))
        #expect(book.view(.buy) == .whole)
        // A level appearing below, without a message, is not learned: the messages must explain it.
        let learned30 = book.learn(from: row(bids: [lv(100, 1), lv(99, 2)], asks: []))
        #expect(learned30 == 0)
        #expect(book.levelCount(.buy) == 1)
    }

    @Test func forgottenOrdersAreSweptAndIDsReusable() {
        var book = L3Book(viewDepth: 1)
        book.learn(from: row(bids: [lv(1, 1)], asks: []))
        _ = book.apply(event(.delete, 0, 1, 1, .buy))
        // Each round: 10 orders at price p, then a better level pushes p out of view.
        for round in 0..<400 {
            let price = Int64(10 + round)
            for k in 0..<10 { _ = book.apply(event(.add, UInt64(round * 10 + k), 1, price, .buy)) }
            _ = book.apply(event(.add, 1_000_000 + UInt64(round), 1, price + 1, .buy))
            book.learn(from: row(bids: [lv(price + 1, 1)], asks: []))
            _ = book.apply(event(.delete, 1_000_000 + UInt64(round), 1, price + 1, .buy))
            book.learn(from: row(bids: [], asks: []))
        }
        #expect(book.orderCount == 0)
        #expect(book.levelCount(.buy) == 0)
        #expect(book.counters.ordersForgotten == 4000)
        // A forgotten id can be added again, without a duplicate report.
        let outcome31 = book.apply(event(.add, 5, 2, 7, .buy))
        #expect(outcome31 == L3Outcome())
        #expect(book.order(5)?.remaining == 2)
    }

    @Test func revertingUndoesOneMessage() {
        let after = row(bids: [lv(100, 10), lv(99, 5)], asks: [lv(102, 4)])
        #expect(after.reverting(event(.add, 1, 3, 100, .buy)).bids == [lv(100, 7), lv(99, 5)])
        #expect(after.reverting(event(.add, 1, 5, 99, .buy)).bids == [lv(100, 10)])
        #expect(after.reverting(event(.cancel, 1, 2, 99, .buy)).bids == [lv(100, 10), lv(99, 7)])
        #expect(after.reverting(event(.execute, 1, 6, 101, .sell)).asks == [lv(101, 6), lv(102, 4)])
        #expect(after.reverting(event(.delete, 1, 6, 103, .sell)).asks == [lv(102, 4), lv(103, 6)])
        #expect(after.reverting(event(.delete, 1, 6, 101, .buy)).bids == [lv(101, 6), lv(100, 10), lv(99, 5)])
        #expect(after.reverting(event(.executeHidden, 1, 6, 101, .buy)) == after)
        #expect(after.reverting(event(.halt, 0, 0, -1, .sell)) == after)
    }

    @Test func seededRevertedRowThenFirstMessageGivesTheRow() {
        let first = row(bids: [lv(100, 496)], asks: [lv(101, 100)])
        let message = event(.execute, 15_818_974, 4, 100, .buy)
        var book = L3Book(viewDepth: 1)
        book.seed(first.reverting(message))
        let outcome32 = book.apply(message)
        #expect(outcome32.anomaly == .attributedToPreexisting)
        #expect(book.snapshot(levels: 1, timeNs: 0) == first)
        let learned33 = book.learn(from: first)
        #expect(learned33 == 0)
    }
}

@Suite struct BookVerificationTests {
    @Test func equalRowsCount() {
        var book = L3Book(viewDepth: 2)
        var check = BookVerification(depth: 2)
        book.learn(from: row(bids: [lv(100, 10)], asks: [lv(101, 5), lv(102, 1)]))
        _ = book.apply(event(.add, 1, 3, 100, .buy))
        let equal1 = check.compare(book, with: row(bids: [lv(100, 13)], asks: [lv(101, 5), lv(102, 1)]), line: 2)
        #expect(equal1)
        #expect(check.rowsCompared == 1)
        #expect(check.rowsEqual == 1)
        #expect(check.allEqual)
        #expect(check.firstDisagreement == nil)
    }

    @Test func dummyLevelsAreAbsent() {
        var book = L3Book(viewDepth: 2)
        book.seed(row(bids: [lv(100, 10)], asks: []))
        var check = BookVerification(depth: 2)
        let withDummies = row(
            bids: [lv(100, 10), lv(-9_999_999_999, 0)],
            asks: [lv(9_999_999_999, 0), lv(9_999_999_999, 0)]
        )
        let equal2 = check.compare(book, with: withDummies, line: 1)
        #expect(equal2)
    }

    @Test func firstDisagreementIsKept() {
        var book = L3Book(viewDepth: 1)
        book.seed(row(bids: [lv(100, 10)], asks: [lv(101, 5)]))
        var check = BookVerification(depth: 1)
        let equal3 = check.compare(book, with: row(bids: [lv(100, 9)], asks: [lv(101, 5)]), line: 7)
        #expect(!equal3)
        let equal4 = check.compare(book, with: row(bids: [lv(100, 8)], asks: [lv(101, 5)]), line: 8)
        #expect(!equal4)
        #expect(check.rowsCompared == 2)
        #expect(check.rowsEqual == 0)
        #expect(!check.allEqual)
        let first = check.firstDisagreement
        #expect(first?.line == 7)
        #expect(first?.expected == row(bids: [lv(100, 9)], asks: [lv(101, 5)]))
        #expect(first?.actual == row(bids: [lv(100, 10)], asks: [lv(101, 5)]))
    }

    @Test func levelsComingIntoViewAreLeftOutThenLearned() {
        var book = L3Book(viewDepth: 1)
        var check = BookVerification(depth: 1)
        book.learn(from: row(bids: [lv(100, 10)], asks: [lv(101, 5)]))
        _ = book.apply(event(.execute, 9, 10, 100, .buy))
        // 99 comes into view: not compared, noted, learned.
        let revealed = row(bids: [lv(99, 4)], asks: [lv(101, 5)])
        let equal5 = check.compare(book, with: revealed, line: 2)
        #expect(equal5)
        #expect(check.rowsRevealingLevels == 1)
        book.learn(from: revealed)
        // Next row: 99 is inside the view and compared.
        let equal6 = check.compare(book, with: row(bids: [lv(99, 3)], asks: [lv(101, 5)]), line: 3)
        #expect(!equal6)
        #expect(check.firstDisagreement?.line == 3)
    }

    @Test func aMissingOrExtraLevelInsideTheViewDisagrees() {
        var book = L3Book(viewDepth: 3)
        book.learn(from: row(bids: [lv(100, 1), lv(99, 1), lv(98, 1)], asks: []))
        var check = BookVerification(depth: 3)
        let equal7 = check.compare(book, with: row(bids: [lv(100, 1), lv(98, 1)], asks: []), line: 1)
        #expect(!equal7)
        let equal8 = check.compare(
            book,
            with: row(bids: [lv(100, 1), lv(99, 1), lv(98, 1)], asks: [lv(5, 1)]),
            line: 2
        )
        #expect(!equal8)
        let equal9 = check.compare(book, with: row(bids: [lv(100, 1), lv(99, 1), lv(98, 1)], asks: []), line: 3)
        #expect(equal9)
        #expect(check.rowsEqual == 1)
    }
}

@Suite struct L3BookModelTests {
    /// Random adds, cancels, deletes and executions against a naive model (a dictionary and a regrouping),
    /// with ids spread so that the order table grows, probes and shifts entries back on removal.
    @Test(arguments: [UInt64(1), 1024, 0x9E37_79B9])
    func agreesWithANaiveModel(idStride: UInt64) {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D ^ idStride
        func random(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        var book = L3Book()
        var model: [UInt64: L3Order] = [:]
        for step in 0..<20_000 {
            let id = UInt64(random(3000)) &* idStride
            let side: Side = random(2) == 0 ? .buy : .sell
            let price = Int64(side == .buy ? 90 + random(10) : 100 + random(10))
            if let order = model[id] {
                let size = Int64(1 + random(Int(order.remaining)))
                switch random(3) {
                case 0:
                    let outcome = book.apply(event(.cancel, id, size, order.price, order.side))
                    #expect(outcome.anomaly == nil)
                    model[id]!.remaining -= size
                case 1:
                    let outcome = book.apply(event(.delete, id, order.remaining, order.price, order.side))
                    #expect(outcome.anomaly == nil)
                    model[id]!.remaining = 0
                default:
                    let outcome = book.apply(event(.execute, id, size, order.price, order.side))
                    #expect(outcome.trade?.qty == size)
                    model[id]!.remaining -= size
                }
                if model[id]!.remaining == 0 { model[id] = nil }
            } else {
                let size = Int64(1 + random(100))
                #expect(book.apply(event(.add, id, size, price, side)) == L3Outcome())
                model[id] = L3Order(side: side, price: price, remaining: size)
            }
            if step % 500 == 0 || step == 19_999 {
                var bids: [Int64: Int128] = [:]
                var asks: [Int64: Int128] = [:]
                for order in model.values {
                    if order.side == .buy {
                        bids[order.price, default: 0] += Int128(order.remaining)
                    } else {
                        asks[order.price, default: 0] += Int128(order.remaining)
                    }
                }
                let expected = L2Snapshot(
                    timeNs: 0,
                    bids: bids.sorted { $0.key > $1.key }.map { lv($0.key, $0.value) },
                    asks: asks.sorted { $0.key < $1.key }.map { lv($0.key, $0.value) }
                )
                #expect(book.snapshot(levels: 100, timeNs: 0) == expected)
                #expect(book.orderCount == model.count)
                for (id, order) in model.prefix(50) { #expect(book.order(id) == order) }
            }
        }
    }
}
