/// A small, fast, append-only JSON writer shared by every answer the server writes.
///
/// Commas and colons are inserted automatically: call `beginObject()`, then alternately
/// `key(_:)` and one value (a scalar or a nested container), then `endObject()`; arrays
/// take values only. Strings are escaped per RFC 8259 (`"` `\` and every control character;
/// `\b \f \n \r \t` short forms, the others as `\u00XX`). The output is always valid UTF-8:
/// `String`s are UTF-8 by construction, and `string(utf8:)` replaces each byte of an invalid
/// sequence by U+FFFD.
///
/// The writer does not check that calls are well nested (that is the caller's job, and what
/// the unit tests are for); it never traps on any input.
public struct JSONWriter {
    /// The JSON text written so far.
    public var bytes: [UInt8]
    /// Whether the current container already holds an element (a comma goes before the next).
    @usableFromInline internal var hasElement = false
    /// A key was just written: the next value follows its colon, no comma.
    @usableFromInline internal var afterKey = false

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    // MARK: containers

    @inlinable
    public mutating func beginObject() {
        valuePrefix()
        bytes.append(UInt8(ascii: "{"))
        hasElement = false
    }

    @inlinable
    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        // Whatever the parent held before, it now holds this container.
        hasElement = true
        afterKey = false
    }

    @inlinable
    public mutating func beginArray() {
        valuePrefix()
        bytes.append(UInt8(ascii: "["))
        hasElement = false
    }

    @inlinable
    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        hasElement = true
        afterKey = false
    }

    // MARK: keys and values

    /// Writes an object member name; the next call writes its value.
    public mutating func key(_ name: String) {
        if hasElement { bytes.append(UInt8(ascii: ",")) }
        var name = name
        name.withUTF8 { appendQuoted(UnsafeRawBufferPointer($0), validate: false) }
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    /// Writes an object member name given already quoted and followed by its colon
    /// (`"name":`, no escaping needed); the next call writes its value.
    @inlinable
    public mutating func key(quotedWithColon name: UnsafeRawBufferPointer) {
        if hasElement { bytes.append(UInt8(ascii: ",")) }
        bytes.append(contentsOf: name)
        afterKey = true
    }

    public mutating func string(_ value: String) {
        valuePrefix()
        var value = value
        value.withUTF8 { appendQuoted(UnsafeRawBufferPointer($0), validate: false) }
        hasElement = true
    }

    /// Writes a string given as UTF-8 bytes; invalid UTF-8 is replaced (U+FFFD per bad byte).
    public mutating func string(utf8 value: UnsafeRawBufferPointer) {
        valuePrefix()
        appendQuoted(value, validate: true)
        hasElement = true
    }

    public mutating func int(_ value: Int64) {
        valuePrefix()
        appendDecimal(value)
        hasElement = true
    }

    public mutating func bool(_ value: Bool) {
        valuePrefix()
        if value {
            bytes.append(contentsOf: [0x74, 0x72, 0x75, 0x65])  // true
        } else {
            bytes.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])  // false
        }
        hasElement = true
    }

    public mutating func null() {
        valuePrefix()
        bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])  // null
        hasElement = true
    }

    /// Writes an already-valid JSON value (an object, array, string, number…) as is.
    public mutating func raw(_ json: String) {
        valuePrefix()
        bytes.append(contentsOf: json.utf8)
        hasElement = true
    }

    /// Writes an already-valid JSON value given as UTF-8 bytes, as is.
    public mutating func raw(utf8 json: UnsafeRawBufferPointer) {
        valuePrefix()
        bytes.append(contentsOf: json)
        hasElement = true
    }

    // MARK: internals

    @inlinable @inline(__always)
    internal mutating func valuePrefix() {
        if afterKey {
            afterKey = false
        } else if hasElement {
            bytes.append(UInt8(ascii: ","))
        }
    }

    @usableFromInline
    internal mutating func appendDecimal(_ value: Int64) {
        if value >= 0 && value < 10 {
            bytes.append(0x30 &+ UInt8(truncatingIfNeeded: value))
            return
        }
        var magnitude = value.magnitude
        // 20 digits hold UInt64.max; the sign goes in front.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var index = 24
            while magnitude > 0 {
                index -= 1
                buffer[index] = 0x30 &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            }
            if value < 0 {
                index -= 1
                buffer[index] = UInt8(ascii: "-")
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[index..<24]))
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `"…"` with the content escaped. With `validate`, bytes that are not part of a
    /// well-formed UTF-8 sequence each become U+FFFD.
    private mutating func appendQuoted(_ source: UnsafeRawBufferPointer, validate: Bool) {
        bytes.append(UInt8(ascii: "\""))
        let count = source.count
        var runStart = 0
        var index = 0
        while index < count {
            let byte = source[index]
            if byte >= 0x20 && byte != 0x22 && byte != 0x5C && byte < 0x80 {
                index += 1
                continue
            }
            if byte >= 0x80 {
                if !validate {
                    index += 1
                    continue
                }
                let length = JSONWriter.utf8SequenceLength(source, at: index)
                if length > 0 {
                    index += length
                    continue
                }
            }
            // Flush the clean run, then write the escape (or the replacement character).
            if index > runStart {
                bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: source[runStart..<index]))
            }
            switch byte {
            case 0x22: bytes.append(contentsOf: [0x5C, 0x22])
            case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x08: bytes.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x80...:
                bytes.append(contentsOf: [0xEF, 0xBF, 0xBD])  // U+FFFD
            default:
                let hex = JSONWriter.hexDigits
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30,
                                          hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            }
            index += 1
            runStart = index
        }
        if count > runStart {
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: source[runStart..<count]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// The length of the well-formed UTF-8 sequence starting at `index` (whose first byte is
    /// ≥ 0x80), or 0 if it is not well formed (RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF).
    private static func utf8SequenceLength(_ source: UnsafeRawBufferPointer, at index: Int) -> Int {
        let count = source.count
        let first = source[index]
        @inline(__always) func continuation(_ offset: Int) -> Bool {
            index + offset < count && source[index + offset] & 0xC0 == 0x80
        }
        switch first {
        case 0xC2...0xDF:
            return continuation(1) ? 2 : 0
        case 0xE0...0xEF:
            guard continuation(1), continuation(2) else { return 0 }
            let second = source[index + 1]
            if first == 0xE0 && second < 0xA0 { return 0 }  // overlong
            if first == 0xED && second >= 0xA0 { return 0 }  // surrogate
            return 3
        case 0xF0...0xF4:
            guard continuation(1), continuation(2), continuation(3) else { return 0 }
            let second = source[index + 1]
            if first == 0xF0 && second < 0x90 { return 0 }  // overlong
            if first == 0xF4 && second >= 0x90 { return 0 }  // > U+10FFFF
            return 4
        default:
            return 0
        }
    }
}
