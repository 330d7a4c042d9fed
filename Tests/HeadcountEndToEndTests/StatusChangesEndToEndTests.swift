import Foundation
import HeadcountCore
import HeadcountTestSupport
import XCTest

/// SPEC §5 over real HTTP against the real binary: seat and chart events in through
/// `POST /v1/feed` (JSON and NDJSON), then `GET /events/{key}/status-changes` and
/// `GET /events/{key}/objects/{label}/status-changes` checked against `StatusChangesModel`,
/// the slow obvious form of the listing rules.
final class StatusChangesEndToEndTests: XCTestCase {
    private var server: ServerProcess!

    override func setUpWithError() throws {
        server = try ServerProcess(extraArguments: ["--fsync", "on"])
        try server.start()
    }

    override func tearDown() {
        server?.terminate()
        server?.removeData()
    }

    static let labels = ["A-1", "A-2", "A-10", "A-11", "B-1", "Section A-A-1", "A 1/2", "GA1", "A+B", "50%"]

    /// S1 (90 changes, with equal dates), then S2 and E1; fed as a JSON array and as NDJSON.
    private func feedStandardData(into model: inout StatusChangesModel) throws -> TestHTTPClient {
        let client = try server.client()
        // A ticket event first: it gives E1 no status-change number.
        let ticket = FeedEvent(id: "t-1", kind: .ticketCreated, eventId: "E1", ticketId: "T1", occurredAt: E2E.base)
        try SCE.post([ticket], to: client, model: &model, format: .ndjson)

        let s1 = SCE.dataset(prefix: "s1", event: "S1", count: 90, seed: 11, labels: Self.labels, base: E2E.base)
        let s2 = SCE.dataset(prefix: "s2", event: "S2", count: 5, seed: 12, labels: ["X-1", "X-2"], base: E2E.base)
        let e1 = SCE.dataset(prefix: "e1", event: "E1", count: 3, seed: 13, labels: ["Y-1"], base: E2E.base)
        try SCE.post(Array(s1[0..<30]), to: client, model: &model, format: .jsonArray)
        try SCE.post(Array(s1[30..<50]) + s2 + Array(s1[50...]) + e1, to: client, model: &model, format: .ndjson)
        return client
    }

    func testSortingFilteringAndPagingMatchTheModel() throws {
        var model = StatusChangesModel()
        let client = try feedStandardData(into: &model)
        XCTAssertEqual(model.eventNumbers, ["S1": 1, "S2": 2, "E1": 3])
        XCTAssertTrue(model.hasDateTies(event: "S1"), "the data must have equal dates for the tie rule to be tested")

        // Default: date descending, one page, no cursors at all.
        let all = try SCE.page(client, "/events/S1/status-changes")
        XCTAssertEqual(all.ids, model.ids(event: "S1", sort: .date, ascending: false))
        XCTAssertEqual(Set(all.object.keys), ["items"], "no cursor when there is no page either way")
        XCTAssertEqual(all.ids.count, 90)

        // Every sort, in every spelling; equal keys newest (highest id) first either way.
        let sorts: [(String, StatusChangeSortField, Bool)] = [
            ("date", .date, true), ("date:asc", .date, true), ("date:desc", .date, false), ("DATE:DESC", .date, false),
            ("objectLabel", .objectLabel, true), ("objectLabel:asc", .objectLabel, true),
            ("objectlabel:DESC", .objectLabel, false), ("objectLabel%3Adesc", .objectLabel, false),
            ("status", .status, true), ("Status:Asc", .status, true), ("status:desc", .status, false),
        ]
        for (text, field, ascending) in sorts {
            let page = try SCE.page(client, "/events/S1/status-changes?sort=\(text)")
            XCTAssertEqual(page.ids, model.ids(event: "S1", sort: field, ascending: ascending), "sort=\(text)")
        }
        // The tie rule, spelled out on one group of equal dates.
        let ties = model.largestDateTie(event: "S1")
        for direction in ["asc", "desc"] {
            let ids = try SCE.page(client, "/events/S1/status-changes?sort=date:\(direction)").ids
            let positions = ties.sorted(by: >).map { ids.firstIndex(of: $0)! }
            XCTAssertEqual(positions, positions.sorted(), "equal dates: highest id first (date:\(direction))")
            XCTAssertEqual(positions.last! - positions.first!, ties.count - 1, "equal dates are adjacent")
        }

        // Filters and filter types, with a sort.
        let filters = ["A-1", "A", "1/2", "-1", "+", "%", "zzz", "A-1 "]
        let types: [(String?, StatusChangeFilterType)] = [(nil, .contains), ("CONTAINS", .contains), ("BEGINS_WITH", .beginsWith),
                                                          ("ENDS_WITH", .endsWith), ("MATCHES", .matches), ("begins_with", .beginsWith)]
        for filter in filters {
            for (typeText, type) in types {
                for (sortText, field, ascending) in [("date:desc", StatusChangeSortField.date, false), ("objectLabel", .objectLabel, true)] {
                    var path = "/events/S1/status-changes?sort=\(sortText)&filter=\(SCE.encode(filter))"
                    if let typeText { path += "&filterType=\(typeText)" }
                    let page = try SCE.page(client, path)
                    let expected = model.ids(event: "S1", sort: field, ascending: ascending, filter: filter, filterType: type)
                    XCTAssertEqual(page.ids, expected, path)
                    if expected.isEmpty { XCTAssertEqual(Set(page.object.keys), ["items"], path) }
                }
            }
        }
        // An empty filter is no filter.
        XCTAssertEqual(try SCE.page(client, "/events/S1/status-changes?filter=").ids.count, 90)

        // Paging both ways along every sort, with and without a filter, at several limits.
        for (sortText, field, ascending) in [("date:desc", StatusChangeSortField.date, false), ("date:asc", .date, true),
                                             ("objectLabel:asc", .objectLabel, true), ("objectLabel:desc", .objectLabel, false),
                                             ("status:asc", .status, true), ("status:desc", .status, false)] {
            for filter in [nil, "A-1"] as [String?] {
                let expected = model.ids(event: "S1", sort: field, ascending: ascending, filter: filter)
                let query = "sort=\(sortText)" + (filter.map { "&filter=\(SCE.encode($0))" } ?? "")
                for limit in [1, 7, 30, expected.count, 1000] {
                    try SCE.assertWalksBothWays(client, path: "/events/S1/status-changes", query: query, limit: limit, expected: expected)
                }
            }
        }
        // The default limit (1000) answers everything in one page; limit=1000 is allowed.
        XCTAssertEqual(try SCE.page(client, "/events/S1/status-changes?limit=1000").ids.count, 90)

        // Other events: their own changes, their own numbers.
        let s2 = try SCE.page(client, "/events/S2/status-changes")
        XCTAssertEqual(s2.ids, model.ids(event: "S2", sort: .date, ascending: false))
        XCTAssertEqual(Set(s2.items.map { $0["eventId"] as? Int }), [2])
        let e1 = try SCE.page(client, "/events/E1/status-changes?sort=date:asc")
        XCTAssertEqual(e1.ids, model.ids(event: "E1", sort: .date, ascending: true))
        XCTAssertEqual(Set(e1.items.map { $0["eventId"] as? Int }), [3])

        // Feeding the same events again changes nothing: same ids, nothing new.
        let again = SCE.dataset(prefix: "s1", event: "S1", count: 90, seed: 11, labels: Self.labels, base: E2E.base)
        let body = again.map(TestFeeds.ndjsonLine).joined(separator: "\n")
        let result = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson", body: body).jsonObject()
        XCTAssertEqual(result["accepted"] as? Int, 0)
        XCTAssertEqual(result["duplicates"] as? Int, 90)
        XCTAssertEqual(try SCE.page(client, "/events/S1/status-changes").ids, all.ids)
    }

    func testItemShapePerObjectListingAndPresence() throws {
        var model = StatusChangesModel()
        let client = try feedStandardData(into: &model)

        // One change written by hand: no displayedLabel (defaults to the label), nested extraData.
        let at = E2E.base + 500_000
        let line = #"{"id":"hand-1","type":"seat.statusChanged","eventId":"S1","objectLabel":"A 1/2","status":"booked","quantity":3,"# +
            #""orderId":"anOrder","extraData":{"userId":"123","nested":{"a":[1,2.5,true,null]}},"# +
            #""origin":{"type":"API_CALL","ip":"192.0.2.7"},"occurredAt":"\#(E2E.time(at))"}"#
        let response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson", body: line)
        XCTAssertEqual(try response.jsonObject()["accepted"] as? Int, 1, response.text)
        let handId = model.accept(FeedEvent(id: "hand-1", kind: .seatStatusChanged, eventId: "S1", ticketId: "", occurredAt: at,
                                            details: .seatStatus(SeatStatusChange(objectLabel: "A 1/2", status: "booked", quantity: 3,
                                                                                  orderId: "anOrder", originType: .apiCall,
                                                                                  originIP: "192.0.2.7"))))!

        let newest = try SCE.page(client, "/events/S1/status-changes?limit=1")
        XCTAssertEqual(newest.ids, [handId])
        XCTAssertEqual(newest.object["next_page_starts_after"] as? String, String(handId))
        XCTAssertNil(newest.object["previous_page_ends_before"])
        let item = newest.items[0]
        XCTAssertEqual(Set(item.keys), ["id", "eventId", "status", "quantity", "objectLabel", "displayedLabel", "date", "orderId",
                                        "extraData", "holdToken", "origin", "isPresentOnChart"])
        XCTAssertEqual(item["id"] as? Int, Int(handId))
        XCTAssertEqual(item["eventId"] as? Int, 1)
        XCTAssertEqual(item["status"] as? String, "booked")
        XCTAssertEqual(item["quantity"] as? Int, 3)
        XCTAssertEqual(item["objectLabel"] as? String, "A 1/2")
        XCTAssertEqual(item["displayedLabel"] as? String, "A 1/2")
        XCTAssertEqual(item["date"] as? String, E2E.time(at))
        XCTAssertEqual(item["orderId"] as? String, "anOrder")
        XCTAssertTrue(item["holdToken"] is NSNull)
        XCTAssertEqual(item["origin"] as? [String: String], ["type": "API_CALL", "ip": "192.0.2.7"])
        XCTAssertEqual(item["isPresentOnChart"] as? Bool, true)
        XCTAssertTrue(newest.text.contains(#""extraData":{"userId":"123","nested":{"a":[1,2.5,true,null]}}"#), newest.text)
        // Ids and event numbers are JSON numbers, cursors are strings.
        XCTAssertTrue(newest.text.hasPrefix(#"{"items":[{"id":\#(handId),"eventId":1,"#), newest.text)
        // Every item: origin.ip only with API_CALL, holdToken as fed.
        for item in try SCE.page(client, "/events/S1/status-changes").items {
            let origin = item["origin"] as? [String: Any] ?? [:]
            XCTAssertEqual(origin["ip"] != nil, origin["type"] as? String == "API_CALL", "\(item)")
            let change = model.change(id: Int64(item["id"] as? Int ?? 0))
            XCTAssertEqual(item["holdToken"] as? String, change?.holdToken)
            XCTAssertEqual(item["status"] as? String, change?.status)
            XCTAssertEqual(item["date"] as? String, change.map { E2E.time($0.date) })
        }

        // Per-object listing: path segments are percent-decoded, %2F included, '+' is a plus.
        for (label, segment) in [("A 1/2", "A%201%2F2"), ("A+B", "A+B"), ("A+B", "A%2BB"), ("50%", "50%25"), ("A-1", "A-1"),
                                 ("Section A-A-1", "Section%20A-A-1")] {
            let expected = model.ids(event: "S1", label: label, sort: .date, ascending: false)
            XCTAssertFalse(expected.isEmpty, label)
            let page = try SCE.page(client, "/events/S1/objects/\(segment)/status-changes")
            XCTAssertEqual(page.ids, expected, segment)
            XCTAssertEqual(Set(page.items.map { $0["objectLabel"] as? String }), [label])
            let sorted = try SCE.page(client, "/events/S1/objects/\(segment)/status-changes?sort=status:desc")
            XCTAssertEqual(sorted.ids, model.ids(event: "S1", label: label, sort: .status, ascending: false), segment)
            try SCE.assertWalksBothWays(client, path: "/events/S1/objects/\(segment)/status-changes", query: "sort=date:asc",
                                        limit: 2, expected: model.ids(event: "S1", label: label, sort: .date, ascending: true))
        }
        // "A 1/2" is one label, not the path /A 1/2/.
        E2E.assertError(try client.request("GET", "/events/S1/objects/A%201/2/status-changes", key: ServerProcess.readKey),
                        status: 404, code: "NOT_FOUND")
        // An object with no changes: an empty page.
        let none = try SCE.page(client, "/events/S1/objects/Q-99/status-changes")
        XCTAssertEqual(none.ids, [])
        XCTAssertEqual(Set(none.object.keys), ["items"])

        // Presence: removal, restore, a late (older) removal that changes nothing, a newer removal.
        func presence(_ label: String, expected: (Bool, String?), _ message: String, line: UInt = #line) throws {
            let items = try SCE.page(client, "/events/S1/objects/\(SCE.encode(label))/status-changes").items
            XCTAssertFalse(items.isEmpty, message, line: line)
            for item in items {
                XCTAssertEqual(item["isPresentOnChart"] as? Bool, expected.0, message, line: line)
                XCTAssertEqual(item["notPresentOnChartReason"] as? String, expected.1, message, line: line)
                XCTAssertEqual(item.keys.contains("notPresentOnChartReason"), !expected.0, message, line: line)
            }
            // The event-wide listing agrees with the per-object one and with the model.
            for item in try SCE.page(client, "/events/S1/status-changes").items {
                let label = item["objectLabel"] as? String ?? ""
                let (present, reason) = model.presence(event: "S1", label: label)
                XCTAssertEqual(item["isPresentOnChart"] as? Bool, present, "\(message): \(label)", line: line)
                XCTAssertEqual(item["notPresentOnChartReason"] as? String, reason?.name, "\(message): \(label)", line: line)
            }
        }
        let t = E2E.base + 600_000
        try SCE.post([SCE.chart("c1", event: "S1", label: "A-2", at: t, removal: .switchedToBookWholeTable)], to: client, model: &model, format: .jsonObject)
        try presence("A-2", expected: (false, "SWITCHED_TO_BOOK_WHOLE_TABLE"), "after the removal")
        try presence("A-1", expected: (true, nil), "another object is untouched")
        try SCE.post([SCE.chart("c2", event: "S1", label: "A-2", at: t + 2_000, removal: nil)], to: client, model: &model, format: .ndjson)
        try presence("A-2", expected: (true, nil), "after the restore")
        try SCE.post([SCE.chart("c3", event: "S1", label: "A-2", at: t + 1_000, removal: .renamedOrDeleted)], to: client, model: &model, format: .ndjson)
        try presence("A-2", expected: (true, nil), "a late removal dated before the restore changes nothing")
        try SCE.post([SCE.chart("c4", event: "S1", label: "A-2", at: t + 3_000, removal: .renamedOrDeleted),
                      SCE.chart("c5", event: "S1", label: "A 1/2", at: t + 3_000, removal: .switchedToBookBySeat)],
                     to: client, model: &model, format: .jsonArray)
        try presence("A-2", expected: (false, "RENAMED_OR_DELETED"), "a newer removal")
        try presence("A 1/2", expected: (false, "SWITCHED_TO_BOOK_BY_SEAT"), "a label with a slash")
        // A change of a removed object, fed after the removal, is listed as not present too.
        try SCE.post([SCE.seat("late-1", event: "S1", label: "A-2", status: "free", at: t + 4_000)], to: client, model: &model, format: .ndjson)
        try presence("A-2", expected: (false, "RENAMED_OR_DELETED"), "a change after the removal")
        // Presence of another event's object of the same label is its own.
        XCTAssertEqual(Set(try SCE.page(client, "/events/S2/status-changes").items.map { $0["isPresentOnChart"] as? Bool }), [true])
    }

    func testErrorsAndAuthorization() throws {
        var model = StatusChangesModel()
        let client = try feedStandardData(into: &model)
        try SCE.post([FeedEvent(id: "t-9", kind: .ticketCreated, eventId: "E9", ticketId: "T1", occurredAt: E2E.base)],
                     to: client, model: &model, format: .ndjson)
        func get(_ path: String, key: String? = ServerProcess.readKey) throws -> TestHTTPClient.Response {
            try client.request("GET", path, key: key)
        }
        // Unknown event: 404 EVENT_NOT_FOUND naming it, on both endpoints, decoded.
        for (path, name) in [("/events/NOPE/status-changes", "NOPE"), ("/events/NO%20PE/objects/A-1/status-changes", "NO PE")] {
            let response = try get(path)
            E2E.assertError(response, status: 404, code: "EVENT_NOT_FOUND")
            XCTAssertEqual(try response.jsonObject()["messages"] as? [String], ["Event not found: \(name)"], response.text)
        }
        // An event known from ticket events only: no status change yet, an empty list.
        let ticketsOnly = try get("/events/E9/status-changes")
        XCTAssertEqual(ticketsOnly.status, 200, ticketsOnly.text)
        XCTAssertEqual(ticketsOnly.text, #"{"items":[]}"#)
        E2E.assertError(try get("/events/E9/status-changes?start_after_id=1"), status: 400, code: "INVALID_PARAMETER")

        // Bad parameters: 400 INVALID_PARAMETER naming the parameter.
        let bad: [(String, String)] = [
            ("sort=price", "sort"), ("sort=date:up", "sort"), ("sort=date:asc:desc", "sort"), ("sort=", "sort"), ("sort=:asc", "sort"),
            ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("limit=-5", "limit"), ("limit=", "limit"),
            ("filterType=FUZZY", "filterType"), ("filter=A&filterType=", "filterType"),
            ("start_after_id=abc", "start_after_id"), ("start_after_id=0", "start_after_id"), ("end_before_id=-1", "end_before_id"),
            ("start_after_id=1&end_before_id=2", "end_before_id"),
            ("start_after_id=999999", "start_after_id"), ("end_before_id=999999", "end_before_id"),
        ]
        for (query, parameter) in bad {
            let response = try get("/events/S1/status-changes?\(query)")
            E2E.assertError(response, status: 400, code: "INVALID_PARAMETER")
            let errors = (try? response.jsonObject())?["errors"] as? [[String: Any]]
            let message = errors?.first?["message"] as? String ?? ""
            XCTAssertTrue(message.contains(parameter), "\(query): the message names \(parameter): \(message)")
        }
        // A cursor from another event names no change of this one.
        let otherEventId = model.ids(event: "S2", sort: .date, ascending: false)[0]
        E2E.assertError(try get("/events/S1/status-changes?start_after_id=\(otherEventId)"), status: 400, code: "INVALID_PARAMETER")
        // Parameters are checked before existence.
        E2E.assertError(try get("/events/NOPE/status-changes?limit=0"), status: 400, code: "INVALID_PARAMETER")

        // Keys: none or wrong → 401; a feed key → 403; a read key limited to E1 → 403 elsewhere.
        E2E.assertError(try get("/events/S1/status-changes", key: nil), status: 401, code: "UNAUTHORIZED")
        E2E.assertError(try get("/events/NOPE/status-changes", key: nil), status: 401, code: "UNAUTHORIZED")
        E2E.assertError(try get("/events/S1/status-changes", key: "wrong"), status: 401, code: "UNAUTHORIZED")
        E2E.assertError(try get("/events/S1/status-changes", key: ServerProcess.feedKey), status: 403, code: "FORBIDDEN")
        E2E.assertError(try get("/events/S1/status-changes", key: ServerProcess.limitedReadKey), status: 403, code: "FORBIDDEN")
        E2E.assertError(try get("/events/S1/objects/A-1/status-changes", key: ServerProcess.limitedReadKey), status: 403, code: "FORBIDDEN")
        E2E.assertError(try get("/events/NOPE/status-changes", key: ServerProcess.limitedReadKey), status: 403, code: "FORBIDDEN")
        let limited = try get("/events/E1/status-changes", key: ServerProcess.limitedReadKey)
        XCTAssertEqual(limited.status, 200, limited.text)
        XCTAssertEqual(try SCE.ids(limited), model.ids(event: "E1", sort: .date, ascending: false))
        XCTAssertEqual(try get("/events/S1/status-changes", key: ServerProcess.adminKey).status, 200)
        // HTTP Basic, the key as user name and an empty password, as the official clients send it.
        let basic = Data("\(ServerProcess.readKey):".utf8).base64EncodedString()
        let viaBasic = try client.request("GET", "/events/S1/status-changes", headers: [("Authorization", "Basic \(basic)")])
        XCTAssertEqual(viaBasic.status, 200, viaBasic.text)
        XCTAssertEqual(try SCE.ids(viaBasic), model.ids(event: "S1", sort: .date, ascending: false))

        // Method and route errors.
        E2E.assertError(try client.request("POST", "/events/S1/status-changes", key: ServerProcess.adminKey), status: 405, code: "METHOD_NOT_ALLOWED")
        E2E.assertError(try get("/events/S1/changes"), status: 404, code: "NOT_FOUND")
        E2E.assertError(try get("/events/S1/objects/status-changes"), status: 404, code: "NOT_FOUND")
        E2E.assertError(try get("/events/S1/objects//status-changes"), status: 400, code: "INVALID_PARAMETER")
        E2E.assertError(try get("/events/S1/objects/%E0%A4/status-changes"), status: 400, code: "INVALID_PARAMETER")

        // Invalid seat and chart events are rejected one by one, with their index.
        let lines = [
            #"{"id":"v1","type":"seat.statusChanged","eventId":"S1","status":"free","origin":{"type":"API_CALL"},"occurredAt":"\#(E2E.time(E2E.base))"}"#,
            #"{"id":"v2","type":"seat.statusChanged","eventId":"S1","objectLabel":"A-1","status":"free","occurredAt":"\#(E2E.time(E2E.base))"}"#,
            #"{"id":"v3","type":"seat.statusChanged","eventId":"S1","objectLabel":"A-1","status":"free","quantity":0,"origin":{"type":"API_CALL"},"occurredAt":"\#(E2E.time(E2E.base))"}"#,
            #"{"id":"v4","type":"chart.objectRemoved","eventId":"S1","objectLabel":"A-1","reason":"BECAUSE","occurredAt":"\#(E2E.time(E2E.base))"}"#,
            #"{"id":"v5","type":"seat.statusChanged","eventId":"S1","objectLabel":"A-1","status":"free","origin":{"type":"TELEPATHY"},"occurredAt":"\#(E2E.time(E2E.base))"}"#,
        ]
        let response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                          body: lines.joined(separator: "\n"))
        let result = try response.jsonObject()
        XCTAssertEqual(result["accepted"] as? Int, 0, response.text)
        XCTAssertEqual((result["rejected"] as? [[String: Any]])?.map { $0["index"] as? Int }, [0, 1, 2, 3, 4], response.text)
        XCTAssertEqual(try SCE.page(client, "/events/S1/status-changes").ids, model.ids(event: "S1", sort: .date, ascending: false))
    }
}

// MARK: - The model

/// What the status-change endpoints answer, computed the slow obvious way from the accepted
/// feed: ids 1, 2, … in acceptance order across events; an event's number when its key first
/// appears in a seat or chart event; presence from the chart event latest by (date, arrival).
struct StatusChangesModel {
    struct Change {
        var id: Int64
        var event: String
        var label: String
        var status: String
        var date: Int64
        var holdToken: String?
        var details: SeatStatusChange
    }

    private(set) var changes: [Change] = []
    private(set) var eventNumbers: [String: Int64] = [:]
    private var presenceByEvent: [String: [String: (time: Int64, sequence: Int, reason: ChartRemovalReason?)]] = [:]
    private var sequence = 0

    /// Applies one accepted feed event; returns the id of a status change.
    @discardableResult
    mutating func accept(_ event: FeedEvent) -> Int64? {
        sequence += 1
        guard event.kind.isSeat else { return nil }
        if eventNumbers[event.eventId] == nil { eventNumbers[event.eventId] = Int64(eventNumbers.count + 1) }
        switch event.details {
        case .seatStatus(let change):
            let id = Int64(changes.count + 1)
            changes.append(Change(id: id, event: event.eventId, label: change.objectLabel, status: change.status,
                                  date: event.occurredAt, holdToken: change.holdToken, details: change))
            return id
        case .chartObject(let label, let reason):
            let current = presenceByEvent[event.eventId]?[label]
            if let current, (event.occurredAt, sequence) <= (current.time, current.sequence) { return nil }
            let removal = event.kind == .chartObjectRemoved ? (reason ?? .renamedOrDeleted) : nil
            presenceByEvent[event.eventId, default: [:]][label] = (event.occurredAt, sequence, removal)
            return nil
        default:
            return nil
        }
    }

    func change(id: Int64) -> Change? { id >= 1 && id <= changes.count ? changes[Int(id - 1)] : nil }

    func presence(event: String, label: String) -> (Bool, ChartRemovalReason?) {
        guard let reason = presenceByEvent[event]?[label]?.reason else { return (true, nil) }
        return (false, reason)
    }

    /// The ids in the requested order: by key, equal keys highest id first in either direction.
    func ids(event: String, label: String? = nil, sort: StatusChangeSortField, ascending: Bool,
             filter: String? = nil, filterType: StatusChangeFilterType = .contains) -> [Int64] {
        let selected = changes.filter { change in
            guard change.event == event, label == nil || change.label == label else { return false }
            guard let filter, !filter.isEmpty else { return true }
            return Self.matches(Array(change.label.utf8), Array(filter.utf8), filterType)
        }
        return selected.sorted { a, b in
            let order: Int
            switch sort {
            case .date: order = a.date < b.date ? -1 : (a.date > b.date ? 1 : 0)
            case .objectLabel: order = Self.compare(a.label, b.label)
            case .status: order = Self.compare(a.status, b.status)
            }
            if order != 0 { return ascending ? order < 0 : order > 0 }
            return a.id > b.id
        }.map(\.id)
    }

    func hasDateTies(event: String) -> Bool { largestDateTie(event: event).count > 1 }

    /// The ids of the largest group of the event's changes with one date, in id order.
    func largestDateTie(event: String) -> [Int64] {
        let groups = Dictionary(grouping: changes.filter { $0.event == event }, by: \.date)
        return groups.values.max { $0.count < $1.count }?.map(\.id).sorted() ?? []
    }

    static func compare(_ a: String, _ b: String) -> Int {
        let x = Array(a.utf8), y = Array(b.utf8)
        if x == y { return 0 }
        return x.lexicographicallyPrecedes(y) ? -1 : 1
    }

    static func matches(_ label: [UInt8], _ filter: [UInt8], _ type: StatusChangeFilterType) -> Bool {
        switch type {
        case .matches: return label == filter
        case .beginsWith: return label.starts(with: filter)
        case .endsWith: return label.count >= filter.count && Array(label.suffix(filter.count)) == filter
        case .contains:
            guard filter.count <= label.count else { return false }
            return (0...(label.count - filter.count)).contains { Array(label[$0..<($0 + filter.count)]) == filter }
        }
    }
}

// MARK: - Helpers

/// Feeding and listing helpers of the status-change end-to-end tests.
enum SCE {
    enum BodyFormat { case jsonObject, jsonArray, ndjson }

    static func seat(_ id: String, event: String, label: String, status: String, at: Int64, origin: SeatOriginType = .apiCall,
                     holdToken: String? = nil, orderId: String? = nil, extraData: String? = nil, quantity: Int64 = 1) -> FeedEvent {
        FeedEvent(id: id, kind: .seatStatusChanged, eventId: event, ticketId: "", occurredAt: at,
                  details: .seatStatus(SeatStatusChange(objectLabel: label, status: status, quantity: quantity, orderId: orderId,
                                                        extraDataJSON: extraData, holdToken: holdToken,
                                                        originType: origin, originIP: origin == .apiCall ? "192.0.2.1" : nil)))
    }

    /// `chart.objectRemoved` with a reason, `chart.objectRestored` without.
    static func chart(_ id: String, event: String, label: String, at: Int64, removal: ChartRemovalReason?) -> FeedEvent {
        FeedEvent(id: id, kind: removal == nil ? .chartObjectRestored : .chartObjectRemoved, eventId: event, ticketId: "",
                  occurredAt: at, details: .chartObject(label: label, removalReason: removal))
    }

    /// Seeded status changes over `labels`, about two per distinct second (so many equal
    /// dates), delivered in shuffled date order.
    static func dataset(prefix: String, event: String, count: Int, seed: UInt64, labels: [String], base: Int64) -> [FeedEvent] {
        var random = SplitMix64(seed: seed)
        let statuses = ["free", "booked", "reservedByToken", "resale", "Custom status", "booked"]
        return (0..<count).map { index in
            let status = statuses[Int(random.next() % UInt64(statuses.count))]
            let label = labels[Int(random.next() % UInt64(labels.count))]
            let at = base + Int64(random.next() % UInt64(max(1, count / 2))) * 1_000
            let origin = SeatOriginType.allCases[Int(random.next() % 4)]
            return seat("\(prefix)-\(index)", event: event, label: label, status: status, at: at, origin: origin,
                        holdToken: status == "reservedByToken" ? "hold-\(index % 7)" : nil,
                        orderId: status == "booked" ? "order-\(index)" : nil,
                        extraData: index % 3 == 0 ? #"{"userId":"\#(index)"}"# : nil,
                        quantity: label.hasPrefix("GA") ? Int64(1 + index % 4) : 1)
        }
    }

    /// Posts events (all must be accepted) and applies them to the model in order.
    static func post(_ events: [FeedEvent], to client: TestHTTPClient, model: inout StatusChangesModel, format: BodyFormat,
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let lines = events.map(TestFeeds.ndjsonLine)
        let body: String
        let contentType: String
        switch format {
        case .jsonObject:
            precondition(lines.count == 1)
            body = lines[0]; contentType = "application/json"
        case .jsonArray: body = "[" + lines.joined(separator: ",") + "]"; contentType = "application/json"
        case .ndjson: body = lines.joined(separator: "\n"); contentType = "application/x-ndjson"
        }
        let response = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: contentType, body: body)
        XCTAssertEqual(response.status, 200, response.text, file: file, line: line)
        XCTAssertEqual(try response.jsonObject()["accepted"] as? Int, events.count, response.text, file: file, line: line)
        for event in events { model.accept(event) }
    }

    struct Page {
        var object: [String: Any]
        var items: [[String: Any]]
        var ids: [Int64]
        var text: String
        var next: String? { object["next_page_starts_after"] as? String }
        var previous: String? { object["previous_page_ends_before"] as? String }
    }

    static func page(_ client: TestHTTPClient, _ path: String, key: String = ServerProcess.readKey,
                     file: StaticString = #filePath, line: UInt = #line) throws -> Page {
        let response = try client.request("GET", path, key: key)
        XCTAssertEqual(response.status, 200, "\(path): \(response.text)", file: file, line: line)
        XCTAssertEqual(response.headers["content-type"], "application/json", file: file, line: line)
        let object = try response.jsonObject()
        let items = object["items"] as? [[String: Any]] ?? []
        for name in ["next_page_starts_after", "previous_page_ends_before"] where object[name] != nil {
            XCTAssertTrue(object[name] is String, "\(name) is a string: \(response.text)", file: file, line: line)
        }
        return Page(object: object, items: items, ids: items.map { Int64($0["id"] as? Int ?? -1) }, text: response.text)
    }

    static func ids(_ response: TestHTTPClient.Response) throws -> [Int64] {
        ((try response.jsonObject()["items"] as? [[String: Any]]) ?? []).map { Int64($0["id"] as? Int ?? -1) }
    }

    static func encode(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }

    /// Walks the whole listing forward with `start_after_id` and backward with `end_before_id`,
    /// checking every page's items and that each cursor is there exactly when a page exists that way.
    static func assertWalksBothWays(_ client: TestHTTPClient, path: String, query: String, limit: Int, expected: [Int64],
                                    file: StaticString = #filePath, line: UInt = #line) throws {
        let context = "\(path)?\(query) limit=\(limit)"
        func url(_ cursor: String?) -> String { "\(path)?\(query)&limit=\(limit)" + (cursor ?? "") }
        func check(_ page: Page, _ range: Range<Int>, _ what: String) {
            XCTAssertEqual(page.ids, Array(expected[range]), "\(context) \(what)", file: file, line: line)
            XCTAssertEqual(page.previous, range.lowerBound > 0 ? page.ids.first.map(String.init) : nil,
                           "\(context) \(what): previous_page_ends_before", file: file, line: line)
            XCTAssertEqual(page.next, range.upperBound < expected.count ? page.ids.last.map(String.init) : nil,
                           "\(context) \(what): next_page_starts_after", file: file, line: line)
        }
        // Forward.
        var forward: [Int64] = []
        var cursor: String?
        var offset = 0
        var last: Page?
        repeat {
            let page = try SCE.page(client, url(cursor.map { "&start_after_id=\($0)" }), file: file, line: line)
            check(page, offset..<min(offset + limit, expected.count), "forward page at \(offset)")
            forward += page.ids
            offset += limit
            cursor = page.next
            last = page
            if offset > expected.count + limit { return XCTFail("\(context): runaway forward walk", file: file, line: line) }
        } while cursor != nil
        XCTAssertEqual(forward, expected, "\(context): forward concatenation", file: file, line: line)

        // Backward, from the last page's previous cursor.
        var backward: [[Int64]] = [last?.ids ?? []]
        var end = expected.count - (last?.ids.count ?? 0)
        cursor = last?.previous
        while let before = cursor {
            let page = try SCE.page(client, url("&end_before_id=\(before)"), file: file, line: line)
            check(page, max(0, end - limit)..<end, "backward page ending at \(end)")
            backward.insert(page.ids, at: 0)
            end -= page.ids.count
            cursor = page.previous
            if page.ids.isEmpty { return XCTFail("\(context): empty backward page", file: file, line: line) }
        }
        XCTAssertEqual(Array(backward.joined()), expected, "\(context): backward concatenation", file: file, line: line)

        // Past either end: an empty page without the cursor that way.
        if let first = expected.first, let final = expected.last {
            let before = try SCE.page(client, url("&end_before_id=\(first)"), file: file, line: line)
            XCTAssertEqual(before.ids, [], "\(context): before the first", file: file, line: line)
            XCTAssertNil(before.previous, "\(context): before the first", file: file, line: line)
            let after = try SCE.page(client, url("&start_after_id=\(final)"), file: file, line: line)
            XCTAssertEqual(after.ids, [], "\(context): after the last", file: file, line: line)
            XCTAssertNil(after.next, "\(context): after the last", file: file, line: line)
        }
    }
}
