import Glibc

// Value types of the HTTP/1.1 layer: limits, requests, responses.

/// Every limit the HTTP layer enforces. All explicit, all configurable.
struct HTTPServerLimits: Sendable {
    /// Request line plus headers. Over it: 431 and close.
    var headerBytesMax = 16 * 1024
    /// Body bytes (Content-Length, or the chunked total). Over it: 413 and close, as soon as known.
    var bodyBytesMax = 16 * 1024 * 1024
    /// Open connections. Beyond it a new connection is accepted and closed at once.
    var connectionsMax = 10_000
    /// Parsed-but-unanswered requests per connection; at it, the connection stops reading until responses drain.
    var pipelinedRequestsMax = 128
    /// Response bytes queued for one connection (a client that does not read); at it, the connection stops reading.
    var outputBytesHighWater = 4 * 1024 * 1024
    /// A keep-alive connection with nothing in flight is closed silently after this long.
    /// Also: a write that makes no progress for this long closes the connection.
    var idleTimeoutMilliseconds = 60_000
    /// A request started but not complete after this long: 408 and close (slowloris).
    var requestTimeoutMilliseconds = 30_000
    /// After the last response of a closing connection: half-close, then read and discard for at most this
    /// long before closing, so the client sees the response rather than a reset.
    var lingerMilliseconds = 2_000
    /// Read buffer shared by every connection of the server (one per loop).
    var readBufferBytes = 64 * 1024

    init() {}
}

enum HTTPMethod: Hashable, Sendable, CustomStringConvertible {
    case get, post, put, delete, head, options, patch
    case other(String)

    var name: String {
        switch self {
        case .get: return "GET"
        case .post: return "POST"
        case .put: return "PUT"
        case .delete: return "DELETE"
        case .head: return "HEAD"
        case .options: return "OPTIONS"
        case .patch: return "PATCH"
        case .other(let name): return name
        }
    }

    var description: String { name }
}

/// One header of a request: byte ranges of its lowercased name and of its value (without
/// surrounding whitespace) in the request's head bytes.
struct HTTPHeaderField: Sendable, Equatable {
    var nameStart: Int32
    var nameEnd: Int32
    var valueStart: Int32
    var valueEnd: Int32
}

/// Request headers in arrival order, kept as bytes: the connection parses a request's head
/// into one reusable buffer and records (name, value) ranges, so a request costs no String
/// per header. Names are lowercased ASCII. Handlers look a header up by its lowercase name
/// (`value("authorization")`, O(headers)); Strings are made only when asked for
/// (`self["name"]`, iteration), which rare paths and tests do.
struct HTTPHeaders: Sequence, Sendable, CustomStringConvertible {
    typealias Element = (name: String, value: String)
    /// The request's head bytes (also holding its URL); fields point into them.
    private(set) var bytes: [UInt8]
    private(set) var fields: [HTTPHeaderField]

    init() { bytes = []; fields = [] }
    init(_ fields: [(String, String)]) {
        self.init()
        for (name, value) in fields { add(name: name, value: value) }
    }
    /// Names must already be lowercased.
    init(lowercased fields: [Element]) {
        self.init()
        for field in fields { append(nameBytes: field.name.utf8, value: field.value) }
    }
    /// Ranges into `bytes`, names lowercased (the connection's parser).
    init(bytes: [UInt8], fields: [HTTPHeaderField]) {
        self.bytes = bytes
        self.fields = fields
    }

    var count: Int { fields.count }
    var isEmpty: Bool { fields.isEmpty }

    mutating func add(name: String, value: String) { append(nameBytes: name.lowercased().utf8, value: value) }

    private mutating func append(nameBytes: String.UTF8View, value: String) {
        let nameStart = Int32(bytes.count)
        bytes.append(contentsOf: nameBytes)
        let nameEnd = Int32(bytes.count)
        bytes.append(contentsOf: value.utf8)
        fields.append(HTTPHeaderField(nameStart: nameStart, nameEnd: nameEnd, valueStart: nameEnd, valueEnd: Int32(bytes.count)))
    }

    /// The value bytes of the first header with this name (given in lowercase ASCII), or nil.
    /// No String, no allocation.
    @inline(__always)
    func value(_ lowercaseName: StaticString) -> ArraySlice<UInt8>? {
        guard let index = firstIndex(lowercaseName) else { return nil }
        let field = fields[index]
        return bytes[Int(field.valueStart)..<Int(field.valueEnd)]
    }

    /// The index in `fields` of the first header with this name (given in lowercase ASCII).
    func firstIndex(_ lowercaseName: StaticString) -> Int? {
        let wanted = UnsafeRawBufferPointer(start: lowercaseName.utf8Start, count: lowercaseName.utf8CodeUnitCount)
        return firstIndex(wanted)
    }

    private func firstIndex(_ wanted: UnsafeRawBufferPointer) -> Int? {
        bytes.withUnsafeBytes { storage -> Int? in
            for (index, field) in fields.enumerated() where Int(field.nameEnd - field.nameStart) == wanted.count {
                if wanted.count == 0 || memcmp(storage.baseAddress! + Int(field.nameStart), wanted.baseAddress!, wanted.count) == 0 {
                    return index
                }
            }
            return nil
        }
    }

    /// The name and value of a field, as Strings.
    func element(_ field: HTTPHeaderField) -> Element {
        (name: String(decoding: bytes[Int(field.nameStart)..<Int(field.nameEnd)], as: UTF8.self),
         value: String(decoding: bytes[Int(field.valueStart)..<Int(field.valueEnd)], as: UTF8.self))
    }

    /// The first value of a header, by case-insensitive name (a String: not for hot paths).
    subscript(_ name: String) -> String? {
        var lower = name.lowercased()
        let index = lower.withUTF8 { firstIndex(UnsafeRawBufferPointer($0)) }
        return index.map { element(fields[$0]).value }
    }

    /// Every value of a header, by case-insensitive name.
    func values(_ name: String) -> [String] {
        let lower = name.lowercased()
        return map { $0 }.filter { $0.name == lower }.map(\.value)
    }

    func makeIterator() -> LazyMapSequence<[HTTPHeaderField], Element>.Iterator {
        let headers = self
        return fields.lazy.map { headers.element($0) }.makeIterator()
    }

    var description: String { map { "\($0.name): \($0.value)" }.joined(separator: ", ") }
}

/// A request's id: a random prefix per server and a counter (SPEC §6, `X-Request-Id`, e.g.
/// "k3f9x2-1z"). Kept as two numbers and formatted only when written or quoted.
struct HTTPRequestId: Sendable, Hashable, CustomStringConvertible {
    /// The prefix's (at most 8) ASCII bytes, first byte lowest; zero bytes end it.
    let prefix: UInt64
    /// The counter, written in base 36.
    let number: UInt64

    /// Base-36 prefix + "-" + counter: at most 8 + 1 + 13 bytes.
    static let maxByteCount = 22

    /// Calls `body` with the id's bytes (on the stack: no allocation).
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: HTTPRequestId.maxByteCount) { buffer -> R in
            var length = 0
            var bits = prefix
            while bits != 0 {
                buffer[length] = UInt8(truncatingIfNeeded: bits)
                bits >>= 8
                length += 1
            }
            buffer[length] = UInt8(ascii: "-")
            length += 1
            var value = number
            var digits = 0
            var probe = value
            repeat { digits += 1; probe /= 36 } while probe > 0
            var index = length + digits - 1
            repeat {
                let digit = UInt8(value % 36)
                buffer[index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
                value /= 36
                index -= 1
            } while value > 0
            length += digits
            return body(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: length))
        }
    }

    var description: String { withBytes { String(decoding: $0, as: UTF8.self) } }
}

struct HTTPRequest: Sendable {
    var method: HTTPMethod
    /// The request's URL and headers, as bytes.
    var headers: HTTPHeaders
    /// Where the raw (still percent-encoded) path is in `headers.bytes`; empty means "/".
    var pathRange: Range<Int>
    /// Where the raw query (without '?') is in `headers.bytes`; empty if none.
    var queryRange: Range<Int>
    var body: [UInt8]
    var isKeepAlive: Bool
    /// Unique per process; also sent back as `X-Request-Id`.
    var requestId: HTTPRequestId
    var httpMajor: Int = 1
    var httpMinor: Int = 1

    /// The raw (still percent-encoded) path, without the query (a String: routes compare `pathEquals`).
    var path: String {
        pathRange.isEmpty ? "/" : String(decoding: headers.bytes[pathRange], as: UTF8.self)
    }

    /// The raw query without '?'; "" if none.
    var query: String { String(decoding: headers.bytes[queryRange], as: UTF8.self) }

    /// Whether the raw path is exactly `expected` (byte for byte).
    @inline(__always)
    func pathEquals(_ expected: StaticString) -> Bool {
        if pathRange.isEmpty { return expected.utf8CodeUnitCount == 1 && expected.utf8Start.pointee == UInt8(ascii: "/") }
        return pathRange.count == expected.utf8CodeUnitCount && pathHasPrefix(expected)
    }

    /// Whether the raw path starts with `prefix` (byte for byte).
    func pathHasPrefix(_ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        if pathRange.isEmpty { return count == 0 || (count == 1 && prefix.utf8Start.pointee == UInt8(ascii: "/")) }
        guard pathRange.count >= count else { return false }
        return headers.bytes.withUnsafeBytes { memcmp($0.baseAddress! + pathRange.lowerBound, prefix.utf8Start, count) == 0 }
    }
}

/// A response's Content-Type known at compile time, written as bytes.
struct HTTPContentType: Sendable {
    let text: StaticString

    static let json = HTTPContentType(text: "application/json")
}

struct HTTPResponse: Sendable {
    var status: Int
    /// A constant Content-Type, written before `headers` (which should then not repeat it).
    var contentType: HTTPContentType?
    /// Content-Length, Connection and X-Request-Id are added by the server (values given here for them are
    /// ignored, except that `Connection: close` closes the connection after this response).
    var headers: [(String, String)]
    var body: [UInt8]

    init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.contentType = nil
        self.headers = headers
        self.body = body
    }

    /// A response with a constant Content-Type: no header Strings (the hot path's answers).
    init(status: Int, contentType: HTTPContentType, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.headers = []
        self.body = body
    }

    init(status: Int, contentType: String, body: String) {
        self.init(status: status, headers: [("Content-Type", contentType)], body: Array(body.utf8))
    }
}

protocol HTTPRequestHandler: AnyObject {
    /// Called on the loop thread. `responder.respond` must be called exactly once, now or later, on the loop thread.
    /// The request's bytes are the connection's reusable buffers: keep the request beyond this call only if needed
    /// (a copy that outlives it makes the connection allocate new buffers for its next request).
    func handle(_ request: HTTPRequest, responder: HTTPResponder)
}

struct HTTPServerError: Error, CustomStringConvertible {
    var description: String
}

enum HTTPStatus {
    static func reasonPhrase(_ status: Int) -> StaticString {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Unknown"
        }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace), with no
    /// Foundation and no copy: a header value is trimmed on every request.
    var trimmingHTTPWhitespace: Substring {
        var start = startIndex
        var end = endIndex
        while start < end, self[start] == " " || self[start] == "\t" { start = index(after: start) }
        while end > start {
            let before = index(before: end)
            guard self[before] == " " || self[before] == "\t" else { break }
            end = before
        }
        return self[start..<end]
    }
}
