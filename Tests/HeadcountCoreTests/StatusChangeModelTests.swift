import Foundation
@testable import HeadcountCore

/// Feeds a `StatusChangeLog` and mirrors it in a brute-force model (sort + filter + slice).
final class StatusChangeHarness {
    struct Change {
        var id: Int64
        var eventKey: String
        var date: Int64
        var change: SeatStatusChange
        var labelBytes: [UInt8]
        var statusBytes: [UInt8]
    }

    struct ChartState {
        var time: Int64
        var sequence: UInt64
        var reason: ChartRemovalReason?
    }

    struct ModelPage: Equatable, CustomStringConvertible {
        var ids: [Int64]
        var next: Int64?
        var previous: Int64?
        var description: String { "\(ids) next \(next.map(String.init) ?? "-") prev \(previous.map(String.init) ?? "-")" }
    }

    let log: StatusChangeLog
    let retention: Int64
    var sequence: UInt64 = 0
    var nextID: Int64 = 1
    var changes: [Change] = []
    var eventNumbers: [String: Int64] = [:]
    var chart: [String: [String: ChartState]] = [:]
    var expiryFloor: Int64 = .min
    /// Memoised `ordered` results; cleared by every change to the feed.
    var orderedCache: [String: [Change]] = [:]

    init(retention: Int64 = 365 * 86_400_000) {
        self.retention = retention
        log = StatusChangeLog(retentionMilliseconds: retention)
    }

    private func number(_ eventKey: String) {
        if eventNumbers[eventKey] == nil { eventNumbers[eventKey] = Int64(eventNumbers.count + 1) }
    }

    @discardableResult
    func seat(_ label: String, _ status: String = "booked", event eventKey: String = "E1", at date: Int64,
              quantity: Int64 = 1, orderId: String? = nil, extraData: String? = nil, holdToken: String? = nil,
              displayedLabel: String? = nil, origin: SeatOriginType = .apiCall, ip: String? = "1.2.3.4") -> Int64 {
        sequence += 1
        let change = SeatStatusChange(objectLabel: label, status: status, quantity: quantity, orderId: orderId,
                                      extraDataJSON: extraData, holdToken: holdToken, displayedLabel: displayedLabel,
                                      originType: origin, originIP: origin == .apiCall ? ip : nil)
        log.apply(FeedEvent(id: "f-\(sequence)", kind: .seatStatusChanged, eventId: eventKey, ticketId: "",
                            occurredAt: date, details: .seatStatus(change)), sequence: sequence)
        number(eventKey)
        orderedCache = [:]
        let id = nextID
        nextID += 1
        if date >= expiryFloor {
            changes.append(Change(id: id, eventKey: eventKey, date: date, change: change,
                                  labelBytes: Array(label.utf8), statusBytes: Array(status.utf8)))
        }
        return id
    }

    func chartEvent(_ label: String, event eventKey: String = "E1", removed reason: ChartRemovalReason?, at date: Int64) {
        sequence += 1
        let kind: FeedEventKind = reason == nil ? .chartObjectRestored : .chartObjectRemoved
        log.apply(FeedEvent(id: "f-\(sequence)", kind: kind, eventId: eventKey, ticketId: "", occurredAt: date,
                            details: .chartObject(label: label, removalReason: reason)), sequence: sequence)
        number(eventKey)
        let current = chart[eventKey, default: [:]][label]
        if current == nil || (date, sequence) > (current!.time, current!.sequence) {
            chart[eventKey, default: [:]][label] = ChartState(time: date, sequence: sequence, reason: reason)
        }
    }

    func expire(now: Int64) {
        log.expire(now: now)
        expiryFloor = max(expiryFloor, now - retention)
        changes.removeAll { $0.date < expiryFloor }
        orderedCache = [:]
    }

    // MARK: the model

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    static func labelMatches(_ label: String, _ filter: String?, _ type: StatusChangeFilterType) -> Bool {
        guard let filter, !filter.isEmpty else { return true }
        let l = bytes(label), f = bytes(filter)
        switch type {
        case .matches: return l == f
        case .beginsWith: return l.starts(with: f)
        case .endsWith: return l.count >= f.count && Array(l.suffix(f.count)) == f
        case .contains:
            if f.count > l.count { return false }
            for start in 0...(l.count - f.count) where Array(l[start..<(start + f.count)]) == f { return true }
            return false
        }
    }

    /// a before b in the requested order.
    static func precedes(_ a: Change, _ b: Change, _ query: StatusChangeQuery) -> Bool {
        let order: Int
        switch query.sortField {
        case .date: order = a.date == b.date ? 0 : (a.date < b.date ? -1 : 1)
        case .objectLabel:
            order = a.labelBytes == b.labelBytes ? 0 : (a.labelBytes.lexicographicallyPrecedes(b.labelBytes) ? -1 : 1)
        case .status:
            order = a.statusBytes == b.statusBytes ? 0 : (a.statusBytes.lexicographicallyPrecedes(b.statusBytes) ? -1 : 1)
        }
        if order != 0 { return query.ascending ? order < 0 : order > 0 }
        return a.id > b.id
    }

    func ordered(_ eventKey: String, objectLabel: String?, query: StatusChangeQuery, now: Int64) -> [Change] {
        let floor = max(expiryFloor, now - retention)
        let key = "\(eventKey)|\(objectLabel ?? "\u{0}")|\(query.sortField)|\(query.ascending)|\(query.filter ?? "\u{0}")|\(query.filterType)|\(floor)"
        if let cached = orderedCache[key] { return cached }
        let result = changes
            .filter { $0.eventKey == eventKey && $0.date >= floor }
            .filter { objectLabel == nil || $0.change.objectLabel == objectLabel }
            .filter { StatusChangeHarness.labelMatches($0.change.objectLabel, query.filter, query.filterType) }
            .sorted { StatusChangeHarness.precedes($0, $1, query) }
        orderedCache[key] = result
        return result
    }

    /// The expected page; nil when the cursor names no change of the event.
    func modelPage(_ eventKey: String, objectLabel: String? = nil, query: StatusChangeQuery, now: Int64) -> ModelPage? {
        let list = ordered(eventKey, objectLabel: objectLabel, query: query, now: now)
        let limit = min(max(query.limit, 1), 1000)
        let floor = max(expiryFloor, now - retention)
        func find(_ id: Int64) -> Change? { changes.first { $0.id == id && $0.eventKey == eventKey && $0.date >= floor } }
        switch query.cursor {
        case .none:
            let items = Array(list.prefix(limit))
            return ModelPage(ids: items.map(\.id), next: list.count > limit ? items.last?.id : nil, previous: nil)
        case .startAfter(let id):
            guard let cursor = find(id) else { return nil }
            let after = list.filter { StatusChangeHarness.precedes(cursor, $0, query) }
            let items = Array(after.prefix(limit))
            let previous = items.first.flatMap { first in
                list.contains { StatusChangeHarness.precedes($0, first, query) } ? first.id : nil
            }
            return ModelPage(ids: items.map(\.id), next: after.count > limit ? items.last?.id : nil, previous: previous)
        case .endBefore(let id):
            guard let cursor = find(id) else { return nil }
            let before = list.filter { StatusChangeHarness.precedes($0, cursor, query) }
            let items = Array(before.suffix(limit))
            let next = items.last.flatMap { last in
                list.contains { StatusChangeHarness.precedes(last, $0, query) } ? last.id : nil
            }
            return ModelPage(ids: items.map(\.id), next: next, previous: before.count > limit ? items.first?.id : nil)
        }
    }

    /// The expected item for a change id.
    func modelItem(_ id: Int64) -> StatusChangeItem? {
        guard let c = changes.first(where: { $0.id == id }) else { return nil }
        let state = chart[c.eventKey]?[c.change.objectLabel]
        let present = state?.reason == nil
        return StatusChangeItem(
            id: c.id, eventNumber: eventNumbers[c.eventKey]!, status: c.change.status, quantity: c.change.quantity,
            objectLabel: c.change.objectLabel, displayedLabel: c.change.displayedLabel, date: c.date,
            orderId: c.change.orderId, extraDataJSON: c.change.extraDataJSON, holdToken: c.change.holdToken,
            originType: c.change.originType, originIP: c.change.originIP, isPresentOnChart: present,
            notPresentOnChartReason: present ? nil : state?.reason)
    }

    func page(_ query: StatusChangeQuery, event eventKey: String = "E1", objectLabel: String? = nil,
              now: Int64, log: StatusChangeLog? = nil) throws -> ModelPage? {
        guard let page = try (log ?? self.log).list(eventKey: eventKey, objectLabel: objectLabel, query: query, now: now) else {
            return nil
        }
        return ModelPage(ids: page.items.map(\.id), next: page.nextPageStartsAfter, previous: page.previousPageEndsBefore)
    }
}


import XCTest

final class StatusChangeModelTests: XCTestCase {
    /// Random feeds and queries, compared against the brute-force model. Set
    /// HEADCOUNT_TEST_SEED to replay a failure.
    func testRandomAgainstBruteForceModel() throws {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap(UInt64.init)
            ?? UInt64(Date().timeIntervalSince1970 * 1000)
        print("StatusChangeModelTests.testRandomAgainstBruteForceModel seed \(seed)")
        let allLabels = ["A-1", "A-10", "A-11", "A-2", "B-1", "B-10", "Section A-A-1", "GA", "é", "éa", "a", "a-1",
                         "Z", "A", "1", "-1"]
        let statuses = ["booked", "free", "reservedByToken", "resale", "Custom", "b"]
        let filters = ["A-1", "A", "1", "-1", "é", "a", "Z", "x", "GA", "Section A-A-1", "-"]
        var queries = 0
        var nonEmpty = 0
        var errors = 0
        for round in 0..<40 {
            var random = SplitMix64(seed: seed &+ UInt64(round))
            func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
            func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
            let retention: Int64 = chance(50) ? 400 : 1_000_000
            let h = StatusChangeHarness(retention: retention)
            switch round % 3 {
            case 0: h.log.gatherThreshold = 0         // always walk the indexes
            case 1: h.log.gatherThreshold = .max      // always gather
            default: h.log.gatherThreshold = Int(random.next() % 40)
            }
            let labels = Array(allLabels.shuffled(using: &random).prefix(2 + Int(random.next() % 14)))
            let events = ["E1", "E2", "E3"]
            var clock: Int64 = 10_000
            func check(_ log: StatusChangeLog, now: Int64) throws {
                let event = pick(events)
                var query = StatusChangeQuery(
                    sortField: pick(StatusChangeSortField.allCases), ascending: chance(50),
                    filter: chance(40) ? pick(filters) : nil, filterType: pick(StatusChangeFilterType.allCases),
                    limit: chance(10) ? 1000 : 1 + Int(random.next() % 8))
                let objectLabel: String? = chance(15) ? pick(labels + ["nope"]) : nil
                let visibleFloor = max(h.expiryFloor, now - retention)
                let eventChanges = h.changes.filter { $0.eventKey == event && (chance(10) || $0.date >= visibleFloor) }
                if chance(70), let cursor = eventChanges.isEmpty ? nil : pick(eventChanges) {
                    query.cursor = chance(50) ? .startAfter(cursor.id) : .endBefore(cursor.id)
                } else if chance(10) {
                    query.cursor = .startAfter(Int64(random.next() % UInt64(h.nextID + 2)))
                }
                queries += 1
                let expected = h.eventNumbers[event] == nil ? nil : h.modelPage(event, objectLabel: objectLabel, query: query, now: now)
                let context = "seed \(seed) round \(round) event \(event) label \(objectLabel ?? "-") \(query) now \(now)"
                do {
                    let page = try log.list(eventKey: event, objectLabel: objectLabel, query: query, now: now)
                    if h.eventNumbers[event] == nil {
                        XCTAssertNil(page, context)
                        return
                    }
                    guard let page else { return XCTFail("nil page: \(context)") }
                    let actual = StatusChangeHarness.ModelPage(ids: page.items.map(\.id), next: page.nextPageStartsAfter,
                                                               previous: page.previousPageEndsBefore)
                    XCTAssertEqual(actual, expected, context)
                    if !actual.ids.isEmpty { nonEmpty += 1 }
                    if let item = page.items.first { XCTAssertEqual(item, h.modelItem(item.id), context) }
                } catch {
                    errors += 1
                    XCTAssertNil(expected, "unexpected \(error): \(context)")
                }
            }
            for step in 0..<250 {
                let roll = random.next() % 100
                if roll < 75 {
                    let date = clock - Int64(random.next() % 300) + (chance(20) ? 0 : Int64(random.next() % 3))
                    h.seat(pick(labels), pick(statuses), event: pick(events), at: chance(30) ? clock : date,
                           quantity: chance(5) ? 7 : 1, orderId: chance(50) ? "o\(step % 7)" : nil,
                           extraData: chance(20) ? #"{"k":\#(step)}"# : nil, holdToken: chance(20) ? "h\(step % 5)" : nil,
                           displayedLabel: chance(10) ? "D\(step)" : nil, origin: pick(SeatOriginType.allCases))
                } else if roll < 85 {
                    h.chartEvent(pick(labels), event: pick(events),
                                 removed: chance(50) ? nil : pick(ChartRemovalReason.allCases),
                                 at: clock - Int64(random.next() % 200))
                } else if roll < 88 {
                    h.expire(now: clock)
                } else {
                    try check(h.log, now: clock + (chance(30) ? Int64(random.next() % 300) : 0))
                }
                clock += Int64(random.next() % 20)
            }
            XCTAssertEqual(h.log.changeCount, h.changes.count, "seed \(seed) round \(round)")
            // The same answers from a decoded snapshot.
            var bytes: [UInt8] = []
            h.log.encode(into: &bytes)
            let decoded = try bytes.withUnsafeBytes { try StatusChangeLog.decode($0) }
            decoded.gatherThreshold = h.log.gatherThreshold
            for _ in 0..<30 { try check(decoded, now: clock) }
        }
        print("StatusChangeModelTests: \(queries) queries compared, \(nonEmpty) non-empty pages, \(errors) cursor errors")
    }

    /// Enough records and labels that the date index and the label order span many chunks
    /// (out-of-order inserts split them), compared against the model with deep cursors.
    func testLargeRandomAgainstBruteForceModel() throws {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap(UInt64.init)
            ?? UInt64(Date().timeIntervalSince1970 * 1000)
        print("StatusChangeModelTests.testLargeRandomAgainstBruteForceModel seed \(seed)")
        var random = SplitMix64(seed: seed)
        let h = StatusChangeHarness(retention: 1_000_000)
        let statuses = ["booked", "free", "reservedByToken", "resale"]
        for i in 0..<9000 {
            let label = "L\(random.next() % 3000)-\(random.next() % 2)"
            let date = 100_000 + Int64(random.next() % 4000)  // ~2 changes per ms: many ties
            h.seat(label, statuses[Int(random.next() % 4)], at: i % 7 == 0 ? 104_000 : date)
        }
        // The oldest 2.5% die but stay allocated (reclaimed at 1/32); `now` hides 10%.
        h.expire(now: 100_000 + 1_000_000 + 100)
        let now: Int64 = 1_100_400
        for round in 0..<4 {
            h.log.gatherThreshold = [0, .max, 500, 16_384][round]
            for _ in 0..<60 {
                let visible = h.changes.filter { $0.date >= now - 1_000_000 }
                var query = StatusChangeQuery(
                    sortField: StatusChangeSortField.allCases[Int(random.next() % 3)], ascending: random.next() % 2 == 0,
                    filter: random.next() % 3 == 0 ? ["L1", "-1", "L2", "7-0", "L12"][Int(random.next() % 5)] : nil,
                    filterType: StatusChangeFilterType.allCases[Int(random.next() % 4)],
                    limit: [1, 10, 100, 1000][Int(random.next() % 4)])
                let cursorID = visible[Int(random.next() % UInt64(visible.count))].id
                switch random.next() % 3 {
                case 0: query.cursor = .startAfter(cursorID)
                case 1: query.cursor = .endBefore(cursorID)
                default: break
                }
                let label: String? = random.next() % 8 == 0 ? "L\(random.next() % 3000)-0" : nil
                let expected = h.modelPage("E1", objectLabel: label, query: query, now: now)
                XCTAssertEqual(try h.page(query, objectLabel: label, now: now), expected,
                               "seed \(seed) \(query) label \(label ?? "-")")
            }
        }
    }
}
