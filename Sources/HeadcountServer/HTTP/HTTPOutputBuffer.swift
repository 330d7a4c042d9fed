import Glibc

/// A growable byte buffer in malloc'd memory with a stable address while nothing is appended:
/// the bytes handed to `uv_write` stay valid until its callback.
final class HTTPOutputBuffer {
    @exclusivity(unchecked) private(set) var base: UnsafeMutablePointer<UInt8>?
    @exclusivity(unchecked) var count = 0
    @exclusivity(unchecked) private(set) var capacity = 0

    init() {}

    deinit { free(base) }

    func reserve(extra: Int) {
        let needed = count + extra
        if needed <= capacity { return }
        var newCapacity = Swift.max(capacity * 2, 1024)
        while newCapacity < needed { newCapacity *= 2 }
        guard let grown = realloc(base, newCapacity) else { fatalError("out of memory (output buffer of \(newCapacity) bytes)") }
        base = grown.assumingMemoryBound(to: UInt8.self)
        capacity = newCapacity
    }

    /// Empties the buffer; gives memory back if it grew beyond `keep` bytes.
    func reset(keepingAtMost keep: Int) {
        count = 0
        if capacity > keep {
            free(base)
            base = nil
            capacity = 0
        }
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        if count == capacity { reserve(extra: 1) }
        base![count] = byte
        count += 1
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(extra: bytes.count)
        UnsafeMutableRawPointer(base! + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    func append(_ string: StaticString) {
        append(UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }

    func append(_ string: String) {
        let done: Void? = string.utf8.withContiguousStorageIfAvailable { append(UnsafeRawBufferPointer($0)) }
        if done == nil {
            reserve(extra: string.utf8.count)
            for byte in string.utf8 { append(byte) }
        }
    }

    /// Appends a header name or value with CR, LF and NUL replaced by spaces (no response splitting).
    func appendHeaderText(_ string: String) {
        var clean = true
        for byte in string.utf8 where byte == 0x0D || byte == 0x0A || byte == 0 { clean = false; break }
        if clean { append(string); return }
        for byte in string.utf8 { append(byte == 0x0D || byte == 0x0A || byte == 0 ? 0x20 : byte) }
    }

    func appendDecimal(_ value: Int) {
        if value < 0 { append(UInt8(ascii: "-")); appendDecimal(UInt64(-value)); return }
        appendDecimal(UInt64(value))
    }

    func appendDecimal(_ value: UInt64) {
        if value < 10 { append(UInt8(ascii: "0") + UInt8(value)); return }
        var v = value
        var length = 0
        var probe = value
        while probe > 0 { length += 1; probe /= 10 }
        reserve(extra: length)
        var index = count + length - 1
        while v > 0 {
            base![index] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
            index -= 1
        }
        count += length
    }
}
