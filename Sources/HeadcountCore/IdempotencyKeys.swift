/// The set of accepted feed `id`s, remembered for a window after their first acceptance
/// (SPEC §2). Each id is kept as a 128-bit fingerprint with its arrival time in a
/// `FingerprintMap` (no per-id heap object). Expiry is a sweep that rebuilds the map, run at
/// most once per `sweepIntervalMilliseconds` of advancing cutoff, so an id is remembered for
/// at least the window and at most the window plus one interval.
struct IdempotencyKeys {
    private(set) var arrivals = FingerprintMap<Int64>(capacity: 1024, emptyValue: 0)
    private var lastSweepCutoff = Int64.min
    static let sweepIntervalMilliseconds: Int64 = 3_600_000

    var count: Int { arrivals.count }

    /// True and remembered if the key is new; false for a duplicate.
    @inline(__always)
    mutating func admit(_ key: Hash128, arrivalMilliseconds: Int64) -> Bool {
        arrivals.insertIfAbsent(key, arrivalMilliseconds).inserted
    }

    /// Records acceptances found in the WAL (restart), shard by shard. A key accepted again
    /// after it expired keeps its latest arrival, as the online table did (it had forgotten
    /// the first); so the result does not depend on the order of the keys. O(keys).
    mutating func recordReplayed(_ batch: FingerprintMap<Int64>.Batch) {
        arrivals.insertOrUpdate(batch) { max($0, $1) }
    }

    /// Forgets keys that arrived before `cutoff`, at most once per sweep interval. O(keys).
    mutating func expire(arrivedBefore cutoff: Int64) {
        guard lastSweepCutoff == Int64.min || cutoff - lastSweepCutoff >= IdempotencyKeys.sweepIntervalMilliseconds else { return }
        lastSweepCutoff = cutoff
        arrivals.removeAll { _, arrival in arrival < cutoff }
    }
}
