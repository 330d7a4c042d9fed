/// An open-addressing hash map keyed by 128-bit fingerprints (`Hash128`), which are already
/// uniformly random: no re-hashing. It is split into 64 shards (by the high word), each an
/// open-addressing table (linear probing on the low word, power-of-two capacity, at most 70%
/// full, key and value in one slot so a lookup touches one cache line). Shards make the two
/// long pauses of one big table short: growth rehashes one shard at a time, and after a
/// snapshot takes a copy, the owner's next insert copies one shard, not the whole map.
///
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

    private struct Shard {
        var slots: [Slot]
        var mask: Int
        var count = 0

        init(capacity: Int, emptyValue: Value) {
            var size = 8
            while size * 7 / 10 < capacity { size *= 2 }
            slots = Array(repeating: Slot(low: 0, high: 0, value: emptyValue), count: size)
            mask = size - 1
        }

        @inline(__always)
        func find(_ key: Hash128) -> (index: Int, found: Bool) {
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

        mutating func grow(emptyValue: Value) {
            rehash(capacity: slots.count * 2 * 7 / 10, emptyValue: emptyValue)
        }

        /// Grows at once (one rehash) to hold `total` entries within the load limit.
        mutating func reserve(_ total: Int, emptyValue: Value) {
            guard total * 10 > slots.count * 7 else { return }
            rehash(capacity: total, emptyValue: emptyValue)
        }

        private mutating func rehash(capacity: Int, emptyValue: Value) {
            var bigger = Shard(capacity: capacity, emptyValue: emptyValue)
            for slot in slots where slot.low != 0 || slot.high != 0 {
                let index = bigger.find(Hash128(low: slot.low, high: slot.high)).index
                bigger.slots[index] = slot
                bigger.count += 1
            }
            self = bigger
        }
    }

    private static var shardCount: Int { 64 }
    private var shards: [Shard]
    private let emptyValue: Value
    private(set) var count = 0

    /// `emptyValue` fills unused slots (it is never returned).
    init(capacity: Int = 1024, emptyValue: Value) {
        let perShard = max(capacity / Self.shardCount, 1)
        shards = Array(repeating: Shard(capacity: perShard, emptyValue: emptyValue), count: Self.shardCount)
        self.emptyValue = emptyValue
    }

    @inline(__always)
    private static func normalized(_ key: Hash128) -> Hash128 {
        key.low == 0 && key.high == 0 ? Hash128(low: 1, high: 0) : key
    }

    @inline(__always)
    private static func shard(of key: Hash128) -> Int { Int(truncatingIfNeeded: key.high) & (shardCount - 1) }

    subscript(key: Hash128) -> Value? {
        let key = Self.normalized(key)
        let shard = Self.shard(of: key)
        let (index, found) = shards[shard].find(key)
        return found ? shards[shard].slots[index].value : nil
    }

    /// Inserts if absent; returns the stored value and whether it was inserted.
    @inline(__always)
    @discardableResult
    mutating func insertIfAbsent(_ key: Hash128, _ value: Value) -> (value: Value, inserted: Bool) {
        let key = Self.normalized(key)
        let shard = Self.shard(of: key)
        var (index, found) = shards[shard].find(key)
        if found { return (shards[shard].slots[index].value, false) }
        if (shards[shard].count + 1) * 10 > shards[shard].slots.count * 7 {
            shards[shard].grow(emptyValue: emptyValue)
            index = shards[shard].find(key).index
        }
        shards[shard].slots[index] = Slot(low: key.low, high: key.high, value: value)
        shards[shard].count += 1
        count += 1
        return (value, true)
    }

    /// Entries to insert at once (`insertOrUpdate(_:merge:)`), kept grouped by shard.
    struct Batch {
        fileprivate var shards: [[(key: Hash128, value: Value)]] = Array(repeating: [], count: FingerprintMap.shardCount)

        init() {}

        mutating func reserveCapacity(_ total: Int) {
            let perShard = total / FingerprintMap.shardCount + total / FingerprintMap.shardCount / 16 + 16
            for shard in shards.indices { shards[shard].reserveCapacity(perShard) }
        }

        @inline(__always)
        mutating func append(_ key: Hash128, _ value: Value) {
            let key = FingerprintMap.normalized(key)
            shards[FingerprintMap.shard(of: key)].append((key, value))
        }
    }

    /// Inserts every entry of the batch, or for a key already present, stores
    /// `merge(stored, new)`. Shard by shard: each shard grows once to its final size, and its
    /// inserts stay within one shard's table (in cache for tables of a few million entries).
    mutating func insertOrUpdate(_ batch: Batch, merge: (Value, Value) -> Value) {
        for shard in 0..<Self.shardCount {
            let entries = batch.shards[shard]
            guard !entries.isEmpty else { continue }
            shards[shard].reserve(shards[shard].count + entries.count, emptyValue: emptyValue)
            var added = 0
            shards[shard].slots.withUnsafeMutableBufferPointer { slots in
                let mask = slots.count - 1
                for entry in entries {
                    var index = Int(truncatingIfNeeded: entry.key.low) & mask
                    while true {
                        let slot = slots[index]
                        if slot.low == entry.key.low && slot.high == entry.key.high {
                            slots[index].value = merge(slot.value, entry.value)
                            break
                        }
                        if slot.low == 0 && slot.high == 0 {
                            slots[index] = Slot(low: entry.key.low, high: entry.key.high, value: entry.value)
                            added += 1
                            break
                        }
                        index = (index + 1) & mask
                    }
                }
            }
            shards[shard].count += added
            count += added
        }
    }

    /// Keeps only the entries for which `shouldRemove` is false. O(capacity); a shard with
    /// nothing to remove is kept as it is (a sweep that removes nothing copies nothing).
    mutating func removeAll(where shouldRemove: (Hash128, Value) -> Bool) {
        for shard in shards.indices {
            var kept = 0
            var removes = false
            for slot in shards[shard].slots where slot.low != 0 || slot.high != 0 {
                if shouldRemove(Hash128(low: slot.low, high: slot.high), slot.value) { removes = true } else { kept += 1 }
            }
            guard removes else { continue }
            var rebuilt = Shard(capacity: kept, emptyValue: emptyValue)
            for slot in shards[shard].slots where slot.low != 0 || slot.high != 0 {
                guard !shouldRemove(Hash128(low: slot.low, high: slot.high), slot.value) else { continue }
                let index = rebuilt.find(Hash128(low: slot.low, high: slot.high)).index
                rebuilt.slots[index] = slot
                rebuilt.count += 1
            }
            count -= shards[shard].count - rebuilt.count
            shards[shard] = rebuilt
        }
    }

    /// Bytes of the slot arrays (key and value of every slot, used or not).
    var allocatedBytes: Int { shards.reduce(0) { $0 + $1.slots.capacity } * MemoryLayout<Slot>.stride }

    /// Every entry, shard by shard in slot order.
    func forEach(_ body: (Hash128, Value) -> Void) {
        for shard in shards {
            for slot in shard.slots where slot.low != 0 || slot.high != 0 {
                body(Hash128(low: slot.low, high: slot.high), slot.value)
            }
        }
    }
}
