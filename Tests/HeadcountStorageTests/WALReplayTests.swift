import Foundation
import HeadcountCore
import HeadcountTestSupport
@testable import HeadcountStorage
import XCTest

// The bulk WAL replay of a restart (`WALReplay`) against the per-event path it replaced
// (`WriteAheadLog.recover` + `Engine.admit` + `Engine.apply` of each record):
// - the fingerprint decoder accepts and rejects exactly what `WALRecord(payload:)` does, and
//   decodes the same fields (every kind and details shape, unusual encodings, random damage);
// - replayed engines answer alike (WAL only, on top of a snapshot, one thread or two);
// - damaged logs give the same error, the same report and the same files.
//
// Seeded: HEADCOUNT_WAL_REPLAY_SEED=<seed> replays one seed (the failure message names it).

final class WALReplayTests: XCTestCase {
    private static func seeds() -> [UInt64] {
        if let text = ProcessInfo.processInfo.environment["HEADCOUNT_WAL_REPLAY_SEED"], let seed = UInt64(text) { return [seed] }
        let random = UInt64(bitPattern: Int64(Date().timeIntervalSince1970 * 1e6)) ^ UInt64(getpid())
        return [1, 2, 3, random]
    }

    // MARK: Feeds

    /// Events of every kind and details shape (matching and not), eventIds that differ only by
    /// Unicode normalization, 128-byte ids (two-byte length varints), empty ticketIds, late
    /// and future times.
    static func randomEvents(seed: UInt64, count: Int) -> [FeedEvent] {
        var random = SplitMix64(seed: seed)
        let eventIds = ["E1", "E2", "E3", "caf\u{E9}", "cafe\u{301}", String(repeating: "é", count: 64),
                        String(repeating: "e", count: 127), String(repeating: "L", count: 128)]
        let ticketKinds = FeedEventKind.allCases.filter(\.isTicketOrPass)
        // Unique ids: a repeated id in a WAL means accepted again after it expired, which the
        // per-event path does not model (BulkReplayTests covers it).
        var seen: Set<String> = []
        var events = sampleEvents().enumerated().map { index, event -> FeedEvent in
            var event = event
            if !seen.insert(event.id).inserted { event.id = "sample-\(index)" }
            return event
        }
        var time: Int64 = 1_750_000_000_000
        for index in 0..<count {
            time += Int64(random.below(5_000))
            let occurredAt = random.below(10) == 0 ? time - Int64(random.below(3_600_000)) : time
            let eventId = eventIds[random.below(random.below(4) == 0 ? eventIds.count : 3)]
            let id = random.below(50) == 0 ? String(repeating: "i", count: 120) + "\(index)" : "f-\(seed)-\(index)"
            let roll = random.below(20)
            if roll == 0 {
                let change = SeatStatusChange(objectLabel: "A-\(random.below(30))", status: ["free", "booked"][random.below(2)],
                                              orderId: random.below(2) == 0 ? "o\(index)" : nil, originType: .apiCall)
                events.append(FeedEvent(id: id, kind: .seatStatusChanged, eventId: eventId, ticketId: "",
                                        occurredAt: occurredAt, details: .seatStatus(change)))
                continue
            }
            if roll == 1 {
                let kind: FeedEventKind = random.below(2) == 0 ? .chartObjectRemoved : .chartObjectRestored
                events.append(FeedEvent(id: id, kind: kind, eventId: eventId, ticketId: "", occurredAt: occurredAt,
                                        details: .chartObject(label: "A-\(random.below(30))", removalReason: kind == .chartObjectRemoved ? .renamedOrDeleted : nil)))
                continue
            }
            let kind = ticketKinds[random.below(ticketKinds.count)]
            let ticketId = random.below(100) == 0 ? (random.below(2) == 0 ? "" : String(repeating: "t", count: 128))
                : "T\(random.below(300))"
            var details: FeedEvent.Details
            switch kind {
            case .ticketDeleted: details = .deletion(isPending: random.below(2) == 0)
            case .ticketDownloaded, .ticketLoggedOut:
                details = .device(random.below(30) == 0 ? String(repeating: "d", count: 200) : "d\(random.below(4))")
            case .ticketActivated: details = .activation(ActivationMode.allCases[random.below(ActivationMode.allCases.count)])
            case _ where kind.isPass:
                details = .pass(PassPlatform.allCases[random.below(2)],
                                random.below(3) == 0 ? nil : PassStatus.allCases[random.below(PassStatus.allCases.count)],
                                random.below(3) == 0 ? InvalidationReason.allCases[random.below(InvalidationReason.allCases.count)] : nil)
            default: details = .none
            }
            if random.below(40) == 0 {  // details that do not go with the kind
                details = [.none, .device("x"), .activation(.manual), .deletion(isPending: true),
                           .pass(.android, .active, nil)][random.below(5)]
            }
            events.append(FeedEvent(id: id, kind: kind, eventId: eventId, ticketId: ticketId, occurredAt: occurredAt,
                                    details: details))
        }
        return events
    }

    /// Writes the events as WAL records 1…n in batches of 1–40, to segments of at most
    /// `segmentBytesMax`.
    @discardableResult
    static func writeLog(_ events: [FeedEvent], to fileSystem: StorageFileSystem, seed: UInt64,
                         segmentBytesMax: Int = 4_096) throws -> [WALRecord] {
        var random = SplitMix64(seed: seed ^ 0xBA7C4)
        let wal = try WriteAheadLog(directory: "/wal", segmentBytesMax: segmentBytesMax, fileSystem: fileSystem)
        _ = try wal.recover(after: 0) { _ in }
        let records = events.enumerated().map {
            WALRecord(sequence: UInt64($0.offset + 1), arrivalMilliseconds: 1_750_000_000_000 + Int64($0.offset), event: $0.element)
        }
        var start = 0
        while start < records.count {
            let end = min(records.count, start + 1 + random.below(40))
            var bytes: [UInt8] = []
            for record in records[start..<end] { WriteAheadLog.encode(record, into: &bytes) }
            try wal.append(bytes, firstSequence: UInt64(start + 1), lastSequence: UInt64(end))
            try wal.sync()
            start = end
        }
        return records
    }

    /// The per-event path: `recover` + `admit` + `apply`.
    static func perEventEngine(_ records: [WALRecord], from engine: Engine = Engine()) -> Engine {
        for record in records where record.sequence > engine.lastAppliedSequence {
            _ = engine.admit(id: record.event.id, arrivalMilliseconds: record.arrivalMilliseconds)
            engine.apply(record.event, sequence: record.sequence)
        }
        engine.publish()
        return engine
    }

    // MARK: Comparing engines


    /// The first difference in what the two engines answer, or nil.
    static func difference(_ expected: Engine, _ actual: Engine, events: [FeedEvent]) -> String? {
        if expected.lastAppliedSequence != actual.lastAppliedSequence {
            return "lastAppliedSequence \(expected.lastAppliedSequence) vs \(actual.lastAppliedSequence)"
        }
        var times: [String: Set<Int64>] = [:]
        for event in events { times[event.eventId, default: [Int64.max]].formUnion([event.occurredAt &- 1, event.occurredAt, event.occurredAt &+ 1]) }
        for (eventId, instants) in times {
            if expected.knowsEvent(eventId) != actual.knowsEvent(eventId) { return "knowsEvent(\(eventId))" }
            for instant in instants.sorted() {
                let left = expected.statistics(eventId: eventId, at: instant)
                let right = actual.statistics(eventId: eventId, at: instant)
                if left != right { return "statistics of \(eventId) at \(instant): \(String(describing: left)) vs \(String(describing: right))" }
            }
            if expected.publishedCounters(eventId: eventId)?.read().counters != actual.publishedCounters(eventId: eventId)?.read().counters {
                return "published counters of \(eventId)"
            }
            let now = (events.map(\.occurredAt).max() ?? 0) &+ 1
            let left = try? expected.statusChanges.list(eventKey: eventId, objectLabel: nil, query: StatusChangeQuery(limit: 1_000), now: now)
            let right = try? actual.statusChanges.list(eventKey: eventId, objectLabel: nil, query: StatusChangeQuery(limit: 1_000), now: now)
            if left != right { return "status changes of \(eventId)" }
        }
        if expected.eventCount != actual.eventCount { return "eventCount \(expected.eventCount) vs \(actual.eventCount)" }
        let (left, right) = (canonicalSnapshot(expected), canonicalSnapshot(actual))
        if left != right {
            let first = (0..<min(left.count, right.count)).first { left[$0] != right[$0] } ?? min(left.count, right.count)
            return "snapshots differ: \(left.count) vs \(right.count) bytes, first difference at \(first) of \(left.count): "
                + hexDump(Array(left[max(0, first - 40)..<min(left.count, first + 40)])) + " vs "
                + hexDump(Array(right[max(0, first - 40)..<min(right.count, first + 40)]))
        }
        return nil
    }

    // MARK: Tests

    func testReplayMatchesPerEventApply() throws {
        for seed in Self.seeds() {
            let fileSystem = SimulatedFileSystem()
            let events = Self.randomEvents(seed: seed, count: 3_000)
            let records = try Self.writeLog(events, to: fileSystem, seed: seed)
            let expected = Self.perEventEngine(records)
            for pipelined in [false, true] {
                let wal = try WriteAheadLog(directory: "/wal", fileSystem: fileSystem)
                let engine = Engine()
                let outcome = try WALReplay.replay(wal, into: engine, pipelined: pipelined)
                engine.publish()
                XCTAssertEqual(outcome.replayed, records.count)
                XCTAssertGreaterThan(outcome.report.segmentCount, 10)
                XCTAssertEqual(outcome.report.recordsDelivered, records.count)
                if let difference = Self.difference(expected, engine, events: events) {
                    XCTFail("HEADCOUNT_WAL_REPLAY_SEED=\(seed) pipelined: \(pipelined): \(difference)")
                }
                XCTAssertEqual(engine.appliedEventCount, expected.appliedEventCount)
            }
            print("WAL replay seed \(seed): \(records.count) records checked")
        }
    }

    func testReplayOnTopOfASnapshot() throws {
        for seed in Self.seeds() {
            let fileSystem = SimulatedFileSystem()
            let events = Self.randomEvents(seed: seed, count: 2_000)
            let records = try Self.writeLog(events, to: fileSystem, seed: seed)
            let expected = Self.perEventEngine(records)
            var random = SplitMix64(seed: seed)
            for split in [0, 1, random.below(records.count), records.count * 9 / 10, records.count - 1, records.count] {
                let prefix = Self.perEventEngine(Array(records.prefix(split)))
                let engine = try prefix.encodeSnapshot().withUnsafeBytes { try Engine.decodeSnapshot($0) }
                let wal = try WriteAheadLog(directory: "/wal", fileSystem: fileSystem)
                let outcome = try WALReplay.replay(wal, into: engine, pipelined: split % 2 == 0)
                engine.publish()
                XCTAssertEqual(outcome.replayed, records.count - split)
                if let difference = Self.difference(expected, engine, events: events) {
                    XCTFail("HEADCOUNT_WAL_REPLAY_SEED=\(seed) snapshot at \(split): \(difference)")
                }
            }
        }
    }

    /// The fingerprint decoder against `WALRecord(payload:)` on valid payloads of every
    /// shape and on randomly damaged ones: the same acceptance, the same errors, the same
    /// fields.
    func testDecoderAgreesWithTheFullDecoder() throws {
        for seed in Self.seeds() {
            var random = SplitMix64(seed: seed)
            let events = Self.randomEvents(seed: seed, count: 400)
            var fast = 0, full = 0, rejected = 0
            for (index, event) in events.enumerated() {
                var framed: [UInt8] = []
                WALRecord(sequence: UInt64(index + 1), arrivalMilliseconds: Int64(index) * 7, event: event).encode(into: &framed)
                let payload = Array(framed[8...])
                var variants = [payload]
                for _ in 0..<8 {
                    var damaged = payload
                    switch random.below(4) {
                    case 0: damaged[random.below(damaged.count)] = UInt8(truncatingIfNeeded: random.next())
                    case 1: damaged[random.below(damaged.count)] ^= 0x80
                    case 2: damaged.removeLast(1 + random.below(min(8, damaged.count)))
                    default: damaged.append(UInt8(truncatingIfNeeded: random.next()))
                    }
                    variants.append(damaged)
                }
                for bytes in variants {
                    let expected = Result { try WALRecord(payload: bytes) }
                    var decoder = ReplayDecoder()
                    let actual = bytes.withUnsafeBytes { raw in Result { try decoder.decode(raw) } }
                    switch (expected, actual) {
                    case (.failure(let left), .failure(let right)):
                        XCTAssertEqual(left as? WALRecord.DecodingError, right as? WALRecord.DecodingError, "seed \(seed)")
                        rejected += 1
                    case (.success(let record), .success(let item)):
                        XCTAssertEqual(item.sequence, record.sequence)
                        XCTAssertEqual(item.arrivalMilliseconds, record.arrivalMilliseconds)
                        if item.kind == 0 {
                            XCTAssertEqual(decoder.lastFull, record, "seed \(seed)")
                            full += 1
                        } else {
                            XCTAssertTrue(Self.matches(item, record, eventIds: decoder.pendingEventIds),
                                          "HEADCOUNT_WAL_REPLAY_SEED=\(seed): \(record) decoded as \(item)")
                            fast += 1
                        }
                    default:
                        XCTFail("HEADCOUNT_WAL_REPLAY_SEED=\(seed): full decoder \(expected), fingerprint decoder \(actual)")
                    }
                }
            }
            XCTAssertGreaterThan(fast, 1_000)
            XCTAssertGreaterThan(full, 100)
            XCTAssertGreaterThan(rejected, 500)
        }
    }

    /// Whether a fingerprint item holds what the engine would take from the record.
    static func matches(_ item: ReplayItem, _ record: WALRecord, eventIds: [String]) -> Bool {
        let event = record.event
        var argument: UInt8 = 0
        var device: UInt64 = 0
        switch event.details {
        case .deletion(let isPending): argument = isPending ? 1 : 0
        case .device(let deviceId): device = Hash128.hash(deviceId).low
        case .activation(let mode): argument = mode.rawValue
        case .pass(let platform, let status, let reason):
            argument = BulkReplay.passArgument(platform: platform, status: status, reason: reason)
        case .none, .seatStatus, .chartObject: break
        }
        return item.kind == event.kind.rawValue && item.occurredAt == event.occurredAt
            && item.idKey == Hash128.hash(event.id) && item.ticket == Hash128.hash(event.ticketId)
            && item.argument == argument && item.device == device
            && eventIds.count == 1 && item.index == 0 && eventIds[0].utf8.elementsEqual(event.eventId.utf8)
    }

    /// Random damage: the bulk replay and the per-event recovery end the same way — the same
    /// `WALError`, or the same report, the same files afterwards and the same engine.
    func testDamageIsHandledExactlyAsByRecover() throws {
        let pristine = SimulatedFileSystem()
        let events = Self.randomEvents(seed: 7, count: 150)
        try Self.writeLog(events, to: pristine, seed: 7, segmentBytesMax: 1_500)
        let names = try pristine.listDirectory("/wal").sorted()
        XCTAssertGreaterThan(names.count, 3)
        var random = SplitMix64(seed: 11)
        var outcomes = (corrupt: 0, torn: 0, intact: 0)
        for trial in 0..<400 {
            var damaged: [String: [UInt8]] = [:]
            for name in names { damaged[name] = pristine.contents(of: "/wal/" + name)! }
            let victim = names[random.below(names.count)]
            var bytes = damaged[victim]!
            if random.below(4) == 0 {
                bytes.removeLast(random.below(bytes.count))
            } else {
                for _ in 0...random.below(3) { bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next()) }
            }
            damaged[victim] = bytes
            func copy() throws -> SimulatedFileSystem {
                let fileSystem = SimulatedFileSystem()
                try fileSystem.makeDirectory("/wal")
                for (name, bytes) in damaged { fileSystem.overwriteFile("/wal/" + name, with: bytes) }
                return fileSystem
            }
            let old = try copy(), new = try copy()
            let expected = Result { try recoverAll(fileSystem: old) }
            let engine = Engine()
            let actual = Result { try WALReplay.replay(try WriteAheadLog(directory: "/wal", fileSystem: new), into: engine,
                                                       pipelined: trial % 2 == 0) }
            switch (expected, actual) {
            case (.failure(let left), .failure(let right)):
                XCTAssertEqual(left as? WALError, right as? WALError, "trial \(trial)")
                outcomes.corrupt += 1
            case (.success(let (_, records, report)), .success(let outcome)):
                XCTAssertEqual(report, outcome.report, "trial \(trial)")
                XCTAssertEqual(outcome.replayed, records.count)
                engine.publish()
                if let difference = Self.difference(Self.perEventEngine(records), engine, events: records.map(\.event)) {
                    XCTFail("trial \(trial): \(difference)")
                }
                if report.tornTail != nil { outcomes.torn += 1 } else { outcomes.intact += 1 }
            default:
                XCTFail("trial \(trial): recover \(expected), replay \(actual)")
            }
            for name in names { XCTAssertEqual(old.contents(of: "/wal/" + name), new.contents(of: "/wal/" + name), "trial \(trial)") }
        }
        print("WAL replay damage outcomes: \(outcomes)")
        XCTAssertGreaterThan(outcomes.corrupt, 50)
        XCTAssertGreaterThan(outcomes.torn, 5)
    }

    func testErrorsOfTheScanPropagateFromTheReadingThread() throws {
        let fileSystem = SimulatedFileSystem()
        try Self.writeLog(Self.randomEvents(seed: 3, count: 200), to: fileSystem, seed: 3, segmentBytesMax: 2_000)
        let names = try fileSystem.listDirectory("/wal").sorted()
        var bytes = fileSystem.contents(of: "/wal/" + names[1])!
        bytes[20] ^= 0xFF
        fileSystem.overwriteFile("/wal/" + names[1], with: bytes)
        XCTAssertThrowsError(try WALReplay.replay(WriteAheadLog(directory: "/wal", fileSystem: fileSystem), into: Engine())) {
            guard case .corrupt(let file, let offset, _) = $0 as? WALError else { return XCTFail("\($0)") }
            XCTAssertEqual(file, "/wal/" + names[1])
            XCTAssertEqual(offset, 0)
        }
    }
}
