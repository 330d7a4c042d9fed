/// MurmurHash3 x64 128-bit (Austin Appleby, public domain), used where the engine keeps a
/// fixed-width fingerprint instead of a string: idempotency keys (128 bits, so a false
/// duplicate needs ~2^64 ids) and device ids within one ticket (64 bits, compared only among
/// the handful of devices of that ticket).
public struct Hash128: Hashable, Sendable {
    public var low: UInt64
    public var high: UInt64

    public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    public static func hash(_ text: String) -> Hash128 {
        // Native strings (the decoder's) hash in place; `var` + `withUTF8` copied the string
        // (a retain and a release per call, measured at ~2.4% of the loop's CPU in batched ingest).
        if let hashed = text.utf8.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) {
            return hashed
        }
        var text = text
        return text.withUTF8 { hash(UnsafeRawBufferPointer($0)) }
    }

    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0x4865_6164_636f_756e) -> Hash128 {
        let c1: UInt64 = 0x87c3_7b91_1142_53d5
        let c2: UInt64 = 0x4cf5_ad43_2745_937f
        var h1 = seed
        var h2 = seed
        let length = bytes.count
        let blockCount = length / 16
        for block in 0..<blockCount {
            var k1 = bytes.loadUnaligned(fromByteOffset: block * 16, as: UInt64.self).littleEndian
            var k2 = bytes.loadUnaligned(fromByteOffset: block * 16 + 8, as: UInt64.self).littleEndian
            k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1
            h1 = rotl(h1, 27); h1 &+= h2; h1 = h1 &* 5 &+ 0x52dc_e729
            k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2
            h2 = rotl(h2, 31); h2 &+= h1; h2 = h2 &* 5 &+ 0x3849_5ab5
        }
        let tail = blockCount * 16
        var k1: UInt64 = 0
        var k2: UInt64 = 0
        let remaining = length & 15
        if remaining > 8 {
            for i in stride(from: remaining - 1, through: 8, by: -1) {
                k2 ^= UInt64(bytes[tail + i]) << UInt64((i - 8) * 8)
            }
            k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2
        }
        if remaining > 0 {
            for i in stride(from: min(remaining, 8) - 1, through: 0, by: -1) {
                k1 ^= UInt64(bytes[tail + i]) << UInt64(i * 8)
            }
            k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1
        }
        h1 ^= UInt64(length); h2 ^= UInt64(length)
        h1 &+= h2; h2 &+= h1
        h1 = fmix(h1); h2 = fmix(h2)
        h1 &+= h2; h2 &+= h1
        return Hash128(low: h1, high: h2)
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always)
    private static func fmix(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33
        k &*= 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k &*= 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }
}
