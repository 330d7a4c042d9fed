/// Little-endian binary encoding helpers for the engine's snapshot payload
/// (docs/FORMATS.md, "Engine state").
public struct ByteWriter {
    public var bytes: [UInt8]

    public init(capacity: Int = 4096) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always) public mutating func u8(_ value: UInt8) { bytes.append(value) }

    @inline(__always) public mutating func u64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always) public mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }

    /// Unsigned LEB128.
    @inline(__always) public mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    public mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func blob(_ value: [UInt8]) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// Hands what has been written so far to `emit` and starts over (keeping the buffer), if
    /// it holds at least `threshold` bytes: for output produced in pieces of about that size.
    @inline(__always) public mutating func drain(ifAtLeast threshold: Int, into emit: (UnsafeRawBufferPointer) -> Void) {
        if bytes.count >= threshold { drainAll(into: emit) }
    }

    /// Hands everything written so far to `emit` (if anything) and starts over.
    public mutating func drainAll(into emit: (UnsafeRawBufferPointer) -> Void) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { emit($0) }
        bytes.removeAll(keepingCapacity: true)
    }
}

/// Reads what `ByteWriter` wrote; every read is bounds-checked and throws on bad data.
public struct ByteReader {
    public struct Malformed: Error, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "malformed data at offset \(offset): \(reason)" }
    }

    private let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var isAtEnd: Bool { offset == bytes.count }

    private func need(_ count: Int) throws {
        if count < 0 || bytes.count - offset < count {
            throw Malformed(offset: offset, reason: "needs \(count) more bytes, has \(bytes.count - offset)")
        }
    }

    public mutating func u8() throws -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u64() throws -> UInt64 {
        try need(8)
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    public mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }

    public mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try u8()
            if shift == 63 && byte > 1 { throw Malformed(offset: offset - 1, reason: "varint overflows 64 bits") }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw Malformed(offset: offset, reason: "varint too long") }
        }
    }

    /// A count that must fit in what is left (each item at least `minimumItemBytes`).
    public mutating func count(minimumItemBytes: Int = 1) throws -> Int {
        let value = try varint()
        let left = UInt64(bytes.count - offset)
        guard value <= left / UInt64(max(minimumItemBytes, 1)) + (minimumItemBytes == 0 ? left : 0) else {
            throw Malformed(offset: offset, reason: "count \(value) exceeds the remaining \(left) bytes")
        }
        return Int(value)
    }

    public mutating func string(maxBytes: Int = 1 << 20) throws -> String {
        let length = try count()
        guard length <= maxBytes else { throw Malformed(offset: offset, reason: "string of \(length) bytes") }
        try need(length)
        defer { offset += length }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        guard let text = String(validating: slice, as: UTF8.self) else {
            throw Malformed(offset: offset, reason: "string is not valid UTF-8")
        }
        return text
    }

    public mutating func blob() throws -> UnsafeRawBufferPointer {
        let length = try count()
        try need(length)
        defer { offset += length }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
    }
}
