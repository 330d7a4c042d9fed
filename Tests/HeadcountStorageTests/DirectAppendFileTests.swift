import Foundation
import HeadcountCore
@testable import HeadcountStorage
import HeadcountTestSupport
import XCTest

/// `POSIXFileSystem.createFile(_:exclusive:bypassingPageCache:chunkBytes:)`: appends gather in
/// an aligned buffer and go to the device with `O_DIRECT`, whole blocks at a time, the partial
/// last block through the page cache; whatever the mix of appends, writes at an offset (inside
/// the gathered block, before it, past the end), truncations, syncs and reads, the file holds
/// exactly what a plain file would, and snapshots written this way load back.
final class DirectAppendFileTests: XCTestCase {
    /// Seeded: appends of 1 B to several chunks, writes at offsets, truncations and syncs; the
    /// file is compared with a model after every step, through the same file, and at the end
    /// through a fresh read of the closed file.
    func testAppendsMatchAPlainFileByteForByte() throws {
        let seed = testSeed("DirectAppendFileTests")
        var random = SplitMix64(seed: seed)
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/snapshot.tmp"
        let chunk = 16 << 10
        let file = try POSIXFileSystem().createFile(path, exclusive: true, bypassingPageCache: true, chunkBytes: chunk)
        let direct = file as? POSIXDirectAppendFile
        if isDirectIOFileSystem(directory) {
            XCTAssertNotNil(direct, "\(directory) takes O_DIRECT, yet the file is not written past the page cache")
        } else {
            print("DirectAppendFileTests: \(directory) may refuse O_DIRECT; direct: \(direct != nil)")
        }
        var model: [UInt8] = []
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next() | 1) } }
        for step in 0..<600 {
            switch random.next() % 100 {
            case 0..<70:  // append: small, block-sized, or several chunks
                let count: Int
                switch random.next() % 3 {
                case 0: count = 1 + Int(random.next() % 100)
                case 1: count = 4096 * (1 + Int(random.next() % 3))
                default: count = 1 + Int(random.next() % UInt64(3 * chunk))
                }
                let new = bytes(count)
                try file.append(new)
                model += new
            case 70..<80 where !model.isEmpty:  // a write at an offset, often near the end, sometimes past it
                let near = random.next() % 2 == 0
                let offset = near ? max(0, model.count - Int(random.next() % 6000)) : Int(random.next() % UInt64(model.count))
                let new = bytes(1 + Int(random.next() % 5000))
                try file.write(new, at: offset)
                if offset + new.count > model.count { model += [UInt8](repeating: 0, count: offset + new.count - model.count) }
                model.replaceSubrange(offset..<(offset + new.count), with: new)
            case 80..<85 where !model.isEmpty:
                let length = model.count - Int(random.next() % UInt64(min(model.count, 9000) + 1))
                try file.truncate(to: length)
                model.removeLast(model.count - length)
            case 85..<92:
                try file.sync()
            default:
                let from = Int(random.next() % UInt64(model.count + 1))
                let count = Int(random.next() % 10_000)
                XCTAssertEqual(try file.read(offset: from, count: count), Array(model[from..<min(model.count, from + count)]),
                               "seed \(seed), step \(step): read at \(from)")
            }
            XCTAssertEqual(try file.size(), model.count, "seed \(seed), step \(step)")
        }
        try file.sync()
        if let direct { XCTAssertGreaterThan(direct.directBytes, model.count / 2, "most bytes went past the page cache, seed \(seed)") }
        try file.close()
        let onDisk = try POSIXFileSystem().readFile(path)
        XCTAssertEqual(onDisk.count, model.count, "seed \(seed)")
        XCTAssertTrue(onDisk == model, "seed \(seed): the closed file differs from the model")
    }

    /// A snapshot store writing past the page cache: the files load back, byte for byte.
    func testSnapshotsWrittenPastThePageCacheLoadBack() throws {
        let directory = try makeTemporaryDirectory(self)
        var random = SplitMix64(seed: 5)
        let store = try SnapshotStore(directory: directory, syncEveryBytes: 1 << 20, writeBytes: 64 << 10, bypassesPageCache: true)
        for (sequence, size) in [(UInt64(10), 1), (20, 4096), (30, 3 << 20 | 123)] {
            let payload = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            // Produced in uneven pieces, as the engine produces them.
            try store.write(sequence: sequence) { emit in
                var offset = 0
                while offset < payload.count {
                    let end = min(payload.count, offset + 1 + Int(random.next() % 100_000))
                    payload[offset..<end].withUnsafeBytes { emit($0) }
                    offset = end
                }
            }
            let loaded = try XCTUnwrap(try store.loadNewest())
            XCTAssertEqual(loaded.sequence, sequence)
            XCTAssertTrue(loaded.payload == payload, "snapshot \(sequence) of \(size) bytes")
        }
    }
}
