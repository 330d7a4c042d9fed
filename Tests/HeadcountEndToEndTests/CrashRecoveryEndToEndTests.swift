import Foundation
import HeadcountCore
import HeadcountTestSupport
import XCTest

/// SIGKILL the real server while feed batches are in flight, restart it on the same data
/// directory, and check SPEC §2's promise: every acknowledged event is there, nothing is
/// counted twice, and once the producer retries what was not acknowledged the answers equal
/// the reference model's.
final class CrashRecoveryEndToEndTests: XCTestCase {
    /// Thread-safe record of which batches were acknowledged.
    final class Outcomes: @unchecked Sendable {
        private let lock = NSLock()
        private var acknowledged = Set<Int>()
        func acknowledge(_ batch: Int) { lock.lock(); acknowledged.insert(batch); lock.unlock() }
        var all: Set<Int> { lock.lock(); defer { lock.unlock() }; return acknowledged }
    }

    /// Four producers send `batches` concurrently; the server is SIGKILLed once a third of
    /// them are acknowledged. Returns the indices of the acknowledged batches.
    static func killMidStream(_ server: ServerProcess, feeding batches: [[FeedEvent]]) -> Set<Int> {
        let outcomes = Outcomes()
        let producers = E2E.startProducers(batches, port: server.port, timeoutSeconds: 10) { batch, response in
            guard response?.status == 200 else { return false }
            outcomes.acknowledge(batch)
            return true
        }
        while outcomes.all.count < batches.count / 3 { usleep(1_000) }
        server.kill()
        while producers.contains(where: { !$0.isFinished }) { usleep(1_000) }
        let acknowledged = outcomes.all
        XCTAssertLessThan(acknowledged.count, batches.count, "the kill must interrupt the feed for this test to mean anything")
        return acknowledged
    }

    /// A gauge or counter from the server's /metrics (nil if absent).
    static func metric(_ name: String, of server: ServerProcess) throws -> Double? {
        let text = try server.client().request("GET", "/metrics", key: ServerProcess.adminKey).text
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
    }

    /// The same promise with the WAL written through to the disk (`O_DIRECT | O_DSYNC`, no
    /// fdatasync: an acknowledgement waits for one write): once /metrics says the current
    /// segment is written through, four producers send one event per request and the server
    /// is SIGKILLed mid-stream. Every acknowledged event is there after the restart, whose
    /// recovered segment is written through again.
    func testKillWhileWritingThroughLosesNothingAcknowledged() throws {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        print("CrashRecoveryEndToEndTests HEADCOUNT_TEST_SEED=\(seed)")
        let events = TestFeeds.uniqueTimeFeed(seed: seed, count: 1_500, eventIds: ["E1", "E2"], tickets: 200, base: E2E.base)
        // Small segments: the first preallocated one is ready within moments.
        let server = try ServerProcess(extraArguments: ["--fsync", "on", "--wal-segment-bytes", "1048576"])
        defer { server.terminate(); server.removeData() }
        try server.start()
        guard isDirectIOFileSystem(server.dataDirectory) else {
            throw XCTSkip("\(server.dataDirectory) is not on a file system known to take O_DIRECT")
        }
        let client = try server.client()
        func post(_ event: FeedEvent) throws -> Int? {
            let response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                               body: TestFeeds.ndjsonLine(event))
            return try response.jsonObject()["accepted"] as? Int
        }
        // The first segment may be a plain one (made before the first preallocated one was
        // ready): feed until a preallocated one is current.
        var sent = 0
        while sent < 300, try Self.metric("headcount_wal_write_through", of: server) != 1 {
            XCTAssertEqual(try post(events[sent]), 1)
            sent += 1
            usleep(10_000)
        }
        XCTAssertEqual(try Self.metric("headcount_wal_write_through", of: server), 1, "the WAL writes through on this file system")

        let batches = events[sent...].map { [$0] }
        let acknowledged = Self.killMidStream(server, feeding: batches)

        try server.start()
        let restarted = try server.client()
        for batch in acknowledged.sorted() {
            let result = try restarted.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                               body: TestFeeds.ndjsonLine(batches[batch][0])).jsonObject()
            XCTAssertEqual(result["accepted"] as? Int, 0, "acknowledged event \(batch) was lost (seed \(seed))")
        }
        for batch in 0..<batches.count where !acknowledged.contains(batch) {
            let response = try restarted.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                                 body: TestFeeds.ndjsonLine(batches[batch][0]))
            XCTAssertEqual(response.status, 200, response.text)
        }
        XCTAssertEqual(try Self.metric("headcount_wal_write_through", of: server), 1, "the recovered segment writes through")
        try E2E.assertAnswersEqualModel(server: server, events: events, seed: seed)
    }

    func testKillDuringInFlightBatchesLosesNothingAcknowledged() throws {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        print("CrashRecoveryEndToEndTests HEADCOUNT_TEST_SEED=\(seed)")
        // Every event at its own millisecond, so the answer cannot depend on arrival order.
        let allEvents = TestFeeds.uniqueTimeFeed(seed: seed, count: 4_500, eventIds: ["E1", "E2"], tickets: 300,
                                                     base: E2E.base)
        let events = Array(allEvents[..<4_000])
        let laterEvents = Array(allEvents[4_000...])
        // Batches of mixed sizes: with a 4 KiB threshold the large ones are decoded and
        // admitted on the intake thread, the small ones on the loop, in one interleaved stream.
        let sizes = [3, 60, 8, 120, 25, 40]
        var built: [[FeedEvent]] = []
        var start = 0
        while start < events.count {
            let size = sizes[built.count % sizes.count]
            built.append(Array(events[start..<min(start + size, events.count)]))
            start += size
        }

        let batches = built
        let server = try ServerProcess(extraArguments: ["--fsync", "on", "--snapshot-every-events", "1500",
                                                        "--intake-thread-body-bytes", "4096"])
        defer { server.terminate(); server.removeData() }
        try server.start()

        let acknowledged = Self.killMidStream(server, feeding: batches)

        try server.start()
        let client = try server.client()
        // Every acknowledged batch is already there: re-sending it adds nothing.
        for batch in acknowledged.sorted() {
            let body = batches[batch].map(TestFeeds.ndjsonLine).joined(separator: "\n")
            let result = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson", body: body).jsonObject()
            XCTAssertEqual(result["accepted"] as? Int, 0, "acknowledged batch \(batch) was lost (seed \(seed))")
            XCTAssertEqual(result["duplicates"] as? Int, batches[batch].count)
        }
        // The producer retries everything that was not acknowledged.
        for batch in 0..<batches.count where !acknowledged.contains(batch) {
            let body = batches[batch].map(TestFeeds.ndjsonLine).joined(separator: "\n")
            let response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson", body: body)
            XCTAssertEqual(response.status, 200, response.text)
        }
        try E2E.assertAnswersEqualModel(server: server, events: events, seed: seed)

        // Let the housekeeping timer take a background snapshot (more than 1,500 events were
        // applied since start), then crash again: recovery = that snapshot + the WAL after it.
        let snapshotsDirectory = server.dataDirectory + "/snapshots"
        for _ in 0..<100 where ((try? FileManager.default.contentsOfDirectory(atPath: snapshotsDirectory)) ?? []).filter({ $0.hasSuffix(".snap") }).isEmpty {
            usleep(50_000)
        }
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: snapshotsDirectory).filter { $0.hasSuffix(".snap") }.isEmpty,
                       "a snapshot was written while serving")
        // /metrics reports it: how many, how long the last took, and its file's exact size.
        func metric(_ name: String) throws -> Double? { try Self.metric(name, of: server) }
        // (A snapshot's file is renamed into place just before the loop hears it is done: the
        // two agree within moments.)
        func newestSnapshotSize() throws -> Int {
            let newest = try FileManager.default.contentsOfDirectory(atPath: snapshotsDirectory).filter { $0.hasSuffix(".snap") }.sorted().last!
            return try FileManager.default.attributesOfItem(atPath: snapshotsDirectory + "/" + newest)[.size] as! Int
        }
        for _ in 0..<100 where try metric("headcount_snapshot_last_bytes") != Double(try newestSnapshotSize()) { usleep(50_000) }
        XCTAssertGreaterThanOrEqual(try metric("headcount_snapshots_written") ?? 0, 1)
        XCTAssertEqual(try metric("headcount_snapshot_last_bytes"), Double(try newestSnapshotSize()), "the last snapshot's size")
        XCTAssertGreaterThan(try metric("headcount_snapshot_last_seconds") ?? 0, 0)
        // More events after the snapshot, then the crash: they come back from the WAL's tail.
        let tail = try server.client().request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                               body: laterEvents.map(TestFeeds.ndjsonLine).joined(separator: "\n"))
        XCTAssertEqual(try tail.jsonObject()["accepted"] as? Int, laterEvents.count)
        server.kill()
        try server.start()
        try E2E.assertAnswersEqualModel(server: server, events: allEvents, seed: seed)

        // And once more through a clean restart (final snapshot + WAL).
        XCTAssertEqual(server.terminate(), 0)
        try server.start()
        try E2E.assertAnswersEqualModel(server: server, events: allEvents, seed: seed)
    }
}
