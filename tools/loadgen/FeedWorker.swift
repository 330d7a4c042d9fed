// One feed connection on its own thread: a non-blocking keep-alive socket, up to `pipeline`
// requests in flight, and ppoll() for both readiness and the open-loop schedule.
//
// Open loop (--rate): the k-th request of the run (over all connections) is due at
// t0 + k·batch/rate; connection c sends k = c, c+C, c+2C, … Its latency is measured from
// that due time, so a server stall (or a full pipeline) shows up as latency instead of
// silently lowering the offered rate. Flat out: every connection keeps `pipeline` requests
// in flight, and latency is measured from the moment a request was queued for writing.
#if canImport(Glibc)
import Glibc
#endif

struct FeedPlan {
    var endpoint: Endpoint
    var connections: Int
    var pipeline: Int
    var loop: Bool
    /// Nanoseconds between two consecutive requests of the run (0: flat out).
    var intervalNs: Double
    var startNs: UInt64
    var deadlineNs: UInt64
    var drainNs: UInt64
}

final class FeedWorker {
    let index: Int
    let plan: FeedPlan
    let pool: RequestPool
    let stats: Shared<FeedState>
    // Immutable copies of the pool's tables (no class-property access in the send loop).
    private let requests: [RequestPool.Request]
    private let patchTable: UnsafeMutablePointer<EventPatch>
    private let liveTime: Bool
    private let mine: [Int]                    // indices of the pool requests this connection owns
    private var currentPass: [UInt16]          // pass number each of those buffers holds now
    private var fd: Int32 = -1

    // In flight (a ring): start time, events, injected duplicates.
    private var inflightStart: [UInt64]
    private var inflightSent: [UInt64]
    private var inflightEvents: [Int]
    private var inflightHead = 0
    private var inflightCount = 0

    // Written-but-not-yet-fully queue: request index (into pool.requests) and bytes done.
    private var pending: [Int] = []
    private var pendingHead = 0
    private var pendingOffset = 0

    private let readCapacity = 1 << 20
    private let readBuffer: UnsafeMutablePointer<UInt8>
    private var readLength = 0

    private var iov: [iovec]
    private var timeScratch = [UInt8](repeating: 0, count: 24)

    // Local counters, published to `stats` after each read.
    private var local = FeedCounters()
    private var localLatency: [UInt64] = []
    private var localService: [UInt64] = []

    init(index: Int, plan: FeedPlan, pool: RequestPool, stats: Shared<FeedState>) {
        self.index = index
        self.plan = plan
        self.pool = pool
        self.stats = stats
        requests = pool.requests
        patchTable = pool.patches.baseAddress!
        liveTime = pool.liveTime
        mine = Array(stride(from: index, to: pool.requests.count, by: plan.connections))
        currentPass = [UInt16](repeating: 0, count: mine.count)
        inflightStart = [UInt64](repeating: 0, count: plan.pipeline)
        inflightSent = [UInt64](repeating: 0, count: plan.pipeline)
        inflightEvents = [Int](repeating: 0, count: plan.pipeline)
        readBuffer = .allocate(capacity: readCapacity)
        iov = [iovec](repeating: iovec(), count: 64)
        localLatency.reserveCapacity(4096)
    }

    deinit { readBuffer.deallocate() }

    // The run, as steps a driver can interleave with other connections' (one thread may
    // drive many connections, as redis-benchmark does: see FeedDriver).
    private var j = 0                              // next local request number
    private var stopping = false
    private var drainUntil: UInt64 = 0
    private(set) var isFinished = false

    /// Connects; false (and finished) if the server cannot be reached.
    func open() -> Bool {
        guard !mine.isEmpty else { isFinished = true; return false }
        do {
            fd = try plan.endpoint.connect(nonBlocking: true)
            return true
        } catch {
            stats.with { $0.counters.protocolErrors += 1; $0.counters.samples.add("connection \(index): \(error)") }
            isFinished = true
            return false
        }
    }

    /// Admits due requests and writes what is queued. Returns what to wait for: the poll
    /// events for the socket (0: do not poll it) and the longest wait; nil when finished.
    func step() -> (fd: Int32, events: Int16, timeoutNs: UInt64)? {
        if isFinished { return nil }
        let now = monoNow()
        let c = plan.connections
        let rate = plan.intervalNs > 0
        if !stopping && (now >= plan.deadlineNs || globalStop.load(ordering: .relaxed) || (!plan.loop && j >= mine.count)) {
            stopping = true
            drainUntil = now + plan.drainNs
            if rate && plan.deadlineNs > plan.startNs {
                // Requests of this connection that were due before the end but never sent.
                let end = min(now, plan.deadlineNs)
                let x = (Double(end - plan.startNs) / plan.intervalNs - Double(index)) / Double(c)
                let dueCount = x <= 0 ? 0 : Int(x.rounded(.up))   // j with due < end
                let total = plan.loop ? dueCount : min(dueCount, mine.count)
                if total > j { local.missedSchedule += total - j }
            }
        }

        // Admit due requests.
        var nextDue: UInt64 = 0
        if !stopping {
            var wallMs: Int64 = -1
            while inflightCount < plan.pipeline && (plan.loop || j < mine.count) {
                var start = now
                if rate {
                    let due = plan.startNs + UInt64(Double(index + j * c) * plan.intervalNs)
                    if due > now { nextDue = due; break }
                    start = due
                }
                let slot = j % mine.count
                let pass = j / mine.count
                let r = requests[mine[slot]]
                if liveTime {
                    if wallMs < 0 {
                        wallMs = wallMillis()
                        timeScratch.withUnsafeMutableBufferPointer { writeTimestamp(wallMs, at: $0.baseAddress!) }
                    }
                    patch(r, pass: pass, slot: slot, wallMs: wallMs)
                }
                pending.append(mine[slot])
                let ringIndex = (inflightHead + inflightCount) % plan.pipeline
                inflightStart[ringIndex] = start
                inflightSent[ringIndex] = now
                inflightEvents[ringIndex] = r.events
                inflightCount += 1
                local.requestsSent += 1
                local.eventsSent += r.events
                local.duplicatesInjectedSent += r.duplicates
                local.passes = max(local.passes, pass + 1)
                if local.firstSend == .max { local.firstSend = start }
                j += 1
            }
        }

        // Write what is queued.
        var wantWrite = false
        if pendingHead < pending.count {
            if !flushWrites() {
                connectionLost(now: now, reason: "write: \(String(cString: strerror(errno)))")
                if !reconnect() { return finish() }
                return (fd, 0, 0)
            }
            wantWrite = pendingHead < pending.count
        }

        if stopping && inflightCount == 0 { return finish() }
        if stopping && now >= drainUntil {
            local.lostRequests += inflightCount
            for k in 0..<inflightCount { local.lostEvents += inflightEvents[(inflightHead + k) % plan.pipeline] }
            local.samples.add("connection \(index): \(inflightCount) requests unanswered when the drain ended")
            inflightCount = 0
            return finish()
        }

        // Wait for an answer, for the socket to take more, or for the next due time.
        var timeoutNs: UInt64 = 100_000_000
        if stopping { timeoutNs = min(timeoutNs, drainUntil - now) }
        else if rate && inflightCount < plan.pipeline && nextDue > now { timeoutNs = min(timeoutNs, nextDue - now) }
        guard inflightCount > 0 || wantWrite || rate else { return (fd, 0, 0) }
        return (fd, Int16(POLLIN) | (wantWrite ? Int16(POLLOUT) : 0), timeoutNs)
    }

    /// The socket is ready (`revents` from poll).
    func ready(_ revents: Int16) {
        guard !isFinished, revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 else { return }
        let ok = readAnswers()
        let now = monoNow()
        publish(now: now)
        if !ok {
            connectionLost(now: now, reason: "connection closed by the server")
            if stopping || !reconnect() { _ = finish() }
        }
    }

    @discardableResult
    func finish() -> (fd: Int32, events: Int16, timeoutNs: UInt64)? {
        isFinished = true
        publish(now: monoNow())
        if fd >= 0 { close(fd); fd = -1 }
        return nil
    }

    /// Runs this connection alone on the calling thread.
    func run() {
        tightenTimerSlack()
        FeedDriver(workers: [self]).run()
    }

    // MARK: - Patching

    @inline(__always)
    private func patch(_ r: RequestPool.Request, pass: Int, slot: Int, wallMs: Int64) {
        let base = r.base
        let patches = patchTable + r.patchStart
        let newPass = UInt16(truncatingIfNeeded: pass % 10_000)
        let passChanged = currentPass[slot] != newPass
        if passChanged { currentPass[slot] = newPass }
        timeScratch.withUnsafeBufferPointer { ts in
            let now = ts.baseAddress!
            for i in 0..<r.events {
                let p = patches[i]
                if passChanged {
                    writeDigits(Int(newPass), width: 4, at: base + Int(p.idGen))
                    writeDigits(Int(newPass), width: 4, at: base + Int(p.ticketGen))
                }
                if p.lateMs == 0 {
                    (base + Int(p.time)).update(from: now, count: timestampLength)
                } else {
                    writeTimestamp(wallMs - Int64(p.lateMs), at: base + Int(p.time))
                }
            }
        }
    }

    // MARK: - I/O

    /// Writes queued requests (writev, up to 64 at a time). False on a socket error.
    private func flushWrites() -> Bool {
        while pendingHead < pending.count {
            var n = 0
            var k = pendingHead
            while k < pending.count && n < iov.count {
                let r = requests[pending[k]]
                let skip = k == pendingHead ? pendingOffset : 0
                iov[n] = iovec(iov_base: UnsafeMutableRawPointer(r.base + skip), iov_len: r.length - skip)
                n += 1; k += 1
            }
            let written = iov.withUnsafeBufferPointer { writev(fd, $0.baseAddress!, Int32(n)) }
            if written < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return true }
                if errno == EINTR { continue }
                return false
            }
            var left = written
            while left > 0 {
                let r = requests[pending[pendingHead]]
                let remaining = r.length - pendingOffset
                if left >= remaining { left -= remaining; pendingHead += 1; pendingOffset = 0 } else { pendingOffset += left; left = 0 }
            }
        }
        if pendingHead == pending.count { pending.removeAll(keepingCapacity: true); pendingHead = 0 }
        return true
    }

    /// Reads and handles every complete answer. False when the connection is gone.
    private func readAnswers() -> Bool {
        while true {
            if readLength == readCapacity { local.protocolErrors += 1; local.samples.add("answer over 1 MiB"); return false }
            let asked = readCapacity - readLength
            let n = read(fd, readBuffer + readLength, asked)
            if n == 0 { return false }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return true }
                if errno == EINTR { continue }
                return false
            }
            readLength += n
            let now = monoNow()
            var consumedTotal = 0
            while consumedTotal < readLength {
                switch frameResponse(readBuffer + consumedTotal, readLength - consumedTotal) {
                case .incomplete:
                    break
                case .bad(let why):
                    local.protocolErrors += 1
                    local.samples.add("connection \(index): \(why): \(preview(readBuffer + consumedTotal, readLength - consumedTotal, limit: 120))")
                    readLength = 0
                    return false
                case let .response(status, bodyStart, bodyLength, consumed, close):
                    handle(status: status, body: readBuffer + consumedTotal + bodyStart, bodyLength: bodyLength, now: now)
                    consumedTotal += consumed
                    if close {
                        readLength = 0
                        return false
                    }
                    continue
                }
                break
            }
            if consumedTotal > 0 {
                let rest = readLength - consumedTotal
                if rest > 0 { readBuffer.update(from: readBuffer + consumedTotal, count: rest) }
                readLength = rest
            }
            if n < asked { return true }   // a short read: the socket is drained
        }
    }

    private func handle(status: Int, body: UnsafePointer<UInt8>, bodyLength: Int, now: UInt64) {
        guard inflightCount > 0 else {
            local.protocolErrors += 1
            local.samples.add("connection \(index): an answer with no request in flight (status \(status))")
            return
        }
        let start = inflightStart[inflightHead]
        let sent = inflightSent[inflightHead]
        localService.append(now > sent ? now - sent : 0)
        let events = inflightEvents[inflightHead]
        inflightHead = (inflightHead + 1) % plan.pipeline
        inflightCount -= 1
        localLatency.append(now > start ? now - start : 0)
        local.responses += 1
        local.lastAnswer = now
        if status == 200 {
            local.responses200 += 1
            if let a = parseFeedAnswer(body, bodyLength) {
                local.accepted += a.accepted
                local.duplicates += a.duplicates
                local.rejected += a.rejected
                if a.rejected > 0 { local.samples.add("rejected: \(preview(body, bodyLength))") }
                if a.accepted + a.duplicates + a.rejected != events {
                    local.mismatched += 1
                    local.samples.add("fates do not add up to \(events) events: \(preview(body, bodyLength))")
                }
            } else {
                local.unreadable += 1
                local.samples.add("unreadable 200: \(preview(body, bodyLength))")
            }
        } else {
            local.non200[status, default: 0] += 1
            local.eventsInNon200 += events
            local.samples.add("HTTP \(status): \(preview(body, bodyLength))")
        }
    }

    private func publish(now: UInt64) {
        let c = local
        stats.with { s in
            for v in localLatency { s.latency.recordClamped(v) }
            for v in localService { s.service.recordClamped(v) }
            s.counters.merge(c)
        }
        localLatency.removeAll(keepingCapacity: true)
        localService.removeAll(keepingCapacity: true)
        local = FeedCounters()
    }

    private func connectionLost(now: UInt64, reason: String) {
        local.lostRequests += inflightCount
        for k in 0..<inflightCount { local.lostEvents += inflightEvents[(inflightHead + k) % plan.pipeline] }
        local.samples.add("connection \(index): \(reason) with \(inflightCount) requests in flight")
        inflightCount = 0
        inflightHead = 0
        pending.removeAll(keepingCapacity: true)
        pendingHead = 0
        pendingOffset = 0
        readLength = 0
        publish(now: now)
    }

    private func reconnect() -> Bool {
        if fd >= 0 { close(fd); fd = -1 }
        for _ in 0..<50 {
            if globalStop.load(ordering: .relaxed) || monoNow() >= plan.deadlineNs { return false }
            if let s = try? plan.endpoint.connect(nonBlocking: true) {
                fd = s
                local.reconnects += 1
                return true
            }
            usleep(100_000)
        }
        local.samples.add("connection \(index): could not reconnect")
        return false
    }
}

/// Drives several feed connections on one thread with one poll() over all of them, the way
/// redis-benchmark drives its clients: answers that arrive together are read together and the
/// next requests go out in one burst, instead of each connection's thread being woken in
/// turn (on a 2-core machine, one thread per connection spreads a closed-loop round's requests
/// over several of the server's group commits).
final class FeedDriver {
    let workers: [FeedWorker]

    init(workers: [FeedWorker]) { self.workers = workers }

    func run() {
        tightenTimerSlack()
        var active = workers.filter { $0.open() }
        var fds: [pollfd] = []
        var owners: [FeedWorker] = []
        while !active.isEmpty {
            fds.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            var timeoutNs: UInt64 = 100_000_000
            var still: [FeedWorker] = []
            for worker in active {
                guard let wait = worker.step() else { continue }
                still.append(worker)
                timeoutNs = min(timeoutNs, wait.timeoutNs)
                if wait.events != 0 {
                    fds.append(pollfd(fd: wait.fd, events: wait.events, revents: 0))
                    owners.append(worker)
                }
            }
            active = still
            if active.isEmpty { break }
            if timeoutNs == 0 && fds.isEmpty { continue }
            let rc = pollManyNs(&fds, timeoutNs: timeoutNs)
            if rc < 0 && errno != EINTR {
                for worker in active { worker.finish() }
                break
            }
            if rc <= 0 { continue }
            for (k, pfd) in fds.enumerated() where pfd.revents != 0 { owners[k].ready(pfd.revents) }
        }
    }
}
