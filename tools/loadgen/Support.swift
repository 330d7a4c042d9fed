import ArgumentParser
// Small runtime helpers for headcount-loadgen: clocks, a seeded RNG, byte builders,
// loopback TCP sockets and joinable threads. Nothing here allocates per request.
#if canImport(Glibc)
import Glibc
import CLibUV
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

// MARK: - Clocks

/// Monotonic nanoseconds (CLOCK_MONOTONIC): every latency is a difference of these.
@inline(__always)
func monoNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME): feed `occurredAt`, query `dateTime`.
@inline(__always)
func wallMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) &* 1000 &+ Int64(ts.tv_nsec) / 1_000_000
}

/// Sleeps until the monotonic instant `deadline` (no-op if it has passed).
func sleepUntil(_ deadline: UInt64) {
    var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
}

/// Linux rounds timer wake-ups up by the thread's timer slack (50 µs by default); an open-loop
/// schedule wants them on time.
func tightenTimerSlack() {
    #if os(Linux)
    _ = cPrctl?(29 /* PR_SET_TIMERSLACK */, 1, 0, 0, 0)
    #endif
}

/// Puts the calling thread in the SCHED_BATCH class: the same CPU share as a normal thread,
/// but its wake-ups do not preempt the thread on the CPU. For the feed threads, which share
/// the machine with the server they measure.
func makeThreadBatchClass() {
    #if os(Linux)
    var param = sched_param()
    param.sched_priority = 0
    _ = sched_setscheduler(0, 3 /* SCHED_BATCH (named only with _GNU_SOURCE) */, &param)
    #endif
}

/// A 100 µs EEVDF time slice for the calling thread (Linux 6.12+; ignored elsewhere): the
/// query and probe threads measure latency from their schedule, so they should wake on time
/// even while the feed threads and the server keep both cores busy. Same CPU share.
func favorWakeUpLatency() {
    #if os(Linux)
    _ = hc_set_thread_slice(100_000, 0)
    #endif
}

/// Puts the calling thread in SCHED_FIFO at priority 1 (needs CAP_SYS_NICE); false if refused.
/// For the query and probe threads when `--query-scheduling fifo`: they then run the moment
/// an answer arrives or a query is due, as a client on another machine would, instead of
/// waiting behind the feed threads and the server on a small shared machine (measured on 2
/// cores under a saturating feed: query p99 from the schedule 0.7–1.1 ms against 1.2–2.2 ms).
/// They use little CPU: a 200/s query schedule is a few percent of a core.
func makeThreadRealtime() -> Bool {
    #if os(Linux)
    var param = sched_param()
    param.sched_priority = 1
    return sched_setscheduler(0, 1 /* SCHED_FIFO */, &param) == 0
    #else
    return false
    #endif
}

/// How the query and probe threads are scheduled (`--query-scheduling`).
enum QueryScheduling: String, ExpressibleByArgument, CaseIterable {
    case fifo, normal
}

/// Applies `scheduling` to the calling query or probe thread; returns what it got ("fifo",
/// "normal", or "normal (fifo refused)").
func applyQueryScheduling(_ scheduling: QueryScheduling) -> String {
    tightenTimerSlack()
    favorWakeUpLatency()
    guard scheduling == .fifo else { return "normal" }
    return makeThreadRealtime() ? "fifo" : "normal (fifo refused)"
}

// ppoll (nanosecond timeouts) and prctl are not exported by the Glibc module without
// _GNU_SOURCE; look them up once.
private let libc = dlopen(nil, RTLD_NOW)
private typealias PpollFn = @convention(c) (UnsafeMutablePointer<pollfd>, nfds_t, UnsafePointer<timespec>?, UnsafeRawPointer?) -> Int32
private typealias PrctlFn = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
private let cPpoll: PpollFn? = dlsym(libc, "ppoll").map { unsafeBitCast($0, to: PpollFn.self) }
private let cPrctl: PrctlFn? = dlsym(libc, "prctl").map { unsafeBitCast($0, to: PrctlFn.self) }

/// poll() with a nanosecond timeout (ppoll when available, else poll rounded up to 1 ms).
/// poll() over several sockets with a nanosecond timeout (ppoll when available).
func pollManyNs(_ fds: inout [pollfd], timeoutNs: UInt64) -> Int32 {
    let count = nfds_t(fds.count)
    return fds.withUnsafeMutableBufferPointer { buffer in
        if let cPpoll {
            var ts = timespec(tv_sec: Int(timeoutNs / 1_000_000_000), tv_nsec: Int(timeoutNs % 1_000_000_000))
            return cPpoll(buffer.baseAddress!, count, &ts, nil)
        }
        return poll(buffer.baseAddress!, count, Int32((timeoutNs + 999_999) / 1_000_000))
    }
}

func pollNs(_ pfd: inout pollfd, timeoutNs: UInt64) -> Int32 {
    if let cPpoll {
        var ts = timespec(tv_sec: Int(timeoutNs / 1_000_000_000), tv_nsec: Int(timeoutNs % 1_000_000_000))
        return cPpoll(&pfd, 1, &ts, nil)
    }
    return poll(&pfd, 1, Int32((timeoutNs + 999_999) / 1_000_000))
}

// MARK: - Stop flag

/// Set by SIGINT/SIGTERM or by the main thread when the run is over.
let globalStop = Atomic<Bool>(false)

func installStopSignals() {
    signal(SIGPIPE, SIG_IGN)
    signal(SIGINT) { _ in globalStop.store(true, ordering: .relaxed) }
    signal(SIGTERM) { _ in globalStop.store(true, ordering: .relaxed) }
}

// MARK: - RNG

/// SplitMix64: small, fast, and deterministic for a given seed, so an event day is repeatable.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    @inline(__always) mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    @inline(__always) mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    @inline(__always) mutating func chance(_ p: Double) -> Bool { p > 0 && unit() < p }
    /// Uniform in [0, n).
    @inline(__always) mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
}

func randomRunID() -> String {
    var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: wallMillis()) ^ (UInt64(getpid()) << 32) ^ monoNow())
    let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789".utf8)
    return String(decoding: (0..<5).map { _ in alphabet[rng.below(alphabet.count)] }, as: UTF8.self)
}

// MARK: - Bytes

extension Array where Element == UInt8 {
    @inline(__always) mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { append(contentsOf: $0) }
    }
    @inline(__always) mutating func append(string s: String) {
        append(contentsOf: s.utf8)
    }
    /// Decimal, no padding.
    mutating func append(decimal value: Int) {
        if value < 0 { append(UInt8(ascii: "-")); append(decimal: -value); return }
        if value < 10 { append(UInt8(48 + value)); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = value, count = 0
        Swift.withUnsafeMutableBytes(of: &digits) { raw in
            while n > 0 { raw[count] = UInt8(48 + n % 10); n /= 10; count += 1 }
            for i in stride(from: count - 1, through: 0, by: -1) { append(raw[i]) }
        }
    }
    /// Decimal, left-padded with zeros to `width` digits.
    mutating func append(decimal value: Int, width: Int) {
        var s = Array(String(value).utf8)
        while s.count < width { s.insert(UInt8(ascii: "0"), at: 0) }
        append(contentsOf: s)
    }
}

/// Writes `value` as exactly `width` decimal digits at `p` (the low digits if it has more).
@inline(__always)
func writeDigits(_ value: Int, width: Int, at p: UnsafeMutablePointer<UInt8>) {
    var n = value
    var i = width - 1
    while i >= 0 { p[i] = UInt8(48 + n % 10); n /= 10; i -= 1 }
}

/// `2025-05-21T06:00:00.000Z` (24 bytes) at `p`, for years 0000–9999. Same civil-date
/// arithmetic as HeadcountCore's `Timestamp` (Hinnant), but writes into a caller's buffer so
/// the send loop can patch `occurredAt` in place without allocating.
@inline(__always)
func writeTimestamp(_ ms: Int64, at p: UnsafeMutablePointer<UInt8>) {
    var millis = ms % 1000
    var secs = ms / 1000
    if millis < 0 { millis += 1000; secs -= 1 }
    var days = secs / 86_400
    var sod = secs % 86_400
    if sod < 0 { sod += 86_400; days -= 1 }
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
    writeDigits(Int(year), width: 4, at: p)
    p[4] = UInt8(ascii: "-")
    writeDigits(Int(month), width: 2, at: p + 5)
    p[7] = UInt8(ascii: "-")
    writeDigits(Int(day), width: 2, at: p + 8)
    p[10] = UInt8(ascii: "T")
    writeDigits(Int(sod / 3600), width: 2, at: p + 11)
    p[13] = UInt8(ascii: ":")
    writeDigits(Int(sod / 60 % 60), width: 2, at: p + 14)
    p[16] = UInt8(ascii: ":")
    writeDigits(Int(sod % 60), width: 2, at: p + 17)
    p[19] = UInt8(ascii: ".")
    writeDigits(Int(millis), width: 3, at: p + 20)
    p[23] = UInt8(ascii: "Z")
}

let timestampLength = 24

/// Percent-encodes everything but RFC 3986 unreserved characters (query parameter values).
func percentEncode(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            out += String(format: "%%%02X", b)
        }
    }
    return out
}

// MARK: - Endpoint and sockets

struct LoadgenError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A loopback HTTP endpoint. Anything but 127.0.0.0/8 or `localhost` is refused: this tool
/// only ever sends traffic to the machine it runs on.
struct Endpoint {
    let host: String      // dotted IPv4, 127.x.x.x
    let port: UInt16
    var hostHeader: String { "\(host):\(port)" }

    init(url: String) throws {
        guard url.hasPrefix("http://") else { throw LoadgenError("--url must be http://127.0.0.1:PORT (got \(url))") }
        var rest = url.dropFirst("http://".count)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var host = String(rest)
        var port: UInt16 = 80
        if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = UInt16(rest[rest.index(after: colon)...]) else { throw LoadgenError("bad port in \(url)") }
            port = p
        }
        if host == "localhost" { host = "127.0.0.1" }
        var addr = in_addr()
        guard inet_pton(AF_INET, host, &addr) == 1, host.hasPrefix("127.") else {
            throw LoadgenError("only loopback IPv4 targets are allowed (127.0.0.0/8 or localhost), got \(host)")
        }
        self.host = host
        self.port = port
    }

    /// A connected TCP socket with TCP_NODELAY; blocking unless `nonBlocking`.
    func connect(nonBlocking: Bool = false, receiveTimeoutSeconds: Int = 0) throws -> Int32 {
        #if os(Linux)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw LoadgenError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if receiveTimeoutSeconds > 0 {
            var tv = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &sa.sin_addr)
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 {
            let message = String(cString: strerror(errno))
            close(fd)
            throw LoadgenError("connect to \(hostHeader): \(message)")
        }
        if nonBlocking {
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        }
        return fd
    }
}

/// Writes all of `bytes` to a blocking socket.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n < 0 { if errno == EINTR { continue }; return false }
        off += n
    }
    return true
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { writeAll(fd, $0) }
}

// MARK: - Threads

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// A joinable OS thread (Foundation's Thread cannot be joined).
struct JoinableThread {
    private var handle: pthread_t

    init(_ body: @escaping () -> Void) {
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let box = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        handle = tid
    }

    func join() { pthread_join(handle, nil) }
}
