@testable import HeadcountStorage
import HeadcountCore
import XCTest

final class SnapshotStoreTests: XCTestCase {
    private func payload(_ sequence: UInt64, count: Int = 100) -> [UInt8] {
        var random = SplitMix64(seed: sequence)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    func testNothingToLoad() throws {
        let store = try SnapshotStore(directory: "/data", fileSystem: SimulatedFileSystem())
        XCTAssertNil(try store.loadNewest())
    }

    func testWriteLoadNewestAndKeepTwo() throws {
        let fileSystem = SimulatedFileSystem()
        let store = try SnapshotStore(directory: "/data", fileSystem: fileSystem)
        try store.write(sequence: 10, payload: payload(10))
        try store.write(sequence: 25, payload: payload(25))
        try store.write(sequence: 7_000, payload: payload(7_000, count: 0))
        try store.write(sequence: 9_000, payload: payload(9_000, count: 100_000))
        XCTAssertEqual(try store.storedSequences(), [7_000, 9_000])
        XCTAssertEqual(try fileSystem.listDirectory("/data").sorted(), [
            "snapshot-00000000000000007000.snap", "snapshot-00000000000000009000.snap",
        ])
        let newest = try XCTUnwrap(try store.loadNewest())
        XCTAssertEqual(newest.sequence, 9_000)
        XCTAssertEqual(newest.payload, payload(9_000, count: 100_000))
        // A crash right after `write` returns changes nothing.
        fileSystem.crash()
        XCTAssertEqual(try store.loadNewest()?.sequence, 9_000)
        XCTAssertEqual(try store.storedSequences(), [7_000, 9_000])
    }

    /// The worked example in `SnapshotStore`'s documentation and docs/FORMATS.md.
    func testWorkedExampleBytes() throws {
        let fileSystem = SimulatedFileSystem()
        let store = try SnapshotStore(directory: "/data", fileSystem: fileSystem)
        try store.write(sequence: 42, payload: Array("hello".utf8))
        let bytes = try XCTUnwrap(fileSystem.contents(of: "/data/snapshot-00000000000000000042.snap"))
        print("snapshot worked example (\(bytes.count) bytes): \(hexDump(bytes))")
        XCTAssertEqual(hexDump(bytes), """
            48 43 53 4e 41 50 30 31 01 00 00 00 2a 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00 \
            4c bb 71 9a ba df 67 60 68 65 6c 6c 6f
            """)
    }

    func testLeftoverTempFileIsIgnoredAndRemovedByTheNextWrite() throws {
        let fileSystem = SimulatedFileSystem()
        let store = try SnapshotStore(directory: "/data", fileSystem: fileSystem)
        try store.write(sequence: 5, payload: payload(5))
        // A crash in the middle of writing snapshot 9: a half-written temp file is left.
        fileSystem.overwriteFile("/data/snapshot-00000000000000000009.snap.tmp", with: [1, 2, 3])
        let loaded = try store.loadNewest()
        XCTAssertEqual(loaded?.sequence, 5)
        XCTAssertEqual(loaded?.payload, payload(5))
        try store.write(sequence: 12, payload: payload(12))
        XCTAssertEqual(try fileSystem.listDirectory("/data").sorted(), [
            "snapshot-00000000000000000005.snap", "snapshot-00000000000000000012.snap",
        ])
    }

    func testCrashBeforeTheRenameIsDurableKeepsTheOldSnapshot() throws {
        let fileSystem = SimulatedFileSystem()
        let store = try SnapshotStore(directory: "/data", fileSystem: fileSystem)
        try store.write(sequence: 5, payload: payload(5))
        fileSystem.failNext(.syncDirectory)
        XCTAssertThrowsError(try store.write(sequence: 9, payload: payload(9)))
        fileSystem.crash()
        XCTAssertEqual(try store.loadNewest()?.sequence, 5)
    }

    /// A big snapshot is written in synced pieces; a crash at any operation of that write
    /// (create, each piece, each piece's sync, the rename, the directory sync) leaves either
    /// the old snapshot or the new one whole, never a mix.
    func testSnapshotWrittenInSyncedPiecesSurvivesACrashAnywhere() throws {
        let old = payload(5, count: 2_500)
        let new = payload(9, count: 10_007)   // 11 pieces of 1,000 bytes, the last one short
        var outcomes: Set<UInt64> = []
        var operations = 1
        while true {
            let fileSystem = SimulatedFileSystem(tearsWrites: true, seed: UInt64(operations))
            let store = try SnapshotStore(directory: "/data", syncEveryBytes: 1_000, fileSystem: fileSystem)
            try store.write(sequence: 5, payload: old)
            fileSystem.crash(afterOperations: operations)
            let finished = (try? store.write(sequence: 9, payload: new)) != nil
            fileSystem.crash()
            let loaded = try XCTUnwrap(try store.loadNewest(), "crash at operation \(operations)")
            XCTAssertEqual(loaded.payload, loaded.sequence == 5 ? old : new, "crash at operation \(operations)")
            outcomes.insert(loaded.sequence)
            if finished { break }
            operations += 1
        }
        // create, 12 appends (the header and 11 pieces), 11 syncs, the rename, the directory sync.
        XCTAssertGreaterThan(operations, 24, "the write was not split into synced pieces")
        XCTAssertEqual(outcomes, [5, 9])
    }

    /// A synced piece is itself written in `writeBytes` writes (a write() is one stretch of
    /// kernel time), and the snapshot still comes back whole.
    func testPiecesAreWrittenInBoundedWrites() throws {
        let new = payload(9, count: 10_007)
        func operations(writeBytes: Int) throws -> Int {
            var operations = 1
            while true {
                let fileSystem = SimulatedFileSystem()
                let store = try SnapshotStore(directory: "/data", writeBytes: writeBytes, fileSystem: fileSystem)
                fileSystem.crash(afterOperations: operations)
                if (try? store.write(sequence: 9, payload: new)) != nil {
                    XCTAssertEqual(try store.loadNewest()?.payload, new)
                    return operations
                }
                operations += 1
            }
        }
        // One 8 MiB piece: create, the header, the appends, one sync, the rename, the directory sync.
        XCTAssertEqual(try operations(writeBytes: 1_000) - (try operations(writeBytes: 1 << 20)), 10,
                       "10,007 bytes in writes of 1,000: 10 appends more than in one")
    }

    /// A payload handed over in pieces of any sizes makes the same file, byte for byte, as the
    /// payload given whole — the header, written last over zeros, included — and loads back.
    func testPayloadProducedInPiecesMakesTheSameFile() throws {
        let whole = payload(9, count: 50_007)
        let reference = SimulatedFileSystem()
        try SnapshotStore(directory: "/data", syncEveryBytes: 4_096, writeBytes: 1_000, fileSystem: reference)
            .write(sequence: 9, payload: whole)
        let expected = try XCTUnwrap(reference.contents(of: "/data/snapshot-00000000000000000009.snap"))
        for cut in [1, 13, 999, 4_096, 7_777, 60_000] {
            let fileSystem = SimulatedFileSystem()
            let store = try SnapshotStore(directory: "/data", syncEveryBytes: 4_096, writeBytes: 1_000, fileSystem: fileSystem)
            try store.write(sequence: 9) { emit in
                whole.withUnsafeBytes { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let stop = min(offset + cut, bytes.count)
                        emit(UnsafeRawBufferPointer(rebasing: bytes[offset..<stop]))
                        offset = stop
                    }
                }
            }
            XCTAssertEqual(fileSystem.contents(of: "/data/snapshot-00000000000000000009.snap"), expected, "pieces of \(cut)")
            XCTAssertEqual(try store.loadNewest()?.payload, whole, "pieces of \(cut)")
        }
    }

    /// A storage error in the middle of a produced payload: the rest of the pieces are
    /// ignored, the error is thrown, no temp file is left, the older snapshot stays newest.
    func testStorageErrorWhileProducingStopsTheWrite() throws {
        let fileSystem = SimulatedFileSystem()
        let store = try SnapshotStore(directory: "/data", syncEveryBytes: 1_000, fileSystem: fileSystem)
        try store.write(sequence: 5, payload: payload(5))
        fileSystem.failNext(.sync, errno: EIO)
        var piecesHandedOver = 0
        XCTAssertThrowsError(try store.write(sequence: 9) { emit in
            for index in 0..<20 {
                piecesHandedOver += 1
                payload(UInt64(index), count: 700).withUnsafeBytes { emit($0) }
            }
        }) {
            XCTAssertTrue("\($0)".contains("Input/output error"), "\($0)")
        }
        XCTAssertEqual(piecesHandedOver, 20, "the producer runs to its end; its pieces after the error are dropped")
        XCTAssertEqual(try fileSystem.listDirectory("/data"), ["snapshot-00000000000000000005.snap"])
        XCTAssertEqual(try store.loadNewest()?.sequence, 5)
    }

    func testFailedWriteLeavesNoTempFile() throws {
        let fileSystem = SimulatedFileSystem()
        let store = try SnapshotStore(directory: "/data", fileSystem: fileSystem)
        fileSystem.failNext(.sync, errno: EIO)
        XCTAssertThrowsError(try store.write(sequence: 9, payload: payload(9))) {
            XCTAssertTrue("\($0)".contains("snapshot-00000000000000000009.snap.tmp"), "\($0)")
            XCTAssertTrue("\($0)".contains("Input/output error"), "\($0)")
        }
        XCTAssertEqual(try fileSystem.listDirectory("/data"), [])
    }

    func testCorruptNewestSnapshotIsReportedNotSkipped() throws {
        let path = "/data/snapshot-00000000000000000020.snap"
        let header = SnapshotStore.headerByteCount
        // (what to do to the file, expected offset, reason fragment)
        let cases: [(String, ([UInt8]) -> [UInt8], Int, String)] = [
            ("payload byte", { var b = $0; b[header + 50] ^= 1; return b }, header, "payload checksum"),
            ("magic", { var b = $0; b[0] = 0x58; return b }, 0, "magic"),
            ("version", { var b = $0; b[8] = 2; return b }, 32, "header checksum"),
            ("sequence", { var b = $0; b[12] ^= 1; return b }, 32, "header checksum"),
            ("truncated payload", { Array($0.dropLast(1)) }, 20, "payload length"),
            ("extra byte", { $0 + [0] }, 20, "payload length"),
            ("truncated header", { Array($0.prefix(30)) }, 30, "shorter than"),
            ("empty", { _ in [] }, 0, "shorter than"),
        ]
        for (name, damage, offset, reason) in cases {
            let fileSystem = SimulatedFileSystem()
            let store = try SnapshotStore(directory: "/data", fileSystem: fileSystem)
            try store.write(sequence: 10, payload: payload(10))
            try store.write(sequence: 20, payload: payload(20))
            fileSystem.overwriteFile(path, with: damage(fileSystem.contents(of: path)!))
            XCTAssertThrowsError(try store.loadNewest(), name) { error in
                guard case let SnapshotError.corrupt(file, errorOffset, errorReason) = error else {
                    return XCTFail("\(name): unexpected \(error)")
                }
                XCTAssertEqual(file, path, name)
                XCTAssertEqual(errorOffset, offset, name)
                XCTAssertTrue(errorReason.contains(reason), "\(name): \(errorReason)")
                XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("offset \(offset)"), "\(error)")
            }
        }
    }

    func testHeaderFieldsCheckedAfterTheHeaderChecksum() throws {
        // A file whose header checksum is right but whose version or sequence is not.
        let fileSystem = SimulatedFileSystem()
        let store = try SnapshotStore(directory: "/data", fileSystem: fileSystem)
        var bytes = payload(3).withUnsafeBytes { SnapshotStore.header(sequence: 4, payload: $0) } + payload(3)
        fileSystem.overwriteFile("/data/snapshot-00000000000000000003.snap", with: bytes)
        XCTAssertThrowsError(try store.loadNewest()) {
            guard case SnapshotError.corrupt(_, 12, _) = $0 else { return XCTFail("\($0)") }
        }
        bytes = payload(3).withUnsafeBytes { SnapshotStore.header(sequence: 3, payload: $0) } + payload(3)
        bytes[8] = 2
        let checksum = CRC32C.checksum(bytes[0..<32])
        withUnsafeBytes(of: checksum.littleEndian) { for i in 0..<4 { bytes[32 + i] = $0[i] } }
        fileSystem.overwriteFile("/data/snapshot-00000000000000000003.snap", with: bytes)
        XCTAssertThrowsError(try store.loadNewest()) {
            guard case SnapshotError.corrupt(_, 8, let reason) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("version"))
        }
    }

    func testPOSIXSnapshots() throws {
        let directory = try makeTemporaryDirectory(self) + "/snapshots"
        let store = try SnapshotStore(directory: directory)
        for sequence in [3, 30, 300] as [UInt64] { try store.write(sequence: sequence, payload: payload(sequence, count: 5000)) }
        XCTAssertEqual(try store.storedSequences(), [30, 300])
        let loaded = try XCTUnwrap(try store.loadNewest())
        XCTAssertEqual(loaded.sequence, 300)
        XCTAssertEqual(loaded.payload, payload(300, count: 5000))
    }
}
