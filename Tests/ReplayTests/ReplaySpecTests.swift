import CastleCore
import Replay
import Testing

@Suite struct ReplaySpecTests {
    @Test(arguments: [
        ("09:30", Int64(34_200_000_000_000)),
        ("16:00:00", 57_600_000_000_000),
        ("09:30:00.5", 34_200_500_000_000),
        ("00:00:00.000000001", 1),
    ])
    func timesOfDay(text: String, ns: Int64) {
        #expect(ReplaySpec.time(text) == .timeOfDayNs(ns))
    }

    @Test func epochNanoseconds() {
        #expect(ReplaySpec.time("1767364200000000000") == .epochNs(1_767_364_200_000_000_000))
    }

    @Test(arguments: [
        "", "9:3", "25:00", "09:60", "09:30:61", "09:30:00.", "09:30:00.1234567890", "x", "-5", "09:30:00.5x",
    ])
    func badTimes(text: String) {
        #expect(ReplaySpec.time(text) == nil)
    }

    @Test func timeBoundsCompareTimeOfDayWithEpochTimes() {
        let bound = ReplaySpec.TimeBound.timeOfDayNs(14 * 3_600_000_000_000 + 30 * 60_000_000_000)
        // 2026-01-02T14:30:00Z and one nanosecond before it.
        #expect(bound.isReached(by: 1_767_364_200_000_000_000, isEpoch: true))
        #expect(!bound.isReached(by: 1_767_364_199_999_999_999, isEpoch: true))
        #expect(bound.isReached(by: 52_200_000_000_000, isEpoch: false))
    }

    @Test func snapshotSpecs() {
        #expect(ReplaySpec.snapshots("10@1s") == ReplaySpec.Snapshots(levels: 10, intervalNs: 1_000_000_000))
        #expect(ReplaySpec.snapshots("5@event") == ReplaySpec.Snapshots(levels: 5, intervalNs: nil))
        #expect(ReplaySpec.snapshots("5@250ms") == ReplaySpec.Snapshots(levels: 5, intervalNs: 250_000_000))
        for bad in ["10", "0@1s", "10@", "10@0s", "x@1s", "10@1x", "10@1s@2s", "1001@1s"] {
            #expect(ReplaySpec.snapshots(bad) == nil, "\(bad)")
        }
    }

    @Test func durationsOverflowAreRejected() {
        #expect(ReplaySpec.duration("1h") == 3_600_000_000_000)
        #expect(ReplaySpec.duration("100us") == 100_000)
        #expect(ReplaySpec.duration("99999999999999h") == nil)
        #expect(ReplaySpec.duration("-1s") == nil)
    }

    @Test func speeds() {
        #expect(ReplaySpec.speed("max") == .max)
        #expect(ReplaySpec.speed("10") == .times(thousandths: 10_000))
        #expect(ReplaySpec.speed("0.5") == .times(thousandths: 500))
        for bad in ["0", "-1", "fast", "1e3", "0.0001"] { #expect(ReplaySpec.speed(bad) == nil, "\(bad)") }
    }

    @Test func inputFormatFromTheFileName() {
        var options = ReplayJob.Options()
        options.inputPath = "/data/GOOG_2012-06-21_34200000_57600000_message_1.csv"
        #expect(options.resolvedFormat == .lobster)
        options.inputPath = "day.ndjson.gz"
        #expect(options.resolvedFormat == .ndjson)
        options.inputPath = "x.csv.zst"
        #expect(options.resolvedFormat == .lobster)
        options.inputFormat = .ndjson
        #expect(options.resolvedFormat == .ndjson)
    }

    @Test func theDataStreamIsChosenInOrder() {
        var options = ReplayJob.Options()
        #expect(options.stream == .trades)
        options.injectPath = "mine.ndjson"
        #expect(options.stream == .fills)
        options.stats = true
        #expect(options.stream == .stats)
        options.barsIntervalNs = 60_000_000_000
        #expect(options.stream == .bars)
        options.snapshots = ReplaySpec.Snapshots(levels: 1, intervalNs: nil)
        #expect(options.stream == .snapshots)
    }
}

/// The pacer against a fake clock: no test waits.
@Suite struct PacerTests {
    final class FakeClock: @unchecked Sendable {
        var now: UInt64 = 1_000
        var slept: [UInt64] = []
    }

    @Test func releasesEventsAtRecordedTimeDividedBySpeed() {
        let clock = FakeClock()
        var pacer = Pacer(
            thousandths: 2_000,
            now: { clock.now },
            sleep: { ns in
                clock.slept.append(ns)
                clock.now += ns
            }
        )
        pacer.wait(for: 5_000_000_000)  // the first event sets the origin
        pacer.wait(for: 7_000_000_000)  // 2 s later in recorded time: 1 s at speed 2
        #expect(clock.slept == [1_000_000_000])
        clock.now += 3_000_000_000  // the consumer was slow: 4 s of wall time since the origin
        pacer.wait(for: 9_000_000_000)  // due at 2 s: already late, no sleep
        #expect(clock.slept == [1_000_000_000])
        pacer.wait(for: 8_000_000_000)  // out of order: released at once
        #expect(clock.slept.count == 1)
        pacer.wait(for: 15_000_000_000)  // due at 5 s after the origin; it is now 4 s
        #expect(clock.slept == [1_000_000_000, 1_000_000_000])
    }

    @Test func slowerThanRealTime() {
        let clock = FakeClock()
        var pacer = Pacer(
            thousandths: 500,
            now: { clock.now },
            sleep: {
                clock.slept.append($0)
                clock.now += $0
            }
        )
        pacer.wait(for: 0)
        pacer.wait(for: 1_000_000)
        #expect(clock.slept == [2_000_000])
    }
}
