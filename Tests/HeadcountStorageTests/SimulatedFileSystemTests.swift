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
