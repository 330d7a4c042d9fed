import Foundation

/// API keys (SPEC §6): who may write the feed, who may read which events.
///
/// The keys file is a JSON array of `{"key": "...", "role": "feed" | "read" | "admin",
/// "eventIds": [...]}`; `eventIds` limits a read key to those events. A key is presented as
/// `Authorization: Bearer KEY` or HTTP Basic with the key as the user name.
struct KeyStore {
    enum Role: String, Codable {
        case feed, read, admin
    }

    struct Key: Codable, Equatable {
        var key: String
        var role: Role
        var eventIds: [String]?
    }

    struct Principal {
        var role: Role
        /// nil: every event.
        var eventIds: Set<String>?

        var canWriteFeed: Bool { role == .feed || role == .admin }
        var canRead: Bool { role == .read || role == .admin }

        func canRead(eventId: String) -> Bool {
            guard canRead else { return false }
            return eventIds?.contains(eventId) ?? true
        }
    }

    enum LoadError: Error, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case invalid(path: String, reason: String)

        var description: String {
            switch self {
            case .unreadable(let path, let reason): return "cannot read keys file \(path): \(reason)"
            case .invalid(let path, let reason): return "invalid keys file \(path): \(reason)"
            }
        }
    }

    private var principals: [String: Principal] = [:]
    /// The same keys by their bytes, for `authenticate(authorizationBytes:)`.
    private var table = KeyTable()

    init(keys: [Key]) {
        for key in keys {
            principals[key.key] = Principal(role: key.role, eventIds: key.eventIds.map(Set.init))
        }
        table = KeyTable(principals.map { (Array($0.key.utf8), $0.value) })
    }

    var count: Int { principals.count }

    static func load(path: String) throws -> KeyStore {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw LoadError.unreadable(path: path, reason: error.localizedDescription)
        }
        let keys: [Key]
        do {
            keys = try JSONDecoder().decode([Key].self, from: data)
        } catch {
            throw LoadError.invalid(path: path, reason: "expected a JSON array of {\"key\", \"role\": feed|read|admin, \"eventIds\"?}: \(error)")
        }
        for key in keys where key.key.isEmpty || key.key.utf8.count > 256 || key.key.contains(":") {
            throw LoadError.invalid(path: path, reason: "a key must be 1-256 bytes without ':' (got \(key.key.utf8.count) bytes)")
        }
        if Set(keys.map(\.key)).count != keys.count {
            throw LoadError.invalid(path: path, reason: "a key appears twice")
        }
        return KeyStore(keys: keys)
    }

    /// Writes a new keys file with a random feed key and a random admin key (mode 0600).
    static func generate(path: String) throws -> [Key] {
        let keys = [Key(key: "feed_" + randomHex(bytes: 24), role: .feed, eventIds: nil),
                    Key(key: "admin_" + randomHex(bytes: 24), role: .admin, eventIds: nil)]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(keys)
        let created = FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600])
        if !created { throw LoadError.unreadable(path: path, reason: "could not create the file") }
        return keys
    }

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()  // the OS's CSPRNG (getrandom)
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// The principal of an `Authorization` header value given as bytes, or why there is none:
    /// the same answers as `authenticate(authorization:)`, without a String on the way in.
    ///
    /// A value of printable ASCII naming a known key with `Bearer KEY` or `Basic base64(KEY:…)`
    /// (canonical base64) is looked up by its bytes (O(key length)); anything else (a miss, an
    /// error, non-ASCII bytes) takes the String path, so every error message is the one it
    /// gives. Byte equality implies String equality, so a byte hit is the principal the
    /// String lookup would find.
    func authenticate(authorizationBytes authorization: ArraySlice<UInt8>?) -> Result<Principal, APIError> {
        guard let authorization else { return authenticate(authorization: nil) }
        if let key = KeyStore.presentedKey(authorization), let principal = table.lookup(key) {
            return .success(principal)
        }
        return authenticate(authorization: String(decoding: authorization, as: UTF8.self))
    }

    /// The key bytes an Authorization value presents, if it is printable ASCII in one of the
    /// forms the String path reads the same way; nil otherwise (then the String path decides).
    static func presentedKey(_ value: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        // Printable ASCII and tab: every byte is its own Character, so byte positions of
        // " ", ":" and whitespace are where the String path finds them.
        guard value.isPrintableASCIIOrTab, let space = value.firstIndex(of: UInt8(ascii: " ")) else { return nil }
        let scheme = value[value.startIndex..<space]
        let credentials = value[(space + 1)...].trimmingSpacesAndTabs()
        if scheme.equalsIgnoringASCIICase("bearer") { return credentials }
        guard scheme.equalsIgnoringASCIICase("basic"), let decoded = Base64.decodeCanonical(credentials) else { return nil }
        for byte in decoded where byte >= 0x80 { return nil }
        let user = decoded.firstIndex(of: UInt8(ascii: ":")) ?? decoded.endIndex
        return decoded[decoded.startIndex..<user]
    }

    /// The principal of an `Authorization` header value, or why there is none.
    func authenticate(authorization: String?) -> Result<Principal, APIError> {
        guard let authorization, !authorization.isEmpty else {
            return .failure(.unauthorized("Missing API key: send Authorization: Bearer KEY (or HTTP Basic with the key as user name)"))
        }
        let key: String
        if let space = authorization.firstIndex(of: " ") {
            let scheme = authorization[..<space].lowercased()
            let credentials = String(authorization[authorization.index(after: space)...].trimmingHTTPWhitespace)
            switch scheme {
            case "bearer":
                key = credentials
            case "basic":
                guard let data = Data(base64Encoded: credentials), let decoded = String(data: data, encoding: .utf8) else {
                    return .failure(.unauthorized("Malformed HTTP Basic credentials: expected base64 of KEY:"))
                }
                key = String(decoded.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            default:
                return .failure(.unauthorized("Unsupported authorization scheme \(scheme): use Bearer or Basic"))
            }
        } else {
            return .failure(.unauthorized("Malformed Authorization header: use Bearer KEY or Basic credentials"))
        }
        guard let principal = principals[key] else {
            return .failure(.unauthorized("Unknown API key"))
        }
        return .success(principal)
    }
}

/// API keys by their bytes: an open-addressing table of key indices (a power of two, at most
/// half full), built once at start-up and never changed, so a lookup is one hash of the key
/// bytes and a few probes that compare hashes, then the bytes.
struct KeyTable {
    private var keys: [[UInt8]] = []
    private var hashes: [UInt64] = []
    private var principals: [KeyStore.Principal] = []
    /// Index + 1 into `keys`; 0 is empty.
    private var slots: [Int32] = []
    private var mask = 0

    init() {}

    init(_ entries: [([UInt8], KeyStore.Principal)]) {
        var capacity = 4
        while capacity < 2 * entries.count { capacity *= 2 }
        slots = Array(repeating: 0, count: capacity)
        mask = capacity - 1
        for (key, principal) in entries {
            let hash = KeyTable.hash(key[...])
            var slot = Int(truncatingIfNeeded: hash) & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            keys.append(key)
            hashes.append(hash)
            principals.append(principal)
            slots[slot] = Int32(keys.count)
        }
    }

    func lookup(_ key: ArraySlice<UInt8>) -> KeyStore.Principal? {
        guard !slots.isEmpty else { return nil }
        let hash = KeyTable.hash(key)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] != 0 {
            let index = Int(slots[slot]) - 1
            // memcmp rather than `elementsEqual` (a slice iterator, bounds-checked per byte).
            if hashes[index] == hash && keys[index].count == key.count
                && (key.isEmpty || keys[index].withUnsafeBytes({ stored in key.withUnsafeBytes { memcmp(stored.baseAddress!, $0.baseAddress!, $0.count) == 0 } })) {
                return principals[index]
            }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// A 64-bit hash of the bytes, eight at a time (not keyed: the table never changes, so
    /// chosen inputs can only make a lookup probe the few slots that exist).
    static func hash(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.withUnsafeBytes { raw -> UInt64 in
            var hash: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(raw.count)
            var offset = 0
            while offset + 8 <= raw.count {
                hash = (hash ^ raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
                hash ^= hash >> 32
                offset += 8
            }
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while offset < raw.count {
                tail |= UInt64(raw[offset]) << shift
                shift += 8
                offset += 1
            }
            hash = (hash ^ tail) &* 0x9E37_79B9_7F4A_7C15
            return hash ^ (hash >> 29)
        }
    }
}

/// Base64 (RFC 4648 §4) for HTTP Basic credentials, without Foundation.
enum Base64 {
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(index)
        }
        return table
    }()

    /// The decoded bytes of canonical base64: a multiple of four characters from the standard
    /// alphabet, "=" padding only at the end, zero unused bits. nil for anything else
    /// (which more lenient decoders might read one way or another).
    static func decodeCanonical(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var padding = 0
        if text.count >= 4 {
            if text[text.endIndex - 1] == UInt8(ascii: "=") { padding += 1 }
            if text[text.endIndex - 2] == UInt8(ascii: "=") {
                guard padding == 1 else { return nil }
                padding += 1
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 4 * 3)
        var index = text.startIndex
        while index < text.endIndex {
            let isLast = index + 4 == text.endIndex
            let count = isLast ? 4 - padding : 4
            var group: UInt32 = 0
            for offset in 0..<4 {
                let value: UInt8
                if offset < count {
                    value = values[Int(text[index + offset])]
                    if value == 0xFF { return nil }
                } else {
                    value = 0
                }
                group = group << 6 | UInt32(value)
            }
            out.append(UInt8(truncatingIfNeeded: group >> 16))
            if count >= 3 { out.append(UInt8(truncatingIfNeeded: group >> 8)) }
            if count == 4 { out.append(UInt8(truncatingIfNeeded: group)) }
            // Unused bits of a padded group must be zero.
            if count == 3 && group & 0xFF != 0 { return nil }
            if count == 2 && group & 0xFFFF != 0 { return nil }
            index += 4
        }
        return out
    }
}
