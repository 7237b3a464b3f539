import Foundation
import Testing

/// The harness that runs castle: a child that exits before reading all its input is a result to check,
/// not a crash of the test process.
@Suite struct CastleProcessTests {
    @Test func aChildThatReadsNoInputStillGivesItsResult() async throws {
        // Far more than a pipe holds: the write meets the closed pipe however fast the child exits.
        let input = Data(repeating: UInt8(ascii: "x"), count: 4 << 20)
        let done = try await CastleProcess.shell(["/bin/sh", "-c", "echo early; exit 3"], stdin: input)
        #expect(done.status == 3)
        #expect(done.stdoutText == "early\n")
    }
}
