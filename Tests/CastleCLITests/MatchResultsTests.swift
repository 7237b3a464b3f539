import Testing

@testable import Server

/// The waits for the matcher's verdicts: each ticket gets its line's events, or ``MatchResults/VerdictTimedOut``
/// from the one sweeper once its deadline passes, whatever the other waits do.
@Suite struct MatchResultsTests {
    @Test func aVerdictReachesEveryTicketOfItsLine() async throws {
        let results = MatchResults<[String]>(sweepEvery: .milliseconds(10))
        let first = results.expect(7)
        let retry = results.expect(7)
        // A verdict before the wait is kept for it.
        results.fulfil(7, events: ["a", "b"])
        #expect(try await verdict(results, first, timeout: .seconds(60)) == ["a", "b"])
        #expect(try await verdict(results, retry, timeout: .seconds(60)) == ["a", "b"])
        // A verdict for a line nobody expects is dropped; a ticket waits for its own line.
        results.fulfil(8, events: ["c"])
        let later = results.expect(9)
        async let events = verdict(results, later, timeout: .seconds(60))
        results.fulfil(9, events: ["d"])
        #expect(try await events == ["d"])
    }

    @Test func anOverdueWaitEndsWhileAnotherGoesOn() async throws {
        let results = MatchResults<[String]>(sweepEvery: .milliseconds(10))
        let short = results.expect(1)
        let long = results.expect(2)
        async let patient = verdict(results, long, timeout: .seconds(60))
        await #expect(throws: MatchResults<[String]>.VerdictTimedOut.self) {
            try await verdict(results, short, timeout: .milliseconds(50))
        }
        // The sweeper ended the short wait only: the long one still gets its verdict.
        results.fulfil(1, events: ["late"])
        results.fulfil(2, events: ["x"])
        #expect(try await patient == ["x"])
        // After the sweeper stopped (no wait left), a new wait starts it again.
        let again = results.expect(3)
        await #expect(throws: MatchResults<[String]>.VerdictTimedOut.self) {
            try await verdict(results, again, timeout: .milliseconds(20))
        }
    }

    @Test func aForgottenTicketEndsItsWait() async throws {
        let results = MatchResults<[String]>(sweepEvery: .milliseconds(10))
        let ticket = results.expect(5)
        // Forgotten while it waits, and forgotten before it waits: both end with CancellationError.
        let (ended, end) = AsyncStream.makeStream(of: (any Error)?.self)
        results.wait(ticket, timeout: .seconds(60)) { result in
            if case .failure(let error) = result { end.yield(error) } else { end.yield(nil) }
        }
        results.forget(ticket)
        var iterator = ended.makeAsyncIterator()
        #expect(await iterator.next()! is CancellationError)
        results.fulfil(5, events: ["e"])
        let unwaited = results.expect(6)
        results.forget(unwaited)
        await #expect(throws: CancellationError.self) { try await verdict(results, unwaited, timeout: .seconds(60)) }
        // The matcher stopping ends every wait with its error.
        let next = results.expect(5)
        results.failAll(CancellationError())
        await #expect(throws: CancellationError.self) { try await verdict(results, next, timeout: .seconds(60)) }
    }

    /// The ticket's events, or why its wait ended.
    private func verdict(
        _ results: MatchResults<[String]>,
        _ ticket: MatchResults<[String]>.Ticket,
        timeout: Duration
    ) async throws
        -> [String]
    {
        try await withCheckedThrowingContinuation { continuation in
            results.wait(ticket, timeout: timeout) { continuation.resume(with: $0) }
        }
    }
}
