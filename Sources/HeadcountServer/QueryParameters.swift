/// A decoded URL query string: `name=value` pairs in order, percent-decoded, `+` as space.
struct QueryParameters {
    private(set) var pairs: [(name: String, value: String)] = []

    /// nil when the query is not valid percent-encoded UTF-8.
    init?(_ query: String) {
        guard !query.isEmpty else { return }
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = QueryParameters.percentDecode(pieces[0], plusAsSpace: true) else { return nil }
            let value = pieces.count > 1 ? QueryParameters.percentDecode(pieces[1], plusAsSpace: true) : ""
            guard let value else { return nil }
            pairs.append((name, value))
        }
    }

    func values(_ name: String) -> [String] { pairs.filter { $0.name == name }.map(\.value) }
    func first(_ name: String) -> String? { pairs.first { $0.name == name }?.value }

    /// Percent-decodes; nil for a bad escape or bytes that are not UTF-8.
    static func percentDecode<S: StringProtocol>(_ text: S, plusAsSpace: Bool) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusAsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
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
