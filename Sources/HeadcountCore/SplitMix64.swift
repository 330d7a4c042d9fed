/// SplitMix64 (Steele, Lea, Flood): a small, fast, seedable generator. Everything random in
/// Headcount's tests, simulations, benchmarks and load generator draws from it, so a printed
/// seed replays the same run on every platform (never the system generator).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<bound` (modulo bias is irrelevant at these sizes).
    @inline(__always)
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
