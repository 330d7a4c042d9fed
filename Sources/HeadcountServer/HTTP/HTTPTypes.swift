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

/// Request headers: (lowercased name, value) in arrival order.
struct HTTPHeaders: Sequence, Sendable, CustomStringConvertible {
    typealias Element = (name: String, value: String)
    private(set) var fields: [Element]

    init() { fields = [] }
    init(_ fields: [(String, String)]) { self.fields = fields.map { (name: $0.0.lowercased(), value: $0.1) } }
    /// Names must already be lowercased.
    init(lowercased fields: [Element]) { self.fields = fields }

    var count: Int { fields.count }
    var isEmpty: Bool { fields.isEmpty }

    mutating func add(name: String, value: String) { fields.append((name: name.lowercased(), value: value)) }

    /// The first value of a header, by case-insensitive name.
    subscript(_ name: String) -> String? {
        for field in fields where field.name == name { return field.value }
        let lower = name.lowercased()
        if lower == name { return nil }
        for field in fields where field.name == lower { return field.value }
        return nil
    }

    /// Every value of a header, by case-insensitive name.
    func values(_ name: String) -> [String] {
        let lower = name.lowercased()
        return fields.filter { $0.name == lower }.map(\.value)
    }

    func makeIterator() -> IndexingIterator<[Element]> { fields.makeIterator() }

    var description: String { fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") }
}

struct HTTPRequest: Sendable {
    var method: HTTPMethod
    /// The raw (still percent-encoded) path, without the query.
    var path: String
    /// The raw query without '?'; "" if none.
    var query: String
    var headers: HTTPHeaders
    var body: [UInt8]
    var isKeepAlive: Bool
    /// Unique per process; also sent back as `X-Request-Id`.
    var requestId: String
    var httpMajor: Int = 1
    var httpMinor: Int = 1
}

struct HTTPResponse: Sendable {
    var status: Int
    /// Content-Length, Connection and X-Request-Id are added by the server (values given here for them are
    /// ignored, except that `Connection: close` closes the connection after this response).
    var headers: [(String, String)]
    var body: [UInt8]

    init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    init(status: Int, contentType: String, body: String) {
        self.init(status: status, headers: [("Content-Type", contentType)], body: Array(body.utf8))
    }
}

protocol HTTPRequestHandler: AnyObject {
    /// Called on the loop thread. `responder.respond` must be called exactly once, now or later, on the loop thread.
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
