import CPrefetch

/// An open-addressing hash map keyed by 128-bit fingerprints (`Hash128`), which are already
/// uniformly random: no re-hashing.
///
/// It is an *extendible hash*: a directory of 2^depth entries, indexed by the low bits of
/// the key's high word, points at small shards; each shard is an open-addressing table
/// (linear probing on the key's low word, power-of-two size, at most 70% full, key and value
/// in one slot so a lookup touches one cache line). A shard grows by doubling up to
/// `shardSlotsMax` slots; past that it *splits* in two by one more bit of the key, and only
/// the directory (4 bytes an entry) ever doubles. So no operation ever touches more than one
/// shard's few kilobytes:
/// - growth rehashes one small shard, never the whole map (one big table's rehash at 10 M
///   keys is a stall of a second);
/// - after a snapshot takes a copy-on-write copy, the owner's next inserts copy only the
///   shards they touch — a batch of 1,000 inserts into a map of millions copies a few
///   percent of it, not all of it (64 fixed shards were all touched by any batch, so the
///   first batch after each snapshot copied the whole map: ~200 ms at 2 M keys, measured);
/// - expiry sweeps a range of shards at a time (`removeAll(inShards:where:)`).
///
/// The key (0, 0) marks an empty slot, so a fingerprint that is (0, 0) is stored as (1, 0) —
/// a change with the same 2^-128 odds as any collision.
///
/// Costs: 16 bytes of key + the value per slot, 1.4–2.9 slots per entry, plus 4 bytes of
/// directory and 64 bytes per shard (its entry and its buffer's owner object) per 70–180
/// entries. Lookup and insert O(1).
struct FingerprintMap<Value: BitwiseCopyable> {
    private struct Slot {
        var low: UInt64
        var high: UInt64
        var value: Value
    }

    /// One shard's slots, in a buffer of exactly `capacity` slots: 256 slots of 24 bytes are
    /// 6 KiB, one of jemalloc's size classes, where a Swift array's 32-byte header would push
    /// them into the 7 KiB class (and Swift would count the slack as capacity) — 14% more
    /// memory per key (docs/BENCHMARKS.md, session 14). Shared copy-on-write between copies of
    /// the map (`makeUnique`), like an array's buffer.
    private final class SlotStorage {
        fileprivate let base: UnsafeMutablePointer<Slot>
        let capacity: Int

        fileprivate init(capacity: Int, filling empty: Slot) {
            base = .allocate(capacity: capacity)
            base.initialize(repeating: empty, count: capacity)
            self.capacity = capacity
        }

        fileprivate init(copying other: SlotStorage) {
            base = .allocate(capacity: other.capacity)
            base.initialize(from: other.base, count: other.capacity)
            capacity = other.capacity
        }

        deinit { base.deallocate() }  // slots are bitwise-copyable: nothing to deinitialize
    }

    private struct Shard {
        /// Owns the slots (nil only in a map being drained, for a shard already visited).
        /// The first field: `touchHomeSlot` reads it as a word at the entry's address
        /// (checked in `init`).
        var storage: SlotStorage?
        /// `storage.base`, kept here so that a lookup goes from the shard straight to its
        /// slot, with no buffer header to load in between.
        var base: UnsafeMutablePointer<Slot>
        /// `slotCount - 1`.
        var mask: Int
        var count: Int32 = 0
        /// How many low bits of `high` all of this shard's keys share.
        var depth: Int32

        init(slotCount: Int, depth: Int, emptyValue: Value) {
            assert(MemoryLayout<Shard>.offset(of: \Shard.storage) == 0, "touchHomeSlot reads the owner at offset 0")
            let storage = SlotStorage(capacity: slotCount, filling: Slot(low: 0, high: 0, value: emptyValue))
            self.storage = storage
            base = storage.base
            mask = slotCount - 1
            self.depth = Int32(depth)
        }

        var slotCount: Int { mask + 1 }
        var slots: UnsafeBufferPointer<Slot> { UnsafeBufferPointer(start: base, count: mask + 1) }

        @inline(__always)
        func find(_ key: Hash128) -> (index: Int, found: Bool) {
            var index = Int(truncatingIfNeeded: key.low) & mask
            while true {
                let slot = base[index]
                if slot.low == key.low && slot.high == key.high { return (index, true) }
                if slot.low == 0 && slot.high == 0 { return (index, false) }
                index = (index + 1) & mask
            }
        }

        /// See the map's `homeSlotAddress`.
        @inline(__always)
        func homeSlotAddress(_ key: Hash128) -> UnsafeRawPointer {
            UnsafeRawPointer(base + (Int(truncatingIfNeeded: key.low) & mask))
        }

        /// Puts a key known to be absent (no duplicate check) into a shard of its own.
        @inline(__always)
        mutating func place(_ slot: Slot) {
            let index = find(Hash128(low: slot.low, high: slot.high)).index
            base[index] = slot
            count += 1
        }

        var isFull: Bool { (Int(count) + 1) * 10 > (mask + 1) * 7 }
    }

    /// Makes shard `shard`'s slots this map's alone (copying them if a copy of the map shares
    /// them), before a write into them.
    @inline(__always)
    private mutating func makeUnique(_ shard: Int) {
        if !isKnownUniquelyReferenced(&shards[shard].storage) {
            let copy = SlotStorage(copying: shards[shard].storage.unsafelyUnwrapped)
            shards[shard].storage = copy
            shards[shard].base = copy.base
        }
    }

    /// A shard splits instead of growing past this many slots (6 KB with 8-byte values).
    static var shardSlotsMax: Int { 256 }
    private static var shardSlotsMin: Int { 8 }

    private var directory: [Int32]
    private var shards: [Shard]
    private let emptyValue: Value
    private(set) var count = 0

    /// `emptyValue` fills unused slots (it is never returned).
    init(capacity: Int = 1024, emptyValue: Value) {
        self.emptyValue = emptyValue
        // Enough shards at full size for `capacity` entries at ~50% load, rounded to a power
        // of two; a small map is one small shard.
        var slotCount = Self.shardSlotsMin
        while slotCount * 7 / 10 < capacity && slotCount < Self.shardSlotsMax { slotCount *= 2 }
        var depth = 0
        while (1 << depth) * Self.shardSlotsMax / 2 < capacity { depth += 1 }
        directory = (0..<(1 << depth)).map { Int32($0) }
        shards = (0..<(1 << depth)).map { _ in Shard(slotCount: slotCount, depth: depth, emptyValue: emptyValue) }
    }

    @inline(__always)
    private static func normalized(_ key: Hash128) -> Hash128 {
        key.low == 0 && key.high == 0 ? Hash128(low: 1, high: 0) : key
    }

    @inline(__always)
    private func shardIndex(of key: Hash128) -> Int {
        directory.withUnsafeBufferPointer { directory in
            Int(directory[Int(truncatingIfNeeded: key.high) & (directory.count - 1)])
        }
    }

    /// Loads the key's home slot and returns a word of it: touching the slots of a batch of
    /// keys first lets their cache misses overlap, instead of one miss per insert in turn.
    /// Also prefetches the shard's buffer owner, whose reference count the insert's
    /// copy-on-write check reads (another line: unprefetched, that check was 9–10% of the
    /// server's samples under a batched feed at 25 M events, session 14).
    @inline(__always)
    func touchHomeSlot(_ key: Hash128) -> UInt64 {
        let key = Self.normalized(key)
        let shard = shardIndex(of: key)
        return shards.withUnsafeBufferPointer { shards in
            // The owner's address, read as a word (no retain, which would itself wait for it).
            let entry = UnsafeRawPointer(shards.baseAddress! + shard)
            hc_prefetch(UnsafeRawPointer(bitPattern: entry.load(as: UInt.self)))
            let mask = shards[shard].mask
            return shards[shard].base[Int(truncatingIfNeeded: key.low) & mask].low
        }
    }



    // Addresses for prefetch instructions (`Engine.prefetch`): computed here, prefetched by
    // the caller. The prefetch call itself is made outside, so that no opaque call sits inside
    // the array accesses (the compiler would retain the arrays around it: an atomic write to
    // the very header lines this means not to wait for). An address is a hint only: never
    // dereferenced, and a prefetch never faults.

    /// The address of the key's shard header (its `shards` element); reads only the directory.
    @inline(__always)
    func shardAddress(_ key: Hash128) -> UnsafeRawPointer {
        let shard = shardIndex(of: Self.normalized(key))
        return shards.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress! + shard) }
    }

    /// The address of the key's home slot; reads the directory and the shard header
    /// (prefetch `shardAddress` first).
    @inline(__always)
    func homeSlotAddress(_ key: Hash128) -> UnsafeRawPointer {
        let key = Self.normalized(key)
        return shards.withUnsafeBufferPointer { $0[shardIndex(of: key)].homeSlotAddress(key) }
    }

    subscript(key: Hash128) -> Value? {
        let key = Self.normalized(key)
        let shard = shardIndex(of: key)
        let (index, found) = shards[shard].find(key)
        return found ? shards[shard].base[index].value : nil
    }

    /// Inserts if absent; returns the stored value and whether it was inserted.
    @inline(__always)
    @discardableResult
    mutating func insertIfAbsent(_ key: Hash128, _ value: Value) -> (value: Value, inserted: Bool) {
        let key = Self.normalized(key)
        var shard = shardIndex(of: key)
        var (index, found) = shards[shard].find(key)
        if found { return (shards[shard].base[index].value, false) }
        if shards[shard].isFull {
            makeRoom(inShard: shard)
            shard = shardIndex(of: key)
            index = shards[shard].find(key).index
        }
        makeUnique(shard)
        shards[shard].base[index] = Slot(low: key.low, high: key.high, value: value)
        shards[shard].count += 1
        count += 1
        return (value, true)
    }

    /// A full shard doubles while it is small, else splits in two by its next key bit.
    private mutating func makeRoom(inShard shard: Int) {
        let old = shards[shard]
        let depth = Int(old.depth)
        let bit = UInt64(1) << UInt64(min(depth, 63))
        // Split only if the next bit actually divides the keys: fingerprints are uniformly
        // random, but keys that share a high word (crafted ones) must not double the
        // directory forever — then, and past 2^24 directory entries, the shard grows instead.
        var movers = 0
        if old.slotCount >= Self.shardSlotsMax && depth < 24 {
            for slot in old.slots where (slot.low != 0 || slot.high != 0) && slot.high & bit != 0 { movers += 1 }
        }
        if old.slotCount < Self.shardSlotsMax || movers == 0 || movers == Int(old.count) {
            var bigger = Shard(slotCount: old.slotCount * 2, depth: depth, emptyValue: emptyValue)
            for slot in old.slots where slot.low != 0 || slot.high != 0 { bigger.place(slot) }
            shards[shard] = bigger
            return
        }
        if 1 << depth == directory.count {
            directory.append(contentsOf: directory)  // one more bit: both halves point alike
        }
        var stay = Shard(slotCount: old.slotCount, depth: depth + 1, emptyValue: emptyValue)
        var move = Shard(slotCount: old.slotCount, depth: depth + 1, emptyValue: emptyValue)
        var pattern = -1
        for slot in old.slots where slot.low != 0 || slot.high != 0 {
            if pattern < 0 { pattern = Int(truncatingIfNeeded: slot.high) & (Int(bit) - 1) }
            if slot.high & bit == 0 { stay.place(slot) } else { move.place(slot) }
        }
        shards[shard] = stay
        let moved = Int32(shards.count)
        shards.append(move)
        // The directory entries of this shard are those ≡ pattern (mod 2^depth); the ones
        // with the new bit set now point at the new shard.
        let step = Int(bit) << 1
        var entry = pattern | Int(bit)
        while entry < directory.count {
            directory[entry] = moved
            entry += step
        }
    }

    /// Entries to insert at once (`insertOrUpdate(_:merge:)`), grouped by the low 8 bits of
    /// the key's high word — the bits the directory uses first, so each group's inserts land
    /// in 1/256 of the shards (in cache), where inserting keys as they come misses the cache
    /// for each one in a map of millions.
    struct Batch {
        fileprivate static var groupCount: Int { 256 }
        fileprivate var groups: [[(key: Hash128, value: Value)]] = Array(repeating: [], count: Batch.groupCount)

        init() {}

        mutating func reserveCapacity(_ total: Int) {
            let perGroup = total / Batch.groupCount + total / Batch.groupCount / 16 + 16
            for group in groups.indices { groups[group].reserveCapacity(perGroup) }
        }

        @inline(__always)
        mutating func append(_ key: Hash128, _ value: Value) {
            let key = FingerprintMap.normalized(key)
            groups[Int(truncatingIfNeeded: key.high) & (Batch.groupCount - 1)].append((key, value))
        }
    }

    /// Inserts every entry of the batch, or for a key already present, stores
    /// `merge(stored, new)`. Group by group (see `Batch`). An empty map is first laid out for
    /// the whole batch (full-size shards, enough for it at 70% load), so that it does not
    /// grow and split its way there shard by shard.
    mutating func insertOrUpdate(_ batch: Batch, merge: (Value, Value) -> Value) {
        if count == 0 {
            let total = batch.groups.reduce(0) { $0 + $1.count }
            var depth = 0
            while (1 << depth) * Self.shardSlotsMax * 7 / 10 < total && depth < 24 { depth += 1 }
            if depth > 0 {
                let empty = emptyValue
                directory = (0..<(1 << depth)).map { Int32($0) }
                shards = (0..<(1 << depth)).map { _ in Shard(slotCount: Self.shardSlotsMax, depth: depth, emptyValue: empty) }
            }
        }
        for group in batch.groups {
            for entry in group {
                let key = entry.key
                var shard = shardIndex(of: key)
                var (index, found) = shards[shard].find(key)
                if found {
                    makeUnique(shard)
                    shards[shard].base[index].value = merge(shards[shard].base[index].value, entry.value)
                    continue
                }
                if shards[shard].isFull {
                    makeRoom(inShard: shard)
                    shard = shardIndex(of: key)
                    index = shards[shard].find(key).index
                }
                makeUnique(shard)
                shards[shard].base[index] = Slot(low: key.low, high: key.high, value: entry.value)
                shards[shard].count += 1
                count += 1
            }
        }
    }

    /// The number of shards, for `removeAll(inShards:where:)`.
    var shardCount: Int { shards.count }

    /// In the shards of `range` (clamped to `shardCount`), keeps only the entries for which
    /// `shouldRemove` is false. O(slots of those shards): a sweep of a big map runs a range
    /// at a time.
    mutating func removeAll(inShards range: Range<Int>, where shouldRemove: (Hash128, Value) -> Bool) {
        for shard in range.clamped(to: 0..<shards.count) {
            let old = shards[shard]
            guard old.count > 0 else { continue }
            // A shard with nothing to remove is left as it is: a sweep that removes nothing
            // copies nothing (the shard may be shared with a snapshot being written).
            var removes = false
            for slot in old.slots where (slot.low != 0 || slot.high != 0)
                && shouldRemove(Hash128(low: slot.low, high: slot.high), slot.value) {
                removes = true
                break
            }
            guard removes else { continue }
            var kept = Shard(slotCount: old.slotCount, depth: Int(old.depth), emptyValue: emptyValue)
            for slot in old.slots where slot.low != 0 || slot.high != 0 {
                if !shouldRemove(Hash128(low: slot.low, high: slot.high), slot.value) { kept.place(slot) }
            }
            count -= Int(old.count - kept.count)
            shards[shard] = kept
        }
    }

    /// Keeps only the entries for which `shouldRemove` is false. O(capacity).
    mutating func removeAll(where shouldRemove: (Hash128, Value) -> Bool) {
        removeAll(inShards: 0..<shards.count, where: shouldRemove)
    }

    /// Bytes of the slot arrays (key and value of every slot, used or not) and the directory.
    var allocatedBytes: Int {
        shards.reduce(0) { $0 + $1.slotCount } * MemoryLayout<Slot>.stride + shards.count * Self.storageObjectBytes
            + directory.capacity * MemoryLayout<Int32>.stride + shards.capacity * MemoryLayout<Shard>.stride
    }

    /// A `SlotStorage` object's own allocation: header, pointer, capacity.
    private static var storageObjectBytes: Int { 32 }

    /// Every entry, shard by shard in slot order.
    func forEach(_ body: (Hash128, Value) -> Void) {
        for shard in shards {
            for slot in shard.slots where slot.low != 0 || slot.high != 0 {
                body(Hash128(low: slot.low, high: slot.high), slot.value)
            }
        }
    }

    /// Every entry, in `forEach`'s order, each shard's storage let go of as soon as it has
    /// been visited; the map is empty afterwards. For a copy-on-write copy being encoded on
    /// another thread (a snapshot's): a shard it has let go of is the owner's alone again, so
    /// the owner's next insert there changes it in place instead of copying it first.
    mutating func drain(_ body: (Hash128, Value) -> Void) {
        for index in shards.indices {
            let storage = shards[index].storage
            let slots = shards[index].slots
            shards[index].storage = nil
            withExtendedLifetime(storage) {
                for slot in slots where slot.low != 0 || slot.high != 0 {
                    body(Hash128(low: slot.low, high: slot.high), slot.value)
                }
            }
        }
        self = FingerprintMap(capacity: 0, emptyValue: emptyValue)
    }
}
