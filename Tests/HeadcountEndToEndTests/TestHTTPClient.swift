import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately small blocking HTTP/1.1 client over a POSIX socket, so end-to-end tests can
/// speak real HTTP — well-formed or not — to the real binary. Every read has a timeout, so a
/// test can fail but never hang.
final class TestHTTPClient {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]

        var text: String { String(decoding: body, as: UTF8.self) }
        func json() throws -> Any { try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) }
        func jsonObject() throws -> [String: Any] {
            guard let object = try json() as? [String: Any] else { throw TestHTTPClient.Failure("not a JSON object: \(text)") }
            return object
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    private var socketDescriptor: Int32 = -1
    private var buffer: [UInt8] = []
    let port: Int

    init(port: Int, timeoutSeconds: Int = 20) throws {
        self.port = port
        socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { throw Failure("socket() failed") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(socketDescriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socketDescriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(socketDescriptor)
            throw Failure("connect to port \(port) failed: \(String(cString: strerror(errno)))")
        }
    }

    deinit { if socketDescriptor >= 0 { close(socketDescriptor) } }

    func closeConnection() {
        if socketDescriptor >= 0 { close(socketDescriptor) }
        socketDescriptor = -1
    }

    func sendRaw(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(socketDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { throw Failure("send failed: \(String(cString: strerror(errno)))") }
            offset += written
        }
    }

    func sendRaw(_ text: String) throws { try sendRaw(Array(text.utf8)) }

    /// Sends one request and reads its response.
    func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil) throws -> Response {
        try sendRaw(TestHTTPClient.encode(method, target, headers: headers, body: body))
        return try readResponse()
    }

    func request(_ method: String, _ target: String, key: String?, contentType: String? = nil, body: String? = nil) throws -> Response {
        var headers: [(String, String)] = []
        if let key { headers.append(("Authorization", "Bearer \(key)")) }
        if let contentType { headers.append(("Content-Type", contentType)) }
        return try request(method, target, headers: headers, body: body.map { Array($0.utf8) })
    }

    static func encode(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil) -> [UInt8] {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + (body ?? [])
    }

    /// Reads one response; nil-safe on a closed connection (throws).
    func readResponse() throws -> Response {
        let headerEnd = try readUntilHeaderEnd()
        let head = String(decoding: buffer[..<headerEnd], as: UTF8.self)
        buffer.removeSubrange(..<(headerEnd + 4))
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw Failure("bad status line in \(head)") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if status == 100 { return try readResponse() }
        var body: [UInt8] = []
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                let lineEnd = try readUntil([13, 10])
                let sizeText = String(decoding: buffer[..<lineEnd], as: UTF8.self)
                buffer.removeSubrange(..<(lineEnd + 2))
                guard let size = Int(sizeText.split(separator: ";")[0], radix: 16) else { throw Failure("bad chunk size") }
                try fill(size + 2)
                body += buffer[..<size]
                buffer.removeSubrange(..<(size + 2))
                if size == 0 { break }
            }
        } else if let lengthText = headers["content-length"], let length = Int(lengthText) {
            try fill(length)
            body = Array(buffer[..<length])
            buffer.removeSubrange(..<length)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// True when the server closed the connection (reads EOF) within the timeout.
    func isClosedByPeer() -> Bool {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = scratch.withUnsafeMutableBytes { recv(socketDescriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
        }
    }

    private func readMore() throws {
        var scratch = [UInt8](repeating: 0, count: 65536)
        let count = scratch.withUnsafeMutableBytes { recv(socketDescriptor, $0.baseAddress, $0.count, 0) }
        if count == 0 { throw Failure("connection closed by the server") }
        if count < 0 { throw Failure("recv failed: \(String(cString: strerror(errno)))") }
        buffer += scratch[..<count]
    }

    private func fill(_ count: Int) throws { while buffer.count < count { try readMore() } }

    private func readUntil(_ marker: [UInt8]) throws -> Int {
        while true {
            if buffer.count >= marker.count {
                for start in 0...(buffer.count - marker.count) where buffer[start..<(start + marker.count)].elementsEqual(marker) {
                    return start
                }
            }
            try readMore()
        }
    }

    private func readUntilHeaderEnd() throws -> Int { try readUntil([13, 10, 13, 10]) }
}
