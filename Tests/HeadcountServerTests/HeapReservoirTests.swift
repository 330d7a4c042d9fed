import CHeapReservoir
import Foundation
import XCTest

/// The allocator the server runs on (`CHeapReservoir`): jemalloc serves malloc in a process
/// linked with the server, the reservoir hands out fresh extents from its low end, and
/// retaining freed memory turns decay purging off (except for blocks of 8 MiB and more).
final class HeapReservoirTests: XCTestCase {
    func testMallocInAProcessLinkedWithTheServerIsJemalloc() {
        XCTAssertEqual(hc_jemalloc_serves_malloc(), 1, "jemalloc must precede libc in the link order")
        XCTAssertTrue(String(cString: hc_jemalloc_version()).hasPrefix("5."), String(cString: hc_jemalloc_version()))
    }

    func testFreshAllocationsComeFromTheReservoirInAddressOrder() throws {
        var detail: Int32 = 0
        // Once per process: another test's server may have installed it already (then this
        // call changes nothing and the checks below hold for that reservoir).
        XCTAssertEqual(hc_heap_reservoir_install(4 << 30, 4 << 20, &detail), 0, "error \(detail)")
        let end = Int(hc_heap_reservoir_end())
        let before = Int(hc_heap_reservoir_frontier())
        XCTAssertGreaterThan(before, 0)
        XCTAssertLessThanOrEqual(before, end)
        // More than any arena keeps spare: the last blocks must be fresh extents.
        let blockBytes = 1 << 20
        var blocks: [UnsafeMutableRawPointer] = []
        defer { blocks.forEach { free($0) } }
        for _ in 0..<256 { blocks.append(malloc(blockBytes)!) }
        let after = Int(hc_heap_reservoir_frontier())
        XCTAssertGreaterThanOrEqual(after - before, 128 * blockBytes, "the arenas took their new memory from the reservoir")
        let last = Int(bitPattern: blocks.last!)
        XCTAssertTrue(last >= end - (4 << 30) && last + blockBytes <= after,
                      "the newest block lies below the frontier: \(String(last, radix: 16)) vs \(String(after, radix: 16))")
        // Fresh extents are zero, as the hook reports them.
        let bytes = blocks.last!.assumingMemoryBound(to: UInt8.self)
        XCTAssertEqual((0..<blockBytes).lazy.filter { bytes[$0] != 0 }.count, 0)
    }

    func testRetainingFreedMemoryTurnsDecayPurgingOff() {
        var detail: Int32 = 0
        XCTAssertEqual(hc_jemalloc_retain_freed_memory(&detail), 0, "error \(detail)")
        XCTAssertEqual(hc_jemalloc_arena_dirty_decay_ms(0), -1)
        let huge = hc_jemalloc_huge_arena()
        XCTAssertGreaterThan(huge, 0, "jemalloc has a huge-allocation arena")
        XCTAssertEqual(hc_jemalloc_arena_dirty_decay_ms(UInt32(huge)), 0, "blocks of 8 MiB and more are purged when freed")
    }
}
