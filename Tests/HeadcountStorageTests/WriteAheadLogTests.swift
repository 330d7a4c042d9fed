import HeadcountCore
@testable import HeadcountStorage
import XCTest

final class WriteAheadLogTests: XCTestCase {
    /// Appends batches of `sizes` records, syncing after each; returns the last sequence.
    @discardableResult
    private func appendBatches(_ wal: WriteAheadLog, from first: UInt64, sizes: [Int], sync: Bool = true) throws -> UInt64 {
        var next = first
        for size in sizes {
            let last = next + UInt64(size) - 1
            try wal.append(encodedBatch(next...last), firstSequence: next, lastSequence: last)
            if sync { try wal.sync() }
            next = last + 1
        }
        return next - 1
    }

    private func segmentNames(_ fileSystem: StorageFileSystem, _ directory: String = "/wal") throws -> [String] {
        try fileSystem.listDirectory(directory).filter { $0.hasPrefix("wal-") }.sorted()
    }

    func testEmptyDirectoryRecoversNothing() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, records, report) = try recoverAll(fileSystem: fileSystem)
        XCTAssertEqual(records, [])
        XCTAssertEqual(report, RecoveryReport())
        XCTAssertEqual(wal.segmentCount, 0)
        try wal.sync() // nothing to sync: fine
    }

    func testAppendAndRecoverAcrossSegments() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 400)
        let last = try appendBatches(wal, from: 1, sizes: [1, 3, 2, 5, 1, 1, 4, 2, 6, 1])
        XCTAssertEqual(last, 26)
        let names = try segmentNames(fileSystem)
        XCTAssertGreaterThan(names.count, 3)
        XCTAssertEqual(wal.segmentCount, names.count)
        XCTAssertEqual(wal.bytesWritten, encodedBatch(1...26).count)
        XCTAssertEqual(names.first, "wal-00000000000000000001.log")
        // Each segment stays within the limit (no single batch exceeds it) and is named
        // after its first record.
        for name in names {
            let bytes = fileSystem.contents(of: "/wal/" + name)!
            XCTAssertLessThanOrEqual(bytes.count, 400)
            let first = try WALRecord(payload: Array(bytes[8..<(8 + Int(bytes[0]))]))
            XCTAssertEqual(name, "wal-\(String(format: "%020llu", first.sequence)).log")
        }

        let (reopened, records, report) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 400)
        XCTAssertEqual(records, (1...26).map(makeRecord))
        XCTAssertEqual(report.segmentCount, names.count)
        XCTAssertEqual(report.recordsRead, 26)
        XCTAssertEqual(report.lastSequence, 26)
        XCTAssertEqual(report.firstSequenceRead, 1)
        XCTAssertNil(report.tornTail)
        XCTAssertEqual(reopened.lastSequence, 26)

        // Appends continue at the end of the last segment.
        let lastSegmentBefore = fileSystem.contents(of: "/wal/" + names.last!)!.count
        try reopened.append(encodedBatch(27...27), firstSequence: 27, lastSequence: 27)
        try reopened.sync()
        let afterNames = try segmentNames(fileSystem)
        if afterNames.count == names.count {
            XCTAssertGreaterThan(fileSystem.contents(of: "/wal/" + names.last!)!.count, lastSegmentBefore)
        }
        XCTAssertEqual(try recoverAll(fileSystem: fileSystem).1, (1...27).map(makeRecord))
    }

    func testOversizedBatchGetsItsOwnSegment() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 100)
        try appendBatches(wal, from: 1, sizes: [1, 10, 1])
        XCTAssertEqual(try segmentNames(fileSystem), [
            "wal-00000000000000000001.log", "wal-00000000000000000002.log", "wal-00000000000000000012.log",
        ])
        XCTAssertEqual(try recoverAll(fileSystem: fileSystem).1, (1...12).map(makeRecord))
    }

    func testRecoverAfterSkipsRecordsAndWholeSegments() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 300)
        try appendBatches(wal, from: 1, sizes: Array(repeating: 2, count: 20))
        let segmentCount = try segmentNames(fileSystem).count
        for after in [0, 1, 2, 17, 39, 40, 1000] as [UInt64] {
            let (_, records, report) = try recoverAll(fileSystem: fileSystem, after: after)
            XCTAssertEqual(records, after >= 40 ? [] : ((after + 1)...40).map(makeRecord), "after \(after)")
            XCTAssertEqual(report.recordsDelivered, records.count)
            XCTAssertEqual(report.lastSequence, 40)
            XCTAssertEqual(report.segmentCount, segmentCount)
            if after >= 17 { XCTAssertGreaterThan(report.segmentsSkipped, 0) }
            if after == 0 { XCTAssertEqual(report.segmentsSkipped, 0) }
        }
    }

    func testRemoveSegments() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 300)
        try appendBatches(wal, from: 1, sizes: Array(repeating: 2, count: 20))
        let names = try segmentNames(fileSystem)
        let firstSequences = names.map { UInt64($0.dropFirst(4).prefix(20))! }
        XCTAssertGreaterThan(names.count, 3)
        // Through one below the second segment's start minus one: the first segment still
        // holds a record above it.
        XCTAssertEqual(try wal.removeSegments(through: firstSequences[1] - 2), 0)
        XCTAssertEqual(try wal.removeSegments(through: firstSequences[1] - 1), 1)
        XCTAssertEqual(try segmentNames(fileSystem), Array(names.dropFirst()))
        XCTAssertEqual(wal.segmentCount, names.count - 1)
        // Never the current segment, whatever the sequence.
        XCTAssertEqual(try wal.removeSegments(through: .max), names.count - 2)
        XCTAssertEqual(try segmentNames(fileSystem), [names.last!])
        XCTAssertEqual(wal.segmentCount, 1)
        let (_, records, _) = try recoverAll(fileSystem: fileSystem, after: firstSequences.last! - 1)
        XCTAssertEqual(records, (firstSequences.last!...40).map(makeRecord))
        // Appends still work and segments are trimmed again later.
        try appendBatches(wal, from: 41, sizes: [3, 3, 3])
        XCTAssertEqual(try recoverAll(fileSystem: fileSystem, after: 40).1, (41...49).map(makeRecord))
    }

    // MARK: Torn tails

    /// Every possible cut inside the last record: it is dropped, the file truncated to the
    /// end of the previous record, earlier records intact, later appends work.
    func testTornLastRecordAtEveryTruncationPoint() throws {
        let whole = encodedBatch(1...3)
        let lastStart = encodedBatch(1...2).count
        for cut in lastStart..<whole.count {
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectory("/wal")
            let path = "/wal/wal-00000000000000000001.log"
            fileSystem.overwriteFile(path, with: Array(whole[..<cut]))
            let (wal, records, report) = try recoverAll(fileSystem: fileSystem)
            XCTAssertEqual(records, (1...2).map(makeRecord), "cut at \(cut)")
            XCTAssertEqual(report.lastSequence, 2)
            if cut == lastStart {
                XCTAssertNil(report.tornTail)
            } else {
                XCTAssertEqual(report.tornTail?.file, path)
                XCTAssertEqual(report.tornTail?.offset, lastStart)
                XCTAssertEqual(report.tornTail?.bytesDropped, cut - lastStart)
            }
            XCTAssertEqual(fileSystem.contents(of: path), Array(whole[..<lastStart]))
            try wal.append(encodedBatch(3...4), firstSequence: 3, lastSequence: 4)
            try wal.sync()
            XCTAssertEqual(try recoverAll(fileSystem: fileSystem).1, (1...4).map(makeRecord), "cut at \(cut)")
        }
    }

    func testTornFirstRecordRemovesTheEmptySegment() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 100)
        try appendBatches(wal, from: 1, sizes: [2, 2])
        let names = try segmentNames(fileSystem)
        XCTAssertEqual(names.count, 2)
        let lastPath = "/wal/" + names[1]
        fileSystem.overwriteFile(lastPath, with: Array(fileSystem.contents(of: lastPath)!.prefix(5)))
        let (reopened, records, report) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 100)
        XCTAssertEqual(records, (1...2).map(makeRecord))
        XCTAssertEqual(report.removedEmptySegment, names[1])
        XCTAssertEqual(report.tornTail?.offset, 0)
        XCTAssertEqual(try segmentNames(fileSystem), [names[0]])
        // The next batch may differ from the one lost: the new segment is named after it.
        try appendBatches(reopened, from: 3, sizes: [5])
        XCTAssertEqual(try segmentNames(fileSystem).last, "wal-00000000000000000003.log")
        XCTAssertEqual(try recoverAll(fileSystem: fileSystem).1, (1...7).map(makeRecord))
    }

    func testBadChecksumOnTheLastRecordIsATornTail() throws {
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectory("/wal")
        var bytes = encodedBatch(1...3)
        bytes[bytes.count - 2] ^= 0x40
        fileSystem.overwriteFile("/wal/wal-00000000000000000001.log", with: bytes)
        let (_, records, report) = try recoverAll(fileSystem: fileSystem)
        XCTAssertEqual(records, (1...2).map(makeRecord))
        XCTAssertEqual(report.tornTail?.offset, encodedBatch(1...2).count)
        XCTAssertTrue(report.tornTail?.reason.contains("checksum") ?? false)
    }

    /// Zeros after the last record are room not written yet (preallocated, or a file system
    /// that extended the file before its data reached the disk), not a torn record. Without
    /// preallocation they are cut off.
    func testZeroFilledTailIsUnusedRoomNotATornRecord() throws {
        for zeros in [1, 7, 8, 9, 100] {
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectory("/wal")
            let path = "/wal/wal-00000000000000000001.log"
            fileSystem.overwriteFile(path, with: encodedBatch(1...3) + [UInt8](repeating: 0, count: zeros))
            let (_, records, report) = try recoverAll(fileSystem: fileSystem)
            XCTAssertEqual(records, (1...3).map(makeRecord))
            XCTAssertNil(report.tornTail)
            XCTAssertEqual(report.unusedTailBytes, zeros)
            XCTAssertEqual(fileSystem.contents(of: path), encodedBatch(1...3))
        }
    }

    // MARK: Corruption

    func testFlippedByteInTheMiddleIsCorruption() throws {
        let path = "/wal/wal-00000000000000000001.log"
        let recordStart = encodedBatch(1...4).count
        let recordLength = encodedBatch(5...5).count
        for position in (recordStart + 4)..<(recordStart + recordLength) {
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectory("/wal")
            var bytes = encodedBatch(1...10)
            bytes[position] ^= 0x01
            fileSystem.overwriteFile(path, with: bytes)
            assertCorrupt(fileSystem, file: path, offset: recordStart, "checksum")
        }
        // A length field changed: either over the limit, or the checksum is then taken over
        // the wrong bytes.
        for (value, reason) in [(UInt8(0xFF), "checksum"), (0x10, "checksum")] {
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectory("/wal")
            var bytes = encodedBatch(1...10)
            bytes[recordStart] = value
            fileSystem.overwriteFile(path, with: bytes)
            assertCorrupt(fileSystem, file: path, offset: recordStart, reason)
        }
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectory("/wal")
        var bytes = encodedBatch(1...10)
        bytes[recordStart + 3] = 0x7F
        fileSystem.overwriteFile(path, with: bytes)
        assertCorrupt(fileSystem, file: path, offset: recordStart, "over the limit")
    }

    func testDamageInANonLastSegmentIsCorruptionEvenAtItsEnd() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 150)
        try appendBatches(wal, from: 1, sizes: [2, 2, 2])
        let names = try segmentNames(fileSystem)
        XCTAssertGreaterThan(names.count, 1)
        let path = "/wal/" + names[0]
        let bytes = fileSystem.contents(of: path)!
        fileSystem.overwriteFile(path, with: Array(bytes.dropLast(3)))
        assertCorrupt(fileSystem, file: path, offset: encodedBatch(1...1).count, "cut short")
    }

    func testValidRecordsOutOfOrderAreCorruption() throws {
        let path = "/wal/wal-00000000000000000001.log"
        let cases: [([UInt8], Int, String)] = [
            (encodedBatch(1...2) + encodedBatch(2...2), encodedBatch(1...2).count, "does not follow"),
            (encodedBatch(1...2) + encodedBatch(1...1), encodedBatch(1...2).count, "does not follow"),
            (encodedBatch(1...2) + encodedBatch(4...4), encodedBatch(1...2).count, "does not follow"),
            (encodedBatch(2...3), 0, "file name"),
        ]
        for (bytes, offset, reason) in cases {
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectory("/wal")
            fileSystem.overwriteFile(path, with: bytes)
            assertCorrupt(fileSystem, file: path, offset: offset, reason)
        }
        // A segment holding a sequence its successor claims.
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectory("/wal")
        fileSystem.overwriteFile(path, with: encodedBatch(1...3))
        fileSystem.overwriteFile("/wal/wal-00000000000000000003.log", with: encodedBatch(3...4))
        assertCorrupt(fileSystem, file: path, offset: encodedBatch(1...2).count, "next segment")
        // A segment cut short at a record boundary: the gap before the next one shows.
        fileSystem.overwriteFile(path, with: encodedBatch(1...1))
        assertCorrupt(fileSystem, file: path, offset: encodedBatch(1...1).count, "2…2 are missing")
        // An empty segment before the last.
        fileSystem.overwriteFile(path, with: [])
        assertCorrupt(fileSystem, file: path, offset: 0, "no records")
    }

    func testLogThatNoLongerReachesBackToTheSnapshotIsCorruption() throws {
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectory("/wal")
        let path = "/wal/wal-00000000000000000005.log"
        fileSystem.overwriteFile(path, with: encodedBatch(5...7))
        for after in [0, 3] as [UInt64] {
            XCTAssertThrowsError(try recoverAll(fileSystem: fileSystem, after: after)) {
                guard case let WALError.corrupt(file, 0, reason) = $0 else { return XCTFail("\($0)") }
                XCTAssertEqual(file, path)
                XCTAssertTrue(reason.contains("\(after + 1)…4 are missing"), reason)
            }
        }
        XCTAssertEqual(try recoverAll(fileSystem: fileSystem, after: 4).1, (5...7).map(makeRecord))
        XCTAssertEqual(try recoverAll(fileSystem: fileSystem, after: 6).1, [makeRecord(7)])
    }

    func testUndecodablePayloadWithAGoodChecksumIsCorruption() throws {
        let path = "/wal/wal-00000000000000000001.log"
        var bytes = encodedBatch(1...2)
        // Replace record 2's payload version with 9 and fix its checksum.
        let start = encodedBatch(1...1).count
        bytes[start + 8] = 9
        let checksum = CRC32C.checksum(bytes[(start + 8)...])
        withUnsafeBytes(of: checksum.littleEndian) { for i in 0..<4 { bytes[start + 4 + i] = $0[i] } }
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectory("/wal")
        fileSystem.overwriteFile(path, with: bytes)
        assertCorrupt(fileSystem, file: path, offset: start, "format version")
    }

    /// Random damage anywhere never crashes recovery and never yields a wrong record: it is
    /// either reported as corruption or (at the end of the last segment) dropped as a torn
    /// tail, leaving a prefix of the true records.
    func testRandomDamageIsReportedOrDroppedNeverMisread() throws {
        let pristine = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: pristine, segmentBytesMax: 600)
        try appendBatches(wal, from: 1, sizes: [3, 5, 2, 7, 4, 1, 6])
        let names = try segmentNames(pristine)
        let originals = (1...28).map(makeRecord)
        var random = SplitMix64(seed: 5)
        var outcomes = (corrupt: 0, torn: 0, intact: 0)
        for _ in 0..<3_000 {
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectory("/wal")
            for name in names { fileSystem.overwriteFile("/wal/" + name, with: pristine.contents(of: "/wal/" + name)!) }
            let victim = "/wal/" + names[Int(random.next() % UInt64(names.count))]
            var bytes = fileSystem.contents(of: victim)!
            if random.next() % 4 == 0 {
                bytes.removeLast(Int(random.next() % UInt64(bytes.count)))
            } else {
                for _ in 0...(random.next() % 3) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            fileSystem.overwriteFile(victim, with: bytes)
            do {
                let (_, records, report) = try recoverAll(fileSystem: fileSystem)
                XCTAssertEqual(records, Array(originals.prefix(records.count)))
                if report.tornTail != nil { outcomes.torn += 1 } else { outcomes.intact += 1 }
            } catch let error as WALError {
                guard case .corrupt(let file, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(file, victim)
                outcomes.corrupt += 1
            }
        }
        print("random WAL damage outcomes: \(outcomes)")
    }

    func testErrorsFromTheBodyPropagate() throws {
        struct Stop: Error {}
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem)
        try appendBatches(wal, from: 1, sizes: [3])
        let reopened = try WriteAheadLog(directory: "/wal", fileSystem: fileSystem)
        XCTAssertThrowsError(try reopened.recover(after: 0) { if $0.sequence == 2 { throw Stop() } }) {
            XCTAssertTrue($0 is Stop)
        }
    }

    // MARK: Crashes and faults

    func testCrashKeepsSyncedRecordsAndNothingPartial() throws {
        for tears in [false, true] {
            for seed in 0..<20 as Range<UInt64> {
                let fileSystem = SimulatedFileSystem(tearsWrites: tears, seed: seed)
                let (wal, _, _) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 500)
                try appendBatches(wal, from: 1, sizes: [3, 4, 2])          // synced
                try appendBatches(wal, from: 10, sizes: [5, 5], sync: false) // not synced
                fileSystem.crash()
                XCTAssertThrowsError(try wal.append(encodedBatch(20...20), firstSequence: 20, lastSequence: 20))
                let (_, records, _) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 500)
                XCTAssertGreaterThanOrEqual(records.count, 9)
                XCTAssertEqual(records, (1...UInt64(records.count)).map(makeRecord))
                if !tears { XCTAssertEqual(records.count, 9) }
            }
        }
    }

    func testCrashBeforeTheDirectorySyncLosesTheNewSegmentOnly() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem, segmentBytesMax: 150)
        try appendBatches(wal, from: 1, sizes: [2])
        try appendBatches(wal, from: 3, sizes: [2], sync: false) // rolls: the old one is synced first
        XCTAssertEqual(try segmentNames(fileSystem).count, 2)
        fileSystem.crash()
        XCTAssertEqual(try segmentNames(fileSystem).count, 1)
        XCTAssertEqual(try recoverAll(fileSystem: fileSystem).1, (1...2).map(makeRecord))
    }

    func testFailedAppendIsCutBackAndTheLogStaysUsable() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem)
        try appendBatches(wal, from: 1, sizes: [2])
        fileSystem.failNext(.write, errno: ENOSPC)
        XCTAssertThrowsError(try wal.append(encodedBatch(3...5), firstSequence: 3, lastSequence: 5)) { error in
            XCTAssertEqual((error as? StorageError)?.errno, ENOSPC)
            XCTAssertTrue("\(error)".contains("/wal/wal-00000000000000000001.log"), "\(error)")
            XCTAssertTrue("\(error)".contains("No space left on device"), "\(error)")
        }
        XCTAssertEqual(fileSystem.contents(of: "/wal/wal-00000000000000000001.log"), encodedBatch(1...2))
        try appendBatches(wal, from: 3, sizes: [3])
        XCTAssertEqual(try recoverAll(fileSystem: fileSystem).1, (1...5).map(makeRecord))
    }

    func testFailedSyncMakesTheLogUnusable() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try recoverAll(fileSystem: fileSystem)
        try appendBatches(wal, from: 1, sizes: [2])
        fileSystem.failNext(.sync)
        XCTAssertThrowsError(try wal.sync())
        XCTAssertThrowsError(try wal.append(encodedBatch(3...3), firstSequence: 3, lastSequence: 3)) {
            guard case WALError.unusable = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try wal.sync()) {
            guard case WALError.unusable = $0 else { return XCTFail("\($0)") }
        }
    }

    // MARK: The real disk

    func testPOSIXAppendRecoverTornTailAndTrim() throws {
        let directory = try makeTemporaryDirectory(self) + "/data/wal"
        let fileSystem = POSIXFileSystem()
        let (wal, _, _) = try recoverAll(directory: directory, fileSystem: fileSystem, segmentBytesMax: 1000)
        try appendBatches(wal, from: 1, sizes: Array(repeating: 4, count: 25))
        let names = try segmentNames(fileSystem, directory)
        XCTAssertEqual(wal.segmentCount, names.count)
        XCTAssertGreaterThan(names.count, 3)
        XCTAssertEqual(try recoverAll(directory: directory, fileSystem: fileSystem).1, (1...100).map(makeRecord))

        // Tear the last record by hand.
        let lastPath = directory + "/" + names.last!
        let size = try fileSystem.fileSize(lastPath)
        let file = try fileSystem.openFile(lastPath)
        try file.truncate(to: size - 3)
        try file.close()
        let (reopened, records, report) = try recoverAll(directory: directory, fileSystem: fileSystem, segmentBytesMax: 1000)
        XCTAssertEqual(records, (1...99).map(makeRecord))
        XCTAssertEqual(report.tornTail?.file, lastPath)
        try appendBatches(reopened, from: 100, sizes: [1])
        XCTAssertGreaterThan(try reopened.removeSegments(through: 50), 0)
        XCTAssertEqual(try recoverAll(directory: directory, fileSystem: fileSystem, after: 50).1, (51...100).map(makeRecord))

        // Corruption names the real file.
        let firstPath = directory + "/" + (try segmentNames(fileSystem, directory)).first!
        var bytes = try fileSystem.readFile(firstPath)
        bytes[20] ^= 0xFF
        let rewrite = try fileSystem.createFile(firstPath, exclusive: false)
        try rewrite.append(bytes)
        try rewrite.close()
        XCTAssertThrowsError(try recoverAll(directory: directory, fileSystem: fileSystem)) {
            XCTAssertTrue("\($0)".contains(firstPath) && "\($0)".contains("offset 0"), "\($0)")
        }
    }

    func testPOSIXErrorsCarryPathAndStrerror() throws {
        let fileSystem = POSIXFileSystem()
        let missing = try makeTemporaryDirectory(self) + "/missing/file"
        XCTAssertThrowsError(try fileSystem.readFile(missing)) { error in
            let error = error as? StorageError
            XCTAssertEqual(error?.errno, ENOENT)
            XCTAssertEqual(error?.path, missing)
            XCTAssertTrue(error?.description.contains("No such file or directory") ?? false)
        }
        let directory = try makeTemporaryDirectory(self)
        _ = try fileSystem.createFile(directory + "/a", exclusive: true)
        XCTAssertThrowsError(try fileSystem.createFile(directory + "/a", exclusive: true)) {
            XCTAssertEqual(($0 as? StorageError)?.errno, EEXIST)
        }
        XCTAssertEqual(try fileSystem.listDirectory(directory), ["a"])
        try fileSystem.makeDirectory(directory) // exists: fine
        XCTAssertThrowsError(try fileSystem.makeDirectory(directory + "/a/b")) {
            XCTAssertEqual(($0 as? StorageError)?.errno, ENOTDIR)
        }
    }
}
