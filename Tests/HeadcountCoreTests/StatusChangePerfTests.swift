import Dispatch
import Foundation
import XCTest
@testable import HeadcountCore

/// Prints timings; asserts nothing about them. 1,000,000 changes over 100,000 objects in an
/// optimized build (`swift test -c release --filter StatusChangePerf`); 50,000 in a debug
/// build unless HEADCOUNT_PERF_CHANGES says otherwise.
final class StatusChangePerfTests: XCTestCase {
    func testPerformancePrint() throws {
        #if DEBUG
        let defaultCount = 50_000
        #else
        let defaultCount = 1_000_000
        #endif
        let count = ProcessInfo.processInfo.environment["HEADCOUNT_PERF_CHANGES"].flatMap(Int.init) ?? defaultCount
        let objects = max(count / 10, 1)
        let sections = ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K"]
        func label(_ object: Int) -> String {
            "\(sections[object % 10])-\(object / 10 % 100 + 1)-\(object / 1000 + 1)"
        }
        let statuses = ["booked", "booked", "booked", "booked", "booked", "free", "free", "free",
                        "reservedByToken", "resale"]
        /// Resident memory (Linux /proc; 0 elsewhere).
        func residentBytes() -> Int {
            guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
            let fields = text.split(separator: " ")
            return fields.count > 1 ? (Int(fields[1]) ?? 0) * 4096 : 0
        }
        let residentBefore = residentBytes()
        let t0: Int64 = 1_700_000_000_000
        var random = SplitMix64(seed: 1)
        let log = StatusChangeLog()
        var applyNanos: UInt64 = 0
        var batch: [FeedEvent] = []
        batch.reserveCapacity(10_000)
        var worstApply: UInt64 = 0
        var i = 0
        while i < count {
            batch.removeAll(keepingCapacity: true)
            for j in i..<min(i + 10_000, count) {
                let object = Int(random.next() % UInt64(objects))
                let status = statuses[Int(random.next() % 10)]
                let date = t0 + Int64(j) * 20 + Int64(random.next() % 10_000) - 5_000
                let change = SeatStatusChange(
                    objectLabel: label(object), status: status, quantity: 1,
                    orderId: status == "booked" ? "order-\(j / 3)" : nil,
                    extraDataJSON: j % 4 == 0 ? #"{"userId":"\#(j % 1000)"}"# : nil,
                    holdToken: status == "reservedByToken" ? "hold-\(j % 5000)" : nil,
                    originType: j % 3 == 0 ? .heldByUser : .apiCall,
                    originIP: j % 3 == 0 ? nil : "10.0.\(j % 256).\(j / 256 % 256)")
                batch.append(FeedEvent(id: "f\(j)", kind: .seatStatusChanged, eventId: "BIG", ticketId: "",
                                       occurredAt: date, details: .seatStatus(change)))
            }
            for event in batch {
                i += 1
                let start = DispatchTime.now().uptimeNanoseconds
                log.apply(event, sequence: UInt64(i))
                let elapsed = DispatchTime.now().uptimeNanoseconds - start
                applyNanos += elapsed
                worstApply = max(worstApply, elapsed)
            }
        }
        let footprint = log.memoryFootprint
        let resident = residentBytes() - residentBefore
        print(String(format: "status-change perf: %d changes, %d objects; apply %.2f µs/change (worst %.1f µs); %.1f bytes/change by capacity (%.1f MB), RSS growth %.1f bytes/change",
                     count, objects, Double(applyNanos) / Double(count) / 1000, Double(worstApply) / 1000,
                     Double(footprint) / Double(count), Double(footprint) / 1_048_576,
                     Double(resident) / Double(count)))

        let now = t0 + Int64(count) * 20 + 60_000
        let lastID = log.lastChangeID
        /// Thread CPU time: unlike the wall clock, not inflated when the machine is busy.
        func cpuNanos() -> UInt64 {
            var time = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
            return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
        }
        print("  (list = StatusChangeLog.list incl. item materialisation; json = writing the page; ms, 300 queries each)")
        func measure(_ name: String, objectLabel: String? = nil, _ makeQuery: (inout SplitMix64) -> StatusChangeQuery) throws {
            var listWall: [UInt64] = []
            var listCPU: [UInt64] = []
            var jsonCPU: [UInt64] = []
            var items = 0
            var rng = SplitMix64(seed: 99)
            for _ in 0..<300 {
                let query = makeQuery(&rng)
                let start = DispatchTime.now().uptimeNanoseconds
                let startCPU = cpuNanos()
                let page = try log.list(eventKey: "BIG", objectLabel: objectLabel, query: query, now: now)!
                let middleCPU = cpuNanos()
                let middle = DispatchTime.now().uptimeNanoseconds
                var writer = JSONWriter(capacity: 64 * 1024)
                page.writeJSON(into: &writer)
                let endCPU = cpuNanos()
                listWall.append(middle - start)
                listCPU.append(middleCPU - startCPU)
                jsonCPU.append(endCPU - middleCPU)
                items += page.items.count
            }
            listWall.sort()
            listCPU.sort()
            jsonCPU.sort()
            func ms(_ ns: UInt64) -> String { String(format: "%6.3f", Double(ns) / 1_000_000) }
            func p(_ values: [UInt64], _ percent: Int) -> UInt64 { values[values.count * percent / 100] }
            print("  \(name.padding(toLength: 40, withPad: " ", startingAt: 0)) list cpu p50 \(ms(p(listCPU, 50))) p99 \(ms(p(listCPU, 99))) | wall p50 \(ms(p(listWall, 50))) p99 \(ms(p(listWall, 99))) | json cpu p99 \(ms(p(jsonCPU, 99))) | \(items / listWall.count)/page")
        }
        func cursor(_ rng: inout SplitMix64) -> StatusChangeCursor {
            let id = Int64(rng.next() % UInt64(lastID)) + 1
            return rng.next() % 2 == 0 ? .startAfter(id) : .endBefore(id)
        }
        for sort in StatusChangeSortField.allCases {
            for ascending in [false, true] {
                let name = "\(sort.rawValue):\(ascending ? "asc" : "desc")"
                try measure("\(name) first page") { _ in
                    StatusChangeQuery(sortField: sort, ascending: ascending, limit: 100)
                }
                try measure("\(name) deep cursor") { rng in
                    StatusChangeQuery(sortField: sort, ascending: ascending, limit: 100, cursor: cursor(&rng))
                }
            }
        }
        let filters: [(String, StatusChangeFilterType)] = [
            ("A-1", .contains), ("-17-", .contains), ("-7", .endsWith), ("C-5", .beginsWith), ("D-42-", .beginsWith),
            ("B-3-7", .matches), ("Q", .contains), ("1", .contains),
        ]
        for (filter, type) in filters {
            for sort in StatusChangeSortField.allCases {
                let ascending = filter.count % 2 == 0
                try measure("filter \(type.rawValue) '\(filter)' \(sort.rawValue)") { rng in
                    StatusChangeQuery(sortField: sort, ascending: ascending, filter: filter, filterType: type,
                                      limit: 100, cursor: rng.next() % 3 == 0 ? .none : cursor(&rng))
                }
            }
        }
        for sort in StatusChangeSortField.allCases {
            try measure("object 'B-3-7' \(sort.rawValue)", objectLabel: "B-3-7") { rng in
                StatusChangeQuery(sortField: sort, ascending: rng.next() % 2 == 0, limit: 100,
                                  cursor: rng.next() % 2 == 0 ? .none : cursor(&rng))
            }
        }
        try measure("limit 1000 date:desc deep cursor") { rng in
            StatusChangeQuery(limit: 1000, cursor: cursor(&rng))
        }
        // Worst case of a filtered index walk: 7 matching records among 1M, forced to walk.
        log.gatherThreshold = 0
        for sort in [StatusChangeSortField.date, .status] {
            try measure("worst: forced walk, 7 hits, \(sort.rawValue)") { rng in
                StatusChangeQuery(sortField: sort, ascending: rng.next() % 2 == 0, filter: "B-3-7",
                                  filterType: .matches, limit: 100)
            }
        }
        log.gatherThreshold = 16_384

        var bytes: [UInt8] = []
        var start = DispatchTime.now().uptimeNanoseconds
        log.encode(into: &bytes)
        let encodeNanos = DispatchTime.now().uptimeNanoseconds - start
        start = DispatchTime.now().uptimeNanoseconds
        let decoded = try bytes.withUnsafeBytes { try StatusChangeLog.decode($0) }
        let decodeNanos = DispatchTime.now().uptimeNanoseconds - start
        XCTAssertEqual(decoded.changeCount, log.changeCount)
        print(String(format: "  snapshot: %.1f bytes/change, encode %.0f ms, decode %.0f ms",
                     Double(bytes.count) / Double(count), Double(encodeNanos) / 1e6, Double(decodeNanos) / 1e6))
        start = DispatchTime.now().uptimeNanoseconds
        log.expire(now: t0 + 365 * 86_400_000 + Int64(count) * 20 / 10)  // a tenth expires
        print(String(format: "  expire of %d changes (with compaction): %.0f ms", count - log.changeCount,
                     Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6))
    }
}
