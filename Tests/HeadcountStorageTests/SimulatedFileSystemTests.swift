@testable import HeadcountStorage
import XCTest

/// The crash model the WAL and snapshot tests rely on.
final class SimulatedFileSystemTests: XCTestCase {
    func testUnsyncedBytesAndDirectoryEntriesAreLost() throws {
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectory("/d")
        let synced = try fileSystem.createFile("/d/a", exclusive: true)
        try synced.append([1, 2, 3])
        try synced.sync()
        try synced.append([4, 5])
        let unlisted = try fileSystem.createFile("/d/b", exclusive: true)
        try unlisted.append([9])
        try unlisted.sync()
        fileSystem.crash()
        // The directory was never synced: both files are gone, synced content or not.
        XCTAssertEqual(try fileSystem.listDirectory("/d"), [])

        let file = try fileSystem.createFile("/d/a", exclusive: true)
        try file.append([1, 2, 3])
        try file.sync()
        try fileSystem.syncDirectory("/d")
        try file.append([4, 5])
        XCTAssertThrowsError(try synced.append([0])) { XCTAssertEqual(($0 as? StorageError)?.errno, EBADF) }
        try fileSystem.rename("/d/a", to: "/d/c")
        fileSystem.crash()
        XCTAssertEqual(try fileSystem.listDirectory("/d"), ["a"])
        XCTAssertEqual(try fileSystem.readFile("/d/a"), [1, 2, 3])
        XCTAssertThrowsError(try file.size()) { XCTAssertEqual(($0 as? StorageError)?.errno, EBADF) }
    }

    func testTearingKeepsAPrefixOfTheUnsyncedTail() throws {
        var lengths = Set<Int>()
        for seed in 0..<64 as Range<UInt64> {
            let fileSystem = SimulatedFileSystem(tearsWrites: true, seed: seed)
            let file = try fileSystem.createFile("/a", exclusive: true)
            try fileSystem.syncDirectory("/")
            try file.append([1, 2, 3])
            try file.sync()
            try file.append([4, 5, 6, 7])
            fileSystem.crash()
            let bytes = try fileSystem.readFile("/a")
            XCTAssertEqual(bytes, Array([1, 2, 3, 4, 5, 6, 7].prefix(bytes.count)))
            XCTAssertGreaterThanOrEqual(bytes.count, 3)
            lengths.insert(bytes.count)
        }
        XCTAssertEqual(lengths, [3, 4, 5, 6, 7])
    }

    /// Writes at an offset, truncations and appends since the last sync: a crash keeps a
    /// prefix of them in order, the last one kept possibly torn (a prefix of its bytes); a
    /// truncation is all or nothing.
    func testCrashKeepsAPrefixOfTheUnsyncedChangesInOrder() throws {
        let synced: [UInt8] = [1, 2, 3, 0, 0, 0, 0, 0]
        let afterWrite: [UInt8] = [1, 2, 3, 4, 5, 6, 0, 0]
        let afterTruncate: [UInt8] = [1, 2, 3, 4, 5]
        let afterAppend: [UInt8] = [1, 2, 3, 4, 5, 7, 8]
        var outcomes = Set<[UInt8]>()
        for seed in 0..<200 as Range<UInt64> {
            let fileSystem = SimulatedFileSystem(tearsWrites: true, seed: seed)
            let file = try fileSystem.createFile("/a", exclusive: true)
            try fileSystem.syncDirectory("/")
            try file.write(synced, at: 0)
            try file.sync()
            try file.write([4, 5, 6], at: 3)   // overwrites zeros in place
            try file.truncate(to: 5)
            try file.append([7, 8])
            XCTAssertEqual(fileSystem.contents(of: "/a"), afterAppend)
            fileSystem.crash()
            let bytes = try fileSystem.readFile("/a")
            outcomes.insert(bytes)
            let possible = [synced, [1, 2, 3, 4, 0, 0, 0, 0], [1, 2, 3, 4, 5, 0, 0, 0], afterWrite, afterTruncate,
                            afterTruncate + [7], afterAppend]
            XCTAssertTrue(possible.contains(bytes), "seed \(seed): \(bytes)")
        }
        XCTAssertEqual(outcomes.count, 7, "every prefix happens: \(outcomes)")

        // Without tearing: back to the last sync.
        let fileSystem = SimulatedFileSystem()
        let file = try fileSystem.createFile("/a", exclusive: true)
        try fileSystem.syncDirectory("/")
        try file.write(synced, at: 0)
        try file.sync()
        try file.write([9], at: 20)          // past the end: the gap reads as zeros
        XCTAssertEqual(fileSystem.contents(of: "/a"), synced + [UInt8](repeating: 0, count: 12) + [9])
        try file.truncate(to: 2)
        fileSystem.crash()
        XCTAssertEqual(try fileSystem.readFile("/a"), synced)
    }

    func testArmedCrashInTheMiddleOfAWriteOrTruncateTearsOrDropsIt() throws {
        var torn = Set<Int>()
        for seed in 0..<64 as Range<UInt64> {
            let fileSystem = SimulatedFileSystem(tearsWrites: true, seed: seed)
            let file = try fileSystem.createFile("/a", exclusive: true)
            try fileSystem.syncDirectory("/")
            try file.write([UInt8](repeating: 0, count: 8), at: 0)
            try file.sync()
            fileSystem.crash(afterOperations: 1)
            XCTAssertThrowsError(try file.write([1, 2, 3, 4], at: 2)) { XCTAssertTrue($0 is SimulatedCrash) }
            fileSystem.crash()
            let bytes = try fileSystem.readFile("/a")
            XCTAssertEqual(bytes.count, 8)
            let landed = bytes[2..<6].prefix { $0 != 0 }.count
            XCTAssertEqual(Array(bytes[2..<(2 + landed)]), Array([1, 2, 3, 4].prefix(landed)))
            XCTAssertTrue(bytes[(2 + landed)...].allSatisfy { $0 == 0 })
            torn.insert(landed)
        }
        XCTAssertEqual(torn, [0, 1, 2, 3, 4])

        let fileSystem = SimulatedFileSystem(tearsWrites: true)
        let file = try fileSystem.createFile("/a", exclusive: true)
        try fileSystem.syncDirectory("/")
        try file.write([1, 2, 3], at: 0)
        try file.sync()
        fileSystem.crash(afterOperations: 1)
        XCTAssertThrowsError(try file.truncate(to: 1)) { XCTAssertTrue($0 is SimulatedCrash) }
        fileSystem.crash()
        XCTAssertEqual(try fileSystem.readFile("/a"), [1, 2, 3])
    }

    func testFailedWriteLandsHalfOfItsBytes() throws {
        let fileSystem = SimulatedFileSystem()
        let file = try fileSystem.createFile("/a", exclusive: true)
        try file.write([UInt8](repeating: 0, count: 6), at: 0)
        fileSystem.failNext(.write, errno: EIO)
        XCTAssertThrowsError(try file.write([1, 2, 3, 4], at: 1)) { XCTAssertEqual(($0 as? StorageError)?.errno, EIO) }
        XCTAssertEqual(fileSystem.contents(of: "/a"), [0, 1, 2, 0, 0, 0])
    }

    func testArmedCrashHaltsEverythingUntilRestart() throws {
        let fileSystem = SimulatedFileSystem()
        let file = try fileSystem.createFile("/a", exclusive: true)
        try fileSystem.syncDirectory("/")
        fileSystem.crash(afterOperations: 2)
        try file.append([1])
        XCTAssertThrowsError(try file.sync()) { XCTAssertTrue($0 is SimulatedCrash) }
        XCTAssertTrue(fileSystem.isCrashed)
        XCTAssertThrowsError(try fileSystem.listDirectory("/")) { XCTAssertTrue($0 is SimulatedCrash) }
        fileSystem.crash()
        XCTAssertFalse(fileSystem.isCrashed)
        XCTAssertEqual(try fileSystem.readFile("/a"), [])
    }
}
