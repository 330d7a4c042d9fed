import Foundation
import XCTest
import HeadcountFeed
@testable import HeadcountServer

/// The byte-level readers of the hot path (header lookup, request ids, Authorization,
/// Content-Type) against the String code they replace.
final class HTTPBytesTests: XCTestCase {
    // MARK: Headers

    func testHeaderLookupByLowercaseNameFindsTheFirstValue() {
        let headers = HTTPHeaders([("Content-Type", "application/json"), ("X-Two", "a"), ("x-two", "b"), ("X-Empty", "")])
        XCTAssertEqual(headers.value("content-type").map { Array($0) }, Array("application/json".utf8))
        XCTAssertEqual(headers.value("x-two").map { Array($0) }, Array("a".utf8))
        XCTAssertEqual(headers.value("x-empty").map { Array($0) }, [])
        XCTAssertNil(headers.value("x-tw"))
        XCTAssertNil(headers.value("authorization"))
        XCTAssertEqual(headers.firstIndex("x-empty"), 3)
        // The String accessors still work, case-insensitively, in arrival order.
        XCTAssertEqual(headers["CONTENT-type"], "application/json")
        XCTAssertEqual(headers.values("X-TWO"), ["a", "b"])
        XCTAssertEqual(headers.map { $0.name }, ["content-type", "x-two", "x-two", "x-empty"])
        XCTAssertEqual(headers.count, 4)
    }

    func testHeaderValueCaseInsensitiveComparison() {
        let expect: ArraySlice<UInt8> = Array("100-Continue".utf8)[...]
        XCTAssertTrue(expect.equalsIgnoringASCIICase("100-continue"))
        XCTAssertFalse(expect.equalsIgnoringASCIICase("100-continu"))
        XCTAssertFalse(Array("100-continuE\u{301}".utf8)[...].equalsIgnoringASCIICase("100-continue"))
        // The Kelvin sign lowercases to "k" as a String, but is not ASCII: no match.
        XCTAssertFalse(Array("\u{212A}".utf8)[...].equalsIgnoringASCIICase("k"))
    }

    func testParsedHeadersAreRangesIntoTheHeadBytes() {
        // As the connection lays them out: URL, then name/value pairs, names lowercased.
        let bytes = Array("/v1/feed?x=1hostaauthorizationBearer k".utf8)
        let fields = [HTTPHeaderField(nameStart: 12, nameEnd: 16, valueStart: 16, valueEnd: 17),
                      HTTPHeaderField(nameStart: 17, nameEnd: 30, valueStart: 30, valueEnd: 38)]
        let request = HTTPRequest(method: .post, headers: HTTPHeaders(bytes: bytes, fields: fields), pathRange: 0..<8,
                                  queryRange: 9..<12, body: [], isKeepAlive: true, requestId: HTTPRequestId(prefix: 0x61, number: 1))
        XCTAssertEqual(request.path, "/v1/feed")
        XCTAssertEqual(request.query, "x=1")
        XCTAssertTrue(request.pathEquals("/v1/feed"))
        XCTAssertFalse(request.pathEquals("/v1/fee"))
        XCTAssertFalse(request.pathEquals("/v1/feeds"))
        XCTAssertTrue(request.pathHasPrefix("/v1/"))
        XCTAssertFalse(request.pathHasPrefix("/events/"))
        XCTAssertEqual(request.headers.value("authorization").map { String(decoding: $0, as: UTF8.self) }, "Bearer k")
        XCTAssertEqual(request.headers["Host"], "a")

        let root = HTTPRequest(method: .get, headers: HTTPHeaders(), pathRange: 0..<0, queryRange: 0..<0, body: [],
                               isKeepAlive: true, requestId: HTTPRequestId(prefix: 0x61, number: 1))
        XCTAssertEqual(root.path, "/")
        XCTAssertEqual(root.query, "")
        XCTAssertTrue(root.pathEquals("/"))
        XCTAssertFalse(root.pathEquals("/healthz"))
    }

    // MARK: Request ids

    func testRequestIdIsPrefixDashBase36() {
        let prefix = UInt64(UInt8(ascii: "k")) | UInt64(UInt8(ascii: "3")) << 8 | UInt64(UInt8(ascii: "f")) << 16
        XCTAssertEqual(HTTPRequestId(prefix: prefix, number: 0).description, "k3f-0")
        XCTAssertEqual(HTTPRequestId(prefix: prefix, number: 71).description, "k3f-1z")
        XCTAssertEqual(HTTPRequestId(prefix: prefix, number: UInt64.max).description, "k3f-" + String(UInt64.max, radix: 36))
        let full = (0..<8).reduce(UInt64(0)) { $0 | UInt64(UInt8(ascii: "a") + UInt8($1)) << (8 * UInt64($1)) }
        XCTAssertEqual(HTTPRequestId(prefix: full, number: UInt64.max).description.utf8.count, HTTPRequestId.maxByteCount)
    }

    // MARK: Authorization

    private static let feedKey = "feed_8f3a9c2b71d4e6f05a1b3c7d9e2f4a6b8c0d1e3f5a7b9c2d"
    private static let keys = KeyStore(keys: [
        KeyStore.Key(key: feedKey, role: .feed, eventIds: nil),
        KeyStore.Key(key: "r", role: .read, eventIds: ["E1"]),
        KeyStore.Key(key: "caf\u{E9}", role: .admin, eventIds: nil),
    ])

    private func describe(_ result: Result<KeyStore.Principal, APIError>) -> String {
        switch result {
        case .success(let principal): return "\(principal.role) \(principal.eventIds.map { $0.sorted() } ?? [])"
        case .failure(let error): return "\(error.status) \(error.message)"
        }
    }

    private func basic(_ text: String) -> String { "Basic " + Data(text.utf8).base64EncodedString() }

    func testAuthorizationFromBytesAnswersAsTheStringPath() {
        let key = HTTPBytesTests.feedKey
        let values: [String?] = [
            nil, "", " ", "Bearer", "Bearer ", "Bearer \(key)", "bearer \(key)", "BEARER \(key)", "Bearer  \(key) \t",
            "Bearer \t\(key)", "Bearer \(key)x", "Bearer \(key.dropLast())", "Bearer r", "Bearer R", "Bearer caf\u{E9}",
            "Bearer cafe\u{301}", "Token \(key)", "Bearer\t\(key)", "\(key)",
            basic("\(key):"), basic("\(key):secret"), basic(key), basic("\(key)x:"), basic("r:"), basic(":\(key)"),
            basic("caf\u{E9}:"), "basic " + Data("\(key):".utf8).base64EncodedString(), "Basic", "Basic ", "Basic !!!!",
            "Basic " + Data("\(key):".utf8).base64EncodedString().replacingOccurrences(of: "=", with: ""),
            "Basic  " + Data("r:".utf8).base64EncodedString() + " ", "Basic " + Data([0xFF, 0x3A]).base64EncodedString(),
            "Bé \(key)",
        ]
        for value in values {
            let bytes = value.map { Array($0.utf8)[...] }
            XCTAssertEqual(describe(HTTPBytesTests.keys.authenticate(authorizationBytes: bytes)),
                           describe(HTTPBytesTests.keys.authenticate(authorization: value)), "\(value ?? "nil")")
        }
        // The fast path itself (no fallback) finds Bearer and Basic keys.
        XCTAssertEqual(KeyStore.presentedKey(Array("Bearer  \(key) ".utf8)[...]).map { Array($0) }, Array(key.utf8))
        XCTAssertEqual(KeyStore.presentedKey(Array(basic("\(key):pw").utf8)[...]).map { Array($0) }, Array(key.utf8))
        XCTAssertEqual(KeyStore.presentedKey(Array(basic(key).utf8)[...]).map { Array($0) }, Array(key.utf8))
        XCTAssertNil(KeyStore.presentedKey(Array("Bearer caf\u{E9}".utf8)[...]))
        XCTAssertEqual(describe(HTTPBytesTests.keys.authenticate(authorizationBytes: Array("Bearer \(key)".utf8)[...])), "feed []")
        XCTAssertEqual(describe(HTTPBytesTests.keys.authenticate(authorizationBytes: Array(basic("r:").utf8)[...])), "read [\"E1\"]")
    }

    func testKeyTableFindsEveryKeyAndNothingElse() {
        var generator = SystemRandomNumberGenerator()
        let keys = (0..<500).map { index in "k\(index)_" + KeyStore.randomHex(bytes: Int(generator.next(upperBound: 40 as UInt64))) }
        let store = KeyStore(keys: keys.enumerated().map { KeyStore.Key(key: $1, role: $0 % 2 == 0 ? .feed : .read, eventIds: nil) })
        for (index, key) in keys.enumerated() {
            guard case .success(let principal) = store.authenticate(authorizationBytes: Array("Bearer \(key)".utf8)[...]) else {
                return XCTFail("\(key) not found")
            }
            XCTAssertEqual(principal.role, index % 2 == 0 ? .feed : .read)
            guard case .failure = store.authenticate(authorizationBytes: Array("Bearer \(key)0".utf8)[...]) else {
                return XCTFail("\(key)0 found")
            }
        }
    }

    func testCanonicalBase64MatchesFoundation() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<40 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = Data(bytes).base64EncodedString()
            XCTAssertEqual(Base64.decodeCanonical(Array(text.utf8)[...]), bytes, text)
        }
        for text in ["QQ", "QQ=", "QR==", "QUI", "QUJ=", "Q===", "====", "QQ==QQ==", "QU=I", "QUJD\n", "QUJD "] {
            XCTAssertNil(Base64.decodeCanonical(Array(text.utf8)[...]), text)
        }
        XCTAssertEqual(Base64.decodeCanonical([][...]), [])
    }

    // MARK: Content-Type

    /// The String code the byte reader replaces.
    private func formatTheStringWay(_ value: String?) -> Result<FeedBodyFormat, APIError> {
        let contentType = (value ?? "").split(separator: ";", maxSplits: 1).first.map { $0.trimmingHTTPWhitespace.lowercased() } ?? ""
        switch contentType {
        case "application/json": return .success(.json)
        case "", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines": return .success(.ndjson)
        default: return .failure(.unsupportedMediaType(contentType))
        }
    }

    func testContentTypeFromBytesAnswersAsTheStringPath() {
        let values: [String?] = [
            nil, "", " ", ";", ";;", " ;application/json", "application/json", "Application/JSON", "application/json; charset=utf-8",
            "application/json ;charset=utf-8", "\tapplication/json\t", ";application/json", ";;application/json;x", "application/x-ndjson",
            "application/NDJSON", "application/jsonl", "application/x-jsonlines", "text/plain", "application/jsonx",
            "application/json;\u{301}charset", "application/js\u{F6}n", "application/\u{212A}", "application/json\r\n",
        ]
        for value in values {
            let bytes = value.map { Array($0.utf8)[...] }
            XCTAssertEqual("\(HeadcountServer.feedBodyFormat(contentType: bytes))", "\(formatTheStringWay(value))", "\(value ?? "nil")")
        }
    }
}

/// The connection's head buffer over a real socket: headers split across reads, and the
/// buffers reused by the next request on the connection.
final class HTTPHeadBytesLiveTests: XCTestCase {
    func testHeadersSplitAcrossReadsAndTheNextRequestOnTheConnection() throws {
        let server = try TestServer()
        defer { XCTAssertEqual(server.stop(), 0) }
        let connection = try RawClient(port: server.port)
        let pieces = ["GET /hea", "ders?q=1 HTTP/1.1\r\nHo", "st: h\r\nX-Spl", "it-NAME: va", "lue \t", "\r\nX-Empty:", "\r\n", "\r\n"]
        for piece in pieces {
            XCTAssertTrue(connection.send(piece))
            usleep(5_000)
        }
        XCTAssertEqual(connection.readResponse()?.text, "host=h;x-split-name=value;x-empty=;")
        // A shorter request next: nothing of the previous one shows through.
        XCTAssertEqual(connection.request("GET /headers HTTP/1.1\r\nA: 1\r\n\r\n")?.text, "a=1;")
        XCTAssertEqual(connection.request(post("/p?x=2", "body"))?.text, "POST /p x=2 body")
        XCTAssertEqual(connection.request(post("/p", "b"))?.text, "POST /p  b")
        XCTAssertEqual(connection.request("GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n")?.text, "GET /  ")
    }
}

final class FeedAnswerBodyTests: XCTestCase {
    func testSharedBodiesAreTheWrittenOnes() {
        let limit = FeedAnswerBodies.countLimit
        for accepted in 0..<limit {
            for duplicates in 0..<limit {
                XCTAssertEqual(String(decoding: FeedAnswerBodies.common[accepted * limit + duplicates], as: UTF8.self),
                               #"{"accepted":\#(accepted),"duplicates":\#(duplicates),"rejected":[]}"#)
            }
        }
        XCTAssertEqual(String(decoding: HeadcountServer.feedAnswerBody(accepted: 1, duplicates: 0, rejections: [(2, nil, "bad")]), as: UTF8.self),
                       #"{"accepted":1,"duplicates":0,"rejected":[{"index":2,"id":null,"error":"bad"}]}"#)
    }
}
