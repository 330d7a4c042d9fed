// The event day: every feed request the run will send, built once before the clock starts.
//
// N events × M tickets, each ticket with a full lifecycle (sale, downloads on 1–2 devices,
// log-outs, transfers initiated/accepted/cancelled, wallet passes added/removed/synced/status
// changes on ios and android, deletion and restore, activation in each mode, gate control).
// Tickets start in waves, so at any moment of the stream every phase of the day is present
// (sales of late buyers next to gate scans of early ones).
//
// The request bytes (HTTP head + NDJSON body) are final except for fixed-width fields the
// send loop patches in place, without formatting JSON:
//   - the pass number (4 digits) inside `id` and `ticketId`, so that `--loop` replays the day
//     as brand-new tickets of the same events (new ids, never duplicates of an earlier pass);
//   - `occurredAt` (24 bytes): the send time (one formatted timestamp per request), or the
//     send time minus the event's precomputed lateness for a late delivery.
// A backfill pool (dated in the past) has fixed timestamps and is sent once.

#if canImport(Glibc)
import Glibc
#endif

struct EventPatch {
    var idGen: UInt32        // offset of the 4 pass digits in `id`
    var ticketGen: UInt32    // offset of the 4 pass digits in `ticketId`
    var time: UInt32         // offset of the 24 bytes of `occurredAt`
    var lateMs: UInt32       // 0: on time; else occurredAt = send time - lateMs
}

struct DayConfig {
    var events = 8
    var tickets = 10_000
    var eventPrefix = ""
    var runID = "run"
    var lateFraction = 0.05
    var lateSeconds = 3600
    var duplicateFraction = 0.01
    var seed: UInt64 = 1
    var batch = 1
    var hostHeader = "127.0.0.1"
    var feedKey = ""
    /// 4 characters written where the pass number goes: "0000" for the live day (patched),
    /// "bkfl" for a backfill.
    var tag = "0000"
    /// nil: live timestamps (patched at send time). Else: the day spans this window (ms).
    var fixedWindow: (start: Int64, end: Int64)? = nil
}

/// All request buffers of a day, immutable once built except for the in-place patches, which
/// each connection applies only to the requests it owns.
final class RequestPool {
    struct Request {
        let base: UnsafeMutablePointer<UInt8>
        let length: Int
        let events: Int
        let patchStart: Int
        let duplicates: Int   // injected duplicate deliveries inside this request
    }

    private(set) var requests: [Request] = []
    private(set) var patches: UnsafeMutableBufferPointer<EventPatch> = .init(start: nil, count: 0)
    private var chunks: [UnsafeMutablePointer<UInt8>] = []
    private var chunkFree = 0
    private var chunkCursor: UnsafeMutablePointer<UInt8>? = nil
    private var patchList: [EventPatch] = []
    let liveTime: Bool

    private(set) var totalEvents = 0
    private(set) var injectedDuplicates = 0
    private(set) var lateEvents = 0
    private(set) var totalBytes = 0
    var typeCounts: [String: Int] = [:]

    init(liveTime: Bool) { self.liveTime = liveTime }

    deinit {
        for c in chunks { c.deallocate() }
        patches.deallocate()
    }

    fileprivate func add(head: [UInt8], body: [UInt8], bodyPatches: [EventPatch], events: Int, duplicates: Int) {
        let total = head.count + body.count
        if chunkFree < total {
            let size = max(32 << 20, total)
            let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
            chunks.append(chunk)
            chunkCursor = chunk
            chunkFree = size
        }
        let base = chunkCursor!
        head.withUnsafeBufferPointer { base.update(from: $0.baseAddress!, count: head.count) }
        body.withUnsafeBufferPointer { (base + head.count).update(from: $0.baseAddress!, count: body.count) }
        chunkCursor = base + total
        chunkFree -= total
        let shift = UInt32(head.count)
        let start = patchList.count
        for var p in bodyPatches {
            p.idGen += shift; p.ticketGen += shift; p.time += shift
            patchList.append(p)
        }
        requests.append(Request(base: base, length: total, events: events, patchStart: start, duplicates: duplicates))
        totalEvents += events
        injectedDuplicates += duplicates
        totalBytes += total
    }

    fileprivate func freeze(late: Int) {
        lateEvents = late
        patches = .allocate(capacity: max(1, patchList.count))
        _ = patches.initialize(from: patchList)
        patchList = []
    }
}

/// One ticket's day, decided by a seeded RNG so every phase re-derives the same plan.
private struct TicketPlan {
    var download1 = false, download2 = false, logout = false
    var ios = false, android = false, iosSync = false
    var passInactive = false, passRemoved = false, iosSyncRemoved = false
    var passInvalidated = false, passExpired = false, passControlled = false
    var transfers = 0, cancelledTransfer = false
    var deleted = false, pending = false, restored = false
    var activated = false, mode = 0
    var controlled = false

    init(seed: UInt64, event: Int, ticket: Int) {
        var r = SplitMix64(seed: seed ^ (UInt64(event) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(ticket) &* 0xC2B2_AE3D_27D4_EB4F))
        _ = r.next()
        download1 = r.chance(0.85)
        download2 = download1 && r.chance(0.25)
        logout = download1 && r.chance(0.08)
        ios = r.chance(0.35)
        android = r.chance(0.25)
        iosSync = ios && r.chance(0.15)
        let hasPass = ios || android
        passInactive = hasPass && r.chance(0.05)
        passRemoved = hasPass && r.chance(0.03)
        iosSyncRemoved = iosSync && r.chance(0.2)
        if r.chance(0.12) {
            if r.chance(0.35) {
                cancelledTransfer = true
            } else {
                transfers = 1
                if r.chance(0.15) { transfers = 2; if r.chance(0.2) { transfers = 3; if r.chance(0.3) { transfers = 4 + r.below(3) } } }
            }
        }
        deleted = r.chance(0.03)
        pending = deleted && r.chance(0.3)
        restored = deleted && r.chance(0.4)
        passInvalidated = deleted && !restored && hasPass
        activated = (!deleted || restored) && r.chance(0.75)
        let m = r.unit()
        mode = m < 0.55 ? 0 : m < 0.75 ? 1 : m < 0.85 ? 2 : 3
        controlled = activated && r.chance(0.85)
        passControlled = controlled && hasPass && r.chance(0.6)
        passExpired = hasPass && r.chance(0.1)
    }
}

private enum Extra {
    case none
    case device(Int)
    case pass(ios: Bool, status: StaticString?)
    case invalidated(ios: Bool)
    case mode(Int)
    case pending
}

private let phaseCount = 9

final class DayBuilder {
    private let cfg: DayConfig
    private var rng: SplitMix64
    private let pool: RequestPool
    private let head0: [UInt8]     // request head up to the Content-Length value
    private var line: [UInt8] = []
    private var body: [UInt8] = []
    private var bodyPatches: [EventPatch] = []
    private var bodyEvents = 0
    private var bodyDuplicates = 0
    private var dupQueue: [(due: Int, line: [UInt8], patch: EventPatch)] = []
    private var dupHead = 0
    private var position = 0
    private var sequence = 0
    private var late = 0
    private let runID: [UInt8], prefix: [UInt8], tag: [UInt8]
    private var typeCounts: [UInt: (StaticString, Int)] = [:]

    init(_ cfg: DayConfig) {
        precondition(cfg.tag.utf8.count == 4)
        self.cfg = cfg
        rng = SplitMix64(seed: cfg.seed &+ 0x5EED)
        pool = RequestPool(liveTime: cfg.fixedWindow == nil)
        var h: [UInt8] = []
        h.append(string: "POST /v1/feed HTTP/1.1\r\nHost: \(cfg.hostHeader)\r\nAuthorization: Bearer \(cfg.feedKey)\r\n")
        h.append(string: "Content-Type: application/x-ndjson\r\nContent-Length: ")
        head0 = h
        runID = Array(cfg.runID.utf8)
        prefix = Array(cfg.eventPrefix.utf8)
        tag = Array(cfg.tag.utf8)
        body.reserveCapacity(cfg.batch * 220)
    }

    /// Builds the whole day.
    func build() -> RequestPool {
        let n = cfg.events, m = cfg.tickets
        guard n > 0, m > 0 else { pool.freeze(late: 0); return pool }
        let wave = max(1, (m + 63) / 64)
        let waves = (m + wave - 1) / wave
        let steps = waves + phaseCount - 1
        for s in 0..<steps {
            for p in 0..<phaseCount {
                let w = s - p
                guard w >= 0 && w < waves else { continue }
                let slot = s * phaseCount + p, slots = steps * phaseCount
                for t in (w * wave)..<min(m, (w + 1) * wave) {
                    for e in 0..<n {
                        let plan = TicketPlan(seed: cfg.seed, event: e, ticket: t)
                        var time: Int64 = 0
                        if let window = cfg.fixedWindow {
                            time = window.start + (window.end - window.start) * Int64(slot) / Int64(slots) + Int64(t % 997)
                        }
                        emitPhase(p, plan, e, t, time)
                    }
                }
            }
        }
        // Redeliveries still queued go out at the end of the day.
        while dupHead < dupQueue.count {
            let d = dupQueue[dupHead]; dupHead += 1
            append(d.line, d.patch, duplicate: true)
        }
        flush()
        for (_, v) in typeCounts { pool.typeCounts["\(v.0)"] = v.1 }
        pool.freeze(late: late)
        return pool
    }

    private func emitPhase(_ phase: Int, _ plan: TicketPlan, _ e: Int, _ t: Int, _ time: Int64) {
        switch phase {
        case 0:
            emit("ticket.created", e, t, time)
        case 1:
            if plan.download1 { emit("ticket.downloaded", e, t, time, .device(1)) }
            if plan.download2 { emit("ticket.downloaded", e, t, time, .device(2)) }
        case 2:
            if plan.ios { emit("pass.added", e, t, time, .pass(ios: true, status: "ACTIVE")) }
            if plan.iosSync { emit("pass.syncAdded", e, t, time, .pass(ios: true, status: nil)) }
            if plan.android { emit("pass.added", e, t, time, .pass(ios: false, status: "ACTIVE")) }
        case 3:
            if plan.transfers > 0 || plan.cancelledTransfer { emit("transfer.initiated", e, t, time) }
        case 4:
            if plan.cancelledTransfer { emit("transfer.cancelled", e, t, time) }
            if plan.transfers > 0 {
                emit("transfer.accepted", e, t, time)
                if plan.ios { emit("pass.transferred", e, t, time, .pass(ios: true, status: nil)) }
                if plan.android { emit("pass.transferred", e, t, time, .pass(ios: false, status: nil)) }
                for _ in 1..<plan.transfers {
                    emit("transfer.initiated", e, t, time)
                    emit("transfer.accepted", e, t, time)
                }
            }
        case 5:
            if plan.logout { emit("ticket.loggedOut", e, t, time, .device(1)) }
            if plan.passInactive { emit("pass.statusChanged", e, t, time, .pass(ios: plan.ios, status: "INACTIVE")) }
            if plan.passRemoved { emit("pass.removed", e, t, time, .pass(ios: plan.ios, status: "DELETED")) }
            if plan.iosSyncRemoved { emit("pass.syncRemoved", e, t, time, .pass(ios: true, status: nil)) }
            if plan.deleted { emit("ticket.deleted", e, t, time, plan.pending ? .pending : .none) }
            if plan.passInvalidated { emit("pass.invalidated", e, t, time, .invalidated(ios: plan.ios)) }
        case 6:
            if plan.restored { emit("ticket.restored", e, t, time) }
        case 7:
            if plan.activated { emit("ticket.activated", e, t, time, .mode(plan.mode)) }
        default:
            if plan.controlled { emit("ticket.controlled", e, t, time) }
            if plan.passControlled { emit("pass.controlled", e, t, time, .pass(ios: plan.ios, status: nil)) }
            if plan.passExpired { emit("pass.statusChanged", e, t, time, .pass(ios: plan.ios, status: "EXPIRED")) }
        }
    }

    private func emit(_ type: StaticString, _ e: Int, _ t: Int, _ fixedTime: Int64, _ extra: Extra = .none) {
        var lateMs: UInt32 = 0
        if cfg.lateFraction > 0 && rng.chance(cfg.lateFraction) {
            lateMs = UInt32(1 + rng.below(max(1, cfg.lateSeconds) * 1000))
            late += 1
        }
        line.removeAll(keepingCapacity: true)
        line.append("{\"id\":\"")
        line.append(contentsOf: runID); line.append(UInt8(ascii: "-"))
        let idGen = line.count
        line.append(contentsOf: tag); line.append(UInt8(ascii: "-"))
        line.append(decimal: sequence); sequence += 1
        line.append("\",\"type\":\""); line.append(type)
        line.append("\",\"eventId\":\""); line.append(contentsOf: prefix); line.append(UInt8(ascii: "E")); line.append(decimal: e + 1)
        line.append("\",\"ticketId\":\""); line.append(contentsOf: runID); line.append(UInt8(ascii: "-"))
        let ticketGen = line.count
        line.append(contentsOf: tag); line.append("-T"); line.append(decimal: t + 1)
        line.append("\",\"occurredAt\":\"")
        let timeOffset = line.count
        if cfg.fixedWindow != nil {
            line.append(contentsOf: repeatElement(0, count: timestampLength))
            line.withUnsafeMutableBufferPointer { writeTimestamp(fixedTime - Int64(lateMs), at: $0.baseAddress! + timeOffset) }
        } else {
            line.append("0000-00-00T00:00:00.000Z")
        }
        line.append(UInt8(ascii: "\""))
        switch extra {
        case .none: break
        case .device(let d):
            line.append(",\"deviceId\":\"d"); line.append(decimal: d); line.append(UInt8(ascii: "\""))
        case .pass(let ios, let status):
            line.append(ios ? ",\"platform\":\"ios\"" : ",\"platform\":\"android\"")
            if let status { line.append(",\"passStatus\":\""); line.append(status); line.append(UInt8(ascii: "\"")) }
        case .invalidated(let ios):
            line.append(ios ? ",\"platform\":\"ios\"" : ",\"platform\":\"android\"")
            line.append(",\"reason\":\"cancellation\",\"passStatus\":\"INACTIVE\"")
        case .mode(let m):
            line.append(m == 0 ? ",\"mode\":\"online\"" : m == 1 ? ",\"mode\":\"offline\"" : m == 2 ? ",\"mode\":\"manual\"" : ",\"mode\":\"bluetooth\"")
        case .pending:
            line.append(",\"pending\":true")
        }
        line.append("}\n")
        typeCounts[UInt(bitPattern: type.utf8Start), default: (type, 0)].1 += 1
        let patch = EventPatch(idGen: UInt32(idGen), ticketGen: UInt32(ticketGen), time: UInt32(timeOffset), lateMs: cfg.fixedWindow == nil ? lateMs : 0)
        if cfg.duplicateFraction > 0 && rng.chance(cfg.duplicateFraction) {
            dupQueue.append((position + 200 + rng.below(2000), line, patch))
        }
        append(line, patch, duplicate: false)
        position += 1
        while dupHead < dupQueue.count && dupQueue[dupHead].due <= position {
            let d = dupQueue[dupHead]; dupHead += 1
            append(d.line, d.patch, duplicate: true)
        }
        if dupHead > 4096 && dupHead * 2 > dupQueue.count { dupQueue.removeFirst(dupHead); dupHead = 0 }
    }

    private func append(_ line: [UInt8], _ patch: EventPatch, duplicate: Bool) {
        var p = patch
        let shift = UInt32(body.count)
        p.idGen += shift; p.ticketGen += shift; p.time += shift
        body.append(contentsOf: line)
        bodyPatches.append(p)
        bodyEvents += 1
        if duplicate { bodyDuplicates += 1 }
        if bodyEvents >= cfg.batch { flush() }
    }

    private func flush() {
        guard bodyEvents > 0 else { return }
        var head = head0
        head.append(decimal: body.count)
        head.append("\r\n\r\n")
        pool.add(head: head, body: body, bodyPatches: bodyPatches, events: bodyEvents, duplicates: bodyDuplicates)
        body.removeAll(keepingCapacity: true)
        bodyPatches.removeAll(keepingCapacity: true)
        bodyEvents = 0
        bodyDuplicates = 0
    }
}
