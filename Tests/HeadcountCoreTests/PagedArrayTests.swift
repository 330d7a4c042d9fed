import XCTest
@testable import HeadcountCore

/// `PagedArray`: copies share pages but never see the owner's later changes, spilled pages
/// come back intact, and a full page is one allocation of exactly a page's bytes.
final class PagedArrayTests: XCTestCase {
    func testACopyNeverSeesLaterChangesWritesOrAppends() {
        var array = PagedArray<Int64>(pageShift: 4)  // 16 elements a page
        for value in 0..<100 { array.append(Int64(value)) }
        let copy = array
        array[3] = -3                                 // a full page
        array[99] += 1_000                            // the last page, through `_modify`
        array.append(100)                             // the last page, an append
        var more: [Int64] = Array(101..<140)
        more.withUnsafeBufferPointer { array.append(contentsOf: $0) }
        XCTAssertEqual(copy.count, 100)
        XCTAssertEqual((0..<100).map { copy.element(at: $0) }, (0..<100).map(Int64.init))
        XCTAssertEqual(array.element(at: 3), -3)
        XCTAssertEqual(array.element(at: 99), 1_099)
        XCTAssertEqual((100..<140).map { array.element(at: $0) }, (100..<140).map(Int64.init))
        more[0] = 0
        XCTAssertEqual(array.element(at: 101), 101, "appended elements are copied in")
    }

    func testSpilledPagesComeBackIntactAndCopiesReadThemFromTheStore() {
        let store = InMemorySpillStore()
        var array = PagedArray<Int64>(pageShift: 4)
        array.spillStore = store
        for value in 0..<64 { array.append(Int64(value) * 7) }
        XCTAssertEqual(array.spillablePages, [0, 1, 2])
        XCTAssertTrue(array.spill(page: 1))
        XCTAssertFalse(array.isResident(1))
        XCTAssertEqual(array.residentPageCount, 3)
        let copy = array
        XCTAssertEqual(copy.element(at: 20), 140, "a copy reads a spilled page from the store")
        XCTAssertTrue(copy.isResident(0))
        XCTAssertEqual(array[17], 119, "the owner brings the page back on first touch")
        XCTAssertTrue(array.isResident(1))
        XCTAssertEqual(array.residentPageCount, 4)
        XCTAssertEqual((0..<64).map { array[$0] }, (0..<64).map { Int64($0) * 7 })
    }

    /// A full page of 4 Ki 32-byte entries is 128 KiB, not an array's 128 KiB + header that
    /// jemalloc rounds up to its 160 KiB class (and Swift then fills).
    func testAFullPageReservesExactlyItsBytes() {
        var array = PagedArray<EventLedger.HistoryEntry>(pageShift: 12)
        let entry = EventLedger.HistoryEntry(occurredAt: 1, sequence: 1, kind: .ticketCreated, argument: 0, device: 0, maskAfter: 0)
        for _ in 0..<(3 << 12) { array.append(entry) }
        XCTAssertEqual(MemoryLayout<EventLedger.HistoryEntry>.stride, 32)
        XCTAssertEqual(array.allocatedBytes, 3 * (128 << 10))
    }
}
