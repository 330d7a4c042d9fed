import Foundation
import HeadcountCore
import HeadcountTestSupport
import XCTest

/// Large feed bodies are decoded, checked for duplicates and WAL-encoded on the intake thread
/// (`hc-intake`), small ones on the loop. Several connections send batches of random sizes
/// across the threshold, with duplicates inside a batch and across batches: every id is
/// accepted exactly once, the answers count duplicates and failures exactly as on the loop,
/// and the statistics equal the reference model's.
final class IntakeThreadEndToEndTests: XCTestCase {
    final class Totals: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var accepted = 0
        private(set) var duplicates = 0
        private(set) var failures: [String] = []
        func add(accepted: Int, duplicates: Int) { lock.lock(); self.accepted += accepted; self.duplicates += duplicates; lock.unlock() }
        func fail(_ message: String) { lock.lock(); failures.append(message); lock.unlock() }
    }

    func testBatchesAcrossTheThresholdFromManyConnectionsAreAdmittedExactlyOnce() throws {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        print("IntakeThreadEndToEndTests HEADCOUNT_TEST_SEED=\(seed)")
        var random = SplitMix64(seed: seed)
        let events = TestFeeds.uniqueTimeFeed(seed: seed, count: 3_000, eventIds: ["E1", "E2"], tickets: 200, base: E2E.base)

        // Batches of 1–150 events (a line is ~150 bytes, so the 1 KiB threshold splits them),
        // each with a copy of an event of the previous batch and sometimes one of its own.
        var built: [[FeedEvent]] = []
        var start = 0
        while start < events.count {
            let size = 1 + Int(random.next() % 150)
            var batch = Array(events[start..<min(start + size, events.count)])
            if let previous = built.last { batch.append(previous[Int(random.next() % UInt64(previous.count))]) }
            if random.next() % 2 == 0 { batch.append(batch[Int(random.next() % UInt64(batch.count))]) }
            built.append(batch)
            start += size
        }
        let batches = built
        let sent = batches.reduce(0) { $0 + $1.count }

        let server = try ServerProcess(extraArguments: ["--fsync", "on", "--intake-thread-body-bytes", "1024",
                                                        "--max-body-bytes", "1048576", "--max-batch-events", "300"])
        defer { server.terminate(); server.removeData() }
        try server.start()

        let totals = Totals()
        let port = server.port
        let producers = E2E.startProducers(batches, port: port, timeoutSeconds: 30) { batch, response in
            guard let response, response.status == 200, let result = try? response.jsonObject(),
                  let accepted = result["accepted"] as? Int, let duplicates = result["duplicates"] as? Int,
                  (result["rejected"] as? [Any])?.isEmpty == true
            else {
                totals.fail("batch \(batch) was not answered 200 with no rejections")
                return false
            }
            totals.add(accepted: accepted, duplicates: duplicates)
            return true
        }
        while producers.contains(where: { !$0.isFinished }) { usleep(1_000) }
        XCTAssertEqual(totals.failures, [], "seed \(seed)")
        XCTAssertEqual(totals.accepted, events.count, "every id accepted exactly once (seed \(seed))")
        XCTAssertEqual(totals.duplicates, sent - events.count, "every other copy counted a duplicate (seed \(seed))")

        // The large batches really went to the intake thread.
        let pid = server.processIdentifier
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).map {
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        XCTAssertTrue(names.contains("hc-intake"), "threads: \(names)")
        let metrics = try server.client().request("GET", "/metrics", key: ServerProcess.adminKey).text
        let onThread = metrics.split(separator: "\n").first { $0.hasPrefix(#"headcount_feed_requests_total{thread="intake"}"#) }
        XCTAssertGreaterThan(onThread.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0, 0,
                             "/metrics counts the requests admitted on the intake thread")

        let client = try server.client()
        // A large body that is not JSON fails whole, from the thread, with the JSON error body.
        let broken = "[" + String(repeating: #"{"id":"x","type":"ticket.created"},"#, count: 100)
        E2E.assertError(try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/json", body: broken),
                        status: 400, code: "INVALID_JSON")
        // More events than a request may carry: 413, from the thread, and nothing admitted.
        let tooMany = Array(repeating: events[0], count: 301).map(TestFeeds.ndjsonLine).joined(separator: "\n")
        E2E.assertError(try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson", body: tooMany),
                        status: 413, code: "TOO_MANY_EVENTS")
        // A large batch of nothing but copies adds nothing.
        let copies = Array(events[..<200])
        let again = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                       body: copies.map(TestFeeds.ndjsonLine).joined(separator: "\n")).jsonObject()
        XCTAssertEqual(again["accepted"] as? Int, 0)
        XCTAssertEqual(again["duplicates"] as? Int, copies.count)

        // The statistics are the model's, now and after a restart (snapshot + WAL).
        try E2E.assertAnswersEqualModel(server: server, events: events, seed: seed)
        XCTAssertEqual(server.terminate(), 0)
        try server.start()
        try E2E.assertAnswersEqualModel(server: server, events: events, seed: seed)
    }

    /// A batch larger than the drafts a thread keeps between bodies (`FeedDrafts.keptEvents`),
    /// with a rejected event at its end, then the next batches: every event is admitted once,
    /// the rejection is reported at its index, and the statistics are the model's.
    func testABatchLargerThanTheKeptDraftsAndTheBatchesAfterIt() throws {
        let events = TestFeeds.uniqueTimeFeed(seed: 11, count: 9_500, eventIds: ["E1", "E2", "E3"], tickets: 2_000, base: E2E.base)
        let server = try ServerProcess(extraArguments: ["--fsync", "on"])
        defer { server.terminate(); server.removeData() }
        try server.start()
        let client = try server.client()
        let big = events[..<9_000].map(TestFeeds.ndjsonLine).joined(separator: "\n") + "\n" + #"{"id":"bad","type":"ticket.created"}"#
        let answer = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson", body: big).jsonObject()
        XCTAssertEqual(answer["accepted"] as? Int, 9_000)
        XCTAssertEqual(answer["duplicates"] as? Int, 0)
        let rejected = answer["rejected"] as? [[String: Any]]
        XCTAssertEqual(rejected?.count, 1)
        XCTAssertEqual(rejected?.first?["index"] as? Int, 9_000)
        XCTAssertEqual(rejected?.first?["id"] as? String, "bad")
        for start in stride(from: 9_000, to: events.count, by: 100) {
            let batch = events[start..<min(start + 100, events.count)] + events[(start - 50)..<start]  // 50 copies each
            let next = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                          body: batch.map(TestFeeds.ndjsonLine).joined(separator: "\n")).jsonObject()
            XCTAssertEqual(next["accepted"] as? Int, min(100, events.count - start))
            XCTAssertEqual(next["duplicates"] as? Int, 50)
        }
        try E2E.assertAnswersEqualModel(server: server, events: events, seed: 11)
    }

    /// Queries first: right after a statistics query, a large batch is admitted on the loop
    /// (the intake thread is not even started); once queries have been quiet for
    /// `--intake-thread-query-quiet-milliseconds`, the next large batch goes to the thread.
    func testAfterAQueryLargeBatchesStayOnTheLoopForAWhile() throws {
        let server = try ServerProcess(extraArguments: ["--intake-thread-body-bytes", "1024", "--max-batch-events", "300",
                                                        "--intake-thread-query-quiet-milliseconds", "1500"])
        defer { server.terminate(); server.removeData() }
        try server.start()
        let pid = server.processIdentifier
        func hasIntakeThread() -> Bool {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).contains {
                ((try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8)) ?? "").hasPrefix("hc-intake")
            }
        }
        let events = TestFeeds.uniqueTimeFeed(seed: 7, count: 400, eventIds: ["E1", "E2"], tickets: 50, base: E2E.base)
        let client = try server.client()
        func post(_ batch: ArraySlice<FeedEvent>) throws -> Int? {
            try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                               body: batch.map(TestFeeds.ndjsonLine).joined(separator: "\n")).jsonObject()["accepted"] as? Int
        }
        XCTAssertEqual(try post(events[..<1]), 1)  // small: on the loop anyway
        func query() throws {
            XCTAssertEqual(try client.request("GET", E2E.statisticsPath([events[0].eventId], at: E2E.time(E2E.base + 86_400_000)),
                                              key: ServerProcess.adminKey).status, 200)
        }
        // On the loop, large bodies are decoded a step at a time between admissions; one that
        // fails as a whole still fails whole, with nothing of it admitted (its events are
        // accepted below).
        try query()
        let broken = "[" + String(repeating: #"{"id":"x","type":"ticket.created"},"#, count: 300)
        E2E.assertError(try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/json", body: broken),
                        status: 400, code: "INVALID_JSON")
        for (format, body) in [("application/x-ndjson", events[1..<302].map(TestFeeds.ndjsonLine).joined(separator: "\n")),
                               ("application/json", "[" + events[1..<302].map(TestFeeds.ndjsonLine).joined(separator: ",") + "]")] {
            try query()
            E2E.assertError(try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: format, body: body),
                            status: 413, code: "TOO_MANY_EVENTS")
        }
        try query()
        // A broken line among them is that event's rejection, at its index.
        var lines = events[1..<200].map(TestFeeds.ndjsonLine)
        lines.insert("{broken", at: 150)
        let mixed = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                       body: lines.joined(separator: "\n")).jsonObject()
        XCTAssertEqual(mixed["accepted"] as? Int, 199)
        XCTAssertEqual(((mixed["rejected"] as? [[String: Any]])?.first)?["index"] as? Int, 150)
        XCTAssertFalse(hasIntakeThread(), "a batch right after a query is admitted on the loop")
        Thread.sleep(forTimeInterval: 1.7)
        XCTAssertEqual(try post(events[200...]), 200)
        XCTAssertTrue(hasIntakeThread(), "with queries quiet, a large batch goes to the intake thread")
        try E2E.assertAnswersEqualModel(server: server, events: events, seed: 7)
    }
}

/// A small seeded generator (SplitMix64), so a failing run replays from its printed seed.
private struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
