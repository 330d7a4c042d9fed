/// An open-addressing hash map keyed by 128-bit fingerprints (`Hash128`), which are already
/// uniformly random: the low word picks the slot, no re-hashing. Linear probing, power-of-two
/// capacity, at most 70% full. The key (0, 0) marks an empty slot, so a fingerprint that is
/// (0, 0) is stored as (1, 0) — a change with the same 2^-128 odds as any collision.
///
/// Costs: 16 bytes of key + the value per slot, 1.4–2.9 slots per entry. Lookup and insert
/// O(1) expected; `removeAll(where:)` rebuilds in O(capacity).
struct FingerprintMap<Value> {
    private var keys: [Hash128]
    private var values: [Value]
    private var mask: Int
    private let emptyValue: Value
    private(set) var count = 0

    /// `emptyValue` fills unused slots (it is never returned).
    init(capacity: Int = 1024, emptyValue: Value) {
        var size = 16
        while size * 7 / 10 < capacity { size *= 2 }
        keys = Array(repeating: Hash128(low: 0, high: 0), count: size)
        values = Array(repeating: emptyValue, count: size)
        mask = size - 1
        self.emptyValue = emptyValue
    }

    @inline(__always)
    private func isOccupied(_ index: Int) -> Bool { keys[index].low != 0 || keys[index].high != 0 }

    @inline(__always)
    private static func normalized(_ key: Hash128) -> Hash128 {
        key.low == 0 && key.high == 0 ? Hash128(low: 1, high: 0) : key
    }

    @inline(__always)
    private func slot(of key: Hash128) -> (index: Int, found: Bool) {
        var index = Int(truncatingIfNeeded: key.low) & mask
        while true {
            let stored = keys[index]
            if stored.low == key.low && stored.high == key.high { return (index, true) }
            if stored.low == 0 && stored.high == 0 { return (index, false) }
            index = (index + 1) & mask
        }
    }

    subscript(key: Hash128) -> Value? {
        let key = Self.normalized(key)
        let (index, found) = slot(of: key)
        return found ? values[index] : nil
    }

    /// Inserts if absent; returns the stored value and whether it was inserted.
    @discardableResult
    mutating func insertIfAbsent(_ key: Hash128, _ value: @autoclosure () -> Value) -> (value: Value, inserted: Bool) {
        let key = Self.normalized(key)
        var (index, found) = slot(of: key)
        if found { return (values[index], false) }
        if (count + 1) * 10 > keys.count * 7 {
            grow()
            index = slot(of: key).index
        }
        let newValue = value()
        keys[index] = key
        values[index] = newValue
        count += 1
        return (newValue, true)
    }

    /// Keeps only the entries for which `shouldRemove` is false. O(capacity).
    mutating func removeAll(where shouldRemove: (Hash128, Value) -> Bool) {
        var rebuilt = FingerprintMap(capacity: count, emptyValue: emptyValue)
        for index in 0..<keys.count where isOccupied(index) && !shouldRemove(keys[index], values[index]) {
            rebuilt.insertIfAbsent(keys[index], values[index])
        }
        self = rebuilt
    }

    /// Every entry, in slot order.
    func forEach(_ body: (Hash128, Value) -> Void) {
        for index in 0..<keys.count where isOccupied(index) { body(keys[index], values[index]) }
    }

    private mutating func grow() {
        var bigger = FingerprintMap(capacity: keys.count * 2 * 7 / 10, emptyValue: emptyValue)
        for index in 0..<keys.count where isOccupied(index) { bigger.insertIfAbsent(keys[index], values[index]) }
        self = bigger
    }
}
