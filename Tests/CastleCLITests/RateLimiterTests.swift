import Testing

@testable import Server

/// The rate limit's arithmetic on a clock the test drives.
struct RateLimiterTests {
    @Test func aBurstOfNThenOneEveryIntervalPerAccount() {
        let limiter = RateLimiter(perSecond: 4)
        let second: Int64 = 1_000_000_000
        let start: Int64 = 10 * second
        for _ in 1...4 { #expect(limiter.admit("a", now: start) == nil, "a burst of 4 passes") }
        #expect(limiter.admit("a", now: start) == .milliseconds(250), "the 5th waits one interval")
        #expect(limiter.admit("b", now: start) == nil, "accounts are apart")
        #expect(limiter.admit("a", now: start + second / 8) == .milliseconds(125))
        #expect(limiter.admit("a", now: start + second / 4) == nil, "one interval later, one more")
        #expect(limiter.admit("a", now: start + second / 4) != nil)
        // Idle for long: a full burst again, never more.
        for _ in 1...4 { #expect(limiter.admit("a", now: start + 60 * second) == nil) }
        #expect(limiter.admit("a", now: start + 60 * second) != nil)
    }

    @Test func oneASecond() {
        let limiter = RateLimiter(perSecond: 1)
        #expect(limiter.admit("a", now: 0) == nil)
        #expect(limiter.admit("a", now: 1) == .nanoseconds(999_999_999))
        #expect(limiter.admit("a", now: 1_000_000_000) == nil)
    }
}
