import CLibUV
import Foundation
import Glibc
import Logging
import XCTest
@testable import HeadcountServer

final class HTTPServerTests: XCTestCase {
    private var server: TestServer!

    private func start(_ configure: (inout HTTPServerLimits) -> Void = { _ in }) throws -> TestServer {
        var limits = HTTPServerLimits()
        configure(&limits)
        server = try TestServer(limits: limits)
        return server
    }

    override func tearDown() {
        if let server {
            XCTAssertEqual(server.stop(), 0, "every libuv handle was closed")
        }
        server = nil
        super.tearDown()
    }

    private func client() throws -> RawClient { try RawClient(port: server.port) }

    private func assertErrorBody(_ response: RawResponse?, status: Int, code: String,
                                 file: StaticString = #filePath, line: UInt = #line) {
        guard let response else { return XCTFail("no response", file: file, line: line) }
        XCTAssertEqual(response.status, status, file: file, line: line)
        XCTAssertEqual(response.headers["content-type"], "application/json", file: file, line: line)
        XCTAssertEqual(response.headers["connection"], "close", file: file, line: line)
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            return XCTFail("body is not a JSON object: \(response.text)", file: file, line: line)
        }
        XCTAssertEqual(object["status"] as? Int, status, file: file, line: line)
        let errors = object["errors"] as? [[String: Any]]
        XCTAssertEqual(errors?.first?["code"] as? String, code, file: file, line: line)
        XCTAssertEqual((object["messages"] as? [String])?.count, 1, file: file, line: line)
        XCTAssertEqual(errors?.first?["message"] as? String, (object["messages"] as? [String])?.first, file: file, line: line)
        XCTAssertEqual((object["warnings"] as? [Any])?.count, 0, file: file, line: line)
        XCTAssertEqual(object["requestId"] as? String, response.headers["x-request-id"], file: file, line: line)
        XCTAssertEqual(Set(object.keys), ["status", "messages", "errors", "warnings", "requestId"], file: file, line: line)
    }

    // MARK: Basics

    func testKeepAliveServesThreeRequestsOnOneConnection() throws {
        _ = try start()
        let connection = try client()
        var ids = Set<String>()
        for index in 0..<3 {
            let response = connection.request(get("/echo/\(index)?a=\(index)"))
            XCTAssertEqual(response?.status, 200)
            XCTAssertEqual(response?.text, "GET /echo/\(index) a=\(index) ")
            XCTAssertEqual(response?.headers["connection"], "keep-alive")
            XCTAssertEqual(response?.headers["content-type"], "text/plain")
            XCTAssertNotNil(response?.headers["date"])
            if let id = response?.headers["x-request-id"] { ids.insert(id) }
        }
        XCTAssertEqual(ids.count, 3, "request ids are unique")
        XCTAssertTrue(ids.allSatisfy { $0.utf8.count <= 15 && $0.contains("-") })
        let accepted = server.onLoop { $0.connectionsAcceptedTotal }
        let requests = server.onLoop { $0.requestsTotal }
        XCTAssertEqual(accepted, 1)
        XCTAssertEqual(requests, 3)
    }

    func testPathQueryAndFragmentAreSplit() throws {
        _ = try start()
        let connection = try client()
        XCTAssertEqual(connection.request(get("/a%20b/c?x=1&y=%2F#frag"))?.text, "GET /a%20b/c x=1&y=%2F ")
        XCTAssertEqual(connection.request(get("/plain"))?.text, "GET /plain  ")
        XCTAssertEqual(connection.request(get("http://example.com/abs?q=1"))?.text, "GET /abs q=1 ")
        let response = connection.request("DELETE /t HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(response?.text, "DELETE /t  ")
    }

    func testHeadersAreLowercasedAndTrimmed() throws {
        _ = try start()
        let connection = try client()
        let response = connection.request("GET /headers HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Mixed-Case:  v 1  \r\n\r\n")
        XCTAssertEqual(response?.text, "host=h;x-empty=;x-mixed-case=v 1;")
    }

    func testPipelinedResponsesComeBackInRequestOrderEvenWhenCompletedOutOfOrder() throws {
        _ = try start()
        let connection = try client()
        let paths = ["/slow?ms=150", "/fast/1", "/slow?ms=30", "/fast/2", "/slow?ms=1", "/fast/3"]
        XCTAssertTrue(connection.send(paths.map { get($0) }.joined()))
        for path in paths {
            let response = connection.readResponse()
            let parts = path.split(separator: "?", maxSplits: 1)
            XCTAssertEqual(response?.text, "GET \(parts[0]) \(parts.count > 1 ? String(parts[1]) : "") ")
        }
        XCTAssertEqual(connection.request(get("/after"))?.text, "GET /after  ")
    }

    func testPipeliningBeyondTheLimitStillAnswersEverythingInOrder() throws {
        _ = try start { $0.pipelinedRequestsMax = 2 }
        let connection = try client()
        var batch = ""
        for index in 0..<40 {
            batch += index % 3 == 0 ? get("/slow?ms=\(index % 7)") : post("/p/\(index)", "body-\(index)")
        }
        XCTAssertTrue(connection.send(batch))
        for index in 0..<40 {
            let expected = index % 3 == 0 ? "GET /slow ms=\(index % 7) " : "POST /p/\(index)  body-\(index)"
            XCTAssertEqual(connection.readResponse()?.text, expected, "response \(index)")
        }
    }

    func testPostWithContentLengthAndALargeBody() throws {
        _ = try start()
        let connection = try client()
        XCTAssertEqual(connection.request(post("/feed", "hello"))?.text, "POST /feed  hello")
        let big = String(repeating: "0123456789abcdef", count: 65536)  // 1 MiB: many reads
        let response = connection.request(post("/big", big))
        XCTAssertEqual(response?.body.count, "POST /big  ".utf8.count + big.utf8.count)
    }

    func testChunkedBody() throws {
        _ = try start()
        let connection = try client()
        let request = "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
        XCTAssertEqual(connection.request(request)?.text, "POST /chunked  hello world")
        // Split across several writes.
        XCTAssertTrue(connection.send("POST /c2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"))
        usleep(20_000)
        XCTAssertTrue(connection.send("c\r\n0\r\n\r\n"))
        XCTAssertEqual(connection.readResponse()?.text, "POST /c2  abc")
        // Trailers are not request headers.
        let trailers = "POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "1\r\na\r\n0\r\nX-Trailer-1: a\r\nX-Trailer-2: b\r\n\r\n"
        XCTAssertEqual(connection.request(trailers)?.text, "host=x;transfer-encoding=chunked;")
    }

    func testExpectContinue() throws {
        _ = try start()
        let connection = try client()
        let body = String(repeating: "x", count: 2000)
        XCTAssertTrue(connection.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n"))
        let interim = connection.readResponse()
        XCTAssertEqual(interim?.status, 100)
        XCTAssertTrue(connection.send(body))
        let response = connection.readResponse()
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(response?.text, "POST /upload  " + body)
    }

    func testExpectContinueWithTheBodyAlreadySentGetsNoInterimResponse() throws {
        _ = try start()
        let connection = try client()
        let response = connection.request(post("/eager", "abc", "Expect: 100-continue\r\n"))
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(response?.text, "POST /eager  abc")
    }

    func testExpectContinueOverTheLimitGets413WithoutContinue() throws {
        _ = try start { $0.bodyBytesMax = 1000 }
        let connection = try client()
        XCTAssertTrue(connection.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n"))
        assertErrorBody(connection.readResponse(), status: 413, code: "BODY_TOO_LARGE")
        XCTAssertTrue(connection.waitForClose())
    }

    func testHTTP10ClosesUnlessKeepAliveIsAsked() throws {
        _ = try start()
        let keepAlive = try client()
        for _ in 0..<2 {
            let response = keepAlive.request("GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            XCTAssertEqual(response?.text, "GET /ten  ")
            XCTAssertEqual(response?.headers["connection"], "keep-alive")
        }
        let plain = try client()
        let response = plain.request("GET /ten HTTP/1.0\r\n\r\n")
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(response?.headers["connection"], "close")
        XCTAssertTrue(plain.waitForClose())
    }

    func testConnectionCloseFromClientAndFromHandler() throws {
        _ = try start()
        let fromClient = try client()
        // The request after "Connection: close" is ignored.
        XCTAssertTrue(fromClient.send(get("/bye", "Connection: close\r\n") + get("/ignored")))
        let response = fromClient.readResponse()
        XCTAssertEqual(response?.text, "GET /bye  ")
        XCTAssertEqual(response?.headers["connection"], "close")
        XCTAssertTrue(fromClient.waitForClose())

        let fromHandler = try client()
        let closing = fromHandler.request(get("/close"))
        XCTAssertEqual(closing?.status, 200)
        XCTAssertEqual(closing?.headers["connection"], "close")
        XCTAssertTrue(fromHandler.waitForClose())
    }

    func testHeadSendsNoBody() throws {
        _ = try start()
        let connection = try client()
        XCTAssertTrue(connection.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"))
        let head = connection.readResponse(hasBody: false)
        XCTAssertEqual(head?.status, 200)
        XCTAssertEqual(head?.headers["content-length"], "\("HEAD /h  ".utf8.count)")
        XCTAssertEqual(connection.request(get("/next"))?.text, "GET /next  ", "no stray body bytes after HEAD")
    }

    func testHandlerErrorResponseHasTheSpecShape() throws {
        _ = try start()
        let connection = try client()
        let response = connection.request(get("/missing"))
        XCTAssertEqual(response?.status, 404)
        let object = try JSONSerialization.jsonObject(with: Data(response!.body)) as? [String: Any]
        XCTAssertEqual(object?["requestId"] as? String, response?.headers["x-request-id"])
        XCTAssertEqual(response?.headers["connection"], "keep-alive")
    }

    // MARK: Protocol errors

    func testContentLengthOverTheLimitIs413() throws {
        _ = try start { $0.bodyBytesMax = 1024 }
        let connection = try client()
        XCTAssertTrue(connection.send("POST /feed HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nstart of a huge body"))
        let response = connection.readResponse()
        assertErrorBody(response, status: 413, code: "BODY_TOO_LARGE")
        XCTAssertTrue(response?.text.contains("1024 bytes") ?? false, response?.text ?? "")
        XCTAssertTrue(connection.waitForClose())
        let errors = server.onLoop { $0.protocolErrorsTotal }
        XCTAssertEqual(errors, 1)
    }

    func testChunkedBodyOverTheLimitIs413() throws {
        _ = try start { $0.bodyBytesMax = 16 }
        let connection = try client()
        let request = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"
        assertErrorBody(connection.request(request), status: 413, code: "BODY_TOO_LARGE")
        XCTAssertTrue(connection.waitForClose())
    }

    func testHugeHeadersAre431() throws {
        _ = try start()
        let connection = try client()
        let huge = String(repeating: "a", count: 20 * 1024)
        assertErrorBody(connection.request(get("/", "X-Huge: \(huge)\r\n")), status: 431, code: "HEADERS_TOO_LARGE")
        XCTAssertTrue(connection.waitForClose())

        let manyHeaders = try client()
        let lines = (0..<3000).map { "X-\($0): v\r\n" }.joined()
        assertErrorBody(manyHeaders.request(get("/", lines)), status: 431, code: "HEADERS_TOO_LARGE")

        let longURL = try client()
        assertErrorBody(longURL.request(get("/" + huge)), status: 431, code: "HEADERS_TOO_LARGE")
    }

    func testGarbageIs400AndClose() throws {
        _ = try start()
        let connection = try client()
        let response = connection.request("THIS IS NOT HTTP\r\n\r\n")
        assertErrorBody(response, status: 400, code: "MALFORMED_REQUEST")
        XCTAssertTrue(response?.text.contains("HPE_") ?? false, "the message names what the parser said")
        XCTAssertTrue(connection.waitForClose())
    }

    func testGarbageAfterAGoodRequestIsAnsweredInOrder() throws {
        _ = try start()
        let connection = try client()
        XCTAssertTrue(connection.send(get("/slow?ms=30") + "\u{1}\u{2}garbage\r\n\r\n"))
        XCTAssertEqual(connection.readResponse()?.text, "GET /slow ms=30 ")
        assertErrorBody(connection.readResponse(), status: 400, code: "MALFORMED_REQUEST")
        XCTAssertTrue(connection.waitForClose())
    }

    func testUnsupportedTransferEncodingAndConnectAreRejected() throws {
        _ = try start()
        let gzip = try client()
        let response = gzip.request("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc")
        XCTAssertEqual(response?.status, 501)
        assertErrorBody(response, status: 501, code: "UNSUPPORTED_TRANSFER_ENCODING")

        let connect = try client()
        assertErrorBody(connect.request("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n"), status: 501, code: "NOT_IMPLEMENTED")

        // An Upgrade request is served as plain HTTP/1.1, and the connection stays usable.
        let upgrade = try client()
        XCTAssertEqual(upgrade.request(get("/u", "Connection: Upgrade\r\nUpgrade: websocket\r\n"))?.text, "GET /u  ")
        XCTAssertEqual(upgrade.request(get("/after"))?.text, "GET /after  ")
    }

    // MARK: Timeouts and limits

    func testIncompleteBodyTimesOutWith408() throws {
        _ = try start { $0.requestTimeoutMilliseconds = 200 }
        let connection = try client()
        XCTAssertTrue(connection.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part"))
        assertErrorBody(connection.readResponse(), status: 408, code: "REQUEST_TIMEOUT")
        XCTAssertTrue(connection.waitForClose())

        let headersOnly = try client()
        XCTAssertTrue(headersOnly.send("GET / HTTP/1.1\r\nHost: x\r\n"))
        assertErrorBody(headersOnly.readResponse(), status: 408, code: "REQUEST_TIMEOUT")
    }

    func testIdleKeepAliveConnectionIsClosedSilently() throws {
        _ = try start { $0.idleTimeoutMilliseconds = 200 }
        let connection = try client()
        XCTAssertEqual(connection.request(get("/once"))?.status, 200)
        XCTAssertTrue(connection.waitForClose(), "closed with no further bytes")
        let silent = try client()
        XCTAssertTrue(silent.waitForClose())
        XCTAssertTrue(server.eventually { $0.connectionCount == 0 })
    }

    func testConnectionLimit() throws {
        _ = try start { $0.connectionsMax = 2 }
        let first = try client()
        let second = try client()
        XCTAssertEqual(first.request(get("/1"))?.status, 200)
        XCTAssertEqual(second.request(get("/2"))?.status, 200)
        let third = try client()
        XCTAssertTrue(third.waitForClose(), "a connection over the limit is closed at once")
        let rejected = server.onLoop { $0.connectionsRejectedTotal }
        XCTAssertEqual(rejected, 1)
        first.close()
        XCTAssertTrue(server.eventually { $0.connectionCount < 2 })
        let fourth = try client()
        XCTAssertEqual(fourth.request(get("/4"))?.status, 200)
        XCTAssertEqual(second.request(get("/2b"))?.status, 200)
    }

    func testClientDisconnectingMidRequestDoesNotHurtTheServer() throws {
        _ = try start()
        let midBody = try client()
        XCTAssertTrue(midBody.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial"))
        midBody.close()
        let midHeaders = try client()
        XCTAssertTrue(midHeaders.send("GET /x HTTP/1.1\r\nHost: x\r\nX-Par"))
        midHeaders.reset()
        let pendingResponse = try client()
        XCTAssertTrue(pendingResponse.send(get("/slow?ms=50") + get("/slow?ms=10")))
        pendingResponse.reset()
        XCTAssertTrue(server.eventually { $0.connectionCount == 0 })
        usleep(100_000)  // let the slow responses fire into closed connections
        let next = try client()
        XCTAssertEqual(next.request(get("/next"))?.text, "GET /next  ")
    }

    func testRandomGarbageNeverBreaksTheServer() throws {
        _ = try start { $0.requestTimeoutMilliseconds = 300 }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func nextByte() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        let seeds = [get("/a"), post("/b", "xyz"), "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"]
        for round in 0..<60 {
            let connection = try client()
            var bytes = Array(seeds[round % seeds.count].utf8)
            if round % 2 == 0 {
                for _ in 0..<(1 + Int(nextByte() % 8)) { bytes[Int(nextByte()) % bytes.count] = nextByte() }
            } else {
                bytes = (0..<(1 + Int(nextByte()))).map { _ in nextByte() }
            }
            connection.send(bytes)
            if round % 3 == 0 { _ = connection.readResponse() }
            connection.reset()
        }
        let after = try client()
        XCTAssertEqual(after.request(get("/alive"))?.text, "GET /alive  ")
    }

    func testStopClosesOpenConnections() throws {
        let server = try start()
        let idle = try client()
        XCTAssertEqual(idle.request(get("/x"))?.status, 200)
        let busy = try client()
        XCTAssertTrue(busy.send(get("/slow?ms=50")))
        let handler = server.handler
        XCTAssertTrue(server.eventually { _ in handler.handled == 2 })
        XCTAssertEqual(server.stop(), 0)
        self.server = nil
        XCTAssertTrue(idle.waitForClose())
        let last = busy.readResponse()
        XCTAssertEqual(last?.status, 200, "a response in flight is still delivered")
        XCTAssertEqual(last?.headers["connection"], "close")
        XCTAssertTrue(busy.waitForClose())
    }

    // MARK: Listening

    func testListenReportsAPortInUseAndSupportsIPv6() throws {
        let running = try start()
        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        defer { loop.deallocate() }
        uv_loop_init(loop)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let other = HTTPServer(loop: loop, limits: HTTPServerLimits(), handler: EchoHandler(loop: loop), logger: logger)
        XCTAssertThrowsError(try other.listen(host: "127.0.0.1", port: running.port)) { error in
            XCTAssertTrue("\(error)".contains("EADDRINUSE"), "\(error)")
        }
        XCTAssertThrowsError(try other.listen(host: "not-an-address", port: 0))
        if let port = try? other.listen(host: "::1", port: 0) {
            XCTAssertGreaterThan(port, 0)
        }
        var closed = false
        other.close { closed = true }
        uv_run(loop, UV_RUN_DEFAULT)
        XCTAssertTrue(closed)
        XCTAssertEqual(uv_loop_close(loop), 0)
    }
}
