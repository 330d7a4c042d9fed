// `headcount-loadgen sink`: a trivial HTTP server that acknowledges every feed request with
// `{"accepted":<lines>,"duplicates":0,"rejected":[]}` at once, so the generator's own ceiling
// can be measured without Headcount's work in the way (run it pinned to another core).
#if canImport(Glibc)
import Glibc
#endif
import Foundation

enum SinkServer {
    /// Listens on 127.0.0.1:`port` (0: any) and serves until `seconds` pass or SIGINT/SIGTERM.
    static func serve(port: UInt16, seconds: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw LoadgenError("socket failed") }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr)
        let bound = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 128) == 0 else { throw LoadgenError("bind/listen: \(String(cString: strerror(errno)))") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(listener, $0, &len) }
        }
        print("sink listening on http://127.0.0.1:\(UInt16(bigEndian: sa.sin_port))")
        fflush(stdout)
        let deadline = monoNow() + UInt64(seconds) * 1_000_000_000
        var threads: [JoinableThread] = []
        while !globalStop.load(ordering: .relaxed) && monoNow() < deadline {
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 200) <= 0 { continue }
            let fd = accept(listener, nil, nil)
            if fd < 0 { continue }
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            threads.append(JoinableThread { serveConnection(fd, deadline: deadline) })
        }
        close(listener)
        globalStop.store(true, ordering: .relaxed)
        for t in threads { t.join() }
    }

    private static func serveConnection(_ fd: Int32, deadline: UInt64) {
        defer { close(fd) }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let capacity = 32 << 20
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var length = 0
        var out: [UInt8] = []
        out.reserveCapacity(64 << 10)
        while !globalStop.load(ordering: .relaxed) && monoNow() < deadline {
            let n = read(fd, buffer + length, capacity - length)
            if n == 0 { return }
            if n < 0 { if errno == EAGAIN || errno == EINTR { continue }; return }
            length += n
            var pos = 0
            while true {
                // Head end.
                var end = -1
                var i = pos + 3
                while i < length {
                    if buffer[i] == 10 && buffer[i - 1] == 13 && buffer[i - 2] == 10 && buffer[i - 3] == 13 { end = i + 1; break }
                    i += 1
                }
                if end < 0 { break }
                let contentLength = scanContentLength(buffer + pos, end - pos)
                if end + contentLength > length { break }
                // Events = NDJSON lines.
                var events = 0
                var p = buffer + end
                let stop = buffer + end + contentLength
                while p < stop, let nl = memchr(p, 10, stop - p) {
                    events += 1
                    p = nl.assumingMemoryBound(to: UInt8.self) + 1
                }
                if p < stop { events += 1 }
                let body = "{\"accepted\":\(events),\"duplicates\":0,\"rejected\":[]}"
                out.append(string: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
                out.append(string: body)
                pos = end + contentLength
            }
            if pos > 0 {
                let rest = length - pos
                if rest > 0 { buffer.update(from: buffer + pos, count: rest) }
                length = rest
            }
            if length == capacity { return }
            if !out.isEmpty {
                if !writeAll(fd, out) { return }
                out.removeAll(keepingCapacity: true)
            }
        }
    }

    private static func scanContentLength(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        let name = Array("content-length:".utf8)
        var i = 0
        while i + name.count < n {
            if p[i] == 10 {
                var match = true
                for (k, c) in name.enumerated() {
                    let b = p[i + 1 + k]
                    if (b >= 65 && b <= 90 ? b | 0x20 : b) != c { match = false; break }
                }
                if match {
                    var j = i + 1 + name.count, v = 0
                    while j < n && p[j] == 32 { j += 1 }
                    while j < n, p[j] >= 48, p[j] <= 57 { v = v * 10 + Int(p[j] - 48); j += 1 }
                    return v
                }
            }
            i += 1
        }
        return 0
    }
}
