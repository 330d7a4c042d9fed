import Foundation
import HeadcountCore
@testable import HeadcountStorage
import HeadcountTestSupport
import XCTest

/// `POSIXFileSystem.openFile(_:writesThrough:)`: writes into a file's room of zeros go to the
/// disk with `O_DIRECT | O_DSYNC`, in whole 4 KiB blocks from a buffer that keeps the last
/// partial block; whatever the mix of direct writes, writes that fall back to the page cache
/// (past the size at open, bigger than the buffer), truncations and reads, the file holds
/// exactly what a plain file would.
final class WriteThroughTests: XCTestCase {
    private func zeroFile(_ path: String, bytes: Int) throws {
        let fileSystem = POSIXFileSystem()
        let file = try fileSystem.createFile(path, exclusive: true)
        try file.write([UInt8](repeating: 0, count: bytes), at: 0)
        try file.sync()
        try file.close()
    }

    /// Seeded: appends of 1 B to 3 blocks (some block-aligned, some after a gap of zeros),
    /// one bigger than the write-through buffer, appends past the size at open, truncations,
    /// syncs; the file is compared with a model after every step, through the same file and
    /// through a fresh read.
    func testWritesMatchAPlainFileByteForByte() throws {
        let seed = testSeed("WriteThroughTests")
        var random = SplitMix64(seed: seed)
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/segment"
        let size = 6 << 20
        try zeroFile(path, bytes: size)
        let fileSystem = POSIXFileSystem()
        let file = try fileSystem.openFile(path, writesThrough: true)
        if isDirectIOFileSystem(directory) {
            XCTAssertTrue(file.writesThrough, "\(directory) takes O_DIRECT, yet the file does not write through")
        } else {
            print("WriteThroughTests: \(directory) may refuse O_DIRECT; writes through: \(file.writesThrough)")
        }
        var model = [UInt8](repeating: 0, count: size)
        var end = 0
        var bigWriteDone = false
        var failed = false
        func check(_ step: Int) throws {
            XCTAssertEqual(try file.size(), model.count, "seed \(seed), step \(step)")
            let from = max(0, end - 20_000)
            let read = try file.read(offset: from, count: end + 9000 - from)
            if let offset = firstDifference(read, model[from..<min(model.count, end + 9000)]) {
                XCTFail("seed \(seed), step \(step): the file differs from the model at byte \(from + offset) (end \(end))")
                failed = true
            }
        }
        for step in 0..<400 {
            let choice = random.next() % 100
            var count: Int
            switch random.next() % 4 {
            case 0: count = 1 + Int(random.next() % 64)
            case 1: count = 4096 * (1 + Int(random.next() % 3))
            default: count = 1 + Int(random.next() % 12_000)
            }
            var offset = end
            if choice < 8 {
                offset += Int(random.next() % 5000) // a gap of zeros
            } else if choice < 11 && end > 0 {
                // Cut back (the WAL's repair after a failed write), the room with it.
                let length = end - Int(random.next() % UInt64(min(end, 3000) + 1))
                try file.truncate(to: length)
                model.removeLast(model.count - length)
                end = length
                try check(step)
                if failed { return }
                continue
            } else if choice < 13 && !bigWriteDone && end + (4 << 20) + 5000 < model.count {
                count = (4 << 20) + 1 + Int(random.next() % 4000) // past the buffer's bound: the page cache
                bigWriteDone = true
            }
            if offset + count > 9 << 20 { break }
            var bytes = [UInt8](repeating: 0, count: count)
            for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: random.next() | 1) }
            try file.write(bytes, at: offset)
            if offset + count > model.count { model += [UInt8](repeating: 0, count: offset + count - model.count) }
            model.replaceSubrange(offset..<(offset + count), with: bytes)
            end = offset + count
            if random.next() % 4 == 0 { try file.sync() }
            try check(step)
            if failed { return }
        }
        try file.sync()
        try file.close()
        let whole = try fileSystem.readFile(path)
        XCTAssertEqual(whole.count, model.count, "seed \(seed)")
        XCTAssertNil(firstDifference(whole, model[...]), "seed \(seed): the whole file, read afresh, differs there")
    }

    private func firstDifference(_ bytes: [UInt8], _ expected: ArraySlice<UInt8>) -> Int? {
        if bytes.count != expected.count { return min(bytes.count, expected.count) }
        var index = 0
        for (byte, wanted) in zip(bytes, expected) {
            if byte != wanted { return index }
            index += 1
        }
        return nil
    }

    /// A sync after writes that all went through has nothing to flush and makes no system
    /// call; one after a truncation (new size: metadata) or a write through the page cache
    /// (past the size at open) calls fdatasync.
    func testSyncCallsFdatasyncOnlyForWhatDidNotGoThrough() throws {
        let directory = try makeTemporaryDirectory(self)
        guard isDirectIOFileSystem(directory) else { throw XCTSkip("\(directory) may refuse O_DIRECT") }
        let path = directory + "/segment"
        try zeroFile(path, bytes: 64 << 10)
        let file = try XCTUnwrap(try POSIXFileSystem().openFile(path, writesThrough: true) as? POSIXFile)
        XCTAssertTrue(file.writesThrough)
        try file.write([UInt8](repeating: 7, count: 100), at: 0)
        try file.write([UInt8](repeating: 8, count: 5000), at: 100)
        try file.sync()
        XCTAssertEqual(file.fdatasyncCalls, 0, "everything went through")
        try file.truncate(to: 4000)
        try file.sync()
        XCTAssertEqual(file.fdatasyncCalls, 1, "a truncation is synced")
        try file.write([UInt8](repeating: 9, count: 10), at: 4000) // past the new size: the page cache
        try file.sync()
        XCTAssertEqual(file.fdatasyncCalls, 2, "a write through the page cache is synced")
        try file.sync()
        XCTAssertEqual(file.fdatasyncCalls, 2)
        try file.close()
        XCTAssertEqual(try POSIXFileSystem().readFile(path),
                       [UInt8](repeating: 7, count: 100) + [UInt8](repeating: 8, count: 3900) + [UInt8](repeating: 9, count: 10))
    }
}
