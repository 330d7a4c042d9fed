// Micro-benchmarks of Headcount's hot paths. Figures are printed, never asserted.
//
//   swift run -c release HeadcountBenchmarks [--tickets N] [--events N] [--rounds N] [--json]
//                                            [--compare Benchmarks/baseline.json] [--ingest-only]
//                                            [--wal-sync-only] [--restart-only] [--replay-only]
//                                            [--prefetch-distance D[,D...]] [--batched-only]
//
// --restart-only runs only the WAL figures (encode, append, replay, restart); --replay-only
// only the bulk restart itself (for profiling).
//
// --compare prints each figure beside the committed baseline and their ratio.
//
// --prefetch-distance: the batched ingest figures (the server's shape: admit a batch, then apply
// it, calling `Engine.prefetch` D events ahead) run without prefetch and at each D, in
// alternating rounds; 0 runs only the per-event ingest. Default: Engine.prefetchDistance. For a
// state that misses the cache: --tickets 2000000 --events 8 --ingest-only (about 5 GB, 5 min).
// --batched-only runs only the batched rounds, at exactly the distances given (0: no
// prefetch), and exits (for profiling one variant).
//
// Each figure is the median of several rounds on this machine; compare ratios within one
// run (shared machines are noisy). docs/BENCHMARKS.md records the latest figures.
//
// The benchmarks run on the server's allocator (jemalloc, linked through CHeapReservoir), so
// that memory and speed figures are the ones the server has; the first line says which.
import CHeapReservoir
import Foundation
import HeadcountCore
import HeadcountFeed
import HeadcountStorage
import HeadcountTestSupport
import Histogram

struct Options {
    var tickets = 200_000
    var events = 20
    var rounds = 3
    var json = false
    var ingestOnly = false
    var restartOnly = false
    var replayOnly = false
    var walSyncOnly = false
    var comparePath: String?
    var prefetchDistances = [Engine.prefetchDistance]
    var batchedOnly = false

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--tickets": tickets = Int(iterator.next() ?? "") ?? tickets
            case "--events": events = Int(iterator.next() ?? "") ?? events
            case "--rounds": rounds = Int(iterator.next() ?? "") ?? rounds
            case "--json": json = true
            case "--ingest-only": ingestOnly = true
            case "--restart-only": restartOnly = true
            case "--replay-only": replayOnly = true; restartOnly = true
            case "--wal-sync-only": walSyncOnly = true
            case "--compare": comparePath = iterator.next()
            case "--prefetch-distance": prefetchDistances = (iterator.next() ?? "").split(separator: ",").compactMap { Int($0) }
            case "--batched-only": batchedOnly = true
            default: FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8)); exit(2)
            }
        }
    }
}


/// An event day: every ticket is created, most are downloaded, some transferred, passes
/// added, activated and controlled at the gate; 5% of deliveries are late by up to an hour.
func eventDay(tickets: Int, events: Int, seed: UInt64) -> [FeedEvent] {
    var random = SplitMix64(seed: seed)
    let start: Int64 = 1_750_000_000_000
    var feed: [FeedEvent] = []
    feed.reserveCapacity(tickets * 8)
    var counter = 0
    func add(_ kind: FeedEventKind, _ event: String, _ ticket: String, _ time: Int64, _ details: FeedEvent.Details = .none) {
        counter += 1
        feed.append(FeedEvent(id: "f-\(counter)", kind: kind, eventId: event, ticketId: ticket, occurredAt: time, details: details))
    }
    for t in 0..<tickets {
        let event = "E\(t % events)"
        let ticket = "T\(t)"
        var time = start + Int64(t) * 10
        add(.ticketCreated, event, ticket, time)
        time += Int64(random.below(3_600_000))
        if random.below(10) < 8 { add(.ticketDownloaded, event, ticket, time, .device("d\(t % 50_000)")) }
        if random.below(10) < 2 {
            add(.transferInitiated, event, ticket, time + 1_000)
            add(.transferAccepted, event, ticket, time + 60_000)
        }
        if random.below(10) < 4 { add(.passAdded, event, ticket, time + 2_000, .pass(.ios, .active, nil)) }
        add(.ticketActivated, event, ticket, time + 3_000, .activation(random.below(4) == 0 ? .offline : .online))
        add(.ticketControlled, event, ticket, time + 4_000)
    }
    // Deliver in time order, except 5% late by up to an hour.
    feed.sort { $0.occurredAt < $1.occurredAt }
    var delivered: [FeedEvent] = []
    delivered.reserveCapacity(feed.count)
    var late: [(Int, FeedEvent)] = []
    for (index, event) in feed.enumerated() {
        if random.below(100) < 5 { late.append((index + random.below(20_000), event)) } else { delivered.append(event) }
    }
    late.sort { $0.0 < $1.0 }
    var result: [FeedEvent] = []
    result.reserveCapacity(feed.count)
    var lateIndex = 0
    for (index, event) in delivered.enumerated() {
        while lateIndex < late.count && late[lateIndex].0 <= index { result.append(late[lateIndex].1); lateIndex += 1 }
        result.append(event)
    }
    result += late[lateIndex...].map(\.1)
    return result
}

func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

let options = Options(CommandLine.arguments)
var results: [(String, Double, String)] = []
if !options.json {
    print(hc_jemalloc_serves_malloc() == 1 ? "allocator: jemalloc \(String(cString: hc_jemalloc_version()))"
                                           : "allocator: not jemalloc (LD_PRELOAD?)")
}
func report(_ name: String, _ value: Double, _ unit: String) {
    results.append((name, value, unit))
    if !options.json { print(name.padding(toLength: 54, withPad: " ", startingAt: 0) + String(format: abs(value) < 10 ? "%14.3f " : "%14.1f ", value) + unit) }
}

/// Group commits of 1 and 8 records (what one-event requests produce): `append` + `sync` on a
/// real WAL in the temp directory, each commit timed, with segments that grow by appending and
/// with preallocated ones (written in place over synced zeros).
func walGroupCommitFigures() {
    let commits = 1_500
    for (label, preallocation) in [("appending", WriteAheadLog.Preallocation.off), ("preallocated", .background)] {
        for recordsPerCommit in [1, 8] {
            let directory = NSTemporaryDirectory() + "headcount-bench-commit-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let log = try! WriteAheadLog(directory: directory, segmentBytesMax: 64 << 20, preallocation: preallocation)
            _ = try! log.recover(after: 0) { _ in }
            if preallocation != .off { precondition(try! log.prepareNextSegment(), "a prepared segment") }
            var sequence: UInt64 = 0
            var latencies: [Double] = []
            latencies.reserveCapacity(commits)
            for _ in 0..<commits {
                var bytes: [UInt8] = []
                let first = sequence + 1
                for _ in 0..<recordsPerCommit {
                    sequence += 1
                    let event = FeedEvent(id: "7f3c2a9e-\(sequence)-4b1d-9c8e-\(sequence % 977)", kind: .ticketDownloaded,
                                          eventId: "event-2025-05-21-arena", ticketId: "T-\(100_000 + sequence)",
                                          occurredAt: 1_750_000_000_000 + Int64(sequence), details: .device("device-\(sequence % 5000)"))
                    WriteAheadLog.encode(WALRecord(sequence: sequence, arrivalMilliseconds: 1_750_000_000_000, event: event), into: &bytes)
                }
                let start = DispatchTime.now().uptimeNanoseconds
                try! log.append(bytes, firstSequence: first, lastSequence: sequence)
                try! log.sync()
                latencies.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
            }
            latencies.sort()
            let name = "WAL commit, \(recordsPerCommit) record\(recordsPerCommit == 1 ? "" : "s") + fdatasync, \(label)"
            report(name + ", p50", latencies[latencies.count / 2], "µs")
            report(name + ", mean", latencies.reduce(0, +) / Double(latencies.count), "µs")
        }
    }
}

if options.walSyncOnly {
    walGroupCommitFigures()
    exit(0)
}

let feed = eventDay(tickets: options.tickets, events: options.events, seed: 42)
if !options.json { print("event day: \(options.tickets) tickets over \(options.events) events, \(feed.count) feed events") }
if options.restartOnly {
    walBenchmarks()
    exit(0)
}

/// The server's shape of ingest: a batch of `batchSize` events is admitted (as a request's
/// events are), then applied from one buffer (as `FeedCommitter.applySlice` does), calling
/// `Engine.prefetch` `distance` events ahead (0: never); returns the seconds of admitting and
/// of applying.
func batchedIngest(_ engine: Engine, distance: Int, batchSize: Int = 1_000) -> (admit: Double, apply: Double) {
    var admitNanoseconds: UInt64 = 0
    var applyNanoseconds: UInt64 = 0
    var sequence: UInt64 = 0
    var batch: [(event: FeedEvent, sequence: UInt64)] = []
    batch.reserveCapacity(batchSize)
    var start = 0
    while start < feed.count {
        let end = min(start + batchSize, feed.count)
        let admitStart = DispatchTime.now().uptimeNanoseconds
        batch.removeAll(keepingCapacity: true)
        for index in start..<end {
            let event = feed[index]
            guard engine.admit(id: event.id, arrivalMilliseconds: 0) else { continue }
            sequence += 1
            batch.append((event, sequence))
        }
        let applyStart = DispatchTime.now().uptimeNanoseconds
        batch.withUnsafeBufferPointer { events in
            if distance > 0 {
                for ahead in 0..<min(distance, events.count) { engine.prefetch(events[ahead].event) }
                for index in 0..<events.count {
                    if index + distance < events.count { engine.prefetch(events[index + distance].event) }
                    engine.apply(events[index].event, sequence: events[index].sequence)
                }
            } else {
                for index in 0..<events.count { engine.apply(events[index].event, sequence: events[index].sequence) }
            }
        }
        let applyEnd = DispatchTime.now().uptimeNanoseconds
        admitNanoseconds += applyStart - admitStart
        applyNanoseconds += applyEnd - applyStart
        start = end
    }
    return (Double(admitNanoseconds) / 1e9, Double(applyNanoseconds) / 1e9)
}

// 1. Ingest into the core: admit (duplicate check) + apply; then the same in batches, without
//    and with prefetching, in alternating rounds (the machine's noise hits all alike).
var ingestRates: [Double] = []
let batchedDistances = options.batchedOnly ? options.prefetchDistances
    : options.prefetchDistances.filter { $0 > 0 }.isEmpty ? [] : [0] + options.prefetchDistances.filter { $0 > 0 }
var batchedIngestRates = Array(repeating: [Double](), count: batchedDistances.count)
var batchedApplyRates = Array(repeating: [Double](), count: batchedDistances.count)
var engine = Engine()
var residentGrowth = 0
for round in 0..<options.rounds where !options.batchedOnly {
    let before = residentBytes()
    let fresh = Engine()
    let elapsed = seconds {
        var sequence: UInt64 = 0
        for event in feed {
            guard fresh.admit(id: event.id, arrivalMilliseconds: 0) else { continue }
            sequence += 1
            fresh.apply(event, sequence: sequence)
        }
    }
    ingestRates.append(Double(feed.count) / elapsed)
    if round == 0 { residentGrowth = residentBytes() - before }
    engine = fresh
}
for round in 0..<options.rounds {
    for (variant, distance) in batchedDistances.enumerated() {
        let batched = Engine()
        let (admitSeconds, applySeconds) = batchedIngest(batched, distance: distance)
        batchedIngestRates[variant].append(Double(feed.count) / (admitSeconds + applySeconds))
        batchedApplyRates[variant].append(Double(batched.appliedEventCount) / applySeconds)
        if !options.json {
            print("  round \(round + 1), batched, \(distance == 0 ? "no prefetch" : "prefetch \(distance)"): "
                  + String(format: "ingest %.0f, apply %.0f events/s", batchedIngestRates[variant].last!, batchedApplyRates[variant].last!))
        }
    }
}
if options.batchedOnly {
    for (variant, distance) in batchedDistances.enumerated() {
        let label = distance == 0 ? "no prefetch" : "prefetch \(distance)"
        report("core ingest, batches of 1000, \(label)", median(batchedIngestRates[variant]), "events/s")
        report("core apply, batches of 1000, \(label)", median(batchedApplyRates[variant]), "events/s")
    }
    exit(0)
}
report("core ingest (admit + apply)", median(ingestRates), "events/s")
for (variant, distance) in batchedDistances.enumerated() {
    let label = distance == 0 ? "no prefetch" : "prefetch \(distance)"
    report("core ingest, batches of 1000, \(label)", median(batchedIngestRates[variant]), "events/s")
    report("core apply, batches of 1000, \(label)", median(batchedApplyRates[variant]), "events/s")
}
report("memory per ticket (all state, RSS growth)", Double(residentGrowth) / Double(options.tickets), "bytes")
report("memory per feed event (all state)", Double(residentGrowth) / Double(feed.count), "bytes")
let breakdown = engine.memoryBreakdown
report("ticket current state per ticket", Double(breakdown.ticketStateBytes) / Double(breakdown.tickets), "bytes")
report("history per ticket or pass event", Double(breakdown.historyBytes) / Double(breakdown.historyEntries), "bytes")
report("deltas + snapshots per ticket or pass event", Double(breakdown.deltaBytes) / Double(breakdown.historyEntries), "bytes")
report("idempotency keys per feed event", Double(breakdown.idempotencyBytes) / Double(feed.count), "bytes")
if options.ingestOnly { exit(0) }

// 2. Queries: 8 events at now, an hour back, at a random past instant.
let latest = feed.map(\.occurredAt).max()!
let earliest = feed.map(\.occurredAt).min()!
var random = SplitMix64(seed: 7)
for (name, instantOf) in [("query 8 events, now", { (_: Int) -> Int64 in latest + 1 }),
                          ("query 8 events, random past instant", { (_: Int) -> Int64 in earliest + Int64(random.below(Int(latest - earliest))) })] {
    let histogram = Histogram<UInt64>(highestTrackableValue: 1_000_000_000, numberOfSignificantValueDigits: .three)
    var histogramCopy = histogram
    let eventIds = (0..<min(8, options.events)).map { "E\($0)" }
    var checksum: Int64 = 0
    for i in 0..<20_000 {
        let instant = instantOf(i)
        let start = DispatchTime.now().uptimeNanoseconds
        for eventId in eventIds {
            checksum &+= engine.statistics(eventId: eventId, at: instant)![.validTickets]
        }
        histogramCopy.record(DispatchTime.now().uptimeNanoseconds - start)
    }
    report(name + " p50", Double(histogramCopy.valueAtPercentile(50)) / 1000, "µs")
    report(name + " p99", Double(histogramCopy.valueAtPercentile(99)) / 1000, "µs")
    if checksum == 42 { print("") }
}

// 3. Snapshot encode / decode.
var payload: [UInt8] = []
report("snapshot encode", seconds { payload = engine.encodeSnapshot() } * 1000, "ms")
report("snapshot size per ticket", Double(payload.count) / Double(options.tickets), "bytes")
var decodeSeconds = 0.0
decodeSeconds = seconds { _ = try! payload.withUnsafeBytes { try Engine.decodeSnapshot($0) } }
report("snapshot decode per million feed events", decodeSeconds * 1e6 / Double(feed.count), "s")

// 4. Feed decoding: the event day as NDJSON requests of 1,000 events.
let lines = feed.map(TestFeeds.ndjsonLine)
let bodies: [[UInt8]] = stride(from: 0, to: lines.count, by: 1_000).map {
    Array(lines[$0..<min($0 + 1_000, lines.count)].joined(separator: "\n").utf8)
}
let decoder = FeedDecoder()
var decodeRates: [Double] = []
for _ in 0..<options.rounds {
    var decoded = 0
    let elapsed = seconds {
        for body in bodies {
            if case .success(let items) = decoder.decode(body, format: .ndjson) { decoded += items.count }
        }
    }
    precondition(decoded == feed.count, "every event decodes")
    decodeRates.append(Double(decoded) / elapsed)
}
report("feed decode (NDJSON, simdjson)", median(decodeRates), "events/s")

/// Counts what the decoder hands out, making nothing (the parse and the checks alone).
final class CountingSink: FeedEventSink {
    var count = 0
    func accept(_ event: FeedEventBytes, index: Int) { count += 1 }
    func accept(_ event: FeedEvent, index: Int) { count += 1 }
    func reject(index: Int, id: String?, error: String) { count += 1 }
}

/// What the server's intake makes of each event (`FeedDrafts`): its duplicate-check key, its
/// prepared form and its WAL record (unsealed), from the decoder's bytes.
final class DraftingSink: FeedEventSink {
    var keys: [Hash128] = []
    var prepared: [PreparedEvent] = []
    var records: [UInt8] = []
    var eventIds = EventIdInterner()
    func reset() {
        keys.removeAll(keepingCapacity: true)
        prepared.removeAll(keepingCapacity: true)
        records.removeAll(keepingCapacity: true)
    }
    func accept(_ event: FeedEventBytes, index: Int) {
        keys.append(Engine.admissionKey(id: event.id))
        prepared.append(PreparedEvent(event, eventId: eventIds.string(event.eventId)))
        WALRecord.encodeUnsealed(arrivalMilliseconds: 1_750_000_000_000, event: event, into: &records)
    }
    func accept(_ event: FeedEvent, index: Int) {
        keys.append(Engine.admissionKey(id: event.id))
        prepared.append(PreparedEvent(event))
        WALRecord.encode(sequence: 0, arrivalMilliseconds: 1_750_000_000_000, event: event, into: &records)
    }
    func reject(index: Int, id: String?, error: String) {}
}

let countingSink = CountingSink()
var byteRates: [Double] = []
for _ in 0..<options.rounds {
    countingSink.count = 0
    let elapsed = seconds {
        for body in bodies { _ = body.withUnsafeBytes { decoder.decode($0, format: .ndjson, into: countingSink) } }
    }
    precondition(countingSink.count == feed.count, "every event decodes")
    byteRates.append(Double(countingSink.count) / elapsed)
}
report("feed decode to bytes (no event made)", median(byteRates), "events/s")

let draftingSink = DraftingSink()
var draftRates: [Double] = []
for _ in 0..<options.rounds {
    var drafted = 0
    let elapsed = seconds {
        for body in bodies {
            draftingSink.reset()
            _ = body.withUnsafeBytes { decoder.decode($0, format: .ndjson, into: draftingSink) }
            drafted += draftingSink.keys.count
        }
    }
    precondition(drafted == feed.count, "every event is drafted")
    draftRates.append(Double(drafted) / elapsed)
}
report("feed decode + key, prepared event, WAL record", median(draftRates), "events/s")

// 5. WAL: encode, append + one fsync, replay (read, checksum, decode), and a restart's
//    replay + apply, per million events.
func walBenchmarks() {
    let walDirectory = NSTemporaryDirectory() + "headcount-bench-wal-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: walDirectory) }
    var walBytes: [UInt8] = []
    walBytes.reserveCapacity(feed.count * 64)
    let encodeSeconds = seconds {
        for (offset, event) in feed.enumerated() {
            WriteAheadLog.encode(WALRecord(sequence: UInt64(offset + 1), arrivalMilliseconds: 0, event: event), into: &walBytes)
        }
    }
    report("WAL encode", Double(feed.count) / encodeSeconds, "records/s")
    report("WAL bytes per record", Double(walBytes.count) / Double(feed.count), "bytes")
    var crc: UInt32 = 0
    let crcSeconds = seconds { for _ in 0..<4 { crc ^= CRC32C.checksum(walBytes) } }
    report("CRC32C\(CRC32C.isHardwareAvailable ? " (SSE 4.2)" : "")", Double(walBytes.count * 4) / crcSeconds / 1e6, "MB/s")
    if crc == 42 { print("") }
    let wal = try! WriteAheadLog(directory: walDirectory, segmentBytesMax: 256 << 20)
    _ = try! wal.recover(after: 0) { _ in }
    let appendSeconds = seconds {
        try! wal.append(walBytes, firstSequence: 1, lastSequence: UInt64(feed.count))
        try! wal.sync()
    }
    report("WAL append + fsync", Double(walBytes.count) / appendSeconds / 1e6, "MB/s")
    if !options.restartOnly { walGroupCommitFigures() }
    var replayed: [FeedEvent] = []
    replayed.reserveCapacity(feed.count)
    let replaySeconds = seconds {
        let reopened = try! WriteAheadLog(directory: walDirectory, segmentBytesMax: 256 << 20)
        _ = try! reopened.recover(after: 0) { replayed.append($0.event) }
    }
    report("WAL replay (read, check, decode)", Double(replayed.count) / replaySeconds, "records/s")
    // What a restart does (HeadcountServer.recover): read, check, decode and bulk-apply.
    var restarted = Engine()
    for (name, pipelined) in [("restart from WAL only, per million events", true),
                              ("restart from WAL only, one thread, per million events", false)] {
        var figures: [Double] = []
        for _ in 0..<options.rounds {
            let engine = Engine()
            let elapsed = seconds {
                let reopened = try! WriteAheadLog(directory: walDirectory, segmentBytesMax: 256 << 20)
                let outcome = try! WALReplay.replay(reopened, into: engine, pipelined: pipelined)
                precondition(outcome.replayed == feed.count, "every record replays")
            }
            figures.append(elapsed * 1e6 / Double(feed.count))
            restarted = engine
        }
        report(name, median(figures), "s")
    }
    // The reading half alone: segments read, checked and decoded into fingerprints.
    var scanFigures: [Double] = []
    for _ in 0..<options.rounds {
        // An empty engine said to be at the last sequence: every record is read and checked,
        // none applied.
        var empty = Engine().encodeSnapshot()
        withUnsafeBytes(of: UInt64(feed.count).littleEndian) { empty.replaceSubrange(1..<9, with: $0) }
        let engine = try! empty.withUnsafeBytes { try Engine.decodeSnapshot($0) }
        let elapsed = seconds {
            let reopened = try! WriteAheadLog(directory: walDirectory, segmentBytesMax: 256 << 20)
            _ = try! WALReplay.replay(reopened, into: engine, pipelined: false)
        }
        scanFigures.append(elapsed * 1e6 / Double(feed.count))
    }
    report("WAL read + check + fingerprint decode, per million", median(scanFigures), "s")
    if options.replayOnly { return }
    // The per-event path it replaced: WALRecord decode, then admit + apply of each event.
    let perEvent = Engine()
    let perEventSeconds = seconds {
        for (offset, event) in replayed.enumerated() {
            _ = perEvent.admit(id: event.id, arrivalMilliseconds: 0)
            perEvent.apply(event, sequence: UInt64(offset + 1))
        }
    } + replaySeconds
    report("restart from WAL only, per-event apply, per million events", perEventSeconds * 1e6 / Double(feed.count), "s")
    // The two must answer alike (the tests check this exhaustively; here a sample).
    let times = feed.map(\.occurredAt)
    let (low, high) = (times.min()!, times.max()!)
    var probe = SplitMix64(seed: 11)
    for _ in 0..<2_000 {
        let instant = low - 1 + Int64(probe.below(Int(high - low) + 2))
        let eventId = "E\(probe.below(options.events))"
        precondition(restarted.statistics(eventId: eventId, at: instant) == perEvent.statistics(eventId: eventId, at: instant),
                     "bulk replay differs from per-event apply for \(eventId) at \(instant)")
    }
    // Snapshots: equal but for the order of the idempotency keys (the tables differ in size).
    precondition(canonicalSnapshot(restarted) == canonicalSnapshot(perEvent), "bulk replay's snapshot differs")
}

walBenchmarks()

// 6. Seat status changes: 1,000,000 changes over 100,000 objects in one event.
let changeCount = options.tickets * 5
let objectCount = max(changeCount / 10, 1)
let log = StatusChangeLog()
let statuses = ["free", "booked", "reservedByToken", "resale"]
/// Object `index`'s label: 1,000 seats a section, 20 a row.
func seatLabel(_ index: Int) -> String { "S\(index / 1000)-R\(index / 20 % 50)-\(index % 20)" }
let statusSeconds = seconds {
    for index in 0..<changeCount {
        let label = seatLabel(index % objectCount)
        let change = SeatStatusChange(objectLabel: label, status: statuses[index % 4], orderId: index % 3 == 0 ? "o\(index)" : nil,
                                      extraDataJSON: index % 5 == 0 ? #"{"userId":"\#(index % 977)"}"# : nil,
                                      originType: .apiCall, originIP: "10.0.0.1")
        log.apply(FeedEvent(id: "s\(index)", kind: .seatStatusChanged, eventId: "SEATS", ticketId: "",
                            occurredAt: 1_750_000_000_000 + Int64(index) * 7, details: .seatStatus(change)),
                  sequence: UInt64(index + 1))
    }
}
let seatNow = Int64(1_750_000_000_000) + Int64(changeCount) * 7
report("status changes: add", Double(changeCount) / statusSeconds, "changes/s")
report("status changes: memory per change", Double(log.memoryFootprint) / Double(changeCount), "bytes")
// A snapshot of them: the loop takes a copy-on-write source, the snapshot thread encodes it;
// a change the loop applies meanwhile copies the columns it appends to.
var statusSnapshotBytes: [UInt8] = []
var statusSource: StatusChangeLogSnapshotSource?
report("status changes: snapshot source (loop)", seconds { statusSource = log.snapshotSource() } * 1e6, "µs")
// First a change that interns no new string (a hold released), then one that does (a
// booking with an order id): that one copies the shared payload-string pool.
report("status changes: change while a snapshot shares the log", seconds {
    log.apply(FeedEvent(id: "s\(changeCount)", kind: .seatStatusChanged, eventId: "SEATS", ticketId: "",
                        occurredAt: 1_750_000_000_000 + Int64(changeCount) * 7 - 2,
                        details: .seatStatus(SeatStatusChange(objectLabel: "S0-R0-0", status: "free", originType: .apiCall,
                                                              originIP: "10.0.0.1"))),
              sequence: UInt64(changeCount + 1))
} * 1000, "ms")
report("status changes: change during a snapshot, new strings", seconds {
    log.apply(FeedEvent(id: "s\(changeCount + 1)", kind: .seatStatusChanged, eventId: "SEATS", ticketId: "",
                        occurredAt: 1_750_000_000_000 + Int64(changeCount) * 7 - 1,
                        details: .seatStatus(SeatStatusChange(objectLabel: "S0-R0-0", status: "booked", orderId: "o-new",
                                                              extraDataJSON: #"{"userId":"new"}"#, originType: .apiCall,
                                                              originIP: "10.0.0.2"))),
              sequence: UInt64(changeCount + 2))
} * 1000, "ms")
report("status changes: snapshot encode, per M changes",
       seconds { statusSource!.encode(into: &statusSnapshotBytes) } * 1000 * 1_000_000 / Double(changeCount), "ms")
report("status changes: snapshot bytes per change", Double(statusSnapshotBytes.count) / Double(changeCount), "bytes")
statusSnapshotBytes = []
statusSource = nil
let deepCursor = Int64(changeCount / 2)
let pageCases: [(String, StatusChangeQuery, String?)] = [
    ("status changes: page 100, date desc", StatusChangeQuery(limit: 100), nil),
    ("status changes: page 100, label asc, deep cursor",
     StatusChangeQuery(sortField: .objectLabel, ascending: true, limit: 100, cursor: .startAfter(deepCursor)), nil),
    ("status changes: page 100, status desc, end_before",
     StatusChangeQuery(sortField: .status, ascending: false, limit: 100, cursor: .endBefore(deepCursor)), nil),
    ("status changes: page 100, filter contains, deep",
     StatusChangeQuery(filter: "R1-1", limit: 100, cursor: .startAfter(deepCursor)), nil),
    ("status changes: page 100, one object", StatusChangeQuery(limit: 100), seatLabel(min(3_151, objectCount - 1))),
]
for (name, query, object) in pageCases {
    var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
    var items = 0
    for _ in 0..<200 {
        let start = DispatchTime.now().uptimeNanoseconds
        let page = try! log.list(eventKey: "SEATS", objectLabel: object, query: query, now: seatNow)!
        var writer = JSONWriter(capacity: 32_768)
        page.writeJSON(into: &writer)
        histogram.record(DispatchTime.now().uptimeNanoseconds - start)
        items = page.items.count
    }
    precondition(items > 0, "\(name) returns items")
    report(name + " p99", Double(histogram.valueAtPercentile(99)) / 1000, "µs")
}

if options.json {
    let object = Dictionary(uniqueKeysWithValues: results.map { ($0.0, ["value": $0.1, "unit": $0.2] as [String: Any]) })
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

if let comparePath = options.comparePath,
   let data = FileManager.default.contents(atPath: comparePath),
   let baseline = try? JSONSerialization.jsonObject(with: data) as? [String: [String: Any]] {
    print("\ncompared with \(comparePath) (ratio = now / baseline):")
    for (name, value, unit) in results {
        guard let old = baseline[name]?["value"] as? Double, old != 0 else { continue }
        print(name.padding(toLength: 54, withPad: " ", startingAt: 0)
              + String(format: "%14.1f %14.1f  x%.2f ", value, old, value / old) + unit)
    }
}
