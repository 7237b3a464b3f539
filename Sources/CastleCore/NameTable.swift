/// Interns names (symbols, accounts) as dense integer ids, from bytes, without allocating on a hit.
/// Ids start at `firstID`; the table holds at most `capacityMax` names, a bound against hostile input.
public struct NameTable: Sendable {
    public private(set) var names: [[UInt8]] = []
    private var slots: [Int32]  // index into names, -1 empty
    private var hashes: [UInt64]
    private let firstID: UInt32
    public let capacityMax: Int

    public init(firstID: UInt32 = 0, capacityMax: Int = 1 << 20) {
        self.firstID = firstID
        self.capacityMax = capacityMax
        // At most 64 slots to start, fewer for a table of a name or two (serve checks each order's command
        // with such tables).
        var size = 2
        while size < min(64, 2 * capacityMax) { size *= 2 }
        slots = Array(repeating: -1, count: size)
        hashes = Array(repeating: 0, count: size)
    }

    public var count: Int { names.count }

    /// Forgets every name, keeping the room.
    public mutating func removeAll() {
        names.removeAll(keepingCapacity: true)
        for slot in slots.indices { slots[slot] = -1 }
    }

    /// The id of `name`, adding it when new; nil when the table is full.
    public mutating func intern(_ name: UnsafeBufferPointer<UInt8>) -> UInt32? {
        let hash = Self.hash(name)
        var slot = Int(truncatingIfNeeded: hash) & (slots.count - 1)
        while true {
            let index = slots[slot]
            if index < 0 { break }
            if hashes[slot] == hash, Self.equal(names[Int(index)], name) {
                return firstID + UInt32(index)
            }
            slot = (slot + 1) & (slots.count - 1)
        }
        if names.count >= capacityMax { return nil }
        names.append(Array(name))
        slots[slot] = Int32(names.count - 1)
        hashes[slot] = hash
        if names.count * 2 > slots.count { grow() }
        return firstID + UInt32(names.count - 1)
    }

    public mutating func intern(_ name: String) -> UInt32? {
        var name = name
        return name.withUTF8 { intern($0) }
    }

    /// The id of `name` if it is interned.
    public func lookup(_ name: String) -> UInt32? {
        let bytes = Array(name.utf8)
        guard let index = names.firstIndex(of: bytes) else { return nil }
        return firstID + UInt32(index)
    }

    public func name(of id: UInt32) -> [UInt8] { names[Int(id - firstID)] }

    public func string(of id: UInt32) -> String { String(decoding: name(of: id), as: UTF8.self) }

    private mutating func grow() {
        let size = slots.count * 2
        slots = Array(repeating: -1, count: size)
        var newHashes = Array(repeating: UInt64(0), count: size)
        for (index, name) in names.enumerated() {
            let hash = name.withUnsafeBufferPointer { Self.hash($0) }
            var slot = Int(truncatingIfNeeded: hash) & (size - 1)
            while slots[slot] >= 0 { slot = (slot + 1) & (size - 1) }
            slots[slot] = Int32(index)
            newHashes[slot] = hash
        }
        hashes = newHashes
    }

    @inline(__always)
    private static func equal(_ stored: [UInt8], _ name: UnsafeBufferPointer<UInt8>) -> Bool {
        stored.count == name.count
            && stored.withUnsafeBufferPointer { a in
                (0..<a.count).allSatisfy { a[$0] == name[$0] }
            }
    }

    /// FNV-1a, then a final mix so the low bits spread.
    @inline(__always)
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            h = (h ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        h ^= h >> 29
        h = h &* 0xbf58_476d_1ce4_e5b9
        return h ^ (h >> 32)
    }
}
