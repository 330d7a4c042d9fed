import CCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every WAL record and
/// snapshot file. With the CPU's `crc32` instruction where there is one (SSE 4.2, through the
/// small C target `CCRC32C`): eight bytes a cycle or so. Otherwise written by hand, because no
/// library for it is available here; table-driven, slicing-by-8: eight 256-entry tables let
/// the loop consume eight bytes per step with eight independent lookups instead of eight
/// dependent ones.
///
/// Check value: `CRC32C.checksum("123456789".utf8)` is `0xE3069283`.
public enum CRC32C {
    /// The CRC-32C of `bytes`. To checksum data given in pieces, pass the previous result as
    /// `continuing`: `checksum(b, continuing: checksum(a)) == checksum(a + b)`.
    ///
    /// O(n), about one table-lookup round per eight bytes.
    @inlinable
    public static func checksum<Bytes: Sequence>(_ bytes: Bytes, continuing previous: UInt32 = 0) -> UInt32
    where Bytes.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ buffer in
            checksum(UnsafeRawBufferPointer(buffer), continuing: previous)
        }) {
            return result
        }
        let copy = Array(bytes)
        return copy.withUnsafeBytes { checksum($0, continuing: previous) }
    }

    /// The CRC-32C of the bytes in `buffer` (see `checksum(_:continuing:)`): with the CPU's
    /// instruction where there is one (x86-64 SSE 4.2, several times faster), else the tables.
    public static func checksum(_ buffer: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        guard isHardwareAvailable, buffer.count > 0, let base = buffer.baseAddress else {
            return tableChecksum(buffer, continuing: previous)
        }
        return ~hc_crc32c_hardware_update(~previous, base, buffer.count)
    }

    /// Whether `checksum` uses the CPU's instruction.
    public static let isHardwareAvailable = hc_crc32c_hardware_available() != 0

    /// The table-driven CRC-32C (slicing-by-8), for CPUs without the instruction.
    static func tableChecksum(_ buffer: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        var crc = ~previous
        let count = buffer.count
        guard count > 0, let base = buffer.baseAddress else { return previous }
        return crc32cTables.withUnsafeBufferPointer { tables -> UInt32 in
            let t = tables.baseAddress!
            var offset = 0
            // Eight bytes at a time. The byte at the lowest address has the most bytes after
            // it in the block, so it goes through the table that shifts it furthest (t7).
            while count - offset >= 8 {
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                let x = word ^ UInt64(crc)
                crc = t[7 * 256 + Int(x & 0xFF)]
                    ^ t[6 * 256 + Int((x >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((x >> 16) & 0xFF)]
                    ^ t[4 * 256 + Int((x >> 24) & 0xFF)]
                    ^ t[3 * 256 + Int((x >> 32) & 0xFF)]
                    ^ t[2 * 256 + Int((x >> 40) & 0xFF)]
                    ^ t[1 * 256 + Int((x >> 48) & 0xFF)]
                    ^ t[Int(x >> 56)]
                offset += 8
            }
            while offset < count {
                let byte = base.load(fromByteOffset: offset, as: UInt8.self)
                crc = t[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
                offset += 1
            }
            return ~crc
        }
    }
}

/// Tables 0…7, 256 entries each, flat. Table 0 is the classic byte-at-a-time table; table k
/// advances table k−1's entry by one more zero byte.
private let crc32cTables: [UInt32] = {
    let polynomial: UInt32 = 0x82F6_3B78
    var tables = [UInt32](repeating: 0, count: 8 * 256)
    for index in 0..<256 {
        var crc = UInt32(index)
        for _ in 0..<8 {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1
        }
        tables[index] = crc
    }
    for table in 1..<8 {
        for index in 0..<256 {
            let previous = tables[(table - 1) * 256 + index]
            tables[table * 256 + index] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
        }
    }
    return tables
}()
