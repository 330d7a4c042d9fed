import Foundation

/// A random test's seed: HEADCOUNT_TEST_SEED if set, else one from the clock; printed with
/// how to replay it.
public func testSeed(_ name: String) -> UInt64 {
    let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) }
        ?? UInt64(Date().timeIntervalSince1970 * 1000) & 0xFFFF_FFFF
    print("\(name) seed: \(seed) (replay with HEADCOUNT_TEST_SEED=\(seed))")
    return seed
}
