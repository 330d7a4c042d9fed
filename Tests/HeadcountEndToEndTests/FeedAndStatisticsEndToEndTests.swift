import Foundation
import XCTest

/// The real binary over real HTTP: the feed, the statistics endpoint, and every error of
/// SPEC §2, §4 and §6 with its JSON body.
final class FeedAndStatisticsEndToEndTests: XCTestCase {
    private var server: ServerProcess!

    override func setUpWithError() throws {
        server = try ServerProcess(extraArguments: ["--max-body-bytes", "65536", "--fsync", "on"])
        try server.start()
    }

    override func tearDown() {
        server?.terminate()
        server?.removeData()
    }

    private func event(_ id: String, _ type: String, ticket: String, at offset: Int64, event: String = "E1", extra: String = "") -> String {
        let extraFields = extra.isEmpty ? "" : "," + extra
        return #"{"id":"\#(id)","type":"\#(type)","eventId":"\#(event)","ticketId":"\#(ticket)","occurredAt":"\#(E2E.time(E2E.base + offset))"\#(extraFields)}"#
    }

    func testFeedInEveryFormatThenQueryAtPointsInTime() throws {
        let client = try server.client()
        // One object.
        var response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/json",
                                          body: event("f1", "ticket.created", ticket: "T1", at: 0))
        XCTAssertEqual(response.status, 200, response.text)
        var result = try response.jsonObject()
        XCTAssertEqual(result["accepted"] as? Int, 1)
        XCTAssertEqual(result["duplicates"] as? Int, 0)
        XCTAssertEqual((result["rejected"] as? [Any])?.count, 0)

        // An array, with one duplicate of the first request.
        let array = "[" + [event("f2", "ticket.created", ticket: "T2", at: 1_000),
                           event("f3", "ticket.downloaded", ticket: "T1", at: 2_000, extra: #""deviceId":"d1""#),
                           event("f1", "ticket.created", ticket: "T1", at: 0)].joined(separator: ",") + "]"
        response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/json", body: array)
        result = try response.jsonObject()
        XCTAssertEqual(result["accepted"] as? Int, 2)
        XCTAssertEqual(result["duplicates"] as? Int, 1)

        // NDJSON with a blank line, a broken line and an unknown type: each rejected alone.
        let ndjson = [event("f4", "ticket.created", ticket: "T3", at: 3_000), "",
                      #"{"id":"f5","type":"ticket.created","#,
                      event("f6", "ticket.teleported", ticket: "T3", at: 3_000),
                      event("f7", "ticket.deleted", ticket: "T2", at: 4_000, extra: #""pending":true"#),
                      event("f8", "transfer.accepted", ticket: "T3", at: 5_000)].joined(separator: "\n")
        response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson", body: ndjson)
        result = try response.jsonObject()
        XCTAssertEqual(result["accepted"] as? Int, 3, response.text)
        let rejected = result["rejected"] as? [[String: Any]] ?? []
        XCTAssertEqual(rejected.map { $0["index"] as? Int }, [1, 2], response.text)
        XCTAssertEqual(rejected.last?["id"] as? String, "f6")

        // A late event: T1 was deleted before it was downloaded.
        response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                      body: event("f9", "ticket.deleted", ticket: "T1", at: 1_500))
        XCTAssertEqual(try response.jsonObject()["accepted"] as? Int, 1)

        let read = try server.client()
        func at(_ offset: Int64) throws -> [String: Any] {
            let answer = E2E.counters(try read.request("GET", E2E.statisticsPath(["E1"], at: E2E.time(E2E.base + offset)), key: ServerProcess.readKey))
            return answer.first ?? [:]
        }
        var now = try at(1_000)
        XCTAssertEqual(now["eventId"] as? String, "E1")
        XCTAssertEqual(now["totalTickets"] as? Int, 2)
        XCTAssertEqual(now["validTickets"] as? Int, 2)
        XCTAssertEqual(now["neverDownloadedTickets"] as? Int, 2)
        XCTAssertEqual(now["updatedAt"] as? String, E2E.time(E2E.base + 1_000))

        now = try at(2_000)
        XCTAssertEqual(now["validTickets"] as? Int, 1, "T1 deleted at +1.5 s")
        XCTAssertEqual(now["deletedTickets"] as? Int, 1)
        XCTAssertEqual(now["downloadedTickets"] as? Int, 0, "a deleted ticket is not a valid downloaded one")

        now = try at(10_000)
        XCTAssertEqual(now["totalTickets"] as? Int, 3)
        XCTAssertEqual(now["validTickets"] as? Int, 1)
        XCTAssertEqual(now["deletedTickets"] as? Int, 2, "a pending deletion counts as deleted")
        XCTAssertEqual(now["transferredOnce"] as? Int, 1)
        XCTAssertEqual(now["totalTransferOperations"] as? Int, 1)
        XCTAssertEqual(now["neverTransferred"] as? Int, 2)
        XCTAssertEqual(now["updatedAt"] as? String, E2E.time(E2E.base + 5_000))
        for field in ["iosPassAdded", "androidPassDeleted", "offlineActivatedTickets", "pendingTransferTickets"] {
            XCTAssertEqual(now[field] as? Int, 0, field)
        }
        XCTAssertEqual(now.count, 40, "eventId, 38 counters, updatedAt")

        // Before everything: zeros and a null updatedAt.
        now = try at(-1)
        XCTAssertEqual(now["totalTickets"] as? Int, 0)
        XCTAssertTrue(now["updatedAt"] is NSNull)

        // Two events, in request order; a far-future dateTime answers everything known.
        _ = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, body: event("g1", "ticket.created", ticket: "X", at: 0, event: "E2"))
        let both = E2E.counters(try read.request("GET", E2E.statisticsPath(["E2", "E1"], at: "2999-01-01T00:00:00Z"), key: ServerProcess.adminKey))
        XCTAssertEqual(both.map { $0["eventId"] as? String }, ["E2", "E1"])
        XCTAssertEqual(both.first?["totalTickets"] as? Int, 1)
    }

    func testEveryErrorHasTheJSONShape() throws {
        let client = try server.client()
        _ = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey,
                               body: event("seed", "ticket.created", ticket: "T1", at: 0) + "\n" + event("seed2", "ticket.created", ticket: "T1", at: 0, event: "E2"))
        let now = E2E.time(E2E.base + 10_000)
        func get(_ path: String, key: String? = ServerProcess.readKey) throws -> TestHTTPClient.Response {
            try client.request("GET", path, key: key)
        }
        E2E.assertError(try get("/v1/event-statistics?dateTime=\(now)"), status: 400, code: "MISSING_PARAMETER")
        let nine = (1...9).map { "E\($0)" }
        E2E.assertError(try get(E2E.statisticsPath(nine, at: now)), status: 400, code: "INVALID_PARAMETER")
        E2E.assertError(try get(E2E.statisticsPath(["E1", "E1"], at: now)), status: 400, code: "INVALID_PARAMETER")
        E2E.assertError(try get("/v1/event-statistics?eventIds=E1"), status: 400, code: "MISSING_PARAMETER")
        E2E.assertError(try get("/v1/event-statistics?eventIds=E1&dateTime=yesterday"), status: 400, code: "INVALID_PARAMETER")
        let tooOld = try get(E2E.statisticsPath(["E1"], at: "2001-01-01T00:00:00.000Z"))
        E2E.assertError(tooOld, status: 400, code: "DATE_TIME_OUT_OF_RETENTION")
        XCTAssertTrue(tooOld.text.contains("oldest answerable time"), tooOld.text)
        let unknown = try get(E2E.statisticsPath(["E1", "NOPE"], at: now))
        E2E.assertError(unknown, status: 404, code: "EVENT_NOT_FOUND")
        XCTAssertTrue(unknown.text.contains("Event not found: NOPE"), unknown.text)

        E2E.assertError(try get(E2E.statisticsPath(["E1"], at: now), key: nil), status: 401, code: "UNAUTHORIZED")
        E2E.assertError(try get(E2E.statisticsPath(["E1"], at: now), key: "wrong"), status: 401, code: "UNAUTHORIZED")
        E2E.assertError(try get(E2E.statisticsPath(["E1"], at: now), key: ServerProcess.feedKey), status: 403, code: "FORBIDDEN")
        E2E.assertError(try get(E2E.statisticsPath(["E2"], at: now), key: ServerProcess.limitedReadKey), status: 403, code: "FORBIDDEN")
        XCTAssertEqual(try get(E2E.statisticsPath(["E1"], at: now), key: ServerProcess.limitedReadKey).status, 200)
        // HTTP Basic with the key as user name works too.
        let basic = Data("\(ServerProcess.readKey):ignored".utf8).base64EncodedString()
        XCTAssertEqual(try client.request("GET", E2E.statisticsPath(["E1"], at: now), headers: [("Authorization", "Basic \(basic)")]).status, 200)

        let feedBody = event("x1", "ticket.created", ticket: "T9", at: 0)
        E2E.assertError(try client.request("POST", "/v1/feed", key: ServerProcess.readKey, body: feedBody), status: 403, code: "FORBIDDEN")
        E2E.assertError(try client.request("POST", "/v1/feed", key: nil, body: feedBody), status: 401, code: "UNAUTHORIZED")
        E2E.assertError(try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/json", body: "{\"id\": oops"),
                        status: 400, code: "INVALID_JSON")
        E2E.assertError(try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "text/csv", body: "a,b"),
                        status: 415, code: "UNSUPPORTED_MEDIA_TYPE")
        E2E.assertError(try client.request("DELETE", "/v1/feed", key: ServerProcess.feedKey), status: 405, code: "METHOD_NOT_ALLOWED")
        E2E.assertError(try get("/v2/nothing"), status: 404, code: "NOT_FOUND")

        // Invalid UTF-8 in a JSON body: the whole body is a 400, nothing accepted.
        var invalid = Array(#"[{"id":"u1","type":"ticket.created","eventId":"E1","ticketId":"T"#.utf8)
        invalid += [0xff, 0xfe]
        invalid += Array(#"","occurredAt":"2025-05-21T06:00:00Z"}]"#.utf8)
        E2E.assertError(try client.request("POST", "/v1/feed", headers: [("Authorization", "Bearer \(ServerProcess.feedKey)"),
                                                                        ("Content-Type", "application/json")], body: invalid),
                        status: 400, code: "INVALID_JSON")

        // An oversized body: 413, then the connection is closed.
        let big = try server.client()
        let oversized = String(repeating: " ", count: 70_000)
        E2E.assertError(try big.request("POST", "/v1/feed", key: ServerProcess.feedKey, body: oversized), status: 413, code: "BODY_TOO_LARGE")

        // Garbage instead of HTTP: a 400 and a closed connection; the server lives on.
        let garbage = try server.client()
        try garbage.sendRaw("HELLO\r\n\r\n")
        E2E.assertError(try garbage.readResponse(), status: 400, code: "MALFORMED_REQUEST")
        XCTAssertTrue(garbage.isClosedByPeer())
        XCTAssertEqual(try server.client().request("GET", "/healthz").status, 200)
    }

    func testMetricsAndHealth() throws {
        let client = try server.client()
        XCTAssertEqual(try client.request("GET", "/healthz").status, 200)
        _ = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, body: event("m1", "ticket.created", ticket: "T1", at: 0))
        let metrics = try client.request("GET", "/metrics")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.text.contains(#"headcount_feed_events_total{result="accepted"} 1"#), metrics.text)
        XCTAssertTrue(metrics.text.contains("headcount_tickets 1"), metrics.text)
        // The loop's busy time is measured every turn: the requests above took several turns.
        let turns = metrics.text.split(separator: "\n").first { $0.hasPrefix("headcount_loop_busy_seconds_count ") }
            .flatMap { Int($0.split(separator: " ").last ?? "") }
        XCTAssertGreaterThan(turns ?? 0, 2, metrics.text)
        // Every fsync the acknowledgement waited for is timed (the server runs with --fsync on).
        let syncs = metrics.text.split(separator: "\n").first { $0.hasPrefix("headcount_wal_sync_seconds_count ") }
            .flatMap { Int($0.split(separator: " ").last ?? "") }
        XCTAssertGreaterThan(syncs ?? 0, 0, metrics.text)
    }
}
