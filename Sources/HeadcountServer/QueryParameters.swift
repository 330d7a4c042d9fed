/// A decoded URL query string: `name=value` pairs in order, percent-decoded, `+` as space.
///
/// Split on the bytes `&` and `=` (as the URL standard's urlencoded parser does), not on
/// `Character`s: one pass over the UTF-8, and a name or value with no escape becomes a
/// `String` straight from its bytes. A statistics query's parameters (up to 8 event ids and a
/// time) were a quarter of its handler's time when split as `Character`s (docs/BENCHMARKS.md,
/// session 12).
struct QueryParameters {
    private(set) var pairs: [(name: String, value: String)] = []

    /// nil when the query is not valid percent-encoded UTF-8.
    init?(_ query: String) {
        guard !query.isEmpty else { return }
        var query = query
        var found: [(name: String, value: String)] = []
        let valid = query.withUTF8 { bytes -> Bool in
            var start = 0
            while start < bytes.count {
                var end = start
                var equals = -1
                while end < bytes.count && bytes[end] != UInt8(ascii: "&") {
                    if equals < 0 && bytes[end] == UInt8(ascii: "=") { equals = end }
                    end += 1
                }
                if end > start {  // empty parts ("a=1&&b=2") are skipped
                    let nameEnd = equals < 0 ? end : equals
                    guard let name = QueryParameters.decode(UnsafeBufferPointer(rebasing: bytes[start..<nameEnd]), plusAsSpace: true),
                          let value = equals < 0 ? "" : QueryParameters.decode(UnsafeBufferPointer(rebasing: bytes[(equals + 1)..<end]), plusAsSpace: true)
                    else { return false }
                    found.append((name, value))
                }
                start = end + 1
            }
            return true
        }
        guard valid else { return nil }
        pairs = found
    }

    func values(_ name: String) -> [String] {
        var values: [String] = []
        for pair in pairs where pair.name == name { values.append(pair.value) }
        return values
    }

    func first(_ name: String) -> String? { pairs.first { $0.name == name }?.value }

    /// Percent-decodes; nil for a bad escape or bytes that are not UTF-8.
    static func percentDecode<S: StringProtocol>(_ text: S, plusAsSpace: Bool) -> String? {
        if let decoded = text.utf8.withContiguousStorageIfAvailable({ decode($0, plusAsSpace: plusAsSpace) }) {
            return decoded
        }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { decode($0, plusAsSpace: plusAsSpace) }
    }

    /// Percent-decodes UTF-8 bytes; nil for a bad escape or a result that is not UTF-8.
    private static func decode(_ bytes: UnsafeBufferPointer<UInt8>, plusAsSpace: Bool) -> String? {
        let escaped = bytes.contains { $0 == UInt8(ascii: "%") || (plusAsSpace && $0 == UInt8(ascii: "+")) }
        guard escaped else { return String(validating: bytes, as: UTF8.self) }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "%"):
                guard index + 1 < bytes.count, let high = hexValue(bytes[index]), let low = hexValue(bytes[index + 1]) else { return nil }
                decoded.append(high << 4 | low)
                index += 2
            case UInt8(ascii: "+") where plusAsSpace:
                decoded.append(UInt8(ascii: " "))
            default:
                decoded.append(byte)
            }
        }
        return String(validating: decoded, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
