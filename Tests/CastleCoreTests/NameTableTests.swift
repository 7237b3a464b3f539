import CastleCore
import Testing

@Suite struct NameTableTests {
    @Test func sameBytesSameID() {
        var table = NameTable()
        let a = table.intern("BTC-USD")
        let b = table.intern("ETH-USD")
        #expect(a == 0)
        #expect(b == 1)
        #expect(table.intern("BTC-USD") == a)
        #expect(table.intern("ETH-USD") == b)
        #expect(table.count == 2)
    }

    @Test func internFromBytesMatchesInternFromString() {
        var table = NameTable()
        let fromString = table.intern("alice")
        let bytes: [UInt8] = Array("xalicex".utf8)
        let fromBytes = bytes.withUnsafeBufferPointer { table.intern(UnsafeBufferPointer(rebasing: $0[1..<6])) }
        #expect(fromString != nil)
        #expect(fromBytes == fromString)
        #expect(table.count == 1)
    }

    @Test func prefixesAndCaseAreDistinct() {
        var table = NameTable()
        let names = ["a", "ab", "abc", "A", "AB", "b", "ba", ""]
        var ids: [UInt32] = []
        for name in names { ids.append(table.intern(name)!) }
        #expect(ids == Array(0..<UInt32(names.count)))
        for (name, id) in zip(names, ids) {
            #expect(table.intern(name) == id)
            #expect(table.lookup(name) == id)
            #expect(table.string(of: id) == name)
        }
    }

    @Test(arguments: [UInt32(0), 1, 7, 1000])
    func denseIDsFromFirstID(firstID: UInt32) {
        var table = NameTable(firstID: firstID)
        for k in 0..<10 { #expect(table.intern("n\(k)") == firstID + UInt32(k)) }
        // Re-interning does not consume ids.
        for k in 0..<10 { #expect(table.intern("n\(k)") == firstID + UInt32(k)) }
        #expect(table.intern("n10") == firstID + 10)
        #expect(table.count == 11)
        #expect(table.lookup("n3") == firstID + 3)
        #expect(table.name(of: firstID + 3) == Array("n3".utf8))
        #expect(table.string(of: firstID + 10) == "n10")
    }

    @Test func capacityMaxReturnsNilWhenFull() {
        var table = NameTable(firstID: 1, capacityMax: 3)
        #expect(table.capacityMax == 3)
        #expect(table.intern("a") == 1)
        #expect(table.intern("b") == 2)
        #expect(table.intern("c") == 3)
        #expect(table.intern("d") == nil)
        #expect(table.intern("e") == nil)
        #expect(table.count == 3)
        // Names already in a full table are still found.
        #expect(table.intern("b") == 2)
        #expect(table.lookup("d") == nil)
    }

    @Test func removeAllForgetsEveryNameAndKeepsTheBound() {
        var table = NameTable(firstID: 1, capacityMax: 2)
        #expect(table.intern("a") == 1)
        #expect(table.intern("b") == 2)
        table.removeAll()
        #expect(table.count == 0)
        #expect(table.lookup("a") == nil)
        // Ids start again at firstID, and the bound still holds.
        #expect(table.intern("b") == 1)
        #expect(table.intern("c") == 2)
        #expect(table.intern("a") == nil)
        #expect(table.intern("b") == 1)
        #expect(table.string(of: 2) == "c")
    }

    @Test func capacityZeroHoldsNothing() {
        var table = NameTable(capacityMax: 0)
        #expect(table.intern("x") == nil)
        #expect(table.count == 0)
    }

    @Test func lookupDoesNotAdd() {
        var table = NameTable()
        #expect(table.lookup("nope") == nil)
        #expect(table.count == 0)
        _ = table.intern("yes")
        #expect(table.lookup("yes") == 0)
        #expect(table.lookup("nope") == nil)
        #expect(table.count == 1)
    }

    @Test func manyNamesForceGrowth() {
        var table = NameTable(firstID: 5)
        let n = 20_000
        for k in 0..<n {
            #expect(table.intern("sym-\(k)") == UInt32(5 + k))
        }
        #expect(table.count == n)
        #expect(table.names.count == n)
        // After many growths every name still maps to its id, and back.
        var mismatches = 0
        for k in stride(from: 0, to: n, by: 1) {
            if table.intern("sym-\(k)") != UInt32(5 + k) { mismatches += 1 }
            if table.string(of: UInt32(5 + k)) != "sym-\(k)" { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(table.count == n)
        #expect(table.lookup("sym-12345") == UInt32(12350))
        #expect(table.lookup("sym-\(n)") == nil)
    }

    @Test func bytesNotValidUTF8AreInterned() {
        var table = NameTable()
        let raw: [UInt8] = [0xFF, 0x00, 0xFE]
        let id = raw.withUnsafeBufferPointer { table.intern($0) }
        #expect(id == 0)
        #expect(table.name(of: 0) == raw)
        let again = raw.withUnsafeBufferPointer { table.intern($0) }
        #expect(again == 0)
    }
}
