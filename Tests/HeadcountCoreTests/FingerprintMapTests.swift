import Foundation
import XCTest
@testable import HeadcountCore

/// FingerprintMap against a Dictionary: inserts (with duplicates), lookups, shard splits,
/// copies taken mid-way (a snapshot's copy must not change), sweeps in slices.
/// Random: prints its seed; `HEADCOUNT_MAP_SEED=<n>` replays one.
final class FingerprintMapTests: XCTestCase {
    func testMatchesDictionaryThroughSplitsCopiesAndSweeps() {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["HEADCOUNT_MAP_SEED"].flatMap { UInt64($0) }
            ?? UInt64(bitPattern: Int64(Date().timeIntervalSince1970 * 1e6))
        print("FingerprintMapTests seed \(seed) (replay: HEADCOUNT_MAP_SEED=\(seed))")
        var random = SplitMix64(seed: seed)
        var map = FingerprintMap<Int64>(capacity: 16, emptyValue: 0)
        var model: [Hash128: Int64] = [:]
        var keys: [Hash128] = []
        var copy: (map: FingerprintMap<Int64>, model: [Hash128: Int64])?
        for step in 0..<120_000 {
            let reuse = !keys.isEmpty && random.next() % 4 == 0
            let key = reuse ? keys[Int(random.next() % UInt64(keys.count))]
                            : Hash128(low: random.next(), high: random.next() % 8 == 0 ? 0 : random.next())
            let value = Int64(step)
            let (stored, inserted) = map.insertIfAbsent(key, value)
            if let existing = model[key] {
                XCTAssertFalse(inserted, "seed \(seed) step \(step): duplicate inserted")
                XCTAssertEqual(stored, existing, "seed \(seed) step \(step)")
            } else {
                XCTAssertTrue(inserted, "seed \(seed) step \(step): new key not inserted")
                model[key] = value
                keys.append(key)
            }
            if step == 30_000 || step == 90_000 { copy = (map, model) }
            if step % 40_000 == 39_999 {
                // A sweep in slices removes exactly the entries the predicate names.
                let cutoff = Int64(step / 2)
                var first = 0
                while first < map.shardCount {
                    map.removeAll(inShards: first..<(first + 7)) { _, arrival in arrival < cutoff }
                    first += 7
                }
                model = model.filter { $0.value >= cutoff }
                keys = Array(model.keys)
            }
        }
        XCTAssertEqual(map.count, model.count, "seed \(seed)")
        XCTAssertGreaterThan(map.shardCount, 64, "the map split into many small shards")
        for (key, value) in model { XCTAssertEqual(map[key], value, "seed \(seed)") }
        var seen = 0
        map.forEach { key, value in
            seen += 1
            XCTAssertEqual(model[key], value, "seed \(seed)")
        }
        XCTAssertEqual(seen, model.count, "seed \(seed)")
        // The copy taken at step 90,000 is unchanged by everything after it.
        if let copy {
            XCTAssertEqual(copy.map.count, copy.model.count, "seed \(seed)")
            for (key, value) in copy.model { XCTAssertEqual(copy.map[key], value, "seed \(seed)") }
        }
        XCTAssertNil(map[Hash128(low: 12_345, high: 67_890)])
    }

    func testIdempotencySweepRunsInSlicesAndForgetsOnlyOldKeys() {
        var keys = IdempotencyKeys()
        var random = SplitMix64(seed: 7)
        var old: [Hash128] = []
        var young: [Hash128] = []
        for i in 0..<300_000 {
            let key = Hash128(low: random.next(), high: random.next())
            _ = keys.admit(key, arrivalMilliseconds: i < 150_000 ? 1_000 : 5_000)
            if i < 150_000 { old.append(key) } else { young.append(key) }
        }
        XCTAssertGreaterThan(keys.arrivals.shardCount, IdempotencyKeys.sweepShardsPerCall,
                             "enough shards that one call cannot sweep them all")
        keys.expire(arrivedBefore: 2_000)
        XCTAssertTrue(keys.isSweeping)
        var calls = 1
        while keys.isSweeping {
            keys.expire(arrivedBefore: 2_000 + Int64(calls))  // later calls keep the sweep's cutoff
            calls += 1
        }
        XCTAssertGreaterThan(calls, 1)
        XCTAssertEqual(keys.count, young.count)
        for key in old.prefix(1000) { XCTAssertTrue(keys.admit(key, arrivalMilliseconds: 6_000), "an expired key is new again") }
        for key in young.prefix(1000) { XCTAssertFalse(keys.admit(key, arrivalMilliseconds: 6_000), "a kept key is a duplicate") }
    }

    /// `drain` visits what `forEach` visits and leaves the copy empty; a shard the copy has let
    /// go of changes in place in the owner, while one still shared is copied first.
    func testDrainedCopyHandsTheShardsBackToTheOwner() {
        var random = SplitMix64(seed: 11)
        var owner = FingerprintMap<Int64>(capacity: 16, emptyValue: 0)
        var model: [Hash128: Int64] = [:]
        for i in 0..<50_000 {
            let key = Hash128(low: random.next(), high: random.next())
            _ = owner.insertIfAbsent(key, Int64(i))
            model[key] = Int64(i)
        }
        XCTAssertGreaterThan(owner.shardCount, 64)
        let probe = Hash128(low: random.next(), high: random.next())

        // Shared: the owner's insert copies the probe's shard (its slot array moves).
        var shared = owner
        let before = owner.homeSlotAddress(probe)
        _ = owner.insertIfAbsent(probe, -1)
        XCTAssertNotEqual(owner.homeSlotAddress(probe), before, "a shard shared with a copy is copied before it changes")
        XCTAssertNil(shared[probe], "the copy does not see the owner's change")

        // Drained: every entry visited once, the copy empty; half-way through, a shard the
        // drain has already let go of is the owner's alone again: an insert there changes it
        // in place.
        var visited: [Hash128: Int64] = [:]
        var firstVisited: Hash128?
        var inPlace: Bool?
        shared.drain { key, value in
            visited[key] = value
            if firstVisited == nil { firstVisited = key }
            if visited.count == model.count / 2, let first = firstVisited {
                let sameShard = Hash128(low: first.low ^ 0x5555, high: first.high)  // the shard is chosen by `high`
                let address = owner.homeSlotAddress(sameShard)
                _ = owner.insertIfAbsent(sameShard, -2)
                inPlace = owner.homeSlotAddress(sameShard) == address
            }
        }
        XCTAssertEqual(visited, model)
        XCTAssertEqual(shared.count, 0)
        XCTAssertEqual(inPlace, true, "a shard the drain has visited changes in place in the owner")
        for (key, value) in model { XCTAssertEqual(owner[key], value) }
        XCTAssertEqual(owner[probe], -1)
    }
}

extension FingerprintMapTests {
    /// A full shard's 256 slots of 24 bytes are one allocation of exactly 6 KiB (a size class
    /// of jemalloc's), with no array header that would round it up to 7 KiB. A key whose low
    /// word is 0 has the shard's first slot as its home, so its address is the allocation's.
    func testAFullShardIsOneAllocationOfExactlyItsSlots() {
        var random = SplitMix64(seed: 5)
        var map = FingerprintMap<Int64>(capacity: 16, emptyValue: 0)
        for i in 0..<50_000 { _ = map.insertIfAbsent(Hash128(low: random.next(), high: random.next()), Int64(i)) }
        XCTAssertGreaterThan(map.shardCount, 64)
        let slotsBytes = FingerprintMap<Int64>.shardSlotsMax * 24
        for _ in 0..<16 {
            let base = map.homeSlotAddress(Hash128(low: 0, high: random.next()))
            let usable = mallocUsableSize(UnsafeMutableRawPointer(mutating: base))
            XCTAssertGreaterThanOrEqual(usable, slotsBytes)
            XCTAssertLessThan(usable, slotsBytes + 32, "the slots start their allocation: no header before them")
        }
    }
}

/// glibc's (and jemalloc's) `malloc_usable_size`, which the Glibc module does not export.
@_silgen_name("malloc_usable_size")
private func mallocUsableSize(_ pointer: UnsafeMutableRawPointer?) -> Int
