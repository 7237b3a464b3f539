import CastleCore

/// Checks a reconstructed book against a recorded level-2 view (LOBSTER's orderbook file), row by row.
///
/// For each row: apply the row's message to the book, call ``compare(_:with:line:)``, then
/// ``L3Book/learn(from:)``. A row is *equal* when, on both sides, the book's best ``depth`` levels and the
/// row's levels agree in price and quantity over the part of the side the previous row showed
/// (``L3Book/view(_:)``): every level from the best down to the previous row's worst level when that row
/// was full, the whole side otherwise. Levels beyond that came into view with this row; the messages
/// cannot know them (the file omits messages beyond its depth), so they are left out of the comparison,
/// counted in ``rowsRevealingLevels``, and learned from the row afterwards. Everything the messages
/// determine is compared; nothing compared was copied from the row being compared.
///
/// LOBSTER's dummy levels (price 9999999999 on the ask side or -9999999999 on the bid side, size 0) are
/// treated as absent.
public struct BookVerification: Sendable {
    public struct Disagreement: Sendable, Hashable {
        /// 1-based line of the orderbook file.
        public var line: Int
        /// The row, dummy levels dropped.
        public var expected: L2Snapshot
        /// The book's best ``BookVerification/depth`` levels.
        public var actual: L2Snapshot
    }

    /// The file's level count.
    public let depth: Int
    public private(set) var rowsCompared = 0
    public private(set) var rowsEqual = 0
    /// Rows in which at least one level came into view from beyond the file's depth.
    public private(set) var rowsRevealingLevels = 0
    public private(set) var firstDisagreement: Disagreement?

    public static let dummyAskPrice: Int64 = 9_999_999_999
    public static let dummyBidPrice: Int64 = -9_999_999_999

    public init(depth: Int) {
        self.depth = max(1, depth)
    }

    /// Every row compared so far was equal.
    public var allEqual: Bool { rowsEqual == rowsCompared }

    /// Compares the book (after the row's message, before learning from the row) with `row`; returns
    /// whether they agree. `line` is the row's line, kept for the first disagreement. No allocation unless
    /// this is the first disagreement.
    @discardableResult
    public mutating func compare(_ book: L3Book, with row: L2Snapshot, line: Int) -> Bool {
        rowsCompared += 1
        var revealing = false
        // Both sides always, so that levels coming into view are noticed on both.
        let bidsEqual = sideAgrees(book, .buy, row.bids, Self.dummyBidPrice, &revealing)
        let asksEqual = sideAgrees(book, .sell, row.asks, Self.dummyAskPrice, &revealing)
        let equal = bidsEqual && asksEqual
        if revealing { rowsRevealingLevels += 1 }
        if equal {
            rowsEqual += 1
        } else if firstDisagreement == nil {
            var expected = row
            expected.bids.removeAll { $0.price == Self.dummyBidPrice && $0.qty == 0 }
            expected.asks.removeAll { $0.price == Self.dummyAskPrice && $0.qty == 0 }
            firstDisagreement = Disagreement(
                line: line,
                expected: expected,
                actual: book.snapshot(levels: depth, timeNs: row.timeNs)
            )
        }
        return equal
    }

    /// Walks the book's top `depth` levels and the row's levels together, each restricted to the view.
    private func sideAgrees(
        _ book: L3Book,
        _ side: Side,
        _ rowLevels: [L2Level],
        _ dummy: Int64,
        _ revealing: inout Bool
    ) -> Bool {
        let view = book.view(side)
        let ladder = book.ladder(side)
        let bookCount = min(depth, ladder.count)
        let rowCount = min(depth, rowLevels.count)
        var b = 0
        var r = 0
        var equal = true
        while true {
            while b < bookCount, !view.contains(ladder[ladder.count - 1 - b].price, side: side) { b += 1 }
            while r < rowCount {
                let level = rowLevels[r]
                if level.price == dummy && level.qty == 0 {
                    r += 1
                } else if !view.contains(level.price, side: side) {
                    revealing = true
                    r += 1
                } else {
                    break
                }
            }
            let bookDone = b >= bookCount
            let rowDone = r >= rowCount
            if bookDone || rowDone {
                if bookDone != rowDone { equal = false }
                // Keep scanning the row only to notice levels coming into view.
                while r < rowCount {
                    let level = rowLevels[r]
                    if !(level.price == dummy && level.qty == 0) && !view.contains(level.price, side: side) {
                        revealing = true
                    }
                    r += 1
                }
                return equal
            }
            let level = ladder[ladder.count - 1 - b]
            if level.price != rowLevels[r].price || level.total != rowLevels[r].qty { equal = false }
            b += 1
            r += 1
        }
    }
}
