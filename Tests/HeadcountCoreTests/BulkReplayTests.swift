import Foundation
@testable import HeadcountCore
import HeadcountTestSupport
import XCTest

// Seeded differential test: a restart's bulk replay (`BulkReplay`) against online apply
// (`admit` + `apply` of each delivery), on the oracle's feeds (late, out of order, exact
// duplicates, re-sent ids, seat and chart events).
//
//   swift test --filter BulkReplayTests                            5 fixed seeds, 1 random, 1 bigger feed
//   HEADCOUNT_ORACLE_SEED=1234 swift test --filter BulkReplayTests  replay one seed (or 1,2,0x3f)
//   HEADCOUNT_ORACLE_ITERATIONS=50 / HEADCOUNT_ORACLE_SCALE=4       as for OracleTests
//
// Each feed is replayed in bulk six ways: from nothing (a WAL-only restart), built on one
// thread and on every core; on top of a snapshot taken after 10% of it (ledgers rebuilt from
// old + new entries) and after 90% (big ledgers take the new entries one by one); in two
// bulk runs one after the other; and on top of a snapshot whose state is partly spilled.
// Every answer must equal online apply's: statistics of every eventId at every event time
// and 1 ms either side, which eventIds exist, the published counters, the status-change
// listings, the idempotency keys (with their arrivals), the ticket histories and the last
// sequence (the last three through the snapshot bytes, keys in a canonical order).

/// One admitted delivery, as the WAL holds it.
struct LoggedEvent {
    var sequence: UInt64
    var arrivalMilliseconds: Int64
    var event: FeedEvent
}

/// Online apply of a feed: admit each delivery, apply the admitted ones. Returns the engine
/// and the WAL it would have written.
func applyOnline(_ deliveries: [(event: FeedEvent, arrival: Int64)], configuration: EngineConfiguration) -> (Engine, [LoggedEvent]) {
    let engine = Engine(configuration: configuration)
    var log: [LoggedEvent] = []
    for (event, arrival) in deliveries where engine.admit(id: event.id, arrivalMilliseconds: arrival) {
        let sequence = UInt64(log.count + 1)
        engine.apply(event, sequence: sequence)
        log.append(LoggedEvent(sequence: sequence, arrivalMilliseconds: arrival, event: event))
    }
    engine.publish()
    return (engine, log)
}


/// The first difference between two engines, or nil.
func engineDifference(_ expected: Engine, _ actual: Engine, log: [LoggedEvent], eventIds: [String]) -> String? {
    if expected.lastAppliedSequence != actual.lastAppliedSequence {
        return "lastAppliedSequence \(expected.lastAppliedSequence) vs \(actual.lastAppliedSequence)"
    }
    for eventId in eventIds where expected.knowsEvent(eventId) != actual.knowsEvent(eventId) {
        return "knowsEvent(\(eventId)) \(expected.knowsEvent(eventId)) vs \(actual.knowsEvent(eventId))"
    }
    let instants = instantsByEvent(log.map(\.event), eventIds: eventIds)
    if let mismatch = firstMismatch(expected, "online", actual, "bulk", instants: instants) { return mismatch.description }
    for eventId in eventIds {
        if expected.publishedCounters(eventId: eventId)?.read().counters != actual.publishedCounters(eventId: eventId)?.read().counters {
            return "published counters of \(eventId)"
        }
    }
    let now = (log.map(\.event.occurredAt).max() ?? 0) + 1
    for eventId in eventIds {
        for ascending in [false, true] {
            let query = StatusChangeQuery(ascending: ascending, limit: 1_000)
            let left = try? expected.statusChanges.list(eventKey: eventId, objectLabel: nil, query: query, now: now)
            let right = try? actual.statusChanges.list(eventKey: eventId, objectLabel: nil, query: query, now: now)
            if left != right { return "status changes of \(eventId) (ascending: \(ascending))" }
        }
    }
    if canonicalSnapshot(expected) != canonicalSnapshot(actual) {
        return "snapshots differ (idempotency keys, ticket histories or status changes)"
    }
    return nil
}

final class BulkReplayTests: XCTestCase {
    private func replay(_ log: ArraySlice<LoggedEvent>, into engine: Engine, concurrently: Bool = false) {
        let bulk = BulkReplay(engine: engine, expectedRecords: log.count)
        for entry in log { bulk.add(entry.event, sequence: entry.sequence, arrivalMilliseconds: entry.arrivalMilliseconds) }
        bulk.finish(concurrently: concurrently ? { DispatchQueue.concurrentPerform(iterations: $0, execute: $1) } : nil)
        engine.publish()
    }

    private func restored(_ online: [LoggedEvent], through count: Int, configuration: EngineConfiguration,
                          spillStore: SpillStore? = nil) throws -> Engine {
        let prefix = Engine(configuration: configuration)
        for entry in online.prefix(count) {
            _ = prefix.admit(id: entry.event.id, arrivalMilliseconds: entry.arrivalMilliseconds)
            prefix.apply(entry.event, sequence: entry.sequence)
        }
        let bytes = prefix.encodeSnapshot()
        let engine = try bytes.withUnsafeBytes { try Engine.decodeSnapshot($0, configuration: configuration) }
        if let spillStore {
            engine.spillStore = spillStore
            engine.spillIfOverBudget()
        }
        return engine
    }

    func testBulkReplayMatchesOnlineApply() throws {
        let configuration = OracleConfiguration.fromEnvironment()
        var failures = 0
        for (index, (seed, scale)) in configuration.runs.enumerated() {
            let feed = FeedGenerator.generate(seed: seed, scale: scale)
            let engineConfiguration = OracleConfiguration.engineConfiguration(seed: seed)
            let deliveries = feed.deliveries.map { ($0.event, $0.arrivalMilliseconds) }
            let (online, log) = applyOnline(deliveries, configuration: engineConfiguration)
            let eventIds = feed.eventIds + ["EV-never-seen"]
            let started = Date()

            var cases: [(String, () throws -> Engine)] = []
            for concurrently in [false, true] {
                cases.append(("WAL only\(concurrently ? ", built on every core" : "")", {
                    let engine = Engine(configuration: engineConfiguration)
                    self.replay(log[...], into: engine, concurrently: concurrently)
                    return engine
                }))
            }
            for fraction in [10, 90] {
                let split = log.count * fraction / 100
                cases.append(("snapshot after \(split) of \(log.count), then bulk", {
                    let engine = try self.restored(log, through: split, configuration: engineConfiguration)
                    self.replay(log[split...], into: engine)
                    return engine
                }))
            }
            cases.append(("two bulk runs", {
                let engine = Engine(configuration: engineConfiguration)
                let split = log.count / 3
                self.replay(log[..<split], into: engine)
                self.replay(log[split...], into: engine)
                return engine
            }))
            cases.append(("spilled snapshot, then bulk", {
                var spilling = engineConfiguration
                spilling.deltaMemoryBytesMax = 0
                spilling.historyMemoryBytesMax = 0
                spilling.historyPageShift = 2
                let split = log.count / 2
                let engine = try self.restored(log, through: split, configuration: spilling, spillStore: InMemorySpillStore())
                self.replay(log[split...], into: engine)
                return engine
            }))

            var failure: String?
            for (name, make) in cases {
                let engine = try make()
                if let difference = engineDifference(online, engine, log: log, eventIds: eventIds) {
                    failure = "bulk replay (\(name)) differs from online apply — replay with "
                        + "\(OracleConfiguration.replayLine(seed, scale: scale)) swift test --filter BulkReplayTests\n  \(difference)"
                    break
                }
            }
            print("bulk replay \(OracleConfiguration.replayLine(seed, scale: scale)) (\(index + 1)/\(configuration.runs.count)): "
                  + "\(log.count) events, \(cases.count) ways: \(failure == nil ? "ok" : "MISMATCH") in "
                  + "\(String(format: "%.2f", Date().timeIntervalSince(started))) s")
            if let failure {
                XCTFail(failure)
                failures += 1
                if failures >= 3 { break }
            }
        }
    }

    /// An id accepted again after its key expired is in the WAL twice; online, the table
    /// then holds its second arrival (it had forgotten the first), and so must a replay.
    func testIdAcceptedAgainAfterExpiryKeepsItsLatestArrival() throws {
        var configuration = EngineConfiguration()
        configuration.idempotencyWindowMilliseconds = 1_000
        let online = Engine(configuration: configuration)
        let created = FeedEvent(id: "f-1", kind: .ticketCreated, eventId: "E", ticketId: "T", occurredAt: 10)
        let again = FeedEvent(id: "f-1", kind: .ticketControlled, eventId: "E", ticketId: "T", occurredAt: 20)
        XCTAssertTrue(online.admit(id: "f-1", arrivalMilliseconds: 100))
        online.apply(created, sequence: 1)
        online.expireIdempotencyKeys(now: 5_000)
        XCTAssertTrue(online.admit(id: "f-1", arrivalMilliseconds: 5_000))
        online.apply(again, sequence: 2)
        online.publish()
        let log = [LoggedEvent(sequence: 1, arrivalMilliseconds: 100, event: created),
                   LoggedEvent(sequence: 2, arrivalMilliseconds: 5_000, event: again)]

        let replayed = Engine(configuration: configuration)
        replay(log[...], into: replayed)
        XCTAssertNil(engineDifference(online, replayed, log: log, eventIds: ["E"]))
        // At a restart at 5,500 the key is still within its window: a duplicate.
        replayed.expireIdempotencyKeys(now: 5_500)
        XCTAssertFalse(replayed.admit(id: "f-1", arrivalMilliseconds: 5_500))
    }

    /// eventIds are `String`s: two spellings of "é" (precomposed, decomposed) are one event
    /// online, and one ledger after a bulk replay too.
    func testCanonicallyEquivalentEventIdsShareALedger() {
        let events = [
            FeedEvent(id: "a", kind: .ticketCreated, eventId: "caf\u{E9}", ticketId: "T1", occurredAt: 10),
            FeedEvent(id: "b", kind: .ticketCreated, eventId: "cafe\u{301}", ticketId: "T2", occurredAt: 5),
            FeedEvent(id: "c", kind: .ticketDeleted, eventId: "cafe\u{301}", ticketId: "T1", occurredAt: 20,
                      details: .deletion(isPending: false)),
        ]
        let (online, log) = applyOnline(events.map { ($0, 1) }, configuration: EngineConfiguration())
        let replayed = Engine()
        replay(log[...], into: replayed)
        XCTAssertNil(engineDifference(online, replayed, log: log, eventIds: ["caf\u{E9}", "cafe\u{301}"]))
        XCTAssertEqual(replayed.eventCount, 1)

        // The ledger keeps the spelling of its first event even when another spelling got
        // its handle first (the WAL decoder numbers eventIds ahead of the records of a batch).
        let early = Engine()
        let bulk = BulkReplay(engine: early)
        _ = bulk.ledgerHandle(eventId: "cafe\u{301}")
        for entry in log { bulk.add(entry.event, sequence: entry.sequence, arrivalMilliseconds: entry.arrivalMilliseconds) }
        bulk.finish()
        early.publish()
        XCTAssertNil(engineDifference(online, early, log: log, eventIds: ["caf\u{E9}", "cafe\u{301}"]))
    }

    func testSortNearlySortedSortsAnyInput() {
        var random = SplitMix64(seed: 99)
        for trial in 0..<300 {
            let count = random.below(400)
            var records = (0..<count).map { index -> DeltaRecord in
                let time: Int64
                switch trial % 3 {
                case 0: time = Int64(index) * 10 - (random.below(10) == 0 ? Int64(random.below(500)) : 0)  // mostly in order
                case 1: time = Int64(random.below(50))  // shuffled, many ties
                default: time = Int64(count - index)  // reversed
                }
                return DeltaRecord(occurredAt: time, sequence: UInt64(index + 1), minus: 0, plus: 0, action: DeltaRecord.noAction)
            }
            let expected = records.sorted { $0.precedes(occurredAt: $1.occurredAt, sequence: $1.sequence) }
            LedgerBuilder.sortNearlySorted(&records)
            XCTAssertEqual(records.map(\.sequence), expected.map(\.sequence), "trial \(trial)")
        }
    }
}
