import CastleSupport
import CoreMetrics
import HTTPTypes
import Hummingbird
import Synchronization

/// `--rate-limit N`: each account may make N trading requests a second, in bursts of up to N. The
/// generic cell rate algorithm (a token bucket kept as one number per account): each request moves the
/// account's "theoretical arrival time" one interval (1/N s) on; a request that would move it more than
/// a second ahead of now is refused, and told when the next one fits.
final class RateLimiter: Sendable {
    let perSecond: Int
    private let interval: Int64
    private let tolerance: Int64
    private let arrivals = Mutex<[String: Int64]>([:])
    /// Accounts remembered at most; past it, those whose bucket is full again are forgotten.
    static let accountsKept = 100_000

    init(perSecond: Int) {
        precondition(perSecond > 0)
        self.perSecond = perSecond
        interval = 1_000_000_000 / Int64(perSecond)
        tolerance = interval * Int64(perSecond - 1)
    }

    /// Nil when `account` may go on (the request is counted), else how long until it may. `now`: the
    /// monotonic clock in nanoseconds.
    func admit(_ account: String, now: Int64 = Int64(monotonicNanoseconds())) -> Duration? {
        arrivals.withLock { arrivals in
            let arrival = max(arrivals[account] ?? now, now)
            if arrival - now > tolerance { return .nanoseconds(arrival - now - tolerance) }
            arrivals[account] = arrival + interval
            if arrivals.count > Self.accountsKept { arrivals = arrivals.filter { $0.value > now } }
            return nil
        }
    }
}

/// Refuses a trading request over its account's rate (``RateLimiter/admitOrRefuse(_:metrics:)``).
struct RateLimitMiddleware: RouterMiddleware {
    let limiter: RateLimiter
    let metrics: ServerMetrics

    @concurrent func handle(
        _ request: Request,
        context: ServerContext,
        next: @concurrent (Request, ServerContext) async throws -> Response
    ) async throws -> Response {
        if let account = context.account { try limiter.admitOrRefuse(account, metrics: metrics) }
        return try await next(request, context)
    }
}

extension RateLimiter {
    /// Counts a request of `account`, or refuses it over the rate: 429 `rate_limited`, with `Retry-After`
    /// in whole seconds (at least 1, as the header has no fractions).
    func admitOrRefuse(_ account: String, metrics: ServerMetrics) throws(APIError) {
        guard let wait = admit(account) else { return }
        metrics.rateLimited.increment()
        let seconds = max(1, wait.components.seconds + (wait.components.attoseconds > 0 ? 1 : 0))
        throw APIError(
            status: .tooManyRequests,
            code: "rate_limited",
            message: "account \(account) is over \(perSecond) requests a second",
            headers: [.retryAfter: "\(seconds)"]
        )
    }
}
