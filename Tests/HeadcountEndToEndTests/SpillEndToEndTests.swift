import Foundation
import HeadcountCore
import HeadcountTestSupport
import XCTest

/// The real server with small memory budgets: old delta records and history pages spill to
/// `<data-dir>/spill`, and every answer stays the same — before spilling, after, and after a
/// restart (which rebuilds and spills again).
final class SpillEndToEndTests: XCTestCase {
    func testAnswersAreTheSameBeforeAndAfterSpillingAndAfterRestart() throws {
        let server = try ServerProcess(extraArguments: ["--snapshot-memory-bytes", "1048576",
                                                        "--history-memory-bytes", "4194304"])
        defer { server.terminate(); server.removeData() }
        try server.start()
        let client = try server.client()
        let events = TestFeeds.uniqueTimeFeed(seed: 7, count: 160_000, eventIds: ["E1", "E2"], tickets: 20_000, base: E2E.base)
        for start in stride(from: 0, to: events.count, by: 10_000) {
            let body = events[start..<min(start + 10_000, events.count)].map(TestFeeds.ndjsonLine).joined(separator: "\n")
            let response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson", body: body)
            XCTAssertEqual(response.status, 200, response.text)
        }
        let times = events.map(\.occurredAt).sorted()
        let instants = stride(from: 0, to: times.count, by: times.count / 40).map { times[$0] } + [times.last! + 1]
        func answers() throws -> [String] {
            try instants.map { instant in
                try client.request("GET", E2E.statisticsPath(["E1", "E2"], at: Timestamp.format(milliseconds: instant)),
                                   key: ServerProcess.adminKey).text
            }
        }
        func gauge(_ name: String) throws -> Double {
            let metrics = try client.request("GET", "/metrics").text
            let line = metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }
            return Double(line?.split(separator: " ").last ?? "") ?? -1
        }
        let before = try answers()
        // Housekeeping spills once a second.
        for _ in 0..<100 where try gauge("headcount_history_spilled_pages") <= 0 || gauge("headcount_delta_spilled_chunks") <= 0 {
            usleep(50_000)
        }
        XCTAssertGreaterThan(try gauge("headcount_history_spilled_pages"), 0, "history pages spilled")
        XCTAssertGreaterThan(try gauge("headcount_delta_spilled_chunks"), 0, "delta chunks spilled")
        XCTAssertEqual(try answers(), before, "the same answers with spilled records and pages")

        XCTAssertEqual(server.terminate(), 0)
        try server.start()
        let restarted = try server.client()
        let after = try instants.map { instant in
            try restarted.request("GET", E2E.statisticsPath(["E1", "E2"], at: Timestamp.format(milliseconds: instant)),
                                  key: ServerProcess.adminKey).text
        }
        XCTAssertEqual(after, before, "the same answers after a restart")
    }
}
