@testable import HeadcountStorage
import HeadcountCore
import XCTest

final class CRC32CTests: XCTestCase {
    func testCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
    }

    func testKnownVectors() {
        // RFC 3720 (iSCSI) appendix B.4.
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
    }

    /// Slicing-by-8 against the plain bit-by-bit definition, for every length and alignment
    /// around the 8-byte blocks, and piecewise computation against whole.
    func testMatchesBitwiseDefinition() {
        func bitwise(_ bytes: ArraySlice<UInt8>) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return ~crc
        }
        var random = SplitMix64(seed: 7)
        let data = (0..<300).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        for start in 0..<9 {
            for end in start...data.count where end - start < 40 || end == data.count {
                let slice = data[start..<end]
                XCTAssertEqual(CRC32C.checksum(slice), bitwise(slice), "bytes \(start)..<\(end)")
            }
        }
        for split in [0, 1, 7, 8, 9, 150, 300] {
            XCTAssertEqual(CRC32C.checksum(data[split...], continuing: CRC32C.checksum(data[..<split])),
                           CRC32C.checksum(data))
        }
    }

    /// The instruction (when this CPU has it) against the tables, for every length and
    /// alignment around the 8-byte words, and piecewise.
    func testHardwareMatchesTables() throws {
        try XCTSkipUnless(CRC32C.isHardwareAvailable, "no CRC-32C instruction on this CPU")
        var random = SplitMix64(seed: 11)
        let data = (0..<700).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        data.withUnsafeBytes { raw in
            for start in 0..<17 {
                for end in start...raw.count where end - start < 70 || end == raw.count {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                    let seed = UInt32(truncatingIfNeeded: random.next())
                    XCTAssertEqual(CRC32C.checksum(slice, continuing: seed), CRC32C.tableChecksum(slice, continuing: seed),
                                   "bytes \(start)..<\(end)")
                }
            }
        }
    }
}
