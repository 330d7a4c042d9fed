import Foundation
import XCTest
@testable import HeadcountServer

/// `HeapPrefaulter`: the region below its top becomes resident without anyone touching it,
/// and its contents do not change.
final class HeapPrefaulterTests: XCTestCase {
    func testTheRegionBelowTheTopIsFaultedInWithoutBeingTouched() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = 8 << 20
        guard let region = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              region != MAP_FAILED else { throw XCTSkip("mmap failed") }
        defer { munmap(region, length) }
        // A marker the prefaulter must leave as it is.
        region.storeBytes(of: 0xC0FFEE, toByteOffset: length - page, as: UInt64.self)
        func residentPages() -> Int {
            var vector = [UInt8](repeating: 0, count: length / page)
            guard mincore(region, length, &vector) == 0 else { return -1 }
            return vector.reduce(0) { $0 + Int($1 & 1) }
        }
        XCTAssertLessThan(residentPages(), 8, "a fresh mapping is not resident before anything touches it")
        let end = Int(bitPattern: region) + length
        let prefaulter = HeapPrefaulter(bytes: length / 2, intervalMicroseconds: 1_000, top: { end })
        prefaulter.start()
        defer { prefaulter.stop() }
        let deadline = Date().addingTimeInterval(10)
        while residentPages() < length / 2 / page && Date() < deadline && !prefaulter.isFinished { usleep(1_000) }
        if prefaulter.isFinished { throw XCTSkip("this kernel has no MADV_POPULATE_WRITE (Linux 5.14+)") }
        let resident = residentPages()
        XCTAssertGreaterThanOrEqual(resident, length / 2 / page, "the top half is faulted in")
        XCTAssertLessThan(resident, length / 2 / page + 8, "only the top `bytes` are")
        XCTAssertGreaterThanOrEqual(prefaulter.populatedBytes.load(ordering: .relaxed), length / 2)
        XCTAssertEqual(region.load(fromByteOffset: length - page, as: UInt64.self), 0xC0FFEE)
        XCTAssertEqual(region.load(fromByteOffset: length - 2 * page, as: UInt64.self), 0)
    }
}
