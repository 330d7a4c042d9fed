/// Namespace for the internals of `StatusChangeLog` (kept apart from the rest of the module).
enum SCL {}

extension SCL {
    /// Interned byte strings: ids 1, 2, … in order of first interning (0 means "absent").
    /// All bytes live in one arena, so a string costs its bytes + 8 (end offset) + ~8 (hash
    /// slot at load ≤ 1/2), with no per-string allocation.
    struct StringPool {
        private(set) var arena: [UInt8] = []
        /// `ends[i]` is the end offset of string `i` (1-based); `ends[0] == 0`.
        private(set) var ends: [Int] = [0]
        /// Open addressing, linear probing: 0 = empty, otherwise a string id.
        private var table: [UInt32] = Array(repeating: 0, count: 16)

        var count: Int { ends.count - 1 }

        init() {}

        /// Reserves room for `strings` strings of `bytes` total.
        init(reservingStrings strings: Int, bytes: Int) {
            arena.reserveCapacity(bytes)
            ends.reserveCapacity(strings + 1)
            var size = 16
            while size < strings * 2 + 2 { size <<= 1 }
            table = Array(repeating: 0, count: size)
        }

        @inline(__always)
        func range(_ id: UInt32) -> Range<Int> {
            ends[Int(id) - 1]..<ends[Int(id)]
        }

        @inline(__always)
        func length(_ id: UInt32) -> Int {
            ends[Int(id)] - ends[Int(id) - 1]
        }

        func withBytes<R>(_ id: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            let range = self.range(id)
            return try arena.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
        }

        func string(_ id: UInt32) -> String {
            withBytes(id) { String(decoding: $0, as: UTF8.self) }
        }

        func find(_ value: String) -> UInt32? {
            var value = value
            return value.withUTF8 { find(bytes: UnsafeRawBufferPointer($0)) }
        }

        func find(bytes: UnsafeRawBufferPointer) -> UInt32? {
            let mask = table.count - 1
            var slot = StringPool.hash(bytes) & mask
            return arena.withUnsafeBytes { arenaBytes -> UInt32? in
                while true {
                    let id = table[slot]
                    if id == 0 { return nil }
                    if equal(id, bytes, arenaBytes) { return id }
                    slot = (slot + 1) & mask
                }
            }
        }

        mutating func intern(_ value: String) -> UInt32 {
            var value = value
            return value.withUTF8 { intern(bytes: UnsafeRawBufferPointer($0)) }
        }

        mutating func intern(bytes: UnsafeRawBufferPointer) -> UInt32 {
            if (count + 1) * 2 > table.count { grow() }
            let mask = table.count - 1
            var slot = StringPool.hash(bytes) & mask
            let found: UInt32? = arena.withUnsafeBytes { arenaBytes in
                while true {
                    let id = table[slot]
                    if id == 0 { return nil }
                    if equal(id, bytes, arenaBytes) { return id }
                    slot = (slot + 1) & mask
                }
            }
            if let found { return found }
            arena.append(contentsOf: bytes)
            ends.append(arena.count)
            let id = UInt32(truncatingIfNeeded: count)
            table[slot] = id
            return id
        }

        private mutating func grow() {
            var size = table.count * 2
            while size < (count + 1) * 2 { size <<= 1 }
            var newTable = [UInt32](repeating: 0, count: size)
            let mask = size - 1
            arena.withUnsafeBytes { arenaBytes in
                for id in stride(from: 1, through: count, by: 1) {
                    let range = ends[id - 1]..<ends[id]
                    var slot = StringPool.hash(UnsafeRawBufferPointer(rebasing: arenaBytes[range])) & mask
                    while newTable[slot] != 0 { slot = (slot + 1) & mask }
                    newTable[slot] = UInt32(truncatingIfNeeded: id)
                }
            }
            table = newTable
        }

        @inline(__always)
        private func equal(_ id: UInt32, _ bytes: UnsafeRawBufferPointer,
                           _ arenaBytes: UnsafeRawBufferPointer) -> Bool {
            let start = ends[Int(id) - 1]
            let end = ends[Int(id)]
            guard end - start == bytes.count else { return false }
            var index = 0
            while index < bytes.count {
                if arenaBytes[start + index] != bytes[index] { return false }
                index += 1
            }
            return true
        }

        @inline(__always)
        static func hash(_ bytes: UnsafeRawBufferPointer) -> Int {
            var hasher = Hasher()
            hasher.combine(bytes: bytes)
            return hasher.finalize()
        }

        /// Lexicographic comparison of the UTF-8 bytes of two interned strings: <0, 0, >0.
        @inline(__always)
        func compare(_ a: UInt32, _ b: UInt32) -> Int {
            if a == b { return 0 }
            return arena.withUnsafeBytes { arenaBytes in
                StringPool.compare(arenaBytes, range(a), arenaBytes, range(b))
            }
        }

        @inline(__always)
        static func compare(_ x: UnsafeRawBufferPointer, _ xr: Range<Int>,
                            _ y: UnsafeRawBufferPointer, _ yr: Range<Int>) -> Int {
            let n = min(xr.count, yr.count)
            var i = 0
            while i < n {
                let p = x[xr.lowerBound + i]
                let q = y[yr.lowerBound + i]
                if p != q { return p < q ? -1 : 1 }
                i += 1
            }
            return xr.count - yr.count
        }

        /// Its size in a snapshot: a count, then each string's length and bytes.
        var encodedBytes: Int { 4 + count * 4 + arena.count }

        /// Approximate heap bytes.
        var footprint: Int {
            arena.capacity + ends.capacity * 8 + table.capacity * 4 + 3 * 32
        }
    }
}
