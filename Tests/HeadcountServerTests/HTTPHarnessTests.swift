import CLibUV
import Foundation
import Glibc
import Logging
import XCTest
@testable import HeadcountServer

/// Echoes requests; `/slow?ms=N` answers after a uv timer fires (so pipelined responses complete out of order);
/// `/close` answers with `Connection: close`; `/headers` lists the request headers.
final class EchoHandler: HTTPRequestHandler {
    let loop: UnsafeMutablePointer<uv_loop_t>
    private(set) var handled = 0

    init(loop: UnsafeMutablePointer<uv_loop_t>) { self.loop = loop }

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        handled += 1
        let text: String
        if request.path == "/headers" {
            text = request.headers.map { "\($0.name)=\($0.value);" }.joined()
        } else {
            text = "\(request.method.name) \(request.path) \(request.query) \(String(decoding: request.body, as: UTF8.self))"
        }
        var response = HTTPResponse(status: 200, contentType: "text/plain", body: text)
        switch request.path {
        case "/slow":
            let milliseconds = request.query.hasPrefix("ms=") ? Int(request.query.dropFirst(3)) ?? 50 : 50
            Delayed.schedule(loop: loop, milliseconds: milliseconds) { responder.respond(response) }
        case "/close":
            response.headers.append(("Connection", "close"))
            responder.respond(response)
        case "/missing":
            responder.respondError(status: 404, code: "NOT_FOUND", message: "Nothing at \(request.path)")
        default:
            responder.respond(response)
        }
    }
}

/// A one-shot uv timer running a closure on the loop thread.
final class Delayed {
    private let action: () -> Void
    private init(_ action: @escaping () -> Void) { self.action = action }

    static func schedule(loop: UnsafeMutablePointer<uv_loop_t>, milliseconds: Int, _ action: @escaping () -> Void) {
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        timer.pointee.data = Unmanaged.passRetained(Delayed(action)).toOpaque()
        uv_timer_start(timer, { timer in
            let delayed = Unmanaged<Delayed>.fromOpaque(timer!.pointee.data).takeUnretainedValue()
            delayed.action()
            uv_close(hc_timer_as_handle(timer!)) { handle in
                Unmanaged<Delayed>.fromOpaque(handle!.pointee.data).release()
                handle!.withMemoryRebound(to: uv_timer_t.self, capacity: 1) { $0.deallocate() }
            }
        }, UInt64(milliseconds), 0)
    }
}

/// The loop is only touched by its thread once running; the pointer merely travels there.
struct LoopPointer: @unchecked Sendable { let loop: UnsafeMutablePointer<uv_loop_t> }

/// A real HTTPServer on 127.0.0.1:0 with its loop on a background thread.
final class TestServer {
    let loop: UnsafeMutablePointer<uv_loop_t>
    private(set) var server: HTTPServer!
    let handler: EchoHandler
    let port: Int
    private let wake: UnsafeMutablePointer<uv_async_t>
    private let lock = NSLock()
    private var jobs: [() -> Void] = []
    private let finished = DispatchSemaphore(value: 0)
    private var stopped = false

    init(limits: HTTPServerLimits = HTTPServerLimits()) throws {
        loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        uv_loop_init(loop)
        handler = EchoHandler(loop: loop)
        var logger = Logger(label: "headcount.http.test")
        logger.logLevel = .warning
        server = HTTPServer(loop: loop, limits: limits, handler: handler, logger: logger)
        port = try server.listen(host: "127.0.0.1", port: 0)
        wake = UnsafeMutablePointer<uv_async_t>.allocate(capacity: 1)
        uv_async_init(loop, wake) { async in
            let owner = Unmanaged<TestServer>.fromOpaque(async!.pointee.data).takeUnretainedValue()
            owner.runJobs()
        }
        wake.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let loop = LoopPointer(loop: self.loop)
        let finished = self.finished
        let thread = Thread {
            uv_run(loop.loop, UV_RUN_DEFAULT)
            finished.signal()
        }
        thread.start()
    }

    private func runJobs() {
        lock.lock()
        let pending = jobs
        jobs.removeAll()
        lock.unlock()
        for job in pending { job() }
    }

    /// Runs `body` on the loop thread and returns its result.
    func onLoop<T>(_ body: @escaping (HTTPServer) -> T) -> T {
        var result: T?
        let done = DispatchSemaphore(value: 0)
        lock.lock()
        jobs.append { [unowned self] in
            result = body(self.server)
            done.signal()
        }
        lock.unlock()
        uv_async_send(wake)
        if done.wait(timeout: .now() + 10) == .timedOut { fatalError("loop thread did not answer") }
        return result!
    }

    /// Polls (on the loop thread) until `condition` holds; false if it never does.
    func eventually(_ condition: @escaping (HTTPServer) -> Bool) -> Bool {
        for _ in 0..<500 {
            if onLoop(condition) { return true }
            usleep(10_000)
        }
        return false
    }

    /// Closes the server, ends the loop and returns uv_loop_close's result (0: every handle was closed).
    func stop(file: StaticString = #filePath, line: UInt = #line) -> Int32 {
        guard !stopped else { return 0 }
        stopped = true
        lock.lock()
        jobs.append { [unowned self] in
            self.server.close {
                uv_close(hc_async_as_handle(self.wake), nil)
            }
        }
        lock.unlock()
        uv_async_send(wake)
        if finished.wait(timeout: .now() + 15) == .timedOut {
            XCTFail("the loop did not stop", file: file, line: line)
            return -1
        }
        server = nil
        let result = uv_loop_close(loop)
        wake.deallocate()
        loop.deallocate()
        return result
    }
}

struct RawResponse {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A tiny blocking HTTP client over a POSIX socket with a receive timeout, so no test can hang.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var isOpen = true

    init(port: Int, timeoutSeconds: Int = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HTTPServerError(description: "socket failed") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            Glibc.close(fd)
            throw HTTPServerError(description: "connect failed: errno \(errno)")
        }
    }

    deinit { close() }

    func close() {
        if isOpen { Glibc.close(fd); isOpen = false }
    }

    /// Closes with SO_LINGER 0: the peer sees a reset.
    func reset() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close()
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    /// Reads more bytes; false on EOF, error or timeout.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        if count <= 0 { return false }
        buffer.append(contentsOf: chunk[0..<count])
        return true
    }

    /// Reads one response (a 100 Continue counts as one). nil on EOF or timeout.
    func readResponse(hasBody: Bool = true) -> RawResponse? {
        var headerEnd: Int?
        while true {
            if buffer.count >= 4 {
                for index in 0...(buffer.count - 4)
                where buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
                    headerEnd = index
                    break
                }
            }
            if headerEnd != nil { break }
            if !fill() { return nil }
        }
        let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        buffer.removeFirst(headerEnd! + 4)
        let length = (hasBody && status >= 200) ? Int(headers["content-length"] ?? "0") ?? 0 : 0
        while buffer.count < length {
            if !fill() { return nil }
        }
        let body = Array(buffer[0..<length])
        buffer.removeFirst(length)
        return RawResponse(status: status, headers: headers, body: body)
    }

    /// True when the server closes the connection (EOF or reset) with no further bytes; false on timeout or data.
    func waitForClose() -> Bool {
        if !buffer.isEmpty { return false }
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
            return false
        }
    }

    /// Sends a request and reads its response.
    func request(_ text: String) -> RawResponse? {
        guard send(text) else { return nil }
        return readResponse()
    }
}

func get(_ path: String, _ extraHeaders: String = "") -> String {
    "GET \(path) HTTP/1.1\r\nHost: test\r\n\(extraHeaders)\r\n"
}

func post(_ path: String, _ body: String, _ extraHeaders: String = "") -> String {
    "POST \(path) HTTP/1.1\r\nHost: test\r\nContent-Length: \(body.utf8.count)\r\n\(extraHeaders)\r\n\(body)"
}
