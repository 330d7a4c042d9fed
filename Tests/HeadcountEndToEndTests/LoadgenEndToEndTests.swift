import Foundation
import XCTest

/// `headcount-loadgen` (tools/loadgen) against the real server: the event day it plays adds
/// up, and its latencies are open-loop — measured from each request's scheduled time, so a
/// stalled server shows in them instead of hiding behind requests not sent.
final class LoadgenEndToEndTests: XCTestCase {
    /// The generator built beside the server binary (`swift build` builds both).
    private var loadgenPath: String {
        URL(fileURLWithPath: ServerProcess.binaryPath).deletingLastPathComponent()
            .appendingPathComponent("headcount-loadgen").path
    }

    /// Runs the generator with `arguments` and `--json --quiet`; returns its exit status and
    /// its JSON summary. `whileRunning` runs on this thread once the generator has started.
    private func runLoadgen(_ arguments: [String], whileRunning: (() -> Void)? = nil) throws -> (Int32, [String: Any]) {
        guard FileManager.default.isExecutableFile(atPath: loadgenPath) else {
            throw TestHTTPClient.Failure("no headcount-loadgen at \(loadgenPath): run `swift build` first")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: loadgenPath)
        process.arguments = arguments + ["--json", "--quiet"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        whileRunning?()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any],
                                    "the summary is a JSON object: \(String(decoding: data, as: UTF8.self))")
        return (process.terminationStatus, summary)
    }

    private func number(_ object: Any?, _ path: String...) -> Double? {
        var current = object
        for key in path { current = (current as? [String: Any])?[key] }
        return (current as? NSNumber)?.doubleValue
    }

    /// A whole day of 2 events × 200 tickets — sales, downloads, transfers, wallet passes,
    /// activations, scans — with late and duplicate deliveries, paced at 1,000 events/s,
    /// queries and freshness probes beside it, against a server the generator starts: no
    /// event lost, every injected duplicate recognised as one by the server, every query
    /// consistent, the last one counting all 200 tickets of each event, and each latency
    /// given as p50, p90, p99, p99.9 and max.
    func testAnEventDayAddsUp() throws {
        let (status, summary) = try runLoadgen([
            "--start-server", ServerProcess.binaryPath, "--events", "2", "--tickets", "200",
            "--rate", "1000", "--batch", "10", "--connections", "2", "--duration", "20",
            "--late-fraction", "0.05", "--duplicate-fraction", "0.05", "--query-rate", "50", "--probe-rate", "5",
        ])
        XCTAssertEqual(status, 0, "the generator found no problem")
        let feed = summary["feed"]
        let sent = try XCTUnwrap(number(feed, "eventsSent"))
        let accepted = try XCTUnwrap(number(feed, "accepted"))
        let duplicates = try XCTUnwrap(number(feed, "duplicates"))
        XCTAssertEqual(number(feed, "dayEvents"), sent, "one pass of the day, all of it sent")
        XCTAssertGreaterThan(duplicates, 0, "duplicates were injected")
        XCTAssertEqual(number(feed, "duplicatesInjected"), duplicates, "the server recognised each injected duplicate")
        XCTAssertEqual(accepted + duplicates, sent)
        for field in ["lostEvents", "lostRequests", "mismatched", "protocolErrors", "eventsInNon200", "rejected"] {
            XCTAssertEqual(number(feed, field), 0, field)
        }
        for histogram in ["ackLatencyMs", "ackServiceMs"] {
            let p50 = try XCTUnwrap(number(feed, histogram, "p50"))
            let p90 = try XCTUnwrap(number(feed, histogram, "p90"))
            let p99 = try XCTUnwrap(number(feed, histogram, "p99"))
            let p999 = try XCTUnwrap(number(feed, histogram, "p99.9"))
            let max = try XCTUnwrap(number(feed, histogram, "max"))
            XCTAssertTrue(0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max, "\(histogram): \(p50) \(p90) \(p99) \(p999) \(max)")
        }
        let queries = summary["queries"]
        XCTAssertGreaterThan(number(queries, "ok") ?? 0, 0)
        XCTAssertEqual(number(queries, "invariantViolations"), 0)
        XCTAssertEqual(number(queries, "invalid"), 0)
        XCTAssertEqual((queries as? [String: Any])?["lastTotalTickets"] as? [Int], [200, 200],
                       "the last query counts every ticket of both events")
        let freshness = summary["freshness"]
        let probes = try XCTUnwrap(number(freshness, "probes"))
        XCTAssertGreaterThan(probes, 0)
        XCTAssertEqual(number(freshness, "acknowledged"), probes)
        XCTAssertEqual(number(freshness, "neverReflected"), 0)
        XCTAssertEqual(number(freshness, "errors"), 0)
        XCTAssertNotNil(number(freshness, "freshnessMs", "p99"))
        XCTAssertEqual(number(summary, "problems"), 0)
    }

    /// The server stopped (SIGSTOP) for a second in the middle of a paced feed: the requests
    /// scheduled meanwhile are late by up to that second, and the acknowledgement latency —
    /// from the schedule — shows it in its upper tenth, while the time from the actual send
    /// does not. A generator that measured from the send (closed loop) would hide the stall
    /// behind the requests it did not send.
    func testAStallShowsInTheLatencyFromTheSchedule() throws {
        let server = try ServerProcess()
        try server.start()
        defer { _ = server.terminate(); server.removeData() }
        let pid = server.processIdentifier
        let (status, summary) = try runLoadgen([
            "--url", "http://127.0.0.1:\(server.port)", "--feed-key", ServerProcess.feedKey,
            "--read-key", ServerProcess.adminKey, "--events", "2", "--tickets", "5000", "--loop",
            "--rate", "1000", "--batch", "10", "--connections", "2", "--duration", "3", "--probe-rate", "0",
        ], whileRunning: {
            Thread.sleep(forTimeInterval: 1)
            kill(pid, SIGSTOP)
            Thread.sleep(forTimeInterval: 1)
            kill(pid, SIGCONT)
        })
        XCTAssertEqual(status, 0)
        let feed = summary["feed"]
        XCTAssertEqual(number(feed, "lostEvents"), 0)
        let fromSchedule = try XCTUnwrap(number(feed, "ackLatencyMs", "p90"))
        let fromSend = try XCTUnwrap(number(feed, "ackServiceMs", "p90"))
        let max = try XCTUnwrap(number(feed, "ackLatencyMs", "max"))
        // ~300 requests in 3 s, ~100 of them scheduled during the stall: a tenth of all are
        // late by more than ~0.7 s.
        XCTAssertGreaterThan(max, 800, "the request in flight when the server stopped waited the stall out")
        XCTAssertGreaterThan(fromSchedule, 300, "p90 from the schedule carries the stall")
        XCTAssertGreaterThan(fromSchedule, 3 * fromSend, "p90 from the send (\(fromSend) ms) does not")
    }
}
