import Foundation
import HeadcountCore
import XCTest
@testable import HeadcountCore

final class StatusChangeLogTests: XCTestCase {
    let t0: Int64 = 1_700_000_000_000
    var now: Int64 { t0 + 86_400_000 }

    private func query(_ sort: StatusChangeSortField = .date, ascending: Bool = false, filter: String? = nil,
                       type: StatusChangeFilterType = .contains, limit: Int = 1000,
                       cursor: StatusChangeCursor = .none) -> StatusChangeQuery {
        StatusChangeQuery(sortField: sort, ascending: ascending, filter: filter, filterType: type, limit: limit,
                          cursor: cursor)
    }

    private func ids(_ h: StatusChangeHarness, _ q: StatusChangeQuery, event: String = "E1",
                     label: String? = nil) throws -> [Int64] {
        try h.page(q, event: event, objectLabel: label, now: now)?.ids ?? []
    }

    /// A small mixed event: labels sort by bytes (A-1 < A-10 < A-2 < B-1 < a-1 < é).
    private func sample() -> StatusChangeHarness {
        let h = StatusChangeHarness()
        h.seat("A-2", "booked", at: t0 + 5)            // 1
        h.seat("A-10", "free", at: t0 + 1)             // 2
        h.seat("B-1", "reservedByToken", at: t0 + 9)   // 3
        h.seat("A-1", "booked", at: t0 + 3)            // 4
        h.seat("é", "resale", at: t0 + 7)              // 5
        h.seat("a-1", "Custom", at: t0 + 2)            // 6
        return h
    }

    func testOrderingForEachSortAndDirection() throws {
        let h = sample()
        XCTAssertEqual(try ids(h, query()), [3, 5, 1, 4, 6, 2])
        XCTAssertEqual(try ids(h, query(ascending: true)), [2, 6, 4, 1, 5, 3])
        XCTAssertEqual(try ids(h, query(.objectLabel, ascending: true)), [4, 2, 1, 3, 6, 5])
        XCTAssertEqual(try ids(h, query(.objectLabel, ascending: false)), [5, 6, 3, 1, 2, 4])
        // Custom < booked < free < resale < reservedByToken (bytes: uppercase first).
        XCTAssertEqual(try ids(h, query(.status, ascending: true)), [6, 4, 1, 2, 5, 3])
        XCTAssertEqual(try ids(h, query(.status, ascending: false)), [3, 5, 2, 4, 1, 6])
        for sort in StatusChangeSortField.allCases {
            for ascending in [true, false] {
                let q = query(sort, ascending: ascending)
                XCTAssertEqual(try h.page(q, now: now), h.modelPage("E1", query: q, now: now), "\(sort) \(ascending)")
            }
        }
    }

    func testEqualKeysListNewestFirstInBothDirections() throws {
        let h = StatusChangeHarness()
        for i in 0..<5 { h.seat(i % 2 == 0 ? "A" : "B", "booked", at: t0) }  // ids 1…5, one date, one status
        h.seat("A", "booked", at: t0 - 1)  // 6: older
        h.seat("A", "booked", at: t0 + 1)  // 7: newer
        XCTAssertEqual(try ids(h, query(.date, ascending: true)), [6, 5, 4, 3, 2, 1, 7])
        XCTAssertEqual(try ids(h, query(.date, ascending: false)), [7, 5, 4, 3, 2, 1, 6])
        XCTAssertEqual(try ids(h, query(.status, ascending: true)), [7, 6, 5, 4, 3, 2, 1])
        XCTAssertEqual(try ids(h, query(.status, ascending: false)), [7, 6, 5, 4, 3, 2, 1])
        XCTAssertEqual(try ids(h, query(.objectLabel, ascending: true)), [7, 6, 5, 3, 1, 4, 2])
        XCTAssertEqual(try ids(h, query(.objectLabel, ascending: false)), [4, 2, 7, 6, 5, 3, 1])
        // Paging through a run of equal keys, both ways.
        for ascending in [true, false] {
            let q = query(.date, ascending: ascending, limit: 2, cursor: .startAfter(5))
            XCTAssertEqual(try h.page(q, now: now), h.modelPage("E1", query: q, now: now))
            XCTAssertEqual(try ids(h, q), [4, 3])
            let back = query(.date, ascending: ascending, limit: 2, cursor: .endBefore(2))
            XCTAssertEqual(try ids(h, back), [4, 3])
            XCTAssertEqual(try h.page(back, now: now), h.modelPage("E1", query: back, now: now))
        }
    }

    /// Walks the whole listing forward with `start_after_id` and back with `end_before_id`;
    /// both concatenations equal the full ordered list.
    private func assertWalks(_ h: StatusChangeHarness, _ base: StatusChangeQuery, event: String = "E1",
                             label: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        var full = base
        full.limit = 1000
        full.cursor = .none
        let expected = h.ordered(event, objectLabel: label, query: full, now: now).map(\.id)
        XCTAssertEqual(try h.page(full, event: event, objectLabel: label, now: now)?.ids, expected, file: file, line: line)

        var forward: [Int64] = []
        var q = base
        q.cursor = .none
        var pages: [StatusChangeHarness.ModelPage] = []
        while true {
            guard let page = try h.page(q, event: event, objectLabel: label, now: now) else { return XCTFail("nil page") }
            XCTAssertEqual(page, h.modelPage(event, objectLabel: label, query: q, now: now), "\(q)", file: file, line: line)
            XCTAssertLessThanOrEqual(page.ids.count, base.limit)
            pages.append(page)
            forward += page.ids
            guard let next = page.next else { break }
            XCTAssertEqual(next, page.ids.last)
            q.cursor = .startAfter(next)
            if pages.count > expected.count + 2 { return XCTFail("no end", file: file, line: line) }
        }
        XCTAssertEqual(forward, expected, "forward \(base)", file: file, line: line)

        guard let last = pages.last else { return }
        var backward = last.ids
        var previous = last.previous
        var steps = 0
        while let cursor = previous {
            q.cursor = .endBefore(cursor)
            guard let page = try h.page(q, event: event, objectLabel: label, now: now) else { return XCTFail("nil page") }
            XCTAssertEqual(page, h.modelPage(event, objectLabel: label, query: q, now: now), "\(q)", file: file, line: line)
            XCTAssertNotNil(page.next, file: file, line: line)
            backward = page.ids + backward
            previous = page.previous
            steps += 1
            if steps > expected.count + 2 { return XCTFail("no start", file: file, line: line) }
        }
        XCTAssertEqual(backward, expected, "backward \(base)", file: file, line: line)
    }

    private func richEvent() -> StatusChangeHarness {
        let h = StatusChangeHarness()
        var random = SplitMix64(seed: 42)
        let labels = ["A-1", "A-11", "A-10", "A-2", "Section A-A-1", "B-1", "B-12", "GA", "é-1", "a-1"]
        let statuses = ["booked", "free", "reservedByToken", "resale"]
        for _ in 0..<60 {
            let label = labels[Int(random.next() % UInt64(labels.count))]
            let status = statuses[Int(random.next() % UInt64(statuses.count))]
            h.seat(label, status, at: t0 + Int64(random.next() % 12))  // many equal dates
        }
        return h
    }

    func testCursorsWalkEveryOrderBothWays() throws {
        let h = richEvent()
        for sort in StatusChangeSortField.allCases {
            for ascending in [true, false] {
                for limit in [1, 2, 7, 60, 1000] {
                    try assertWalks(h, query(sort, ascending: ascending, limit: limit))
                }
            }
        }
    }

    func testFiltersOfEveryTypeWithCursors() throws {
        let h = richEvent()
        let filters: [(String, StatusChangeFilterType)] = [
            ("A-1", .contains), ("A-1", .beginsWith), ("-1", .endsWith), ("A-1", .matches), ("1", .contains),
            ("Z", .contains), ("é", .beginsWith), ("GA", .matches), ("", .contains),
        ]
        for (filter, type) in filters {
            for sort in StatusChangeSortField.allCases {
                for ascending in [true, false] {
                    for limit in [1, 3, 1000] {
                        try assertWalks(h, query(sort, ascending: ascending, filter: filter, type: type, limit: limit))
                    }
                }
            }
        }
        // The seed's example: 'A-1' finds 'A-11', 'A-1' and 'Section A-A-1'.
        let labels = Set(try h.log.list(eventKey: "E1", objectLabel: nil, query: query(filter: "A-1"), now: now)!
            .items.map(\.objectLabel))
        XCTAssertEqual(labels, ["A-1", "A-11", "A-10", "Section A-A-1"])
        let begins = Set(try h.log.list(eventKey: "E1", objectLabel: nil, query: query(filter: "A-1", type: .beginsWith),
                                        now: now)!.items.map(\.objectLabel))
        XCTAssertEqual(begins, ["A-1", "A-11", "A-10"])
        let exact = Set(try h.log.list(eventKey: "E1", objectLabel: nil, query: query(filter: "A-1", type: .matches),
                                       now: now)!.items.map(\.objectLabel))
        XCTAssertEqual(exact, ["A-1"])
        let ends = Set(try h.log.list(eventKey: "E1", objectLabel: nil, query: query(filter: "-1", type: .endsWith),
                                      now: now)!.items.map(\.objectLabel))
        XCTAssertEqual(ends, ["A-1", "Section A-A-1", "B-1", "é-1", "a-1"])
        // Case-sensitive.
        XCTAssertEqual(try ids(h, query(filter: "a-")), h.ordered("E1", objectLabel: nil, query: query(filter: "a-"), now: now).map(\.id))
        XCTAssertTrue(try h.log.list(eventKey: "E1", objectLabel: nil, query: query(filter: "a-"), now: now)!
            .items.allSatisfy { $0.objectLabel == "a-1" })
    }

    func testCursorOutsideTheFilteredListingIsPositionedByItsKey() throws {
        let h = richEvent()
        let outside = h.changes.first { !$0.change.objectLabel.contains("A-1") }!.id
        for sort in StatusChangeSortField.allCases {
            for ascending in [true, false] {
                for cursor in [StatusChangeCursor.startAfter(outside), .endBefore(outside)] {
                    let q = query(sort, ascending: ascending, filter: "A-1", limit: 3, cursor: cursor)
                    XCTAssertEqual(try h.page(q, now: now), h.modelPage("E1", query: q, now: now), "\(q)")
                }
            }
        }
    }

    func testObjectLabelListing() throws {
        let h = richEvent()
        for label in ["A-1", "GA", "é-1"] {
            for sort in StatusChangeSortField.allCases {
                for ascending in [true, false] {
                    try assertWalks(h, query(sort, ascending: ascending, limit: 2), label: label)
                    try assertWalks(h, query(sort, ascending: ascending, filter: "A", limit: 2), label: label)
                }
            }
            let all = try h.log.list(eventKey: "E1", objectLabel: label, query: query(), now: now)!
            XCTAssertFalse(all.items.isEmpty)
            XCTAssertTrue(all.items.allSatisfy { $0.objectLabel == label })
        }
        // Unknown label: an empty page, not an unknown event.
        let none = try h.log.list(eventKey: "E1", objectLabel: "nope", query: query(), now: now)
        XCTAssertEqual(none, StatusChangePage(items: [], nextPageStartsAfter: nil, previousPageEndsBefore: nil))
        // A filter the label does not match: empty.
        XCTAssertEqual(try ids(h, query(filter: "Z"), label: "A-1"), [])
    }

    func testPresenceFromLateAndOutOfOrderChartEvents() throws {
        let h = StatusChangeHarness()
        let a = h.seat("A-1", at: t0)
        let b = h.seat("B-1", at: t0)
        let c = h.seat("C-1", at: t0)
        func item(_ id: Int64) throws -> StatusChangeItem {
            try h.log.list(eventKey: "E1", objectLabel: nil, query: query(), now: now)!.items.first { $0.id == id }!
        }
        XCTAssertTrue(try item(a).isPresentOnChart)
        XCTAssertNil(try item(a).notPresentOnChartReason)

        h.chartEvent("A-1", removed: .switchedToBookWholeTable, at: t0 + 100)
        XCTAssertFalse(try item(a).isPresentOnChart)
        XCTAssertEqual(try item(a).notPresentOnChartReason, .switchedToBookWholeTable)
        // An older restore arriving late changes nothing.
        h.chartEvent("A-1", removed: nil, at: t0 + 50)
        XCTAssertFalse(try item(a).isPresentOnChart)
        // A newer restore wins.
        h.chartEvent("A-1", removed: nil, at: t0 + 200)
        XCTAssertTrue(try item(a).isPresentOnChart)
        // Equal occurredAt: the later sequence wins.
        h.chartEvent("A-1", removed: .renamedOrDeleted, at: t0 + 200)
        XCTAssertEqual(try item(a).notPresentOnChartReason, .renamedOrDeleted)

        // Chart event before any status change of the label; then a change arrives.
        h.chartEvent("D-1", removed: .switchedToBookBySeat, at: t0)
        let d = h.seat("D-1", at: t0 + 1)
        XCTAssertEqual(try item(d).notPresentOnChartReason, .switchedToBookBySeat)
        h.chartEvent("B-1", removed: .renamedOrDeleted, at: t0 - 1000)  // old, but the only one: removed
        XCTAssertFalse(try item(b).isPresentOnChart)
        XCTAssertTrue(try item(c).isPresentOnChart)
        // Other events' chart state is separate.
        h.chartEvent("C-1", event: "E2", removed: .renamedOrDeleted, at: t0)
        XCTAssertTrue(try item(c).isPresentOnChart)
        for id in [a, b, c, d] { XCTAssertEqual(try item(id), h.modelItem(id)) }
    }

    func testRetention() throws {
        let day: Int64 = 86_400_000
        let h = StatusChangeHarness(retention: 10 * day)
        let old = h.seat("A", at: t0)
        let mid = h.seat("B", at: t0 + 5 * day)
        let new = h.seat("C", at: t0 + 9 * day)
        func listed(at now: Int64) throws -> [Int64] {
            try h.log.list(eventKey: "E1", objectLabel: nil, query: query(), now: now)!.items.map(\.id)
        }
        XCTAssertEqual(try listed(at: t0 + 10 * day), [new, mid, old])
        XCTAssertEqual(try listed(at: t0 + 10 * day + 1), [new, mid])   // hidden before any expire
        XCTAssertEqual(h.log.changeCount, 3)
        h.expire(now: t0 + 10 * day + 1)
        XCTAssertEqual(h.log.changeCount, 2)
        XCTAssertEqual(try listed(at: t0), [new, mid])  // an earlier `now` does not bring it back
        // A cursor on the expired change: gone.
        XCTAssertThrowsError(try h.log.list(eventKey: "E1", objectLabel: nil,
                                            query: query(cursor: .startAfter(old)), now: t0 + 10 * day + 1))
        // A late change dated before the floor takes an id but is not kept.
        let late = h.seat("D", at: t0)
        XCTAssertEqual(late, 4)
        XCTAssertEqual(h.log.lastChangeID, 4)
        XCTAssertEqual(h.log.changeCount, 2)
        let next = h.seat("E", at: t0 + 10 * day)
        XCTAssertEqual(next, 5)
        XCTAssertEqual(try listed(at: t0 + 10 * day + 1), [next, new, mid])
        h.expire(now: t0 + 20 * day)
        XCTAssertEqual(h.log.changeCount, 1)  // dated exactly at the cut: kept
        h.expire(now: t0 + 20 * day + 1)
        XCTAssertEqual(h.log.changeCount, 0)
        XCTAssertEqual(try listed(at: t0 + 20 * day + 1), [])
        XCTAssertEqual(h.log.eventNumber(forKey: "E1"), 1)  // the event stays known

        // Many expirations in a big event: reclaimed in batches, results unaffected.
        let big = StatusChangeHarness(retention: 1000)
        for i in 0..<5000 { big.seat("L\(i % 97)", i % 3 == 0 ? "free" : "booked", at: Int64(i)) }
        for cut in stride(from: 1000, through: 6000, by: 250) {
            big.expire(now: Int64(cut))
            XCTAssertEqual(big.log.changeCount, big.changes.count)
            for sort in StatusChangeSortField.allCases {
                let q = query(sort, ascending: cut % 500 == 0, filter: cut % 3 == 0 ? "L1" : nil, limit: 50)
                XCTAssertEqual(try big.page(q, now: Int64(cut)), big.modelPage("E1", query: q, now: Int64(cut)))
            }
        }
    }

    func testIdsAndEventNumbersSurviveEncodeDecode() throws {
        let h = StatusChangeHarness(retention: 1_000_000)
        h.seat("A-1", event: "E1", at: t0, quantity: 5_000_000_000, orderId: "o1", extraData: #"{"userId":"1"}"#)
        h.chartEvent("X", event: "E2", removed: .renamedOrDeleted, at: t0)
        h.seat("B-1", "free", event: "E3", at: t0 + 1, holdToken: "tok", displayedLabel: "Seat B1", origin: .heldByUser)
        h.seat("X", event: "E2", at: t0 + 2, quantity: 0)
        h.seat("A-2", event: "E1", at: t0 - 2_000_000)
        h.expire(now: t0)  // the last one is dead (not yet compacted or compacted: either way gone)
        var bytes: [UInt8] = [1, 2, 3]  // encode appends
        h.log.encode(into: &bytes)
        XCTAssertEqual(Array(bytes.prefix(3)), [1, 2, 3])
        let decoded = try bytes.withUnsafeBytes { try StatusChangeLog.decode(UnsafeRawBufferPointer(rebasing: $0[3...])) }
        XCTAssertEqual(decoded.eventNumber(forKey: "E1"), 1)
        XCTAssertEqual(decoded.eventNumber(forKey: "E2"), 2)
        XCTAssertEqual(decoded.eventNumber(forKey: "E3"), 3)
        XCTAssertEqual(decoded.lastChangeID, 4)
        XCTAssertEqual(decoded.changeCount, h.log.changeCount)
        XCTAssertEqual(decoded.retentionMilliseconds, 1_000_000)
        for event in ["E1", "E2", "E3"] {
            XCTAssertEqual(try decoded.list(eventKey: event, objectLabel: nil, query: query(), now: t0),
                           try h.log.list(eventKey: event, objectLabel: nil, query: query(), now: t0))
            for id in try h.log.list(eventKey: event, objectLabel: nil, query: query(), now: t0)!.items.map(\.id) {
                XCTAssertEqual(try decoded.list(eventKey: event, objectLabel: nil, query: query(), now: t0)!
                    .items.first { $0.id == id }, h.modelItem(id))
            }
        }
        // Re-encoding is byte-identical; ids continue after decode.
        var again: [UInt8] = []
        decoded.encode(into: &again)
        XCTAssertEqual(again, Array(bytes[3...]))
        let seq = FeedEvent(id: "x", kind: .seatStatusChanged, eventId: "E4", ticketId: "", occurredAt: t0,
                            details: .seatStatus(SeatStatusChange(objectLabel: "Z", status: "booked", originType: .holdExpired)))
        decoded.apply(seq, sequence: 100)
        XCTAssertEqual(decoded.eventNumber(forKey: "E4"), 4)
        XCTAssertEqual(try decoded.list(eventKey: "E4", objectLabel: nil, query: query(), now: t0)!.items.map(\.id), [5])
        // Overridden retention.
        let shorter = try again.withUnsafeBytes { try StatusChangeLog.decode($0, retentionMilliseconds: 5) }
        XCTAssertEqual(shorter.retentionMilliseconds, 5)

        // Corrupt input throws, never traps.
        for cut in stride(from: 0, to: again.count, by: max(1, again.count / 97)) {
            XCTAssertThrowsError(try Array(again.prefix(cut)).withUnsafeBytes { try StatusChangeLog.decode($0) })
        }
        var random = SplitMix64(seed: 7)
        for _ in 0..<300 {
            var corrupt = again
            for _ in 0..<3 { corrupt[Int(random.next() % UInt64(corrupt.count))] = UInt8(truncatingIfNeeded: random.next()) }
            _ = try? corrupt.withUnsafeBytes { try StatusChangeLog.decode($0) }
        }
    }

    /// A snapshot source (what the snapshot thread encodes while the loop goes on) keeps the
    /// log as it was when taken: changes, new events, chart events and a compaction after it
    /// do not reach it, and it encodes to the bytes the log encoded then.
    func testASnapshotSourceIsFrozenWhileTheLogChanges() throws {
        let h = StatusChangeHarness(retention: 1_000_000)
        for i in 0..<3_000 {
            h.seat("S\(i % 211)", i % 3 == 0 ? "free" : "booked", event: i % 5 == 0 ? "E2" : "E1", at: t0 + Int64(i),
                   quantity: i % 7 == 0 ? 5_000_000_000 : 1, orderId: i % 4 == 0 ? "o\(i)" : nil)
        }
        h.chartEvent("S3", event: "E1", removed: .renamedOrDeleted, at: t0 + 10)
        var before: [UInt8] = []
        h.log.encode(into: &before)
        let source = h.log.snapshotSource()
        for i in 0..<2_000 { h.seat("T\(i % 50)", "booked", event: i % 2 == 0 ? "E1" : "E3", at: t0 + 5_000 + Int64(i)) }
        h.chartEvent("S4", event: "E1", removed: .renamedOrDeleted, at: t0 + 6_000)
        h.expire(now: t0 + 1_002_000)  // most of the first changes die (and are compacted away)
        var after: [UInt8] = []
        h.log.encode(into: &after)
        XCTAssertNotEqual(after, before)
        var frozen: [UInt8] = []
        source.encode(into: &frozen)
        XCTAssertEqual(frozen, before)
        let decoded = try frozen.withUnsafeBytes { try StatusChangeLog.decode($0) }
        XCTAssertEqual(decoded.lastChangeID, 3_000)
        XCTAssertNil(decoded.eventNumber(forKey: "E3"))
    }

    func testEmptyLogRoundTrip() throws {
        let log = StatusChangeLog()
        var bytes: [UInt8] = []
        log.encode(into: &bytes)
        let decoded = try bytes.withUnsafeBytes { try StatusChangeLog.decode($0) }
        XCTAssertEqual(decoded.eventCount, 0)
        XCTAssertEqual(decoded.lastChangeID, 0)
    }

    func testUnknownEventsCursorsAndIgnoredKinds() throws {
        let h = StatusChangeHarness()
        h.seat("A", event: "E1", at: t0)
        h.seat("A", event: "E2", at: t0)
        XCTAssertNil(try h.log.list(eventKey: "nope", objectLabel: nil, query: query(), now: now))
        XCTAssertNil(h.log.eventNumber(forKey: "nope"))
        for cursor in [StatusChangeCursor.startAfter(2), .endBefore(99)] {
            XCTAssertThrowsError(try h.log.list(eventKey: "E1", objectLabel: nil, query: query(cursor: cursor), now: now)) {
                let error = $0 as! StatusChangeQueryError
                XCTAssertEqual(error.parameter, cursor == .startAfter(2) ? "start_after_id" : "end_before_id")
            }
        }
        // Ticket events are not seat events: no number, no id.
        h.log.apply(FeedEvent(id: "t", kind: .ticketCreated, eventId: "E9", ticketId: "T", occurredAt: t0), sequence: 99)
        XCTAssertNil(h.log.eventNumber(forKey: "E9"))
        XCTAssertEqual(h.log.lastChangeID, 2)
        // A chart event alone makes the event known (and numbered) with no changes.
        h.chartEvent("A", event: "E3", removed: .renamedOrDeleted, at: t0)
        XCTAssertEqual(h.log.eventNumber(forKey: "E3"), 3)
        XCTAssertEqual(try h.log.list(eventKey: "E3", objectLabel: nil, query: query(), now: now)?.items, [])
        // Limits outside 1…1000 are clamped.
        XCTAssertEqual(try ids(h, query(limit: 0)), [1])
    }

    func testQueryParsing() {
        func parse(_ items: [(String, String)]) -> Result<StatusChangeQuery, StatusChangeQueryError> {
            StatusChangeQuery.parse(queryItems: items)
        }
        XCTAssertEqual(try parse([]).get(), StatusChangeQuery())
        XCTAssertEqual(try parse([]).get().sortField, .date)
        XCTAssertFalse(try parse([]).get().ascending)
        XCTAssertEqual(try parse([]).get().limit, 1000)
        let cases: [(String, StatusChangeSortField, Bool)] = [
            ("date", .date, true), ("date:asc", .date, true), ("date:DESC", .date, false), ("DATE:Desc", .date, false),
            ("objectLabel", .objectLabel, true), ("objectLabel:desc", .objectLabel, false),
            ("status:ASC", .status, true), ("status", .status, true),
        ]
        for (value, field, ascending) in cases {
            let q = try? parse([("sort", value)]).get()
            XCTAssertEqual(q?.sortField, field, value)
            XCTAssertEqual(q?.ascending, ascending, value)
        }
        for bad in ["", "name", "date:up", "date:asc:desc", ":asc", "date:"] {
            XCTAssertEqual(parse([("sort", bad)]).failure?.parameter, "sort", bad)
        }
        XCTAssertEqual(try parse([("filter", "A-1"), ("filterType", "BEGINS_WITH")]).get().filterType, .beginsWith)
        XCTAssertEqual(try parse([("filterType", "ends_with")]).get().filterType, .endsWith)
        XCTAssertEqual(try parse([("filterType", "MATCHES")]).get().filterType, .matches)
        XCTAssertEqual(try parse([("filterType", "CONTAINS")]).get().filterType, .contains)
        XCTAssertEqual(try parse([("filter", "")]).get().filter, nil)
        XCTAssertEqual(try parse([("filter", "A-1")]).get().filter, "A-1")
        XCTAssertEqual(parse([("filterType", "LIKE")]).failure?.parameter, "filterType")
        XCTAssertEqual(try parse([("limit", "1")]).get().limit, 1)
        XCTAssertEqual(try parse([("limit", "1000")]).get().limit, 1000)
        for bad in ["0", "1001", "-1", "x", "", "1e3", "99999999999999999999"] {
            XCTAssertEqual(parse([("limit", bad)]).failure?.parameter, "limit", bad)
        }
        XCTAssertEqual(try parse([("start_after_id", "170")]).get().cursor, .startAfter(170))
        XCTAssertEqual(try parse([("end_before_id", "160")]).get().cursor, .endBefore(160))
        XCTAssertEqual(parse([("start_after_id", "abc")]).failure?.parameter, "start_after_id")
        XCTAssertEqual(parse([("end_before_id", "0")]).failure?.parameter, "end_before_id")
        let both = parse([("start_after_id", "1"), ("end_before_id", "2")]).failure
        XCTAssertEqual(both?.parameter, "start_after_id")
        XCTAssertTrue(both?.message.contains("start_after_id and end_before_id are exclusive") ?? false)
        XCTAssertEqual(try parse([("unknown", "x"), ("expand", "y"), ("limit", "5"), ("limit", "7")]).get().limit, 7)
    }

    func testJSONShape() throws {
        let seedNow: Int64 = 1_493_981_924_715 + 1000
        let h = StatusChangeHarness()
        h.seat("A-1", "booked", at: 1_493_981_924_715, orderId: "anOrder", extraData: #"{"userId":"123"}"#)
        h.seat("B-1", "reservedByToken", at: 1_493_978_324_715, orderId: "anotherOrder",
               extraData: #"{"userId":"456"}"#, holdToken: "wvXbB9MlHt", origin: .heldByUser)
        h.seat("C-\"1\"", "free", at: 1_493_978_324_000, displayedLabel: "Seat C1", origin: .apiCall, ip: nil)
        h.chartEvent("B-1", removed: .renamedOrDeleted, at: 1_493_981_924_715)

        let page = try h.log.list(eventKey: "E1", objectLabel: nil, query: query(limit: 1, cursor: .startAfter(1)), now: seedNow)!
        var writer = JSONWriter()
        page.writeJSON(into: &writer)
        let json = try JSONSerialization.jsonObject(with: Data(writer.bytes)) as! [String: Any]
        XCTAssertEqual(Set(json.keys), ["items", "next_page_starts_after", "previous_page_ends_before"])
        XCTAssertEqual(json["next_page_starts_after"] as? String, "2")
        XCTAssertEqual(json["previous_page_ends_before"] as? String, "2")
        let item = (json["items"] as! [[String: Any]])[0]
        XCTAssertEqual(Set(item.keys), ["id", "eventId", "status", "quantity", "objectLabel", "displayedLabel", "date",
                                        "orderId", "extraData", "holdToken", "origin", "isPresentOnChart",
                                        "notPresentOnChartReason"])
        XCTAssertEqual(item["id"] as? Int, 2)
        XCTAssertEqual(item["eventId"] as? Int, 1)
        XCTAssertEqual(item["status"] as? String, "reservedByToken")
        XCTAssertEqual(item["quantity"] as? Int, 1)
        XCTAssertEqual(item["objectLabel"] as? String, "B-1")
        XCTAssertEqual(item["displayedLabel"] as? String, "B-1")
        XCTAssertEqual(item["date"] as? String, "2017-05-05T09:58:44.715Z")
        XCTAssertEqual(item["orderId"] as? String, "anotherOrder")
        XCTAssertEqual((item["extraData"] as? [String: Any])?["userId"] as? String, "456")
        XCTAssertEqual(item["holdToken"] as? String, "wvXbB9MlHt")
        XCTAssertEqual(item["origin"] as? [String: String], ["type": "HELD_BY_USER"])
        XCTAssertEqual(item["isPresentOnChart"] as? Bool, false)
        XCTAssertEqual(item["notPresentOnChartReason"] as? String, "RENAMED_OR_DELETED")

        // The whole list: key order, nulls, ip, omitted cursors.
        let all = try h.log.list(eventKey: "E1", objectLabel: nil, query: query(), now: seedNow)!
        var w = JSONWriter()
        all.writeJSON(into: &w)
        let text = String(decoding: w.bytes, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix(#"{"items":[{"id":1,"eventId":1,"status":"booked","quantity":1,"objectLabel":"A-1","displayedLabel":"A-1","date":"2017-05-05T10:58:44.715Z","orderId":"anOrder","extraData":{"userId":"123"},"holdToken":null,"origin":{"type":"API_CALL","ip":"1.2.3.4"},"isPresentOnChart":true},"#), text)
        XCTAssertTrue(text.hasSuffix(#"{"id":3,"eventId":1,"status":"free","quantity":1,"objectLabel":"C-\"1\"","displayedLabel":"Seat C1","date":"2017-05-05T09:58:44.000Z","orderId":null,"extraData":null,"holdToken":null,"origin":{"type":"API_CALL"},"isPresentOnChart":true}]}"#), text)
        let parsed = try JSONSerialization.jsonObject(with: Data(w.bytes)) as! [String: Any]
        XCTAssertEqual(Set(parsed.keys), ["items"])
        let third = (parsed["items"] as! [[String: Any]])[2]
        XCTAssertTrue(third["orderId"] is NSNull)
        XCTAssertTrue(third["extraData"] is NSNull)
        XCTAssertTrue(third["holdToken"] is NSNull)
        XCTAssertNil(third["notPresentOnChartReason"])

        // Only a previous page.
        let lastPage = try h.log.list(eventKey: "E1", objectLabel: nil, query: query(limit: 2, cursor: .startAfter(1)), now: seedNow)!
        var w2 = JSONWriter()
        lastPage.writeJSON(into: &w2)
        let parsed2 = try JSONSerialization.jsonObject(with: Data(w2.bytes)) as! [String: Any]
        XCTAssertEqual(Set(parsed2.keys), ["items", "previous_page_ends_before"])
        XCTAssertEqual(parsed2["previous_page_ends_before"] as? String, "2")
    }

    func testTimestampFormatting() {
        func format(_ ms: Int64) -> String {
            var w = JSONWriter()
            SCL.writeTimestamp(ms, into: &w)
            return String(decoding: w.bytes, as: UTF8.self)
        }
        XCTAssertEqual(format(0), "\"1970-01-01T00:00:00.000Z\"")
        XCTAssertEqual(format(1_493_981_924_715), "\"2017-05-05T10:58:44.715Z\"")
        XCTAssertEqual(format(-1), "\"1969-12-31T23:59:59.999Z\"")
        XCTAssertEqual(format(951_782_400_000), "\"2000-02-29T00:00:00.000Z\"")
        XCTAssertEqual(format(253_402_300_799_999), "\"9999-12-31T23:59:59.999Z\"")
        XCTAssertEqual(format(-62_167_219_200_000), "\"0000-01-01T00:00:00.000Z\"")
        XCTAssertEqual(format(-62_167_219_200_001), "\"-000001-12-31T23:59:59.999Z\"")
        _ = format(.max)
        _ = format(.min)
        // Cross-check against Foundation's Gregorian calendar over a spread of instants.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var random = SplitMix64(seed: 3)
        for _ in 0..<2000 {
            let ms = Int64(random.next() % 253_402_300_799_999)
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second],
                                            from: Date(timeIntervalSince1970: Double(ms / 1000)))
            let expected = String(format: "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", c.year!, c.month!, c.day!,
                                  c.hour!, c.minute!, c.second!, Int(ms % 1000))
            XCTAssertEqual(format(ms), expected, "\(ms)")
            if format(ms) != expected { break }
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
