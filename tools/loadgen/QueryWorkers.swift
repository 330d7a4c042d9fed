// Readers beside the feed: an open-loop statistics-query loop, and the freshness probe.
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

// MARK: - Blocking request/answer on one connection

/// One connection used strictly request → answer (no pipelining), blocking with a receive
/// timeout. Keeps the bytes of an answer until the next call.
final class BlockingClient {
    let endpoint: Endpoint
    private(set) var fd: Int32 = -1
    private let capacity = 4 << 20
    private let buffer: UnsafeMutablePointer<UInt8>
    private var length = 0
    private var consumed = 0

    init(endpoint: Endpoint) {
        self.endpoint = endpoint
        buffer = .allocate(capacity: capacity)
    }
    deinit { if fd >= 0 { close(fd) }; buffer.deallocate() }

    func ensureConnected() throws {
        if fd < 0 { fd = try endpoint.connect(receiveTimeoutSeconds: 10) }
    }

    func drop() { if fd >= 0 { close(fd); fd = -1 }; length = 0; consumed = 0 }

    /// Sends `request` and waits for one answer: (status, body pointer, body length).
    func exchange(_ request: UnsafeRawBufferPointer) throws -> (Int, UnsafePointer<UInt8>, Int) {
        try ensureConnected()
        if consumed > 0 {
            let rest = length - consumed
            if rest > 0 { buffer.update(from: buffer + consumed, count: rest) }
            length = rest; consumed = 0
        }
        guard writeAll(fd, request) else { drop(); throw LoadgenError("write: \(String(cString: strerror(errno)))") }
        while true {
            switch frameResponse(buffer, length) {
            case .bad(let why):
                drop(); throw LoadgenError(why)
            case let .response(status, bodyStart, bodyLength, used, close):
                consumed = used
                let body = UnsafePointer(buffer + bodyStart)
                if close { // answer stays readable: the buffer is only reset on the next call
                    Glibc.close(fd); fd = -1
                    length = used
                }
                return (status, body, bodyLength)
            case .incomplete:
                guard length < capacity else { drop(); throw LoadgenError("answer over 4 MiB") }
                let n = read(fd, buffer + length, capacity - length)
                if n > 0 { length += n; continue }
                if n < 0 && errno == EINTR { continue }
                let why = n == 0 ? "connection closed" : (errno == EAGAIN ? "no answer within 10 s" : String(cString: strerror(errno)))
                drop(); throw LoadgenError(why)
            }
        }
    }
}

// MARK: - Statistics answers

/// The counters the invariant check needs, by key.
private let invariantKeys: [[UInt8]] = [
    "totalTickets", "validTickets", "deletedTickets", "downloadedTickets", "notDownloadedTickets",
    "neverDownloadedTickets", "activatedTickets", "notActivatedTickets", "offlineActivatedTickets",
    "manualActivatedTickets", "transferredOnce", "transferredTwice", "transferred3Times",
    "transferred4PlusTimes", "neverTransferred", "totalTransferOperations",
].map { Array($0.utf8) }

struct StatisticsCheck {
    var objects = 0
    var totals: [Int] = []            // totalTickets per object, in order
    var problem: String? = nil        // malformed answer
    var violation: String? = nil      // an invariant of SPEC §4 broken
}

/// Reads `[{...}, ...]`: checks each object's `eventId` against the request (in order), that
/// the invariant counters are there, and the invariants of SPEC §4.
func checkStatistics(_ p: UnsafePointer<UInt8>, _ n: Int, expected: [[UInt8]]) -> StatisticsCheck {
    var out = StatisticsCheck()
    var i = 0
    @inline(__always) func skipWS() { while i < n && (p[i] == 32 || p[i] == 10 || p[i] == 13 || p[i] == 9) { i += 1 } }
    func readString() -> (Int, Int)? {     // at a quote: (start, end) of the raw content
        guard i < n && p[i] == 34 else { return nil }
        i += 1
        let s = i
        while i < n && p[i] != 34 { if p[i] == 92 { i += 1 }; i += 1 }
        guard i < n else { return nil }
        i += 1
        return (s, i - 1)
    }
    skipWS()
    guard i < n && p[i] == 91 else { out.problem = "not a JSON array: \(preview(p, n, limit: 120))"; return out }
    i += 1
    skipWS()
    if i < n && p[i] == 93 { i += 1 } else {
        while true {
            skipWS()
            guard i < n && p[i] == 123 else { out.problem = "expected an object at byte \(i)"; return out }
            i += 1
            var values = [Int](repeating: -1, count: invariantKeys.count)
            var eventId: (Int, Int)? = nil
            while true {
                skipWS()
                if i < n && p[i] == 125 { i += 1; break }
                guard let key = readString() else { out.problem = "bad key at byte \(i)"; return out }
                skipWS()
                guard i < n && p[i] == 58 else { out.problem = "expected ':' at byte \(i)"; return out }
                i += 1
                skipWS()
                guard i < n else { out.problem = "truncated"; return out }
                let keyLen = key.1 - key.0
                if p[i] == 34 {
                    guard let v = readString() else { out.problem = "bad string at byte \(i)"; return out }
                    if keyLen == 7 && memcmp(p + key.0, "eventId", 7) == 0 { eventId = v }
                } else if p[i] == 45 || (p[i] >= 48 && p[i] <= 57) {
                    var v = 0
                    let negative = p[i] == 45
                    if negative { i += 1 }
                    while i < n, p[i] >= 48, p[i] <= 57 { v = v * 10 + Int(p[i] - 48); i += 1 }
                    if negative { v = -v }
                    for (k, name) in invariantKeys.enumerated() where name.count == keyLen {
                        if name.withUnsafeBufferPointer({ memcmp(p + key.0, $0.baseAddress!, keyLen) }) == 0 { values[k] = v; break }
                    }
                } else {
                    while i < n && p[i] != 44 && p[i] != 125 { i += 1 }   // null, true, false
                }
                skipWS()
                if i < n && p[i] == 44 { i += 1 }
            }
            let index = out.objects
            out.objects += 1
            if index < expected.count {
                let want = expected[index]
                let ok = eventId.map { e in e.1 - e.0 == want.count && want.withUnsafeBufferPointer { memcmp(p + e.0, $0.baseAddress!, want.count) } == 0 } ?? false
                if !ok { out.problem = "object \(index) is not event \(String(decoding: want, as: UTF8.self))" }
            }
            if let missing = values.firstIndex(of: -1) {
                out.problem = out.problem ?? "object \(index) lacks \(String(decoding: invariantKeys[missing], as: UTF8.self))"
            } else if out.violation == nil {
                out.violation = invariantViolation(values).map { "\(String(decoding: expected[min(index, expected.count - 1)], as: UTF8.self)): \($0)" }
            }
            out.totals.append(values[0])
            skipWS()
            if i < n && p[i] == 44 { i += 1; continue }
            if i < n && p[i] == 93 { i += 1; break }
            out.problem = out.problem ?? "expected ',' or ']' at byte \(i)"
            return out
        }
    }
    if out.objects != expected.count && out.problem == nil {
        out.problem = "\(out.objects) objects for \(expected.count) events"
    }
    return out
}

private func invariantViolation(_ v: [Int]) -> String? {
    let total = v[0], valid = v[1], deleted = v[2], downloaded = v[3], notDownloaded = v[4]
    let never = v[5], activated = v[6], notActivated = v[7], offline = v[8], manual = v[9]
    let once = v[10], twice = v[11], three = v[12], four = v[13], neverT = v[14], ops = v[15]
    if valid + deleted != total { return "valid \(valid) + deleted \(deleted) != total \(total)" }
    if downloaded + notDownloaded != valid { return "downloaded \(downloaded) + notDownloaded \(notDownloaded) != valid \(valid)" }
    if never > notDownloaded { return "neverDownloaded \(never) > notDownloaded \(notDownloaded)" }
    if activated + notActivated != valid { return "activated \(activated) + notActivated \(notActivated) != valid \(valid)" }
    if offline + manual > activated { return "offline \(offline) + manual \(manual) > activated \(activated)" }
    if once + twice + three + four + neverT != total { return "transfer buckets sum \(once + twice + three + four + neverT) != total \(total)" }
    if ops < once + 2 * twice + 3 * three + 4 * four { return "totalTransferOperations \(ops) < \(once + 2 * twice + 3 * three + 4 * four)" }
    return nil
}

// MARK: - Query loop

struct QueryPlan {
    var endpoint: Endpoint
    var readKey: String
    var eventIds: [String]
    /// dateTime = now - pastMs.
    var pastMs: Int64
    var connections: Int
    var intervalNs: Double
    var startNs: UInt64
    var deadlineNs: UInt64
    var scheduling: QueryScheduling = .fifo
}

/// Statistics queries on a schedule (open loop): query k is due at t0 + k/rate and its latency
/// is measured from then, so a slow answer delays (and is charged to) the ones behind it.
final class QueryWorker {
    let index: Int
    let plan: QueryPlan
    let stats: Shared<QueryState>
    let stop: () -> Bool

    init(index: Int, plan: QueryPlan, stats: Shared<QueryState>, stop: @escaping () -> Bool) {
        self.index = index; self.plan = plan; self.stats = stats; self.stop = stop
    }

    func run() {
        let scheduling = applyQueryScheduling(plan.scheduling)
        stats.with { $0.counters.scheduling = scheduling }
        let client = BlockingClient(endpoint: plan.endpoint)
        var head: [UInt8] = []
        head.append("GET /v1/event-statistics?")
        for e in plan.eventIds { head.append(string: "eventIds=\(percentEncode(e))&") }
        head.append("dateTime=")
        let timeOffset = head.count
        head.append("0000-00-00T00:00:00.000Z")
        head.append(string: " HTTP/1.1\r\nHost: \(plan.endpoint.hostHeader)\r\nAuthorization: Bearer \(plan.readKey)\r\n\r\n")
        var request = head
        let expected = plan.eventIds.map { Array($0.utf8) }
        // The queried events may not exist yet (the feed creates them in its first requests):
        // wait, without counting, until one query is answered 200, then start the schedule.
        var startNs = plan.startNs
        sleepUntil(startNs)
        while !stop() && monoNow() < plan.deadlineNs {
            request.withUnsafeMutableBufferPointer { writeTimestamp(wallMillis() - plan.pastMs, at: $0.baseAddress! + timeOffset) }
            let result = request.withUnsafeBytes { bytes in Result { try client.exchange(bytes) } }
            if case .success(let (status, _, _)) = result, status == 200 { break }
            if case .success(let (status, _, _)) = result, status != 404 { break }   // other errors: measure them
            usleep(10_000)
        }
        let waited = monoNow() - startNs
        startNs = monoNow()
        stats.with { $0.counters.readyAfterNs = max($0.counters.readyAfterNs, waited) }
        if startNs >= plan.deadlineNs && !stop() {
            stats.with {
                $0.counters.neverReady += 1
                $0.counters.samples.add("queries: the queried events \(plan.eventIds) never existed (404 until the end)")
            }
        }
        var j = 0
        while !stop() {
            let due = startNs + UInt64(Double(index + j * plan.connections) * plan.intervalNs)
            if due >= plan.deadlineNs { break }
            // Sleep to just before the due time, then spin: a late wake-up of this thread would
            // otherwise be charged to the server.
            if due > 100_000 { sleepUntil(due - 100_000) }
            while monoNow() < due {}
            if stop() { break }
            j += 1
            request.withUnsafeMutableBufferPointer { writeTimestamp(wallMillis() - plan.pastMs, at: $0.baseAddress! + timeOffset) }
            let sent = monoNow()
            let result = request.withUnsafeBytes { bytes in Result { try client.exchange(bytes) } }
            let now = monoNow()
            switch result {
            case .failure(let error):
                stats.with { $0.counters.sent += 1; $0.counters.connectionErrors += 1; $0.counters.samples.add("query: \(error)") }
                usleep(10_000)
            case .success(let (status, body, length)):
                var problem: String? = nil, violation: String? = nil
                var totals: [Int] = []
                if status == 200 {
                    let check = checkStatistics(body, length, expected: expected)
                    problem = check.problem; violation = check.violation; totals = check.totals
                }
                let sample = status == 200 ? nil : preview(body, length)
                stats.with { s in
                    s.latency.recordClamped(now - due)
                    s.service.recordClamped(now - sent)
                    s.sendLag.recordClamped(sent > due ? sent - due : 0)
                    s.counters.sent += 1
                    if status != 200 {
                        s.counters.non200[status, default: 0] += 1
                        s.counters.samples.add("query HTTP \(status): \(sample ?? "")")
                    } else if let problem {
                        s.counters.invalid += 1
                        s.counters.samples.add("query answer: \(problem)")
                    } else {
                        s.counters.ok += 1
                        s.counters.lastTotals = totals
                    }
                    if let violation {
                        s.counters.invariantViolations += 1
                        s.counters.samples.add("invariant: \(violation)")
                    }
                }
            }
        }
    }
}

// MARK: - Freshness probe

struct ProbePlan {
    var endpoint: Endpoint
    var feedKey: String
    var readKey: String
    var runID: String
    var intervalNs: Double
    var startNs: UInt64
    var deadlineNs: UInt64
    var scheduling: QueryScheduling = .fifo
}

/// Every interval: a `ticket.created` for a new ticket of the event `probe-<run>`, on its own
/// connection; once it is acknowledged, statistics queries (at dateTime = now) on another
/// connection until `totalTickets` counts it. Freshness = send time of the first query whose
/// answer reflects the probe − the probe's acknowledgement time.
final class ProbeWorker {
    let plan: ProbePlan
    let stats: Shared<ProbeState>
    let stop: () -> Bool
    var eventId: String { "probe-\(plan.runID)" }

    init(plan: ProbePlan, stats: Shared<ProbeState>, stop: @escaping () -> Bool) {
        self.plan = plan; self.stats = stats; self.stop = stop
    }

    func run() {
        _ = applyQueryScheduling(plan.scheduling)
        let feed = BlockingClient(endpoint: plan.endpoint)
        let reader = BlockingClient(endpoint: plan.endpoint)
        var queryHead: [UInt8] = []
        queryHead.append(string: "GET /v1/event-statistics?eventIds=\(percentEncode(eventId))&dateTime=")
        let queryTime = queryHead.count
        queryHead.append("0000-00-00T00:00:00.000Z")
        queryHead.append(string: " HTTP/1.1\r\nHost: \(plan.endpoint.hostHeader)\r\nAuthorization: Bearer \(plan.readKey)\r\n\r\n")
        var query = queryHead
        let expectedId = [Array(eventId.utf8)]
        var expected = 0
        var k = 0
        while !stop() {
            let due = plan.startNs + UInt64(Double(k) * plan.intervalNs)
            if due >= plan.deadlineNs { break }
            sleepUntil(due)
            if stop() { break }
            var body: [UInt8] = []
            body.append(string: "{\"id\":\"\(plan.runID)-probe-\(k)\",\"type\":\"ticket.created\",\"eventId\":\"\(eventId)\",\"ticketId\":\"P\(k)\",\"occurredAt\":\"")
            let t = body.count
            body.append("0000-00-00T00:00:00.000Z\"}\n")
            body.withUnsafeMutableBufferPointer { writeTimestamp(wallMillis(), at: $0.baseAddress! + t) }
            var request: [UInt8] = []
            request.append(string: "POST /v1/feed HTTP/1.1\r\nHost: \(plan.endpoint.hostHeader)\r\nAuthorization: Bearer \(plan.feedKey)\r\nContent-Type: application/x-ndjson\r\nContent-Length: \(body.count)\r\n\r\n")
            request.append(contentsOf: body)
            k += 1
            stats.with { $0.counters.probesSent += 1 }
            let sent = monoNow()
            let answer = request.withUnsafeBytes { bytes in Result { try feed.exchange(bytes) } }
            let acked = monoNow()
            switch answer {
            case .failure(let error):
                stats.with { $0.counters.errors += 1; $0.counters.samples.add("probe feed: \(error)") }
                continue
            case .success(let (status, p, n)):
                let a = status == 200 ? parseFeedAnswer(p, n) : nil
                guard let a, a.accepted == 1 else {
                    let text = preview(p, n)
                    stats.with { $0.counters.errors += 1; $0.counters.samples.add("probe feed HTTP \(status): \(text)") }
                    continue
                }
            }
            expected += 1
            stats.with { $0.counters.probesAcked += 1; $0.latencyAck(acked - sent) }

            // Query until the answer counts this probe.
            var first = true
            var reflected = false
            while monoNow() - acked < 2_000_000_000 && !globalStop.load(ordering: .relaxed) {
                query.withUnsafeMutableBufferPointer { writeTimestamp(wallMillis(), at: $0.baseAddress! + queryTime) }
                let asked = monoNow()
                let result = query.withUnsafeBytes { bytes in Result { try reader.exchange(bytes) } }
                stats.with { $0.counters.queries += 1 }
                guard case .success(let (status, p, n)) = result, status == 200 else {
                    var text = ""
                    if case .success(let (status, p, n)) = result { text = "HTTP \(status): \(preview(p, n))" }
                    if case .failure(let error) = result { text = "\(error)" }
                    stats.with { $0.counters.errors += 1; $0.counters.samples.add("probe query: \(text)") }
                    usleep(1000)
                    first = false
                    continue
                }
                let check = checkStatistics(p, n, expected: expectedId)
                if let total = check.totals.first, total >= expected {
                    let wasFirst = first
                    stats.with { s in
                        s.freshness.recordClamped(asked - acked)
                        if wasFirst { s.counters.reflectedAtOnce += 1 }
                    }
                    reflected = true
                    break
                }
                first = false
                usleep(100)
            }
            if !reflected { stats.with { $0.counters.neverReflected += 1; $0.counters.samples.add("probe \(k - 1) not reflected within 2 s") } }
        }
    }
}

extension ProbeState {
    mutating func latencyAck(_ ns: UInt64) { ackLatency.recordClamped(ns) }
}
