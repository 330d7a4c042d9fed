/// An open-addressing hash map keyed by 128-bit fingerprints (`Hash128`), which are already
/// uniformly random: the low word picks the slot, no re-hashing. Linear probing, power-of-two
/// capacity, at most 70% full; key and value share a slot so a lookup touches one cache line.
/// The key (0, 0) marks an empty slot, so a fingerprint that is (0, 0) is stored as (1, 0) —
/// a change with the same 2^-128 odds as any collision.
///
/// Costs: 16 bytes of key + the value per slot, 1.4–2.9 slots per entry. Lookup and insert
/// O(1) expected; `removeAll(where:)` rebuilds in O(capacity).
struct FingerprintMap<Value> {
    private struct Slot {
        var low: UInt64
        var high: UInt64
        var value: Value
    }

    private var slots: [Slot]
    private var mask: Int
    private let emptyValue: Value
    private(set) var count = 0

    /// `emptyValue` fills unused slots (it is never returned).
    init(capacity: Int = 1024, emptyValue: Value) {
        var size = 16
        while size * 7 / 10 < capacity { size *= 2 }
        slots = Array(repeating: Slot(low: 0, high: 0, value: emptyValue), count: size)
        mask = size - 1
        self.emptyValue = emptyValue
    }

    @inline(__always)
    private static func normalized(_ key: Hash128) -> Hash128 {
        key.low == 0 && key.high == 0 ? Hash128(low: 1, high: 0) : key
    }

    @inline(__always)
    private func find(_ key: Hash128) -> (index: Int, found: Bool) {
        slots.withUnsafeBufferPointer { slots in
            var index = Int(truncatingIfNeeded: key.low) & mask
            while true {
                let slot = slots[index]
                if slot.low == key.low && slot.high == key.high { return (index, true) }
                if slot.low == 0 && slot.high == 0 { return (index, false) }
                index = (index + 1) & mask
            }
        }
    }

    subscript(key: Hash128) -> Value? {
        let key = Self.normalized(key)
        let (index, found) = find(key)
        return found ? slots[index].value : nil
    }

    /// Inserts if absent; returns the stored value and whether it was inserted.
    @inline(__always)
    @discardableResult
    mutating func insertIfAbsent(_ key: Hash128, _ value: Value) -> (value: Value, inserted: Bool) {
        let key = Self.normalized(key)
        var (index, found) = find(key)
        if found { return (slots[index].value, false) }
        if (count + 1) * 10 > slots.count * 7 {
            grow()
            index = find(key).index
        }
        slots[index] = Slot(low: key.low, high: key.high, value: value)
        count += 1
        return (value, true)
    }

    /// Keeps only the entries for which `shouldRemove` is false. O(capacity).
    mutating func removeAll(where shouldRemove: (Hash128, Value) -> Bool) {
        var rebuilt = FingerprintMap(capacity: count, emptyValue: emptyValue)
        forEach { key, value in
            if !shouldRemove(key, value) { rebuilt.insertIfAbsent(key, value) }
        }
        self = rebuilt
    }

    /// Bytes of the slot array (key and value of every slot, used or not).
    var allocatedBytes: Int { slots.capacity * MemoryLayout<Slot>.stride }

    /// Every entry, in slot order.
    func forEach(_ body: (Hash128, Value) -> Void) {
        for slot in slots where slot.low != 0 || slot.high != 0 {
            body(Hash128(low: slot.low, high: slot.high), slot.value)
        }
    }

    private mutating func grow() {
        var bigger = FingerprintMap(capacity: slots.count * 2 * 7 / 10, emptyValue: emptyValue)
        forEach { key, value in bigger.insertIfAbsent(key, value) }
        self = bigger
    }
}
