/// A price level in a ladder: levels are kept in ascending `key` order with the best level last, where
/// the key is the price for bids and a value that orders asks the other way (so a larger key is always
/// a better price). Both the matching engine and book reconstruction keep their levels this way.
public protocol LadderLevel {
    var key: Int64 { get }
}

extension ContiguousArray where Element: LadderLevel {
    /// Index of the level with `key`, or where it would be inserted. The touch is checked first: most
    /// activity is at or near it, and a level better than the touch is appended.
    @inlinable @inline(__always)
    public func searchLevel(_ key: Int64) -> (index: Int, found: Bool) {
        let count = self.count
        if count == 0 { return (0, false) }
        let bestKey = self[count - 1].key
        if key == bestKey { return (count - 1, true) }
        if key > bestKey { return (count, false) }
        var low = 0
        var high = count - 1
        while low < high {
            let mid = (low + high) >> 1
            if self[mid].key < key { low = mid + 1 } else { high = mid }
        }
        return (low, self[low].key == key)
    }
}
