import CastleSupport
import CastleTesting
import Codecs
import Pipeline
import Storage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Mutation fuzzing of the parsers that read what users hand castle: store URLs, NDJSON commands,
/// LOBSTER message files and CSV order files. Each case takes a valid input, breaks it with a few random
/// edits (bytes flipped, inserted, deleted, repeated; the input cut short; tokens that parsers trip on
/// spliced in) and runs the parser. The property is the same everywhere: it answers (a value, a
/// rejection, or a ``CastleError`` naming where) and never crashes; a crash ends the test process and so
/// fails the run. The seed is fixed, so a failure reproduces; `CASTLE_FUZZ_ROUNDS=N` runs N times as many
/// cases (`bin/fuzz`, by hand, for a long session).
@Suite struct FuzzTests {
    static var rounds: Int {
        guard let text = getenv("CASTLE_FUZZ_ROUNDS"), let value = Int(String(cString: text)), value > 0 else {
            return 1
        }
        return value
    }

    @Test func storeURLs() throws {
        let seeds = [
            "sqlite://castle.db", "sqlite:///var/lib/castle/castle.db?mode=rwc", "memory://tests",
            "postgres://castle:s3cret@db.example:5432/castle?sslmode=disable&application_name=castle",
            "postgresql://castle@[::1]:5432/castle", "postgres://u%40x:p%3Ass@host/db",
        ]
        var mutator = Mutator(seed: 1)
        for _ in 0..<(50_000 * Self.rounds) {
            let text = String(decoding: mutator.mutate(Array(seeds[mutator.below(seeds.count)].utf8)), as: UTF8.self)
            do throws(CastleError) {
                let url = try StorageURL(parsing: text)
                if let password = url.password, password.count > 3 {
                    #expect(!url.description.contains(":\(password)@"), "\(text): the password is shown")
                    #expect(!StorageURL.redact(text).contains(":\(password)@"), "\(text): redact shows the password")
                }
            } catch {
                #expect(error.kind == .usage, "\(text): \(error)")
            }
            _ = StorageURL.redact(text)
        }
    }

    static let commands = [
        #"{"op":"new","id":1,"symbol":"BTC-USD","side":"buy","type":"limit","price":"100.25","qty":"0.5","tif":"gtc","account":"a1","stp":"cancel_both","ts":1700000000000000000}"#,
        #"{"op":"new","id":2,"symbol":"ETH-USD","side":"sell","type":"market","qty":"3","tif":"ioc"}"#,
        #"{"op":"new","id":3,"symbol":"X","side":"buy","price":"1e3","qty":"1","post_only":true,"tif":"fok"}"#,
        #"{"op":"cancel","id":1,"ts":1700000000000000001}"#,
        #"{"op":"amend","id":2,"qty":"1.5","price":"99.5"}"#,
        #"{"op":"new","id":18446744073709551615,"symbol":"\u00e9\"\\","side":"sell","price":"0.00000001","qty":"99999999999999"}"#,
    ]

    @Test func ndjsonCommands() {
        var mutator = Mutator(seed: 2)
        for _ in 0..<(50_000 * Self.rounds) {
            var decoder = CommandDecoder()
            let bytes = mutator.mutate(Array(Self.commands[mutator.below(Self.commands.count)].utf8))
            let first = bytes.withUnsafeBufferPointer { decoder.decode($0, lineNumber: 7) }
            var again = CommandDecoder()
            let second = bytes.withUnsafeBufferPointer { again.decode($0, lineNumber: 7) }
            #expect(first == second, "decoding is deterministic: \(String(decoding: bytes, as: UTF8.self))")
        }
    }

    static let lobsterRows = [
        "34200.004241176,1,16113575,18,5853300,1", "34200.025552919,1,16120456,18,5859100,-1",
        "34200.201743000,3,16085616,100,5859700,-1", "34200.201743000,4,16120456,18,5859100,-1",
        "34200.212107000,2,16132208,1,5852800,1", "34201.0,5,0,100,5856500,-1", "34713.685155243,7,-1,0,-1,-1",
    ]

    /// Whole files, read through the same path as `castle replay` and `castle ingest`: every record or a
    /// `file:line…` error.
    @Test func lobsterMessageFiles() throws {
        let directory = try TestDirectory()
        var mutator = Mutator(seed: 3)
        for index in 0..<(2_000 * Self.rounds) {
            let file = Self.lobsterRows.shuffled(using: &mutator).joined(separator: "\n") + "\n"
            let path = try directory.write("m\(index % 8)_message_1.csv", mutator.mutate(Array(file.utf8), edits: 4))
            do throws(CastleError) {
                let reader = try LobsterMessageReader(path: path)
                var count = 0
                while try reader.next() != nil { count += 1 }
                #expect(count <= Self.lobsterRows.count + 8)
            } catch {
                #expect(error.kind == .dataError, "\(error)")
                #expect(error.message.hasPrefix(path + ":"), "names the file and line: \(error)")
            }
        }
    }

    static let csvFile = """
        op,id,symbol,side,type,price,qty,tif,account,ts
        new,1,BTC-USD,buy,limit,100.5,2,gtc,"acct, one",1700000000000000000
        new,2,BTC-USD,sell,limit,100.5,1,ioc,b,1700000000000000001
        "cancel",1,,,,,,,,
        amend,2,,,,99,1,,,
        """

    /// CSV order files through `castle ingest`'s reader into a memory store: every row is stored or
    /// rejected with its line, or the file is refused with a `file:line` error; nothing crashes.
    @Test func csvOrderFiles() async throws {
        let directory = try TestDirectory()
        var mutator = Mutator(seed: 4)
        for index in 0..<(1_000 * Self.rounds) {
            let path = try directory.write(
                "orders-\(index % 8).csv",
                mutator.mutate(Array(Self.csvFile.utf8), edits: 3)
            )
            var options = Ingest.Options()
            options.inputPath = path
            options.maxErrors = 1_000
            options.showProgress = false
            do throws(CastleError) {
                let summary = try await Ingest.run(options, into: MemoryBackend(displayURL: "memory://fuzz"))
                #expect(summary.rows == summary.added + summary.duplicates)
            } catch {
                #expect([.dataError, .usage].contains(error.kind), "\(error)")
                #expect(error.message.contains(path), "names the file: \(error)")
            }
        }
    }
}

extension TestDirectory {
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let target = path + "/" + name
        guard let file = fopen(target, "wb") else { throw ConformanceFailure("cannot create \(target)") }
        defer { fclose(file) }
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else {
            throw ConformanceFailure("cannot write \(target)")
        }
        return target
    }
}
