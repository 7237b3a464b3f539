import CastleCore
public import CastleSupport
public import Streams

/// A one-page picture of a replayed day as a self-contained SVG: the mid price as a line over the bid-ask
/// spread as a shaded band, traded volume as bars in a lower panel, a time axis in exchange time and a
/// price axis in the feed's price decimals. Opens in any browser; needs no other file or tool.
///
/// Samples are folded into time buckets as they come, so memory stays bounded whatever the day's length:
/// the bucket width starts at 1 ms and steps up a ladder of round widths (1, 2, 10, 20, 100, 200 ms, 1, 2,
/// 10, 20 s, 1, 2, 10, 20 min, 1, 2, 6 h, 1 day, then doubling), each a multiple of the one before, so a
/// coarser bucket is an exact union of finer ones and the result does not depend on when the coarsening
/// happened. At most `maxBuckets` buckets are kept (a 6.5-hour session ends at 1-minute buckets with the
/// default). Per bucket the chart keeps the first, lowest, highest and last mid price (so a spike inside
/// a bucket still shows), the last bid and ask, and the traded volume.
///
/// Pixel coordinates are the only floating-point values, written with at most one decimal by a small
/// formatter of castle's own, so the same samples give the same bytes.
public struct DayChart: Sendable {
    public var symbol: String
    /// Shown after the symbol in the title when given (any text, e.g. `2012-06-21`).
    public var date: String?
    public let priceDecimals: UInt8
    public let qtyDecimals: UInt8
    public let maxBuckets: Int
    /// A fixed time window for the axis (e.g. the session, 09:30 to 16:00); the data's span when nil.
    public var windowStartNs: Int64?
    public var windowEndNs: Int64?

    public private(set) var bucketNs: Int64 = 1_000_000
    private var buckets: [Bucket] = []
    private var sequence = 0

    public init(symbol: String, date: String? = nil, priceDecimals: UInt8, qtyDecimals: UInt8, maxBuckets: Int = 500) {
        precondition(maxBuckets >= 2, "at least two buckets")
        self.symbol = symbol
        self.date = date
        self.priceDecimals = priceDecimals
        self.qtyDecimals = qtyDecimals
        self.maxBuckets = maxBuckets
    }

    struct Bucket: Sendable {
        var key: Int64
        /// Any quote sample, one-sided included.
        var hasSample = false
        /// A two-sided quote sample.
        var hasQuote = false
        /// Whether the bucket's last quote sample was two-sided: if not, the line breaks after it.
        var endsTwoSided = false
        // Mids are kept doubled (bid + ask), exact in Int128.
        var first: Int128 = 0
        var low: Int128 = 0
        var high: Int128 = 0
        var last: Int128 = 0
        /// Sample sequence numbers of the low and the high, to draw them in the order they happened.
        var lowSeq = 0
        var highSeq = 0
        var lastBid: Int64 = 0
        var lastAsk: Int64 = 0
        var volume: Int128 = 0

        /// `self` followed by `later`, as one bucket.
        func merged(with later: Bucket, key: Int64) -> Bucket {
            var out = self
            out.key = key
            out.volume += later.volume
            if later.hasSample {
                out.hasSample = true
                out.endsTwoSided = later.endsTwoSided
            }
            guard later.hasQuote else { return out }
            guard hasQuote else {
                var copy = later
                copy.key = key
                copy.volume = out.volume
                return copy
            }
            out.last = later.last
            out.lastBid = later.lastBid
            out.lastAsk = later.lastAsk
            if later.low < low {
                out.low = later.low
                out.lowSeq = later.lowSeq
            }
            if later.high > high {
                out.high = later.high
                out.highSeq = later.highSeq
            }
            return out
        }
    }

    /// Records the best bid and ask after an event; nil for a side the book does not have.
    public mutating func quote(timeNs: Int64, bestBid: Int64?, bestAsk: Int64?) {
        let index = bucketIndex(timeNs)
        sequence += 1
        var bucket = buckets[index]
        bucket.hasSample = true
        if let bestBid, let bestAsk {
            let mid2 = Int128(bestBid) + Int128(bestAsk)
            if !bucket.hasQuote {
                bucket.hasQuote = true
                bucket.first = mid2
                bucket.low = mid2
                bucket.high = mid2
                bucket.lowSeq = sequence
                bucket.highSeq = sequence
            } else if mid2 < bucket.low {
                bucket.low = mid2
                bucket.lowSeq = sequence
            } else if mid2 > bucket.high {
                bucket.high = mid2
                bucket.highSeq = sequence
            }
            bucket.last = mid2
            bucket.lastBid = bestBid
            bucket.lastAsk = bestAsk
            bucket.endsTwoSided = true
        } else {
            bucket.endsTwoSided = false
        }
        buckets[index] = bucket
        coarsenIfNeeded()
    }

    /// Adds traded quantity to the volume panel.
    public mutating func trade(timeNs: Int64, qty: Int64) {
        let index = bucketIndex(timeNs)
        buckets[index].volume += Int128(qty)
        coarsenIfNeeded()
    }

    /// Number of buckets in use (at most `maxBuckets`).
    public var bucketCount: Int { buckets.count }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b < 0) ? q - 1 : q
    }

    /// The index of the bucket holding `timeNs`, created if needed. Times arrive in order almost always,
    /// so the last bucket is tried first; an earlier time is placed by binary search.
    private mutating func bucketIndex(_ timeNs: Int64) -> Int {
        let key = Self.floorDiv(timeNs, bucketNs)
        if let last = buckets.last {
            if last.key == key { return buckets.count - 1 }
            if last.key > key {
                var low = 0
                var high = buckets.count
                while low < high {
                    let middle = (low + high) / 2
                    if buckets[middle].key < key { low = middle + 1 } else { high = middle }
                }
                if low < buckets.count, buckets[low].key == key { return low }
                buckets.insert(Bucket(key: key), at: low)
                return low
            }
        }
        buckets.append(Bucket(key: key))
        return buckets.count - 1
    }

    /// The bucket width that follows `width` on the ladder; always a multiple of it.
    static func nextWidth(_ width: Int64) -> Int64 {
        let ms: Int64 = 1_000_000
        let s = 1000 * ms
        let ladder: [Int64] = [
            ms, 2 * ms, 10 * ms, 20 * ms, 100 * ms, 200 * ms, s, 2 * s, 10 * s, 20 * s, 60 * s, 120 * s, 600 * s,
            1200 * s, 3600 * s, 7200 * s, 21600 * s, 86400 * s,
        ]
        if let next = ladder.first(where: { $0 > width }) { return next }
        return width > Int64.max / 2 ? width : width * 2
    }

    private mutating func coarsenIfNeeded() {
        while buckets.count > maxBuckets {
            let wider = Self.nextWidth(bucketNs)
            if wider == bucketNs { return }
            let factor = wider / bucketNs
            bucketNs = wider
            var merged: [Bucket] = []
            merged.reserveCapacity(buckets.count / Int(factor) + 2)
            for bucket in buckets {
                let key = Self.floorDiv(bucket.key, factor)
                if let last = merged.last, last.key == key {
                    merged[merged.count - 1] = last.merged(with: bucket, key: key)
                } else {
                    var copy = bucket
                    copy.key = key
                    merged.append(copy)
                }
            }
            buckets = merged
        }
    }

    // MARK: Rendering

    private static let width = 1200.0
    private static let height = 720.0
    private static let plotLeft = 96.0
    private static let plotRight = 1170.0
    private static let priceTop = 78.0
    private static let priceBottom = 478.0
    private static let volumeTop = 508.0
    private static let volumeBottom = 648.0
    /// The middle of the price panel, for messages in place of a chart.
    private static let centerX = px((plotLeft + plotRight) / 2)
    private static let centerY = px((priceTop + priceBottom) / 2)

    /// Writes the SVG to `sink`.
    public func write(to sink: OutputSink) throws(CastleError) {
        try sink.write(render())
    }

    /// The SVG document.
    public func render() -> String {
        var svg = SVGText()
        let width = Self.width
        let height = Self.height
        svg.line("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        svg.line(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(px(width))\" height=\"\(px(height))\""
                + " viewBox=\"0 0 \(px(width)) \(px(height))\" font-family=\"sans-serif\" font-size=\"12\">"
        )
        svg.line("<rect x=\"0\" y=\"0\" width=\"\(px(width))\" height=\"\(px(height))\" fill=\"#ffffff\"/>")
        let title = date.map { "\(symbol) \($0)" } ?? symbol
        svg.line("<title>\(xmlEscape(title))</title>")
        svg.line(
            "<text x=\"\(px(Self.plotLeft))\" y=\"30\" font-size=\"18\" font-weight=\"bold\" fill=\"#222222\">"
                + "\(xmlEscape(title))</text>"
        )
        svg.line(
            "<text x=\"\(px(Self.plotLeft))\" y=\"52\" fill=\"#555555\">mid price over the bid-ask band;"
                + " traded volume per \(Self.durationText(bucketNs))</text>"
        )
        legend(&svg)
        svg.line(
            "<defs><clipPath id=\"price-area\"><rect x=\"\(px(Self.plotLeft))\" y=\"\(px(Self.priceTop))\""
                + " width=\"\(px(Self.plotRight - Self.plotLeft))\" height=\"\(px(Self.priceBottom - Self.priceTop))\"/>"
                + "</clipPath><clipPath id=\"volume-area\"><rect x=\"\(px(Self.plotLeft))\" y=\"\(px(Self.volumeTop))\""
                + " width=\"\(px(Self.plotRight - Self.plotLeft))\" height=\"\(px(Self.volumeBottom - Self.volumeTop))\"/>"
                + "</clipPath></defs>"
        )

        guard let first = buckets.first, let last = buckets.last else {
            frame(&svg)
            svg.line(
                "<text x=\"\(Self.centerX)\" y=\"\(Self.centerY)\" text-anchor=\"middle\" fill=\"#888888\">"
                    + "no data</text>"
            )
            svg.line("</svg>")
            return svg.text
        }
        let t0 = windowStartNs ?? first.key * bucketNs
        var t1 = windowEndNs ?? (last.key + 1) * bucketNs
        if t1 <= t0 { t1 = t0 + 1_000_000_000 }
        let scaleX = (Self.plotRight - Self.plotLeft) / Double(t1 - t0)
        func x(_ t: Int64) -> Double { Self.plotLeft + Double(t - t0) * scaleX }

        timeAxis(&svg, t0: t0, t1: t1, x: x)
        priceArea(&svg, x: x)
        volumeArea(&svg, x: x)
        frame(&svg)
        svg.line("</svg>")
        return svg.text
    }

    private func legend(_ svg: inout SVGText) {
        let y = 48.0
        var x = Self.plotRight - 250
        svg.line(
            "<line x1=\"\(px(x))\" y1=\"\(px(y))\" x2=\"\(px(x + 20))\" y2=\"\(px(y))\" stroke=\"#08519c\""
                + " stroke-width=\"2\"/>"
        )
        svg.line("<text x=\"\(px(x + 25))\" y=\"\(px(y + 4))\" fill=\"#333333\">mid</text>")
        x += 60
        svg.line(
            "<rect x=\"\(px(x))\" y=\"\(px(y - 6))\" width=\"20\" height=\"12\" fill=\"#6baed6\""
                + " fill-opacity=\"0.6\"/>"
        )
        svg.line("<text x=\"\(px(x + 25))\" y=\"\(px(y + 4))\" fill=\"#333333\">bid-ask</text>")
        x += 85
        svg.line("<rect x=\"\(px(x))\" y=\"\(px(y - 6))\" width=\"20\" height=\"12\" fill=\"#8c8c8c\"/>")
        svg.line("<text x=\"\(px(x + 25))\" y=\"\(px(y + 4))\" fill=\"#333333\">volume</text>")
    }

    private func frame(_ svg: inout SVGText) {
        // Axis titles run up the left edge, clear of the tick labels.
        let panels = [("price", Self.priceTop, Self.priceBottom), ("volume", Self.volumeTop, Self.volumeBottom)]
        for (title, top, bottom) in panels {
            let middle = px((top + bottom) / 2)
            svg.line(
                "<text x=\"16\" y=\"\(middle)\" transform=\"rotate(-90 16 \(middle))\" text-anchor=\"middle\""
                    + " fill=\"#555555\">\(title)</text>"
            )
        }
        for (top, bottom) in [(Self.priceTop, Self.priceBottom), (Self.volumeTop, Self.volumeBottom)] {
            svg.line(
                "<rect x=\"\(px(Self.plotLeft))\" y=\"\(px(top))\" width=\"\(px(Self.plotRight - Self.plotLeft))\""
                    + " height=\"\(px(bottom - top))\" fill=\"none\" stroke=\"#444444\" stroke-width=\"1\"/>"
            )
        }
    }

    /// Round steps for the time axis, the first giving at most 14 ticks wins.
    private static let timeSteps: [Int64] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
        21600, 43200, 86400,
    ].map { $0 * 1_000_000_000 }

    private func timeAxis(_ svg: inout SVGText, t0: Int64, t1: Int64, x: (Int64) -> Double) {
        let span = t1 - t0
        var step = Self.timeSteps.first(where: { span / $0 <= 14 }) ?? Self.timeSteps[Self.timeSteps.count - 1]
        while span / step > 14 { step *= 2 }
        // Multiples of the step are round times of day for both clocks, since every step divides a day.
        var tick = Self.floorDiv(t0, step) * step
        if tick < t0 { tick += step }
        var ticks: [Int64] = []
        while tick <= t1 {
            ticks.append(tick)
            tick += step
        }
        let withSeconds = step < 60_000_000_000
        for tick in ticks {
            let tx = px(x(tick))
            svg.line(
                "<line x1=\"\(tx)\" y1=\"\(px(Self.priceTop))\" x2=\"\(tx)\" y2=\"\(px(Self.priceBottom))\""
                    + " stroke=\"#e3e3e3\" stroke-width=\"1\"/>"
            )
            svg.line(
                "<line x1=\"\(tx)\" y1=\"\(px(Self.volumeTop))\" x2=\"\(tx)\" y2=\"\(px(Self.volumeBottom + 5))\""
                    + " stroke=\"#e3e3e3\" stroke-width=\"1\"/>"
            )
            svg.line(
                "<text x=\"\(tx)\" y=\"\(px(Self.volumeBottom + 20))\" text-anchor=\"middle\" fill=\"#333333\">"
                    + "\(ExchangeClock.format(tick, seconds: withSeconds))</text>"
            )
        }
        let epoch = t0 < 0 || t0 >= 2 * ExchangeClock.dayNs
        svg.line(
            "<text x=\"\(px((Self.plotLeft + Self.plotRight) / 2))\" y=\"\(px(Self.volumeBottom + 44))\""
                + " text-anchor=\"middle\" fill=\"#555555\">"
                + (epoch ? "time of day (UTC)" : "exchange time (since midnight)") + "</text>"
        )
    }

    private func priceArea(_ svg: inout SVGText, x: (Int64) -> Double) {
        let quoted = buckets.filter(\.hasQuote)
        guard !quoted.isEmpty else {
            svg.line(
                "<text x=\"\(Self.centerX)\" y=\"\(Self.centerY)\" text-anchor=\"middle\" fill=\"#888888\">"
                    + "no two-sided quotes</text>"
            )
            return
        }
        // The range in doubled price units, over mids and the band.
        var low2 = Int128.max
        var high2 = Int128.min
        for bucket in quoted {
            low2 = min(low2, bucket.low, 2 * Int128(bucket.lastBid))
            high2 = max(high2, bucket.high, 2 * Int128(bucket.lastAsk))
        }
        let low = Int64(clamping: low2 >= 0 ? low2 / 2 : (low2 - 1) / 2)
        let high = Int64(clamping: (high2 + 1) / 2)
        let (axisLow, axisHigh, step) = Self.priceTicks(low: low, high: high)
        let span = Double(axisHigh - axisLow)
        let scaleY = (Self.priceBottom - Self.priceTop) / span
        func y2(_ doubled: Int128) -> Double {
            Self.priceBottom - (Double(doubled) / 2 - Double(axisLow)) * scaleY
        }
        func y(_ price: Int64) -> Double { Self.priceBottom - Double(price - axisLow) * scaleY }

        let shown = Self.labelDecimals(step: step, priceDecimals: priceDecimals)
        var tick = axisLow
        while tick <= axisHigh {
            let ty = px(y(tick))
            svg.line(
                "<line x1=\"\(px(Self.plotLeft - 5))\" y1=\"\(ty)\" x2=\"\(px(Self.plotRight))\" y2=\"\(ty)\""
                    + " stroke=\"#e3e3e3\" stroke-width=\"1\"/>"
            )
            svg.line(
                "<text x=\"\(px(Self.plotLeft - 8))\" y=\"\(px(y(tick) + 4))\" text-anchor=\"end\" fill=\"#333333\">"
                    + "\(Self.fixedDecimal(tick, decimals: priceDecimals, shown: shown))</text>"
            )
            let (next, overflow) = tick.addingReportingOverflow(step)
            if overflow { break }
            tick = next
        }

        // Segments of consecutive two-sided quoting; a bucket that ends one-sided (or has only one-sided
        // quotes) ends its segment. Within a segment the book holds its last quote until the next bucket,
        // so each bucket's values extend to the next bucket's left edge: flat steps, no invented slopes.
        var segments: [[Bucket]] = []
        var current: [Bucket] = []
        for bucket in buckets where bucket.hasSample {
            if bucket.hasQuote { current.append(bucket) }
            if !bucket.endsTwoSided, !current.isEmpty {
                segments.append(current)
                current = []
            }
        }
        if !current.isEmpty { segments.append(current) }

        var band = ""
        var line = ""
        for segment in segments {
            var upper: [(Double, Double)] = []
            var lower: [(Double, Double)] = []
            var points: [(Double, Double)] = []
            for (n, bucket) in segment.enumerated() {
                let left = x(bucket.key * bucketNs)
                let right = n + 1 < segment.count ? x(segment[n + 1].key * bucketNs) : x((bucket.key + 1) * bucketNs)
                upper.append((left, y(bucket.lastAsk)))
                upper.append((right, y(bucket.lastAsk)))
                lower.append((left, y(bucket.lastBid)))
                lower.append((right, y(bucket.lastBid)))
                let middle = (left + right) / 2
                points.append((left, y2(bucket.first)))
                let extremes = bucket.lowSeq <= bucket.highSeq ? [bucket.low, bucket.high] : [bucket.high, bucket.low]
                for value in extremes where value != bucket.first && value != bucket.last {
                    points.append((middle, y2(value)))
                }
                points.append((right, y2(bucket.last)))
            }
            band += "M" + (upper + lower.reversed()).map { "\(px($0.0)),\(px($0.1))" }.joined(separator: " L") + " Z "
            line += "M" + points.map { "\(px($0.0)),\(px($0.1))" }.joined(separator: " L") + " "
        }
        svg.line("<g clip-path=\"url(#price-area)\">")
        svg.line(
            "<path d=\"\(band.dropLast())\" fill=\"#6baed6\" fill-opacity=\"0.6\"/>"
        )
        svg.line(
            "<path d=\"\(line.dropLast())\" fill=\"none\" stroke=\"#08519c\" stroke-width=\"1.2\""
                + " stroke-linejoin=\"round\"/>"
        )
        svg.line("</g>")
    }

    private func volumeArea(_ svg: inout SVGText, x: (Int64) -> Double) {
        let maxVolume = buckets.map(\.volume).max() ?? 0
        svg.line(
            "<text x=\"\(px(Self.plotLeft - 8))\" y=\"\(px(Self.volumeBottom + 4))\" text-anchor=\"end\""
                + " fill=\"#333333\">0</text>"
        )
        svg.line(
            "<text x=\"\(px(Self.plotLeft - 8))\" y=\"\(px(Self.volumeTop + 10))\" text-anchor=\"end\""
                + " fill=\"#333333\">\(formatDecimal128(maxVolume, decimals: qtyDecimals))</text>"
        )
        guard maxVolume > 0 else { return }
        svg.line("<g clip-path=\"url(#volume-area)\" fill=\"#8c8c8c\">")
        let panel = Self.volumeBottom - Self.volumeTop - 4
        for bucket in buckets where bucket.volume > 0 {
            let left = x(bucket.key * bucketNs)
            let right = x((bucket.key + 1) * bucketNs)
            let width = right - left
            // A small gap between wide bars keeps them apart; narrow ones touch rather than vanish.
            let gap = width >= 3 ? width * 0.15 : 0
            let barWidth = max(width - gap, 0.5)
            let h = max(Double(bucket.volume) / Double(maxVolume) * panel, 0.5)
            svg.line(
                "<rect x=\"\(px(left + gap / 2))\" y=\"\(px(Self.volumeBottom - h))\" width=\"\(px(barWidth))\""
                    + " height=\"\(px(h))\"/>"
            )
        }
        svg.line("</g>")
    }

    /// Axis bounds as multiples of a round step (1, 2 or 5 × 10^k price units) giving 4 to 10 ticks.
    static func priceTicks(low: Int64, high: Int64) -> (low: Int64, high: Int64, step: Int64) {
        let range = max(high - low, 1)
        var magnitude: Int64 = 1
        while true {
            for factor: Int64 in [1, 2, 5] {
                let step = factor * magnitude
                if range / step <= 8 {
                    var axisLow = floorDiv(low, step) * step
                    var axisHigh = -floorDiv(-high, step) * step
                    if axisHigh - axisLow < 2 * step {
                        // A flat day: give the line some room above and below.
                        axisLow -= step
                        axisHigh += step
                    }
                    return (axisLow, axisHigh, step)
                }
            }
            if magnitude > Int64.max / 100 { return (low, high, range) }
            magnitude *= 10
        }
    }

    /// Decimals worth showing on a price axis whose step is `step` units: the step's significant ones.
    static func labelDecimals(step: Int64, priceDecimals: UInt8) -> Int {
        var shown = Int(priceDecimals)
        var rest = step
        while shown > 0, rest % 10 == 0 {
            rest /= 10
            shown -= 1
        }
        return shown
    }

    /// `value × 10^-decimals` with exactly `shown` fraction digits (the rest are zero by construction).
    static func fixedDecimal(_ value: Int64, decimals: UInt8, shown: Int) -> String {
        let negative = value < 0
        let magnitude = value.magnitude
        let unit = UInt64(powersOfTen[Int(decimals)])
        let integer = magnitude / unit
        var text = (negative ? "-" : "") + String(integer)
        if shown > 0 {
            let fraction = (magnitude % unit) / UInt64(powersOfTen[Int(decimals) - shown])
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: shown - digits.count) + digits
        }
        return text
    }

    static func durationText(_ ns: Int64) -> String {
        let s: Int64 = 1_000_000_000
        if ns % (3600 * s) == 0 { return "\(ns / (3600 * s)) h" }
        if ns % (60 * s) == 0 { return "\(ns / (60 * s)) min" }
        if ns % s == 0 { return "\(ns / s) s" }
        return "\(formatDecimal(ns, decimals: 6)) ms"
    }
}

/// Accumulates the document line by line.
private struct SVGText {
    var text = ""
    mutating func line(_ content: String) {
        text += content
        text += "\n"
    }
}

/// A pixel coordinate with at most one decimal (`12`, `12.5`, `-0.3`), rounded half away from zero:
/// deterministic text with no locale and no Foundation.
private func px(_ value: Double) -> String {
    guard value.isFinite else { return "0" }
    let tenths = Int64((min(max(value, -1e12), 1e12) * 10).rounded())
    let magnitude = tenths.magnitude
    let sign = tenths < 0 ? "-" : ""
    let fraction = magnitude % 10
    return sign + String(magnitude / 10) + (fraction == 0 ? "" : "." + String(fraction))
}

/// Text escaped for SVG content and attribute values.
private func xmlEscape(_ text: String) -> String {
    var out = ""
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(character)
        }
    }
    return out
}
