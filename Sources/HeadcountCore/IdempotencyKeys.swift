import DequeModule

/// The set of accepted feed `id`s, remembered for a window after their first acceptance
/// (SPEC §2). Each id is kept as a 128-bit fingerprint with its arrival time; a FIFO in
/// arrival order lets expiry drop the oldest in O(1) each.
struct IdempotencyKeys {
    private(set) var arrivals: [Hash128: Int64] = [:]
    private var order: Deque<(key: Hash128, arrival: Int64)> = []

    var count: Int { arrivals.count }

    /// True and remembered if `id` is new; false for a duplicate.
    mutating func admit(_ key: Hash128, arrivalMilliseconds: Int64) -> Bool {
        if arrivals[key] != nil { return false }
        arrivals[key] = arrivalMilliseconds
        order.append((key, arrivalMilliseconds))
        return true
    }

    /// Forgets every key that arrived before `cutoff`. O(keys forgotten).
    mutating func expire(arrivedBefore cutoff: Int64) {
        while let first = order.first, first.arrival < cutoff {
            order.removeFirst()
            if arrivals[first.key] == first.arrival { arrivals[first.key] = nil }
        }
    }

    /// Every key with its arrival, oldest first (for snapshots).
    var keysInArrivalOrder: Deque<(key: Hash128, arrival: Int64)> { order }
}
