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

    init(keys: [Key]) {
        for key in keys {
            principals[key.key] = Principal(role: key.role, eventIds: key.eventIds.map(Set.init))
        }
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
