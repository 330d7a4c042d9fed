import Foundation
import HeadcountCore
import HeadcountTestSupport
import XCTest

/// Status changes, their ids, event numbers and presence survive a crash (SIGKILL: WAL
/// replay), a clean stop (SIGTERM: final snapshot, decoded at start) and a crash after a
/// snapshot (snapshot + WAL tail): every listing is byte-identical across each restart.
final class StatusChangesRecoveryEndToEndTests: XCTestCase {
    /// The listings compared across restarts: every sort, filters, cursors, per-object.
    private func listings(_ model: StatusChangesModel) -> [String] {
        var paths: [String] = []
        for event in ["R1", "R2", "R3"] {
            let base = "/events/\(event)/status-changes"
            paths += [base, "\(base)?sort=date:asc", "\(base)?sort=objectLabel", "\(base)?sort=objectLabel:desc",
                      "\(base)?sort=status", "\(base)?sort=status:desc", "\(base)?filter=A-1", "\(base)?filter=A&filterType=BEGINS_WITH",
                      "\(base)?limit=7", "\(base)?limit=7&sort=objectLabel"]
            let ids = model.ids(event: event, sort: .date, ascending: false)
            if ids.count > 10 {
                paths += ["\(base)?limit=5&start_after_id=\(ids[4])", "\(base)?limit=5&end_before_id=\(ids[ids.count - 3])"]
            }
            for label in ["A-1", "A 1/2", "B-2"] {
                paths.append("/events/\(event)/objects/\(SCE.encode(label))/status-changes")
            }
        }
        return paths
    }

    private func capture(_ server: ServerProcess, _ model: StatusChangesModel) throws -> [String: String] {
        let client = try server.client()
        var answers: [String: String] = [:]
        for path in listings(model) {
            let response = try client.request("GET", path, key: ServerProcess.readKey)
            if model.eventNumbers[String(path.split(separator: "/")[1])] == nil {
                // Not seen yet (its request id differs every time: only the code is compared).
                E2E.assertError(response, status: 404, code: "EVENT_NOT_FOUND")
                answers[path] = "404"
            } else {
                XCTAssertEqual(response.status, 200, "\(path): \(response.text)")
                answers[path] = response.text
            }
        }
        return answers
    }

    private func assertSame(_ before: [String: String], _ after: [String: String], _ what: String) {
        XCTAssertEqual(before.count, after.count)
        for (path, text) in before.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(after[path], text, "\(what): \(path) differs")
        }
    }

    /// Checks ids, numbers and presence against the model (not only against the last answer).
    private func assertMatchesModel(_ server: ServerProcess, _ model: StatusChangesModel, _ what: String) throws {
        let client = try server.client()
        for (event, number) in model.eventNumbers {
            let page = try SCE.page(client, "/events/\(event)/status-changes")
            XCTAssertEqual(page.ids, model.ids(event: event, sort: .date, ascending: false), "\(what): \(event)")
            for item in page.items {
                XCTAssertEqual(item["eventId"] as? Int, Int(number), "\(what): \(event) number")
                let (present, reason) = model.presence(event: event, label: item["objectLabel"] as? String ?? "")
                XCTAssertEqual(item["isPresentOnChart"] as? Bool, present, "\(what): \(item)")
                XCTAssertEqual(item["notPresentOnChartReason"] as? String, reason?.name, "\(what): \(item)")
            }
        }
    }

    func testListingsAreIdenticalAfterKillCleanStopAndKillAfterSnapshot() throws {
        let labels = ["A-1", "A-2", "A-10", "A 1/2", "B-1", "B-2", "GA1"]
        let server = try ServerProcess(extraArguments: ["--fsync", "on"])
        defer { server.terminate(); server.removeData() }
        try server.start()
        var model = StatusChangesModel()
        var client = try server.client()

        // Phase 1: changes, ticket events, chart removals; then SIGKILL (WAL replay only).
        try SCE.post([FeedEvent(id: "t-1", kind: .ticketCreated, eventId: "R2", ticketId: "T1", occurredAt: E2E.base)],
                     to: client, model: &model, format: .ndjson)
        let r1 = SCE.dataset(prefix: "r1", event: "R1", count: 120, seed: 21, labels: labels, base: E2E.base)
        let r2 = SCE.dataset(prefix: "r2", event: "R2", count: 40, seed: 22, labels: labels, base: E2E.base)
        for start in stride(from: 0, to: r1.count, by: 30) {
            try SCE.post(Array(r1[start..<min(start + 30, r1.count)]), to: client, model: &model, format: .ndjson)
            if start == 30 { try SCE.post(r2, to: client, model: &model, format: .jsonArray) }
        }
        let t = E2E.base + 200_000
        try SCE.post([SCE.chart("x1", event: "R1", label: "A-2", at: t, removal: .switchedToBookWholeTable),
                      SCE.chart("x2", event: "R1", label: "A 1/2", at: t, removal: .renamedOrDeleted),
                      SCE.chart("x3", event: "R2", label: "B-1", at: t, removal: .switchedToBookBySeat),
                      SCE.chart("x4", event: "R2", label: "B-1", at: t + 1_000, removal: nil),
                      SCE.chart("x5", event: "R2", label: "B-1", at: t - 1_000, removal: .renamedOrDeleted)],
                     to: client, model: &model, format: .ndjson)
        XCTAssertEqual(model.eventNumbers, ["R1": 1, "R2": 2])
        try assertMatchesModel(server, model, "before the kill")
        let phase1 = try capture(server, model)

        server.kill()
        try server.start()
        assertSame(phase1, try capture(server, model), "after SIGKILL")
        try assertMatchesModel(server, model, "after SIGKILL")

        // Re-sending an acknowledged batch adds nothing after the restart.
        client = try server.client()
        let again = try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson",
                                       body: r2.map(TestFeeds.ndjsonLine).joined(separator: "\n")).jsonObject()
        XCTAssertEqual(again["accepted"] as? Int, 0)
        XCTAssertEqual(again["duplicates"] as? Int, r2.count)

        // Phase 2: more changes after the restart continue the ids; a new event takes the next
        // number; a restore and a removal; then SIGTERM (final snapshot) and start from it.
        let more = SCE.dataset(prefix: "m", event: "R1", count: 25, seed: 23, labels: labels, base: E2E.base + 300_000)
        try SCE.post(more, to: client, model: &model, format: .ndjson)
        let r3 = SCE.dataset(prefix: "r3", event: "R3", count: 12, seed: 24, labels: labels, base: E2E.base)
        try SCE.post(r3, to: client, model: &model, format: .jsonArray)
        try SCE.post([SCE.chart("y1", event: "R1", label: "A-2", at: t + 5_000, removal: nil),
                      SCE.chart("y2", event: "R3", label: "A-1", at: t, removal: .switchedToBookWholeTable)],
                     to: client, model: &model, format: .ndjson)
        XCTAssertEqual(model.eventNumbers["R3"], 3)
        let firstNew = try SCE.page(client, "/events/R1/status-changes?sort=date:desc&limit=1").ids
        XCTAssertEqual(firstNew, [model.ids(event: "R1", sort: .date, ascending: false)[0]])
        XCTAssertGreaterThan(firstNew[0], Int64(1 + r1.count + r2.count), "ids continue after the restart")
        try assertMatchesModel(server, model, "before the clean stop")
        let phase2 = try capture(server, model)
        XCTAssertNotEqual(phase1, phase2)

        XCTAssertEqual(server.terminate(), 0)
        let snapshots = (try? FileManager.default.contentsOfDirectory(atPath: server.dataDirectory + "/snapshots")) ?? []
        XCTAssertFalse(snapshots.isEmpty, "a clean stop writes a snapshot")
        try server.start()
        XCTAssertTrue(server.output.contains("listening on"), server.output)
        assertSame(phase2, try capture(server, model), "after SIGTERM (snapshot)")
        try assertMatchesModel(server, model, "after SIGTERM (snapshot)")

        // Phase 3: changes on top of the snapshot, then SIGKILL: snapshot + WAL tail.
        client = try server.client()
        let tail = SCE.dataset(prefix: "tail", event: "R2", count: 15, seed: 25, labels: labels, base: E2E.base + 400_000)
        try SCE.post(tail, to: client, model: &model, format: .ndjson)
        try SCE.post([SCE.chart("z1", event: "R2", label: "B-2", at: t, removal: .renamedOrDeleted)], to: client, model: &model, format: .jsonObject)
        try assertMatchesModel(server, model, "before the second kill")
        let phase3 = try capture(server, model)
        server.kill()
        try server.start()
        assertSame(phase3, try capture(server, model), "after SIGKILL on top of a snapshot")
        try assertMatchesModel(server, model, "after SIGKILL on top of a snapshot")

        // And the ids still continue from where they were.
        client = try server.client()
        try SCE.post([SCE.seat("last", event: "R3", label: "B-2", status: "booked", at: E2E.base + 500_000)], to: client, model: &model, format: .ndjson)
        XCTAssertEqual(try SCE.page(client, "/events/R3/status-changes?limit=1").ids, [Int64(model.changes.count)])
    }
}
