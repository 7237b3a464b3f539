/// Order id → pool slot: open addressing with linear probing and backward-shift deletion, so there are
/// no tombstones and lookups stay short however many orders come and go.
struct OrderIndex {
    private var keys: ContiguousArray<UInt64>
    private var values: ContiguousArray<Int32>  // -1: empty
    private var shift: UInt64
    private(set) var count = 0

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = ContiguousArray(repeating: 0, count: size)
        values = ContiguousArray(repeating: -1, count: size)
        shift = UInt64(64 - size.trailingZeroBitCount)
    }

    @inline(__always)
    private func home(_ key: UInt64) -> Int {
        // Fibonacci hashing: the high bits of the product are well mixed even for sequential ids.
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always)
    func find(_ key: UInt64) -> Int32? {
        let mask = keys.count - 1
        var i = home(key)
        while true {
            let value = values[i]
            if value < 0 { return nil }
            if keys[i] == key { return value }
            i = (i + 1) & mask
        }
    }

    /// Inserts a key known to be absent.
    mutating func insert(_ key: UInt64, _ value: Int32) {
        if (count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var i = home(key)
        while values[i] >= 0 { i = (i + 1) & mask }
        keys[i] = key
        values[i] = value
        count += 1
    }

    /// Removes a key known to be present.
    mutating func remove(_ key: UInt64) {
        let mask = keys.count - 1
        var i = home(key)
        while keys[i] != key || values[i] < 0 { i = (i + 1) & mask }
        // Backward shift: pull later members of the probe run into the hole when their home allows it.
        var j = i
        while true {
            j = (j + 1) & mask
            if values[j] < 0 { break }
            let k = home(keys[j])
            let between = i <= j ? (i < k && k <= j) : (i < k || k <= j)
            if !between {
                keys[i] = keys[j]
                values[i] = values[j]
                i = j
            }
        }
        values[i] = -1
        count -= 1
    }

    private mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        let size = keys.count * 2
        keys = ContiguousArray(repeating: 0, count: size)
        values = ContiguousArray(repeating: -1, count: size)
        shift = UInt64(64 - size.trailingZeroBitCount)
        count = 0
        for i in oldKeys.indices where oldValues[i] >= 0 {
            insert(oldKeys[i], oldValues[i])
        }
    }
}
