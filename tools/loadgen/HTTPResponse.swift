// A minimal HTTP/1.1 response framer for the loadgen: status line, Content-Length framing,
// `Connection: close`. Enough for Headcount's answers; anything it cannot
// frame is reported as a protocol error (never silently dropped).

#if canImport(Glibc)
import Glibc
#endif

enum FrameResult {
    case incomplete
    case bad(String)
    /// A whole response: its head, body start offset and length, and total bytes consumed.
    case response(status: Int, bodyStart: Int, bodyLength: Int, consumed: Int, close: Bool)
}

@inline(__always)
private func lower(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b | 0x20 : b }

/// Does `p[0..<n]` start with the lower-case ASCII `name` (case-insensitively)?
@inline(__always)
private func hasPrefixCI(_ p: UnsafePointer<UInt8>, _ n: Int, _ name: StaticString) -> Bool {
    let len = name.utf8CodeUnitCount
    if n < len { return false }
    let q = name.utf8Start
    for i in 0..<len where lower(p[i]) != q[i] { return false }
    return true
}

/// Frames the first response in `p[0..<n]`.
func frameResponse(_ p: UnsafePointer<UInt8>, _ n: Int) -> FrameResult {
    // Find the end of the head.
    if n < 16 { return .incomplete }
    // memchr rather than a byte loop: this runs for every answer, and the generator's own
    // CPU is part of what a race on one machine measures.
    var end = -1
    var from = 0
    while from < n - 3, let found = memchr(p + from, 13, n - 3 - from) {
        let at = UnsafeRawPointer(found) - UnsafeRawPointer(p)
        if p[at + 1] == 10 && p[at + 2] == 13 && p[at + 3] == 10 { end = at + 4; break }
        from = at + 1
    }
    if end < 0 { return n > 64 * 1024 ? .bad("response head over 64 KiB") : .incomplete }
    guard hasPrefixCI(p, n, "http/1."), p[8] == 32 else { return .bad("not an HTTP/1.x status line") }
    let d0 = Int(p[9]) - 48, d1 = Int(p[10]) - 48, d2 = Int(p[11]) - 48
    guard (0...9).contains(d0), (0...9).contains(d1), (0...9).contains(d2) else { return .bad("bad status code") }
    let status = d0 * 100 + d1 * 10 + d2

    var contentLength = -1
    var chunked = false
    var close = false
    // Walk header lines.
    @inline(__always) func find(_ byte: UInt8, from start: Int) -> Int {
        guard start < end, let at = memchr(p + start, Int32(byte), end - start) else { return end }
        return UnsafeRawPointer(at) - UnsafeRawPointer(p)
    }
    var line = find(10, from: 0) + 1
    while line < end - 2 {
        let eol = find(13, from: line)
        let lp = p + line, ln = eol - line
        if hasPrefixCI(lp, ln, "content-length:") {
            var v = 0, j = 15
            while j < ln && lp[j] == 32 { j += 1 }
            while j < ln, lp[j] >= 48, lp[j] <= 57 { v = v * 10 + Int(lp[j] - 48); j += 1 }
            contentLength = v
        } else if hasPrefixCI(lp, ln, "transfer-encoding:") {
            chunked = true
        } else if hasPrefixCI(lp, ln, "connection:") {
            var j = 11
            while j < ln && lp[j] == 32 { j += 1 }
            if hasPrefixCI(lp + j, ln - j, "close") { close = true }
        }
        line = eol + 2
    }
    if chunked {
        // Headcount always answers with Content-Length; a chunked answer is counted as a
        // protocol error rather than half-understood.
        return .bad("chunked response (not supported by the loadgen)")
    }
    if contentLength < 0 && status != 204 && status != 304 {
        return .bad("response without Content-Length")
    }
    let length = max(0, contentLength)
    if end + length > n { return .incomplete }
    return .response(status: status, bodyStart: end, bodyLength: length, consumed: end + length, close: close)
}

// MARK: - Body scanning

/// The integer after `"key":` in `p[0..<n]`, or nil.
func scanInt(_ p: UnsafePointer<UInt8>, _ n: Int, key: StaticString) -> Int? {
    let k = key.utf8Start, kl = key.utf8CodeUnitCount
    var i = 0
    while i + kl + 2 < n {
        if p[i] == 34 {
            var match = true
            for j in 0..<kl where p[i + 1 + j] != k[j] { match = false; break }
            if match && p[i + 1 + kl] == 34 {
                var j = i + 2 + kl
                while j < n && (p[j] == 32 || p[j] == 58) { j += 1 }
                var v = 0, any = false
                while j < n, p[j] >= 48, p[j] <= 57 { v = v * 10 + Int(p[j] - 48); j += 1; any = true }
                return any ? v : nil
            }
        }
        i += 1
    }
    return nil
}

/// How many times `"key"` occurs in `p[0..<n]`.
func countKey(_ p: UnsafePointer<UInt8>, _ n: Int, key: StaticString) -> Int {
    let k = key.utf8Start, kl = key.utf8CodeUnitCount
    var i = 0, count = 0
    while i + kl + 1 < n {
        if p[i] == 34 && p[i + 1 + kl] == 34 {
            var match = true
            for j in 0..<kl where p[i + 1 + j] != k[j] { match = false; break }
            if match { count += 1; i += kl + 2; continue }
        }
        i += 1
    }
    return count
}

/// Parsed counts of one feed answer `{"accepted":n,"duplicates":n,"rejected":[...]}`.
struct FeedAnswer {
    var accepted: Int
    var duplicates: Int
    var rejected: Int
}

func parseFeedAnswer(_ p: UnsafePointer<UInt8>, _ n: Int) -> FeedAnswer? {
    guard let a = scanInt(p, n, key: "accepted"), let d = scanInt(p, n, key: "duplicates") else { return nil }
    // The common answer ends `"rejected":[]}`: nothing to count.
    let noRejections = n >= 3 && p[n - 3] == UInt8(ascii: "[") && p[n - 2] == UInt8(ascii: "]") && p[n - 1] == UInt8(ascii: "}")
    return FeedAnswer(accepted: a, duplicates: d, rejected: noRejections ? 0 : countKey(p, n, key: "index"))
}

func preview(_ p: UnsafePointer<UInt8>, _ n: Int, limit: Int = 300) -> String {
    String(decoding: UnsafeBufferPointer(start: p, count: min(n, limit)), as: UTF8.self)
}
