import CHTTPParser
import CLibUV
import Glibc
import Logging

/// The http_parser callbacks: plain C function pointers that capture nothing and reach the connection
/// through `parser.data` (unretained: the connection outlives its parser).
private let parserSettings: UnsafeMutablePointer<http_parser_settings> = {
    let settings = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
    settings.initialize(to: http_parser_settings())
    settings.pointee.on_message_begin = { parser in connection(parser).onMessageBegin() }
    settings.pointee.on_url = { parser, at, length in connection(parser).onURL(UnsafeRawPointer(at!), length) }
    settings.pointee.on_header_field = { parser, at, length in connection(parser).onHeaderField(UnsafeRawPointer(at!), length) }
    settings.pointee.on_header_value = { parser, at, length in connection(parser).onHeaderValue(UnsafeRawPointer(at!), length) }
    settings.pointee.on_headers_complete = { parser in connection(parser).onHeadersComplete() }
    settings.pointee.on_body = { parser, at, length in connection(parser).onBody(UnsafeRawPointer(at!), length) }
    settings.pointee.on_message_complete = { parser in connection(parser).onMessageComplete() }
    return settings
}()

@inline(__always)
private func connection(_ parser: UnsafeMutablePointer<http_parser>?) -> HTTPConnection {
    Unmanaged<HTTPConnection>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
}

@inline(__always)
private func connection(data: UnsafeMutableRawPointer?) -> HTTPConnection {
    Unmanaged<HTTPConnection>.fromOpaque(data!).takeUnretainedValue()
}

private let allocCallback: uv_alloc_cb = { handle, _, buffer in
    let server = connection(data: handle!.pointee.data).server
    buffer!.pointee = uv_buf_init(UnsafeMutableRawPointer(server.readBuffer).assumingMemoryBound(to: CChar.self), UInt32(server.readBufferSize))
}

private let readCallback: uv_read_cb = { stream, count, buffer in
    let owner = connection(data: stream!.pointee.data)
    if count > 0 {
        owner.onRead(UnsafeRawPointer(buffer!.pointee.base!), count)
    } else if count < 0 {
        owner.onReadError(Int32(count))
    }
}

private let writeCallback: uv_write_cb = { request, status in
    connection(data: request!.pointee.data).writeCompleted(status: status)
}

private let shutdownCallback: uv_shutdown_cb = { request, status in
    connection(data: request!.pointee.data).shutdownCompleted(status: status)
}

private let closeCallback: uv_close_cb = { handle in
    let owner = Unmanaged<HTTPConnection>.fromOpaque(handle!.pointee.data!).takeRetainedValue()
    free(handle)
    owner.server.handleClosed()
}

/// One TCP connection: parses requests, hands them to the handler, writes responses in request order.
/// Lives on the loop thread; its uv_tcp_t holds the only long-lived strong reference (released on close).
///
/// Stored properties are `@exclusivity(unchecked)`: only the loop thread touches them, and dynamic exclusivity
/// checks were a large share of the instructions per request (TOOLCHAIN.md).
final class HTTPConnection {
    private enum SlotContent {
        case pending
        case response(HTTPResponse)
        case continueInterim
        case done
    }

    private struct Slot {
        var content: SlotContent
        var requestId: HTTPRequestId
        var keepAlive: Bool
        var isHead: Bool
    }

    let server: HTTPServer
    private let limits: HTTPServerLimits
    private let tcp: UnsafeMutablePointer<uv_tcp_t>
    private let stream: UnsafeMutablePointer<uv_stream_t>
    private let parser: UnsafeMutablePointer<http_parser>
    private let writeRequest: UnsafeMutablePointer<uv_write_t>
    private let shutdownRequest: UnsafeMutablePointer<uv_shutdown_t>
    /// Index in the server's connection list (-1 once closing).
    @exclusivity(unchecked) var listIndex = -1

    // The request being parsed.
    @exclusivity(unchecked) private var inRequest = false
    @exclusivity(unchecked) private var requestStartedAt: UInt64 = 0
    @exclusivity(unchecked) private var headerBytes = 0
    /// The request's head as bytes: its URL (`urlLength` bytes), then each header's name
    /// (lowercased in place) and value, with `fields` pointing into it. Both buffers and `body` are
    /// reused from request to request (kept while small): when the handler let go of the previous
    /// request they are uniquely referenced again, and a request needs no new memory for them.
    @exclusivity(unchecked) private var head: [UInt8] = []
    @exclusivity(unchecked) private var fields: [HTTPHeaderField] = []
    @exclusivity(unchecked) private var urlLength = 0
    /// The header being parsed: where its name starts (-1: none yet), where its value starts.
    @exclusivity(unchecked) private var nameStart = -1
    @exclusivity(unchecked) private var nameEnd = 0
    @exclusivity(unchecked) private var valueStart = 0
    @exclusivity(unchecked) private var lastCallbackWasValue = false
    /// After on_headers_complete, header callbacks carry chunked trailers: counted, not kept.
    @exclusivity(unchecked) private var headersDone = false
    @exclusivity(unchecked) private var body: [UInt8] = []
    @exclusivity(unchecked) private var method = HTTPMethod.get
    @exclusivity(unchecked) private var pathRange = 0..<0
    @exclusivity(unchecked) private var queryRange = 0..<0
    @exclusivity(unchecked) private var keepAlive = true
    @exclusivity(unchecked) private var isHead = false
    @exclusivity(unchecked) private var httpMajor = 1
    @exclusivity(unchecked) private var httpMinor = 1

    // Responses, in request order. slots[slotHead] has sequence number headSequence.
    @exclusivity(unchecked) private var slots: [Slot] = []
    @exclusivity(unchecked) private var slotHead = 0
    @exclusivity(unchecked) private var headSequence: UInt64 = 0
    @exclusivity(unchecked) private var unanswered = 0
    @exclusivity(unchecked) private var staging = HTTPOutputBuffer()
    @exclusivity(unchecked) private var writing = HTTPOutputBuffer()
    @exclusivity(unchecked) private var writeInFlight = false

    // Life cycle.
    @exclusivity(unchecked) private var closing = false
    @exclusivity(unchecked) private var noMoreRequests = false
    @exclusivity(unchecked) private var closeWhenFlushed = false
    @exclusivity(unchecked) private var peerEOF = false
    @exclusivity(unchecked) private var shutdownIssued = false
    @exclusivity(unchecked) private var lingerDeadline: UInt64 = 0
    @exclusivity(unchecked) private var forceCloseDeadline: UInt64 = 0
    @exclusivity(unchecked) private var isReading = false
    @exclusivity(unchecked) private var parserPaused = false
    @exclusivity(unchecked) private var backlog: [UInt8] = []
    @exclusivity(unchecked) private var inParse = false
    @exclusivity(unchecked) private var lastActivity: UInt64

    init(server: HTTPServer, tcp: UnsafeMutablePointer<uv_tcp_t>, now: UInt64) {
        self.server = server
        self.limits = server.limits
        self.tcp = tcp
        self.stream = hc_tcp_as_stream(tcp)
        self.parser = malloc(MemoryLayout<http_parser>.size)!.bindMemory(to: http_parser.self, capacity: 1)
        self.writeRequest = malloc(MemoryLayout<uv_write_t>.size)!.bindMemory(to: uv_write_t.self, capacity: 1)
        self.shutdownRequest = malloc(MemoryLayout<uv_shutdown_t>.size)!.bindMemory(to: uv_shutdown_t.self, capacity: 1)
        self.lastActivity = now
        http_parser_init(parser, HTTP_REQUEST)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        free(parser)
        free(writeRequest)
        free(shutdownRequest)
    }

    func start() {
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
        updateReading()
    }

    private var now: UInt64 { uv_now(server.loop) }

    private var isBackpressured: Bool {
        unanswered >= limits.pipelinedRequestsMax
            || staging.count + (writeInFlight ? writing.count : 0) >= limits.outputBytesHighWater
    }

    // MARK: Reading

    fileprivate func onRead(_ data: UnsafeRawPointer, _ count: Int) {
        if closing || noMoreRequests { return }  // after the last request: read and discard
        inParse = true
        feed(data, count)
        inParse = false
        afterParse()
    }

    fileprivate func onReadError(_ code: Int32) {
        isReading = false
        if closing { return }
        guard code == UV_EOF.rawValue else {
            closeNow()
            return
        }
        // The client finished sending (or went away). Answer what was complete, then close.
        peerEOF = true
        noMoreRequests = true
        closeWhenFlushed = true
        inRequest = false
        backlog = []
        if shutdownIssued {
            closeNow()
            return
        }
        flush()
    }

    private func afterParse() {
        flush()
        resume()
        updateReading()
    }

    /// Runs the parser over `data`; stops early on an error, on the last request, or when paused.
    private func feed(_ data: UnsafeRawPointer, _ count: Int) {
        var offset = 0
        while offset < count {
            let consumed = http_parser_execute(
                parser, parserSettings, (data + offset).assumingMemoryBound(to: CChar.self), count - offset)
            offset += consumed
            if closing || noMoreRequests { return }
            let error = hc_http_parser_errno(parser)
            if error == HPE_PAUSED {
                if offset < count {
                    backlog.append(contentsOf: UnsafeRawBufferPointer(start: data + offset, count: count - offset))
                }
                return
            }
            if error != HPE_OK {
                parserFailed(error)
                return
            }
            if hc_http_parser_upgrade(parser) != 0 {
                // Upgrade is not supported and is ignored (RFC 9110 §7.8): the request was served as plain
                // HTTP/1.1, and the bytes after it are the next request.
                hc_http_parser_clear_upgrade(parser)
                continue
            }
            if consumed == 0 {
                protocolError(status: 400, code: "MALFORMED_REQUEST", message: "Malformed HTTP request: the parser made no progress")
                return
            }
        }
    }

    /// Continues parsing bytes held back while the connection was over its pipelining limits.
    private func resume() {
        while parserPaused && !closing && !noMoreRequests && !isBackpressured {
            parserPaused = false
            http_parser_pause(parser, 0)
            let pending = backlog
            backlog = []
            if !pending.isEmpty {
                inParse = true
                pending.withUnsafeBytes { feed($0.baseAddress!, $0.count) }
                inParse = false
            }
            flush()
        }
    }

    private func updateReading() {
        let wanted = !closing && !peerEOF && (noMoreRequests || !parserPaused)
        if wanted && !isReading {
            if uv_read_start(stream, allocCallback, readCallback) == 0 {
                isReading = true
            } else {
                closeNow()
            }
        } else if !wanted && isReading && !closing {
            uv_read_stop(stream)
            isReading = false
        }
    }

    private func parserFailed(_ error: http_errno) {
        let name = String(cString: http_errno_name(error))
        let description = String(cString: http_errno_description(error))
        switch error {
        case HPE_HEADER_OVERFLOW:
            protocolError(status: 431, code: "HEADERS_TOO_LARGE",
                          message: "Request line and headers exceed \(limits.headerBytesMax) bytes")
        case HPE_INVALID_TRANSFER_ENCODING:
            protocolError(status: 501, code: "UNSUPPORTED_TRANSFER_ENCODING",
                          message: "Unsupported Transfer-Encoding: only chunked is supported")
        default:
            protocolError(status: 400, code: "MALFORMED_REQUEST",
                          message: "Malformed HTTP request: \(description) (\(name))")
        }
    }

    /// Answers a request the HTTP layer itself rejects, then closes once that answer is written.
    private func protocolError(status: Int, code: String, message: String) {
        guard !closing, !noMoreRequests else { return }
        server.countProtocolError()
        let requestId = server.makeRequestId()
        server.logger.info("http: protocol error", metadata: [
            "requestId": "\(requestId.description)", "status": "\(status)", "code": "\(code)", "message": "\(message)",
        ])
        noMoreRequests = true
        closeWhenFlushed = true
        inRequest = false
        parserPaused = false
        backlog = []
        body = []
        appendSlot(Slot(content: .response(ErrorResponse.make(status: status, code: code, message: message,
                                                              requestId: requestId.description)),
                        requestId: requestId, keepAlive: false, isHead: false))
        if !inParse {
            flush()
            updateReading()
        }
    }

    // MARK: Parser callbacks

    fileprivate func onMessageBegin() -> Int32 {
        if noMoreRequests || closing { return -1 }
        inRequest = true
        requestStartedAt = now
        lastActivity = requestStartedAt
        headerBytes = 0
        // Reused while small (a connection then keeps a few KiB at most between requests); if
        // the previous request is still held elsewhere, this makes fresh buffers instead.
        if head.capacity <= HTTPConnection.headBytesKept { head.removeAll(keepingCapacity: true) } else { head = [] }
        if fields.capacity <= 64 { fields.removeAll(keepingCapacity: true) } else { fields = [] }
        if body.capacity <= HTTPConnection.bodyBytesKept { body.removeAll(keepingCapacity: true) } else { body = [] }
        urlLength = 0
        nameStart = -1
        lastCallbackWasValue = false
        headersDone = false
        return 0
    }

    private func headersTooLarge() -> Int32 {
        protocolError(status: 431, code: "HEADERS_TOO_LARGE",
                      message: "Request line and headers exceed \(limits.headerBytesMax) bytes")
        return -1
    }

    fileprivate func onURL(_ at: UnsafeRawPointer, _ length: Int) -> Int32 {
        headerBytes += length
        if headerBytes > limits.headerBytesMax { return headersTooLarge() }
        head.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        urlLength += length
        return 0
    }

    fileprivate func onHeaderField(_ at: UnsafeRawPointer, _ length: Int) -> Int32 {
        if headersDone { return countTrailerBytes(length) }
        if lastCallbackWasValue {
            lastCallbackWasValue = false
            if !commitHeader() { return headersTooLarge() }
        }
        headerBytes += length
        if headerBytes > limits.headerBytesMax { return headersTooLarge() }
        if nameStart < 0 { nameStart = head.count }
        head.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    fileprivate func onHeaderValue(_ at: UnsafeRawPointer, _ length: Int) -> Int32 {
        if headersDone { return countTrailerBytes(length) }
        if !lastCallbackWasValue { startValue() }
        lastCallbackWasValue = true
        headerBytes += length
        if headerBytes > limits.headerBytesMax { return headersTooLarge() }
        head.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    private func countTrailerBytes(_ length: Int) -> Int32 {
        headerBytes += length + 2
        return headerBytes > limits.headerBytesMax ? headersTooLarge() : 0
    }

    /// The name ends and the value starts here.
    private func startValue() {
        if nameStart < 0 { nameStart = head.count }
        nameEnd = head.count
        valueStart = head.count
    }

    /// Records the header being parsed (name lowercased in place, value without trailing
    /// whitespace); false when the header bytes are over the limit.
    private func commitHeader() -> Bool {
        var valueEnd = head.count
        head.withUnsafeMutableBufferPointer { bytes in
            for index in nameStart..<nameEnd where bytes[index] >= 65 && bytes[index] <= 90 { bytes[index] |= 0x20 }
            while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        }
        if fields.capacity == 0 { fields.reserveCapacity(8) }
        fields.append(HTTPHeaderField(nameStart: Int32(nameStart), nameEnd: Int32(nameEnd),
                                      valueStart: Int32(valueStart), valueEnd: Int32(valueEnd)))
        nameStart = -1
        headerBytes += 4  // ": " and CRLF
        return headerBytes <= limits.headerBytesMax
    }

    /// The value of a header of the request being parsed (lowercase name).
    private func headerValue(_ lowercaseName: StaticString) -> ArraySlice<UInt8>? {
        let count = lowercaseName.utf8CodeUnitCount
        for field in fields where Int(field.nameEnd - field.nameStart) == count {
            let matches = head.withUnsafeBytes { memcmp($0.baseAddress! + Int(field.nameStart), lowercaseName.utf8Start, count) == 0 }
            if matches { return head[Int(field.valueStart)..<Int(field.valueEnd)] }
        }
        return nil
    }

    fileprivate func onHeadersComplete() -> Int32 {
        if lastCallbackWasValue || (nameStart >= 0 && head.count > nameStart) {
            if !lastCallbackWasValue { startValue() }
            lastCallbackWasValue = false
            if !commitHeader() { return headersTooLarge() }
        }
        headersDone = true
        let rawMethod = hc_http_parser_method(parser)
        if rawMethod == HTTP_CONNECT.rawValue {
            protocolError(status: 501, code: "NOT_IMPLEMENTED", message: "The CONNECT method is not supported")
            return -1
        }
        method = HTTPConnection.method(rawMethod)
        isHead = rawMethod == HTTP_HEAD.rawValue
        httpMajor = Int(hc_http_parser_major(parser))
        httpMinor = Int(hc_http_parser_minor(parser))
        keepAlive = http_should_keep_alive(parser) != 0
        let flags = hc_http_parser_flags(parser)
        let chunked = flags & F_CHUNKED.rawValue != 0
        let hasLength = !chunked && flags & F_CONTENTLENGTH.rawValue != 0
        let length = parser.pointee.content_length
        if hasLength && length > UInt64(limits.bodyBytesMax) {
            protocolError(status: 413, code: "BODY_TOO_LARGE",
                          message: "The request body of \(length) bytes exceeds the limit of \(limits.bodyBytesMax) bytes")
            return -1
        }
        splitURL()
        if let expect = headerValue("expect"), (httpMajor, httpMinor) >= (1, 1), chunked || (hasLength && length > 0),
           expect.equalsIgnoringASCIICase("100-continue") {
            appendSlot(Slot(content: .continueInterim, requestId: HTTPRequestId(prefix: 0, number: 0), keepAlive: true, isHead: false))
        }
        declaredBodyBytes = hasLength ? Int(length) : 0
        if hasLength && length > 0 { body.reserveCapacity(Int(min(length, 64 * 1024))) }
        return 0
    }
    /// The request's Content-Length (0: none, or chunked).
    private var declaredBodyBytes = 0

    fileprivate func onBody(_ at: UnsafeRawPointer, _ length: Int) -> Int32 {
        if body.count + length > limits.bodyBytesMax {
            protocolError(status: 413, code: "BODY_TOO_LARGE",
                          message: "The request body exceeds the limit of \(limits.bodyBytesMax) bytes")
            return -1
        }
        let needed = body.count + length
        if needed > body.capacity && declaredBodyBytes > body.capacity {
            // Room for the declared length, in one step rather than by doubling (two copies
            // of a 200 KB batch), but never more than 4× what has arrived: a client that
            // declares 16 MiB and sends a trickle holds little memory.
            body.reserveCapacity(min(declaredBodyBytes, max(needed * 4, body.capacity * 2)))
        }
        body.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    fileprivate func onMessageComplete() -> Int32 {
        inRequest = false
        lastActivity = now
        server.countRequest()
        let requestId = server.makeRequestId()
        let request = HTTPRequest(
            method: method, headers: HTTPHeaders(bytes: head, fields: fields), pathRange: pathRange, queryRange: queryRange,
            body: body, isKeepAlive: keepAlive, requestId: requestId, httpMajor: httpMajor, httpMinor: httpMinor)
        let sequence = appendSlot(Slot(content: .pending, requestId: requestId, keepAlive: keepAlive, isHead: isHead))
        unanswered += 1
        if !keepAlive { noMoreRequests = true }
        server.handler.handle(request, responder: HTTPResponder(connection: self, sequence: sequence, requestId: requestId))
        if closing || noMoreRequests {
            http_parser_pause(parser, 1)
        } else if isBackpressured {
            parserPaused = true
            http_parser_pause(parser, 1)
        }
        return 0
    }

    /// Finds the path and the query in the URL bytes (`head[0..<urlLength]`).
    private func splitURL() {
        let url = head
        var start = 0
        let end = urlLength
        if end > 0 && url[0] != UInt8(ascii: "/") && url[0] != UInt8(ascii: "*") {
            // absolute-form ("http://host/path"): keep the path.
            var index = 0
            while index + 2 < end && !(url[index] == UInt8(ascii: ":") && url[index + 1] == UInt8(ascii: "/") && url[index + 2] == UInt8(ascii: "/")) {
                index += 1
            }
            if index + 2 < end {
                index += 3
                while index < end && url[index] != UInt8(ascii: "/") && url[index] != UInt8(ascii: "?") { index += 1 }
                start = index
            }
        }
        var pathEnd = start
        while pathEnd < end && url[pathEnd] != UInt8(ascii: "?") && url[pathEnd] != UInt8(ascii: "#") { pathEnd += 1 }
        pathRange = start..<max(start, pathEnd)
        if pathEnd < end && url[pathEnd] == UInt8(ascii: "?") {
            var queryEnd = pathEnd + 1
            while queryEnd < end && url[queryEnd] != UInt8(ascii: "#") { queryEnd += 1 }
            queryRange = (pathEnd + 1)..<queryEnd
        } else {
            queryRange = 0..<0
        }
    }

    private static func method(_ raw: UInt32) -> HTTPMethod {
        switch raw {
        case HTTP_GET.rawValue: return .get
        case HTTP_POST.rawValue: return .post
        case HTTP_PUT.rawValue: return .put
        case HTTP_DELETE.rawValue: return .delete
        case HTTP_HEAD.rawValue: return .head
        case HTTP_OPTIONS.rawValue: return .options
        case HTTP_PATCH.rawValue: return .patch
        default: return .other(String(cString: http_method_str(http_method(rawValue: raw))))
        }
    }

    // MARK: Responses

    /// Between requests a connection keeps at most these buffer capacities for reuse (so that
    /// 10,000 idle connections hold at most ~70 MB with the 64 field ranges), and gives larger ones back.
    private static let headBytesKept = 2 * 1024
    private static let bodyBytesKept = 4 * 1024

    @discardableResult
    private func appendSlot(_ slot: Slot) -> UInt64 {
        let sequence = headSequence + UInt64(slots.count - slotHead)
        slots.append(slot)
        return sequence
    }

    /// Called by HTTPResponder.
    func complete(sequence: UInt64, response: HTTPResponse) {
        guard !closing, sequence >= headSequence else { return }
        let index = slotHead + Int(sequence - headSequence)
        guard index < slots.count, case .pending = slots[index].content else { return }
        slots[index].content = .response(response)
        unanswered -= 1
        if !inParse {
            flush()
            resume()
            updateReading()
        }
    }

    /// Serializes the ready responses at the head of the queue and starts a write.
    private func flush() {
        guard !closing else { return }
        drain: while slotHead < slots.count {
            switch slots[slotHead].content {
            case .pending:
                break drain
            case .continueInterim:
                // Only while the body is still awaited: once the request is complete (a later slot exists), the
                // client did not wait and the interim response would only be noise (RFC 9110 §10.1.1).
                if slotHead + 1 == slots.count { staging.append("HTTP/1.1 100 Continue\r\n\r\n") }
            case .done:
                break
            case .response(let response):
                let slot = slots[slotHead]
                slots[slotHead].content = .done
                if serialize(response, slot) {
                    // The last response of this connection: drop whatever follows; no responder matches again.
                    slots.removeAll()
                    slotHead = 0
                    headSequence = UInt64.max
                    unanswered = 0
                    noMoreRequests = true
                    closeWhenFlushed = true
                    inRequest = false
                    parserPaused = false
                    backlog = []
                    break drain
                }
            }
            slotHead += 1
            headSequence += 1
        }
        if slotHead == slots.count {
            slots.removeAll(keepingCapacity: slots.capacity <= 64)
            slotHead = 0
        } else if slotHead >= 32 {
            slots.removeFirst(slotHead)
            slotHead = 0
        }
        startWrite()
        finishIfDone()
    }

    /// Appends the response to `staging`; returns true when the connection closes after it.
    private func serialize(_ response: HTTPResponse, _ slot: Slot) -> Bool {
        var close = !slot.keepAlive || server.isClosing
        let out = staging
        let status = response.status
        let bodyAllowed = status >= 200 && status != 204 && status != 304
        out.reserve(extra: 128 + response.body.count)
        out.append("HTTP/1.1 ")
        out.appendDecimal(status)
        out.append(UInt8(ascii: " "))
        out.append(HTTPStatus.reasonPhrase(status))
        out.append("\r\n")
        if let contentType = response.contentType {
            out.append("Content-Type: ")
            out.append(contentType.text)
            out.append("\r\n")
        }
        for (name, value) in response.headers {
            if asciiEqualsLowercase(name, "connection") {
                if value.lowercased().contains("close") { close = true }
                continue
            }
            if asciiEqualsLowercase(name, "content-length") || asciiEqualsLowercase(name, "x-request-id")
                || asciiEqualsLowercase(name, "transfer-encoding") {
                continue
            }
            out.appendHeaderText(name)
            out.append(": ")
            out.appendHeaderText(value)
            out.append("\r\n")
        }
        out.append(server.dateHeaderLine)
        if bodyAllowed {
            out.append("Content-Length: ")
            out.appendDecimal(response.body.count)
            out.append("\r\n")
        }
        out.append(close ? "Connection: close\r\n" : "Connection: keep-alive\r\n")
        out.append("X-Request-Id: ")
        slot.requestId.withBytes { out.append($0) }
        out.append("\r\n\r\n")
        if bodyAllowed && !slot.isHead { out.append(response.body) }
        return close
    }

    private func startWrite() {
        guard !writeInFlight, staging.count > 0, !closing else { return }
        // First try to write at once (`uv_try_write`): a response usually fits the socket
        // buffer, and then no write request is queued and the socket is not watched for
        // writability (two epoll_ctl calls per response saved). What does not fit goes the
        // queued way.
        var direct = uv_buf_init(UnsafeMutableRawPointer(staging.base!).assumingMemoryBound(to: CChar.self), UInt32(staging.count))
        let written = Int(uv_try_write(stream, &direct, 1))
        if written == staging.count {
            staging.reset(keepingAtMost: 256 * 1024)
            lastActivity = now
            return
        }
        let offset = max(written, 0)
        swap(&staging, &writing)
        var buffer = uv_buf_init(UnsafeMutableRawPointer(writing.base! + offset).assumingMemoryBound(to: CChar.self),
                                 UInt32(writing.count - offset))
        writeRequest.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        if uv_write(writeRequest, stream, &buffer, 1, writeCallback) != 0 {
            writing.count = 0
            closeNow()
            return
        }
        writeInFlight = true
        lastActivity = now
    }

    fileprivate func writeCompleted(status: Int32) {
        writeInFlight = false
        writing.reset(keepingAtMost: 256 * 1024)
        if closing { return }
        if status < 0 {
            closeNow()
            return
        }
        lastActivity = now
        startWrite()
        finishIfDone()
        resume()
        updateReading()
    }

    /// Once a closing connection has written everything: half-close, then linger (read and discard) so the
    /// client reads the last response instead of a reset.
    private func finishIfDone() {
        guard closeWhenFlushed, !closing, !shutdownIssued, slotHead == slots.count, staging.count == 0, !writeInFlight else {
            return
        }
        if peerEOF {
            closeNow()
            return
        }
        shutdownIssued = true
        shutdownRequest.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        if uv_shutdown(shutdownRequest, stream, shutdownCallback) != 0 {
            closeNow()
        }
    }

    fileprivate func shutdownCompleted(status: Int32) {
        if closing { return }
        // While the server shuts down there is no lingering: the last response is already in the kernel.
        if status < 0 || peerEOF || server.isClosing {
            closeNow()
            return
        }
        lingerDeadline = now + UInt64(max(0, limits.lingerMilliseconds))
        updateReading()
    }

    // MARK: Closing and timeouts

    func closeNow() {
        guard !closing else { return }
        closing = true
        isReading = false
        server.removeConnection(self)
        uv_close(hc_tcp_as_handle(tcp), closeCallback)
    }

    func beginServerShutdown(now: UInt64) {
        guard !closing else { return }
        forceCloseDeadline = now + UInt64(max(0, limits.lingerMilliseconds))
        noMoreRequests = true
        closeWhenFlushed = true
        inRequest = false
        parserPaused = false
        backlog = []
        if slotHead == slots.count && staging.count == 0 && !writeInFlight && !shutdownIssued {
            closeNow()
            return
        }
        flush()
        updateReading()
    }

    func sweep(now: UInt64) {
        if closing { return }
        if forceCloseDeadline != 0 && now >= forceCloseDeadline {
            closeNow()
            return
        }
        let idleLimit = UInt64(max(0, limits.idleTimeoutMilliseconds))
        if shutdownIssued {
            if lingerDeadline != 0 ? now >= lingerDeadline : now &- lastActivity >= idleLimit { closeNow() }
            return
        }
        if writeInFlight {
            // A client that does not read its responses.
            if now &- lastActivity >= idleLimit { closeNow() }
            return
        }
        if inRequest && !noMoreRequests && now &- requestStartedAt >= UInt64(max(0, limits.requestTimeoutMilliseconds)) {
            protocolError(status: 408, code: "REQUEST_TIMEOUT",
                          message: "The request was not completed within \(limits.requestTimeoutMilliseconds) ms")
            return
        }
        let idle = slotHead == slots.count && !inRequest && backlog.isEmpty && staging.count == 0
        if idle && now &- lastActivity >= idleLimit { closeNow() }
    }
}

extension ArraySlice where Element == UInt8 {
    /// Whether these bytes are `lowercase` (given in lowercase ASCII) up to ASCII case; a
    /// non-ASCII byte never matches.
    func equalsIgnoringASCIICase(_ lowercase: StaticString) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard self.count == count else { return false }
        let expected = lowercase.utf8Start
        // Through the buffer: iterating the slice checked its bounds byte by byte.
        return withUnsafeBufferPointer { bytes in
            for index in 0..<count {
                let byte = bytes[index]
                let folded = byte >= 65 && byte <= 90 ? byte | 0x20 : byte
                if folded != expected[index] { return false }
            }
            return true
        }
    }

    /// Whether every byte is printable ASCII (0x20–0x7E) or a tab.
    var isPrintableASCIIOrTab: Bool {
        withUnsafeBufferPointer { bytes in
            for byte in bytes where !(byte >= 0x20 && byte < 0x7F) && byte != 0x09 { return false }
            return true
        }
    }

    /// `self[start..<end]` without the spaces and tabs at either end.
    func trimmingSpacesAndTabs() -> ArraySlice<UInt8> {
        withUnsafeBufferPointer { bytes in
            var start = 0
            var end = bytes.count
            while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
            while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
            return self[(startIndex + start)..<(startIndex + end)]
        }
    }
}

@inline(__always)
private func asciiEqualsLowercase(_ string: String, _ lowercase: StaticString) -> Bool {
    let count = lowercase.utf8CodeUnitCount
    guard string.utf8.count == count else { return false }
    let expected = lowercase.utf8Start
    var index = 0
    for byte in string.utf8 {
        let folded = byte >= 65 && byte <= 90 ? byte | 0x20 : byte
        if folded != expected[index] { return false }
        index += 1
    }
    return true
}
