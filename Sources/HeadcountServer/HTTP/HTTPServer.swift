import CHTTPParser
import CLibUV
import Glibc
import Logging

/// An HTTP/1.1 server (keep-alive, pipelining, Content-Length and chunked bodies, `Expect: 100-continue`) on a
/// libuv loop owned by the caller. Every method must be called on the loop's thread (or before the loop runs).
///
/// Memory: every libuv handle holds a retained reference to its Swift owner in `handle.data`, released in the
/// handle's close callback; so the server lives until `close` has completed.
final class HTTPServer {
    let loop: UnsafeMutablePointer<uv_loop_t>
    let limits: HTTPServerLimits
    let handler: HTTPRequestHandler
    let logger: Logger

    // Counters the caller can export.
    @exclusivity(unchecked) private(set) var requestsTotal = 0
    @exclusivity(unchecked) private(set) var protocolErrorsTotal = 0
    @exclusivity(unchecked) private(set) var connectionsAcceptedTotal = 0
    @exclusivity(unchecked) private(set) var connectionsRejectedTotal = 0

    var connectionCount: Int { connections.count }

    /// One read buffer for every connection of this loop: libuv calls alloc, read(2) and the read callback
    /// back to back, and the callback consumes the bytes before returning.
    let readBuffer: UnsafeMutablePointer<UInt8>
    let readBufferSize: Int

    @exclusivity(unchecked) private var listeners: [UnsafeMutablePointer<uv_tcp_t>] = []
    private var sweepTimer: UnsafeMutablePointer<uv_timer_t>?
    @exclusivity(unchecked) private(set) var connections: [HTTPConnection] = []
    @exclusivity(unchecked) private var openHandles = 0
    @exclusivity(unchecked) private(set) var isClosing = false
    @exclusivity(unchecked) private var closeCompletions: [() -> Void] = []

    /// Six random base-36 ASCII bytes, packed (`HTTPRequestId.prefix`).
    private let requestIdPrefix: UInt64
    @exclusivity(unchecked) private var requestCounter: UInt64 = 0

    /// "Date: ...\r\n", refreshed by the sweep timer.
    @exclusivity(unchecked) private(set) var dateHeaderLine: [UInt8] = []
    @exclusivity(unchecked) private var dateHeaderSecond = 0

    init(loop: UnsafeMutablePointer<uv_loop_t>, limits: HTTPServerLimits, handler: HTTPRequestHandler, logger: Logger) {
        self.loop = loop
        self.limits = limits
        self.handler = handler
        self.logger = logger
        self.readBufferSize = max(limits.readBufferBytes, 4096)
        self.readBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: readBufferSize)
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
        var generator = SystemRandomNumberGenerator()
        if limits.headerBytesMax > 80 * 1024 {
            // http_parser has its own, process-wide header limit (default 80 KiB); keep it above ours.
            http_parser_set_max_header_size(UInt32(clamping: limits.headerBytesMax + 4096))
        }
        var prefix: UInt64 = 0
        for index in 0..<6 {
            prefix |= UInt64(alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))]) << (8 * UInt64(index))
        }
        self.requestIdPrefix = prefix
        refreshDateHeader()
    }

    deinit {
        readBuffer.deallocate()
    }

    // MARK: Listening

    /// Binds and listens; returns the bound port (pass 0 for an ephemeral one). `host` is an IPv4 or IPv6
    /// literal ("localhost" means 127.0.0.1). May be called more than once (several addresses).
    func listen(host: String, port: Int) throws -> Int {
        guard !isClosing else { throw HTTPServerError(description: "cannot listen: the server is closing") }
        // A write to a connection the peer already closed must fail with EPIPE, not kill the
        // process (responses are written directly with uv_try_write).
        signal(SIGPIPE, SIG_IGN)
        guard (0...65535).contains(port) else {
            throw HTTPServerError(description: "cannot listen on \(host):\(port): port out of range 0...65535")
        }
        let address = host == "localhost" ? "127.0.0.1" : host
        var storage = sockaddr_storage()
        let parsed: Int32 = withUnsafeMutablePointer(to: &storage) { pointer in
            if address.contains(":") {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_addr(address, Int32(port), $0) }
            } else {
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(address, Int32(port), $0) }
            }
        }
        guard parsed == 0 else {
            throw HTTPServerError(description: "cannot listen on \(host):\(port): not an IPv4 or IPv6 address literal")
        }

        let tcp = malloc(MemoryLayout<uv_tcp_t>.size)!.bindMemory(to: uv_tcp_t.self, capacity: 1)
        var result = uv_tcp_init(loop, tcp)
        guard result == 0 else {
            free(tcp)
            throw HTTPServerError(description: "cannot listen on \(host):\(port): \(HTTPServer.uvErrorText(result))")
        }
        adoptServerHandle(hc_tcp_as_handle(tcp))

        result = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(tcp, $0, 0) }
        }
        if result == 0 {
            result = uv_listen(hc_tcp_as_stream(tcp), 1024) { stream, status in
                guard let stream, let data = stream.pointee.data else { return }
                Unmanaged<HTTPServer>.fromOpaque(data).takeUnretainedValue().acceptConnection(listener: stream, status: status)
            }
        }
        guard result == 0 else {
            uv_close(hc_tcp_as_handle(tcp), HTTPServer.serverHandleClosed)
            throw HTTPServerError(description: "cannot listen on \(host):\(port): \(HTTPServer.uvErrorText(result))")
        }

        var bound = sockaddr_storage()
        var boundLength = Int32(MemoryLayout<sockaddr_storage>.size)
        result = withUnsafeMutablePointer(to: &bound) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getsockname(tcp, $0, &boundLength) }
        }
        var boundPort = port
        if result == 0 {
            boundPort = withUnsafePointer(to: &bound) { pointer -> Int in
                if Int32(pointer.pointee.ss_family) == AF_INET6 {
                    return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
                }
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        }
        listeners.append(tcp)
        startSweepTimerIfNeeded()
        logger.debug("http: listening", metadata: ["host": "\(host)", "port": "\(boundPort)"])
        return boundPort
    }

    // MARK: Closing

    /// Stops accepting, closes every connection (idle ones at once; others after their ready responses are
    /// written, or after `lingerMilliseconds` at most), and calls `completion` once every handle's close callback
    /// has run.
    func close(_ completion: @escaping () -> Void) {
        closeCompletions.append(completion)
        if isClosing { return }
        isClosing = true
        for listener in listeners { uv_close(hc_tcp_as_handle(listener), HTTPServer.serverHandleClosed) }
        listeners.removeAll()
        let now = uv_now(loop)
        for connection in connections { connection.beginServerShutdown(now: now) }
        closeSweepTimerIfDone()
        finishCloseIfDone()
    }

    private func closeSweepTimerIfDone() {
        guard isClosing, connections.isEmpty, let timer = sweepTimer else { return }
        sweepTimer = nil
        uv_timer_stop(timer)
        uv_close(hc_timer_as_handle(timer), HTTPServer.serverHandleClosed)
    }

    private func finishCloseIfDone() {
        guard isClosing, openHandles == 0, !closeCompletions.isEmpty else { return }
        let completions = closeCompletions
        closeCompletions.removeAll()
        for completion in completions { completion() }
    }

    /// Server-owned handles (listeners, the sweep timer, rejected connections) hold a retained server in `data`.
    private func adoptServerHandle(_ handle: UnsafeMutablePointer<uv_handle_t>) {
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        openHandles += 1
    }

    private static let serverHandleClosed: uv_close_cb = { handle in
        guard let handle else { return }
        let server = Unmanaged<HTTPServer>.fromOpaque(handle.pointee.data!).takeRetainedValue()
        free(handle)
        server.handleClosed()
    }

    func handleClosed() {
        openHandles -= 1
        finishCloseIfDone()
    }

    // MARK: Connections

    private func acceptConnection(listener: UnsafeMutablePointer<uv_stream_t>, status: Int32) {
        guard status == 0 else {
            logger.warning("http: accept failed", metadata: ["error": "\(HTTPServer.uvErrorText(status))"])
            return
        }
        let tcp = malloc(MemoryLayout<uv_tcp_t>.size)!.bindMemory(to: uv_tcp_t.self, capacity: 1)
        guard uv_tcp_init(loop, tcp) == 0 else { free(tcp); return }
        let result = uv_accept(listener, hc_tcp_as_stream(tcp))
        if result != 0 || isClosing || connections.count >= limits.connectionsMax {
            adoptServerHandle(hc_tcp_as_handle(tcp))
            uv_close(hc_tcp_as_handle(tcp), HTTPServer.serverHandleClosed)
            if result == 0 {
                connectionsRejectedTotal += 1
                logger.debug("http: connection limit reached, closing new connection", metadata: ["limit": "\(limits.connectionsMax)"])
            }
            return
        }
        connectionsAcceptedTotal += 1
        uv_tcp_nodelay(tcp, 1)
        let connection = HTTPConnection(server: self, tcp: tcp, now: uv_now(loop))
        connection.listIndex = connections.count
        connections.append(connection)
        openHandles += 1
        connection.start()
    }

    /// Called by a connection when it starts closing (its handle's close callback calls `handleClosed`).
    func removeConnection(_ connection: HTTPConnection) {
        let index = connection.listIndex
        guard index >= 0, index < connections.count, connections[index] === connection else { return }
        let last = connections.removeLast()
        if index < connections.count {
            connections[index] = last
            last.listIndex = index
        }
        connection.listIndex = -1
        closeSweepTimerIfDone()
    }

    // MARK: Sweep timer (timeouts of every connection)

    private func startSweepTimerIfNeeded() {
        guard sweepTimer == nil else { return }
        let timer = malloc(MemoryLayout<uv_timer_t>.size)!.bindMemory(to: uv_timer_t.self, capacity: 1)
        uv_timer_init(loop, timer)
        adoptServerHandle(hc_timer_as_handle(timer))
        sweepTimer = timer
        let shortest = min(limits.idleTimeoutMilliseconds, limits.requestTimeoutMilliseconds, limits.lingerMilliseconds)
        let interval = UInt64(max(10, min(1000, shortest / 4)))
        uv_timer_start(timer, { timer in
            guard let timer, let data = timer.pointee.data else { return }
            Unmanaged<HTTPServer>.fromOpaque(data).takeUnretainedValue().sweep()
        }, interval, interval)
    }

    private func sweep() {
        refreshDateHeader()
        let now = uv_now(loop)
        var index = connections.count - 1
        while index >= 0 {
            if index < connections.count { connections[index].sweep(now: now) }
            index -= 1
        }
        closeSweepTimerIfDone()
    }

    private func refreshDateHeader() {
        var now = time(nil)
        guard now != dateHeaderSecond else { return }
        dateHeaderSecond = now
        var parts = tm()
        gmtime_r(&now, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let text = "Date: \(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT\r\n"
        dateHeaderLine = Array(text.utf8)
    }

    // MARK: Request ids

    /// A short id, unique per process: a random per-server prefix and a counter (numbers;
    /// formatted in base 36 only when written).
    func makeRequestId() -> HTTPRequestId {
        requestCounter &+= 1
        return HTTPRequestId(prefix: requestIdPrefix, number: requestCounter)
    }

    func countRequest() { requestsTotal += 1 }
    func countProtocolError() { protocolErrorsTotal += 1 }

    static func uvErrorText(_ code: Int32) -> String {
        "\(String(cString: uv_strerror(code))) (\(String(cString: uv_err_name(code))))"
    }
}
