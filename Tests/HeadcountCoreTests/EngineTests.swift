import Foundation
import XCTest
@testable import HeadcountCore
import HeadcountTestSupport

final class EngineTests: XCTestCase {
    private var sequence: UInt64 = 0

    private func feed(_ engine: Engine, _ kind: FeedEventKind, ticket: String, at time: Int64,
                      event: String = "E1", details: FeedEvent.Details = .none, id: String? = nil) {
        sequence += 1
        let id = id ?? "f-\(sequence)"
        guard engine.admit(id: id, arrivalMilliseconds: 0) else { return }
        engine.apply(FeedEvent(id: id, kind: kind, eventId: event, ticketId: ticket, occurredAt: time, details: details),
                     sequence: sequence)
        engine.publish()
    }

    func testLateDeletionCorrectsLaterAnswers() {
        let engine = Engine()
        feed(engine, .ticketCreated, ticket: "T1", at: 1_000)
        feed(engine, .ticketDownloaded, ticket: "T1", at: 3_000, details: .device("d1"))
        // Arrives last, happened in between: the ticket was deleted before its download.
        feed(engine, .ticketDeleted, ticket: "T1", at: 2_000, details: .deletion(isPending: false))

        let before = engine.statistics(eventId: "E1", at: 1_999)!
        XCTAssertEqual(before[.validTickets], 1)
        XCTAssertEqual(before[.notDownloadedTickets], 1)
        let after = engine.statistics(eventId: "E1", at: 3_000)!
        XCTAssertEqual(after[.validTickets], 0)
        XCTAssertEqual(after[.deletedTickets], 1)
        XCTAssertEqual(after[.downloadedTickets], 0)
        XCTAssertEqual(after.updatedAt, 3_000)
        XCTAssertNil(after.violatedInvariant())
        XCTAssertNil(engine.statistics(eventId: "E2", at: 3_000))
    }

    func testDuplicateIdIsNotAppliedTwice() {
        let engine = Engine()
        feed(engine, .transferAccepted, ticket: "T1", at: 1_000, id: "same")
        feed(engine, .transferAccepted, ticket: "T1", at: 1_000, id: "same")
        let stats = engine.statistics(eventId: "E1", at: 5_000)!
        XCTAssertEqual(stats[.transferredOnce], 1)
        XCTAssertEqual(stats[.totalTransferOperations], 1)
    }

    /// Many chunks, late events everywhere: every answer must equal the answer of an index
    /// built from scratch over the same records.
    func testManyChunksWithLateEventsMatchFreshIndex() throws {
        var configuration = EngineConfiguration()
        configuration.deltasPerSnapshot = 4
        let engine = Engine(configuration: configuration)
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print("testManyChunksWithLateEventsMatchFreshIndex HEADCOUNT_TEST_SEED=\(seed)")
        var random = SplitMix64(seed: seed)
        var events: [(FeedEventKind, String, Int64, FeedEvent.Details)] = []
        for _ in 0..<600 {
            let ticket = "T\(random.next() % 40)"
            let time = Int64(random.next() % 10_000)
            let kinds: [FeedEventKind] = [.ticketCreated, .ticketDeleted, .ticketRestored, .ticketDownloaded,
                                          .ticketLoggedOut, .transferAccepted, .ticketActivated]
            let kind = kinds[Int(random.next() % UInt64(kinds.count))]
            var details = FeedEvent.Details.none
            switch kind {
            case .ticketDeleted: details = .deletion(isPending: false)
            case .ticketDownloaded, .ticketLoggedOut: details = .device("d\(random.next() % 3)")
            case .ticketActivated: details = .activation(.offline)
            default: break
            }
            events.append((kind, ticket, time, details))
            feed(engine, kind, ticket: ticket, at: time, details: details)
        }
        // The same arrival order into an engine whose index is one chunk: no snapshot to correct.
        var oneChunk = EngineConfiguration()
        oneChunk.deltasPerSnapshot = 1_000_000
        let reference = Engine(configuration: oneChunk)
        for (offset, event) in events.enumerated() {
            _ = reference.admit(id: "r\(offset)", arrivalMilliseconds: 0)
            reference.apply(FeedEvent(id: "r\(offset)", kind: event.0, eventId: "E1", ticketId: event.1,
                                      occurredAt: event.2, details: event.3), sequence: UInt64(offset + 1))
        }
        // And the engine's snapshot, loaded back, answers the same.
        let snapshot = engine.encodeSnapshot()
        let restored = try snapshot.withUnsafeBytes { try Engine.decodeSnapshot($0, configuration: configuration) }
        XCTAssertEqual(restored.lastAppliedSequence, engine.lastAppliedSequence)
        let reencoded = restored.encodeSnapshot()
        XCTAssertEqual(reencoded.count, snapshot.count, "a decoded snapshot encodes to the same size (key order may differ)")
        XCTAssertEqual(restored.idempotencyKeyCount, engine.idempotencyKeyCount)
        for instant in stride(from: Int64(-1), through: 10_001, by: 7) {
            let a = engine.statistics(eventId: "E1", at: instant)!
            let b = reference.statistics(eventId: "E1", at: instant)!
            XCTAssertEqual(a, b, "seed \(seed) instant \(instant)")
            XCTAssertEqual(restored.statistics(eventId: "E1", at: instant), b, "restored, seed \(seed) instant \(instant)")
            XCTAssertNil(a.violatedInvariant(), "seed \(seed) instant \(instant)")
        }
        XCTAssertFalse(restored.admit(id: "f-1", arrivalMilliseconds: 0), "idempotency keys survive a snapshot")
    }

    /// Spilling takes the oldest chunks over all events first (each event's chunks are merged
    /// by time, not sorted all together): after every slice, no chunk still resident and
    /// spillable ends before a chunk the slice spilled; so too once late events have brought
    /// old chunks back.
    func testDeltaSpillingTakesTheOldestChunksOfAllEventsFirst() throws {
        var configuration = EngineConfiguration()
        configuration.deltasPerSnapshot = 8
        configuration.deltaMemoryBytesMax = MemoryLayout<DeltaRecord>.stride * 100
        let engine = Engine(configuration: configuration)
        engine.spillStore = InMemorySpillStore()
        // Three events whose times interleave unevenly: E2 is dense early, E3 late.
        for step in 1...900 {
            let event = step % 3 == 0 ? "E1" : (step < 450 ? "E2" : "E3")
            feed(engine, .ticketCreated, ticket: "T\(step)", at: Int64(step * 10), event: event)
        }
        /// The end times of spilled chunks (by event), and the oldest resident spillable chunk's.
        func census() -> (spilled: [String: [Int64: Int]], oldestResident: Int64) {
            var spilled: [String: [Int64: Int]] = [:]
            var oldestResident = Int64.max
            for (eventId, ledger) in engine.ledgers {
                let chunks = ledger.deltas.chunks
                for (index, chunk) in chunks.enumerated() where index < chunks.count - 1 {
                    if chunk.spilled != nil {
                        spilled[eventId, default: [:]][chunk.lastOccurredAt, default: 0] += 1
                    } else {
                        oldestResident = min(oldestResident, chunk.lastOccurredAt)
                    }
                }
            }
            return (spilled, oldestResident)
        }
        // After every slice, each chunk it spilled ends before every chunk still resident.
        func spillInSlices(_ phase: String) -> Int {
            var slices = 0
            var before = census().spilled
            while engine.spillIfOverBudget(maxBytes: MemoryLayout<DeltaRecord>.stride * 20) > 0 {
                slices += 1
                let after = census()
                var newestSpilled = Int64.min
                for (eventId, times) in after.spilled {
                    for (time, count) in times where count > before[eventId]?[time] ?? 0 { newestSpilled = max(newestSpilled, time) }
                }
                XCTAssertLessThan(newestSpilled, after.oldestResident, "\(phase): after slice \(slices)")
                before = after.spilled
            }
            return slices
        }
        XCTAssertGreaterThan(spillInSlices("first"), 3, "the budget must force several slices of spilling")
        XCTAssertLessThanOrEqual(engine.residentDeltaBytes, configuration.deltaMemoryBytesMax)
        // Late events bring old spilled chunks back (and split some); spilling takes those
        // first again, however far before the chunks still resident they lie.
        for step in 1...40 {
            feed(engine, .ticketCreated, ticket: "L\(step)", at: Int64(step * 10 + 5), event: step % 2 == 0 ? "E1" : "E2")
        }
        XCTAssertGreaterThan(spillInSlices("after late events"), 0)
        XCTAssertLessThanOrEqual(engine.residentDeltaBytes, configuration.deltaMemoryBytesMax)
    }

    /// With tiny memory budgets, old chunks' records and old history pages spill to the store,
    /// and every answer — including after late events that land in spilled chunks or touch
    /// spilled history — equals an engine that keeps everything in memory; so does a snapshot
    /// encoded while pages are spilled.
    func testSpilledChunksAnswerExactlyAndComeBackForLateEvents() throws {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print("testSpilledChunksAnswerExactlyAndComeBackForLateEvents HEADCOUNT_TEST_SEED=\(seed)")
        var random = SplitMix64(seed: seed)
        var spilling = EngineConfiguration()
        spilling.deltasPerSnapshot = 8
        spilling.deltaMemoryBytesMax = 24 * 40  // about 40 records resident
        spilling.historyPageShift = 5            // 32 entries a page
        spilling.historyMemoryBytesMax = 32 * 32 * 3  // about three pages resident
        let engine = Engine(configuration: spilling)
        let store = InMemorySpillStore()
        engine.spillStore = store
        var plain = EngineConfiguration()
        plain.deltasPerSnapshot = 8
        let reference = Engine(configuration: plain)
        let kinds: [FeedEventKind] = [.ticketCreated, .ticketDeleted, .ticketRestored, .ticketDownloaded, .transferAccepted, .passAdded]
        var maximumSpilled = 0
        var maximumSpilledPages = 0
        for step in 1...2_000 {
            let kind = kinds[Int(random.next() % UInt64(kinds.count))]
            // Mostly on time, one in ten late by up to the whole history.
            let time = random.next() % 10 == 0 ? Int64(random.next() % UInt64(step * 10)) : Int64(step * 10)
            var details = FeedEvent.Details.none
            switch kind {
            case .ticketDeleted: details = .deletion(isPending: false)
            case .ticketDownloaded: details = .device("d")
            case .passAdded: details = .pass(.ios, .active, nil)
            default: break
            }
            let event = FeedEvent(id: "s\(step)", kind: kind, eventId: "E1", ticketId: "T\(random.next() % 60)",
                                  occurredAt: time, details: details)
            for subject in [engine, reference] {
                XCTAssertTrue(subject.admit(id: event.id, arrivalMilliseconds: 0))
                subject.apply(event, sequence: UInt64(step))
            }
            if step % 50 == 0 {
                engine.spillIfOverBudget()
                maximumSpilled = max(maximumSpilled, engine.spilledChunkCount)
                XCTAssertEqual(engine.spilledChunkCount, engine.spilledChunksCounted, "the kept count of spilled chunks")
                maximumSpilledPages = max(maximumSpilledPages, engine.spilledHistoryPageCount)
                XCTAssertLessThanOrEqual(engine.residentHistoryBytes, spilling.historyMemoryBytesMax + 32 * 32,
                                         "resident history stays within the budget (plus the page that takes appends)")
                XCTAssertLessThanOrEqual(engine.residentDeltaBytes, spilling.deltaMemoryBytesMax + 24 * 16,
                                         "resident records stay within the budget (plus the chunks that cannot spill)")
            }
        }
        XCTAssertGreaterThan(maximumSpilled, 10, "the budget must force spilling for this test to mean anything")
        XCTAssertGreaterThan(maximumSpilledPages, 10, "history pages must spill too")
        // A snapshot encoded while pages are spilled loads back to the same answers.
        engine.spillIfOverBudget()
        let snapshot = engine.snapshotSource().encode()
        let restored = try snapshot.withUnsafeBytes { try Engine.decodeSnapshot($0, configuration: plain) }
        for instant in stride(from: Int64(-1), through: 20_010, by: 3) {
            let expected = reference.statistics(eventId: "E1", at: instant)
            XCTAssertEqual(engine.statistics(eventId: "E1", at: instant), expected, "instant \(instant), HEADCOUNT_TEST_SEED=\(seed)")
            XCTAssertEqual(restored.statistics(eventId: "E1", at: instant), expected, "restored, instant \(instant), HEADCOUNT_TEST_SEED=\(seed)")
        }
        XCTAssertGreaterThan(store.loadCount, 0, "queries and late events read spilled chunks back")
    }

    /// `prefetch` has no effect, and applying a `PreparedEvent` is applying its event: a random
    /// feed applied with prefetch calls (at random distances
    /// ahead, out of order, for events never applied, for eventIds never seen) and without
    /// gives identical statistics at many instants, the same tickets and events, and a
    /// byte-identical snapshot. Random: prints its seed; `HEADCOUNT_TEST_SEED=<n>` replays one.
    func testPrefetchChangesNothing() throws {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print("testPrefetchChangesNothing HEADCOUNT_TEST_SEED=\(seed)")
        let feed = FeedGenerator.generate(seed: seed, scale: 3)
        var random = SplitMix64(seed: seed ^ 0x7072_6566_6574_6368)
        var configuration = EngineConfiguration()
        configuration.deltasPerSnapshot = 8  // many chunks: late events correct snapshots
        let plain = Engine(configuration: configuration)
        let prefetched = Engine(configuration: configuration)
        // Admitted in arrival order, applied in batches from one buffer (as the server does).
        var admitted: [(event: FeedEvent, sequence: UInt64)] = []
        for delivery in feed.deliveries {
            let isNew = plain.admit(id: delivery.event.id, arrivalMilliseconds: delivery.arrivalMilliseconds)
            XCTAssertEqual(prefetched.admit(id: delivery.event.id, arrivalMilliseconds: delivery.arrivalMilliseconds), isNew)
            if isNew { admitted.append((delivery.event, UInt64(admitted.count + 1))) }
        }
        let stranger = FeedEvent(id: "x", kind: .ticketCreated, eventId: "EV-never-applied", ticketId: "T-x",
                                 occurredAt: 0, details: .none)
        var start = 0
        while start < admitted.count {
            let end = min(admitted.count, start + 1 + Int(random.next() % 200))
            let distance = [1, 3, 5, Engine.prefetchDistance, 16][Int(random.next() % 5)]
            // Half the batches go through `PreparedEvent` (as the server applies), half not.
            let viaPrepared = random.next() % 2 == 0
            func hint(_ event: FeedEvent) {
                if viaPrepared { prefetched.prefetch(PreparedEvent(event)) } else { prefetched.prefetch(event) }
            }
            admitted[start..<end].withUnsafeBufferPointer { events in
                for ahead in 0..<min(distance, events.count) { hint(events[ahead].event) }
                for index in 0..<events.count {
                    if index + distance < events.count { hint(events[index + distance].event) }
                    switch random.next() % 16 {
                    case 0: hint(admitted[Int(random.next() % UInt64(admitted.count))].event)  // any event, past or future
                    case 1: hint(stranger)
                    case 2: hint(events[index].event)
                    default: break
                    }
                    plain.apply(events[index].event, sequence: events[index].sequence)
                    if viaPrepared {
                        prefetched.apply(PreparedEvent(events[index].event), sequence: events[index].sequence)
                    } else {
                        prefetched.apply(events[index].event, sequence: events[index].sequence)
                    }
                }
            }
            plain.publish()
            prefetched.publish()
            start = end
        }
        XCTAssertFalse(prefetched.knowsEvent("EV-never-applied"), "prefetching creates no ledger")
        XCTAssertEqual(prefetched.eventCount, plain.eventCount)
        XCTAssertEqual(prefetched.ticketCount, plain.ticketCount, "prefetching inserts no ticket")
        XCTAssertEqual(prefetched.deltaRecordCount, plain.deltaRecordCount)
        XCTAssertEqual(prefetched.lastAppliedSequence, plain.lastAppliedSequence)
        let times = admitted.map(\.event.occurredAt)
        let earliest = times.min()! - 1, latest = times.max()! + 1
        var instants = Set((0...200).map { earliest + (latest - earliest) * Int64($0) / 200 })
        for _ in 0..<200 { instants.insert(times[Int(random.next() % UInt64(times.count))]) }  // exactly at events
        for eventId in feed.eventIds {
            for instant in instants.sorted() {
                XCTAssertEqual(prefetched.statistics(eventId: eventId, at: instant), plain.statistics(eventId: eventId, at: instant),
                               "\(eventId) at \(instant), HEADCOUNT_TEST_SEED=\(seed)")
            }
            let live = [prefetched, plain].map { engine in
                engine.publishedCounters(eventId: eventId).map { published in
                    let (counters, updatedAt) = published.read()
                    return EventStatistics(eventId: eventId, counters: counters, updatedAt: updatedAt)
                }
            }
            XCTAssertEqual(live[0], live[1], "\(eventId) live, HEADCOUNT_TEST_SEED=\(seed)")
        }
        XCTAssertEqual(prefetched.encodeSnapshot(), plain.encodeSnapshot(), "same state, byte for byte, HEADCOUNT_TEST_SEED=\(seed)")
    }

    /// More events interleaved than the engine keeps recent ledgers for (8): each event's
    /// tickets land in its own ledger, through `apply` and through prefetch + `PreparedEvent`,
    /// with ids short (small strings) and long (heap strings sharing a long prefix).
    /// A snapshot encoded in pieces (straight into the file, `SnapshotStore.write(sequence:
    /// producing:)`) is the whole encoding cut up: concatenated, byte for byte the same, at
    /// every piece size, with tickets, idempotency keys and status changes in it; no piece is
    /// empty, and below the size of the payload there are several. Encoded letting go of the
    /// source as it goes, with the engine changing between pieces: the same bytes again.
    /// Random: prints its seed.
    func testSnapshotEncodedInPiecesIsTheWholeEncoding() throws {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print("testSnapshotEncodedInPiecesIsTheWholeEncoding HEADCOUNT_TEST_SEED=\(seed)")
        let engine = Engine()
        var sequence: UInt64 = 0
        for event in TestFeeds.uniqueTimeFeed(seed: seed, count: 3_000, eventIds: ["E1", "E2", "E3"], tickets: 400, base: 1_000) {
            sequence += 1
            _ = engine.admit(id: event.id, arrivalMilliseconds: 0)
            engine.apply(event, sequence: sequence)
        }
        /// Seat status changes `name0`, `name1`, … over `events` events and `labels` labels.
        func applySeatChanges(_ count: Int, name: String, events: Int, labels: String, labelCount: Int, status: String, at: Int64) {
            for index in 0..<count {
                sequence += 1
                engine.apply(FeedEvent(id: "\(name)\(index)", kind: .seatStatusChanged, eventId: "E\(index % events + 1)", ticketId: "",
                                       occurredAt: at + Int64(index),
                                       details: .seatStatus(SeatStatusChange(objectLabel: "\(labels)-\(index % labelCount)", status: status,
                                                                             originType: .apiCall, originIP: "10.0.0.1"))),
                             sequence: sequence)
            }
        }
        applySeatChanges(200, name: "s", events: 3, labels: "A", labelCount: 17, status: "booked", at: 2_000)
        let source = engine.snapshotSource()
        let whole = source.encode()
        XCTAssertGreaterThan(whole.count, 100_000, "seed \(seed)")
        for pieceBytes in [1, 7, 1_000, 65_536, 1 << 30] {
            var pieces: [[UInt8]] = []
            source.encode(pieceBytes: pieceBytes) { pieces.append(Array($0)) }
            let joined = pieces.flatMap { $0 }
            XCTAssertTrue(joined == whole, "piece size \(pieceBytes): \(joined.count) bytes joined, \(whole.count) whole, seed \(seed)")
            XCTAssertFalse(pieces.contains { $0.isEmpty }, "piece size \(pieceBytes), seed \(seed)")
            // A piece ends after an idempotency key or a ticket: past the size, by one item at most.
            if pieceBytes < 100 {
                XCTAssertGreaterThan(pieces.count, 3_000, "one piece per key and ticket, seed \(seed)")
            } else if pieceBytes < whole.count {
                XCTAssertGreaterThanOrEqual(pieces.count, whole.count / (pieceBytes + 4_096), "piece size \(pieceBytes), seed \(seed)")
                XCTAssertLessThanOrEqual(pieces.dropLast(2).map(\.count).max() ?? 0, pieceBytes + 4_096, "piece size \(pieceBytes), seed \(seed)")
            } else {
                XCTAssertEqual(pieces.count, 2, "the state, then the status-change log as it is, seed \(seed)")
            }
        }
        XCTAssertTrue(engine.encodeSnapshot() == whole, "seed \(seed)")

        // Encoding while letting go of the source (the snapshot thread's way), with the engine
        // changing between pieces as the loop changes it meanwhile: the same bytes, an empty
        // source afterwards, and the engine's changes all kept.
        var releasing = engine.snapshotSource()
        // Status changes after the source was taken, before it is encoded (the snapshot job
        // waits for its thread): the source's copy of the log does not see them.
        applySeatChanges(50, name: "s-after", events: 4, labels: "B", labelCount: 7, status: "free", at: 3_000)
        var joined: [UInt8] = []
        var extra = 0
        releasing.encodeReleasing(pieceBytes: 4_096) { piece in
            joined.append(contentsOf: piece)
            sequence += 1
            extra += 1
            let event = FeedEvent(id: "late\(extra)", kind: .ticketDownloaded, eventId: "E\(extra % 3 + 1)",
                                  ticketId: "T\(extra % 500)", occurredAt: Int64(extra % 1_000), details: .device("d\(extra)"))
            XCTAssertTrue(engine.admit(id: event.id, arrivalMilliseconds: 0))
            engine.apply(event, sequence: sequence)
        }
        XCTAssertTrue(joined == whole, "releasing encode: \(joined.count) bytes, \(whole.count) expected, seed \(seed)")
        XCTAssertGreaterThan(extra, 20)
        XCTAssertTrue(releasing.idempotencyKeys.count == 0 && releasing.ledgers.isEmpty && releasing.statusChanges == nil,
                      "the source is empty afterwards")
        let after = engine.encodeSnapshot()
        XCTAssertGreaterThan(after.count, whole.count)
        let restored = try after.withUnsafeBytes { try Engine.decodeSnapshot($0) }
        XCTAssertTrue(canonicalSnapshot(restored) == canonicalSnapshot(bytes: after), "seed \(seed)")
        XCTAssertFalse(engine.admit(id: "late1", arrivalMilliseconds: 0), "a key admitted during the encode is kept")
    }

    func testManyInterleavedEventsEachGetTheirOwnTickets() {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print("testManyInterleavedEventsEachGetTheirOwnTickets HEADCOUNT_TEST_SEED=\(seed)")
        var random = SplitMix64(seed: seed)
        // The last two share their tag (`EventIdTag`: length, first and last 8 bytes): the
        // lookups must still tell them apart.
        let eventIds = (0..<20).map { $0 % 2 == 0 ? "E\($0)" : "organizer-42-season-2026-show-\($0)" }
            + ["abcdefgh-ONE-stuvwxyz", "abcdefgh-TWO-stuvwxyz"]
        XCTAssertEqual(EventIdTag.of(eventIds[20]), EventIdTag.of(eventIds[21]))
        let engine = Engine()
        var expected = [String: Int64]()
        var order: [Int] = []
        for (index, _) in eventIds.enumerated() { order += Array(repeating: index, count: index + 1) }
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        for (n, index) in order.enumerated() {
            let event = FeedEvent(id: "f-\(n)", kind: .ticketCreated, eventId: eventIds[index], ticketId: "T-\(n)",
                                  occurredAt: Int64(n), details: .none)
            XCTAssertTrue(engine.admit(id: event.id, arrivalMilliseconds: 0))
            if n % 2 == 0 {
                engine.apply(event, sequence: UInt64(n + 1))
            } else {
                let prepared = PreparedEvent(event)
                engine.prefetch(prepared)
                engine.apply(prepared, sequence: UInt64(n + 1))
            }
            expected[eventIds[index], default: 0] += 1
        }
        engine.publish()
        XCTAssertEqual(engine.eventCount, eventIds.count)
        for eventId in eventIds {
            XCTAssertEqual(engine.statistics(eventId: eventId, at: Int64.max)?[.totalTickets], expected[eventId],
                           "\(eventId), HEADCOUNT_TEST_SEED=\(seed)")
            XCTAssertEqual(engine.publishedCounters(eventId: eventId)?.read().counters[.totalTickets], expected[eventId],
                           "\(eventId) live, HEADCOUNT_TEST_SEED=\(seed)")
        }
    }

    /// Readers on another thread never see a half-applied event: every read satisfies the
    /// invariants while the owner thread applies events as fast as it can.
    func testPublishedCountersAreConsistentAcrossThreads() {
        let engine = Engine()
        feed(engine, .ticketCreated, ticket: "T0", at: 0)
        let published = engine.publishedCounters(eventId: "E1")!
        let done = ManagedFlag()
        let reader = Thread {
            var reads = 0
            while !done.isSet {
                let (counters, _) = published.read()
                let stats = EventStatistics(eventId: "E1", counters: counters, updatedAt: nil)
                if let violated = stats.violatedInvariant() { done.fail("read \(reads): \(violated)") }
                reads += 1
            }
        }
        reader.start()
        for i in 1...20_000 {
            let ticket = "T\(i % 500)"
            feed(engine, i % 3 == 0 ? .ticketDeleted : .ticketDownloaded, ticket: ticket, at: Int64(i),
                 details: i % 3 == 0 ? .deletion(isPending: false) : .device("d\(i % 7)"))
            if i % 5 == 0 { feed(engine, .ticketRestored, ticket: ticket, at: Int64(i)) }
        }
        done.set()
        while !reader.isFinished { usleep(1_000) }
        XCTAssertNil(done.failure)
    }
}

/// A tiny flag shared with a reader thread in tests.
final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    private(set) var failure: String?
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
    func fail(_ message: String) { lock.lock(); if failure == nil { failure = message }; value = true; lock.unlock() }
}

