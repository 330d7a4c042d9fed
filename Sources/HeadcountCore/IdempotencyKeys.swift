/// The set of accepted feed `id`s, remembered for a window after their first acceptance
/// (SPEC §2). Each id is kept as a 128-bit fingerprint with its arrival time in a
/// `FingerprintMap` (no per-id heap object).
///
/// Expiry is a sweep, started at most once per `sweepIntervalMilliseconds` of advancing
/// cutoff and run a slice of shards per call (`sweepShardsPerCall`), so that no call holds
/// the loop for long whatever the number of ids: an id is remembered for at least the window
/// and at most the window plus one interval plus the length of one sweep (the housekeeping
/// timer calls once a second: ~1 s per 1,024 shards, about 100 k ids).
struct IdempotencyKeys {
    private(set) var arrivals = FingerprintMap<Int64>(capacity: 1024, emptyValue: 0)
    private var lastSweepCutoff = Int64.min
    /// The sweep under way: its cutoff and the next shard to sweep.
    private var sweep: (cutoff: Int64, nextShard: Int)?
    static let sweepIntervalMilliseconds: Int64 = 3_600_000
    static let sweepShardsPerCall = 1024

    var count: Int { arrivals.count }

    /// Whether a sweep is under way (more calls to `expire` will continue it).
    var isSweeping: Bool { sweep != nil }

    /// Loads the key's slot (see `FingerprintMap.touchHomeSlot`).
    @inline(__always)
    func touch(_ key: Hash128) -> UInt64 { arrivals.touchHomeSlot(key) }

    /// True and remembered if the key is new; false for a duplicate.
    @inline(__always)
    mutating func admit(_ key: Hash128, arrivalMilliseconds: Int64) -> Bool {
        arrivals.insertIfAbsent(key, arrivalMilliseconds).inserted
    }

    /// Records acceptances found in the WAL (restart), group by group. A key accepted again
    /// after it expired keeps its latest arrival, as the online table did (it had forgotten
    /// the first); so the result does not depend on the order of the keys. O(keys).
    mutating func recordReplayed(_ batch: FingerprintMap<Int64>.Batch) {
        arrivals.insertOrUpdate(batch) { max($0, $1) }
    }

    /// Forgets keys that arrived before the cutoff of the sweep under way, `sweepShardsPerCall`
    /// shards at a time; starts a sweep with `cutoff` at most once per sweep interval.
    mutating func expire(arrivedBefore cutoff: Int64) {
        if sweep == nil {
            guard lastSweepCutoff == Int64.min || cutoff - lastSweepCutoff >= IdempotencyKeys.sweepIntervalMilliseconds else { return }
            lastSweepCutoff = cutoff
            sweep = (cutoff, 0)
        }
        let (sweepCutoff, first) = sweep!
        let end = first + IdempotencyKeys.sweepShardsPerCall
        arrivals.removeAll(inShards: first..<end) { _, arrival in arrival < sweepCutoff }
        sweep = end >= arrivals.shardCount ? nil : (sweepCutoff, end)
    }
}
