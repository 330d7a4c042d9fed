import HeadcountCore
@testable import HeadcountStorage
import HeadcountTestSupport
import XCTest

/// Segments created at full size, zero-filled and synced ahead of time, written in place:
/// rollover, recovery of a partly used or wholly unused last segment, and crashes at every
/// step (mid-preparation, mid-rollover, mid-record).
final class PreallocatedSegmentTests: XCTestCase {
    private let prepared = "/wal/" + WriteAheadLog.preparedSegmentName

    private func makeLog(_ fileSystem: StorageFileSystem, segmentBytesMax: Int = 600, chunk: Int = 128,
                         preallocation: WriteAheadLog.Preallocation = .manual) throws -> (WriteAheadLog, [WALRecord], RecoveryReport) {
        let wal = try WriteAheadLog(directory: "/wal", segmentBytesMax: segmentBytesMax, preallocation: preallocation,
                                    preparationChunkBytes: chunk, fileSystem: fileSystem)
        var records: [WALRecord] = []
        let report = try wal.recover(after: 0) { records.append($0) }
        return (wal, records, report)
    }

    private func segmentNames(_ fileSystem: StorageFileSystem) throws -> [String] {
        try fileSystem.listDirectory("/wal").filter { $0.hasSuffix(".log") }.sorted()
    }

    private func append(_ wal: WriteAheadLog, _ sequences: ClosedRange<UInt64>, sync: Bool = true) throws {
        try wal.append(encodedBatch(sequences), firstSequence: sequences.lowerBound, lastSequence: sequences.upperBound)
        if sync { try wal.sync() }
    }

    func testRecordsOverwritePreparedZerosAndRolloverCutsTheOldSegment() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try makeLog(fileSystem)
        XCTAssertFalse(wal.isNextSegmentPrepared)
        XCTAssertTrue(try wal.prepareNextSegment())
        XCTAssertEqual(fileSystem.contents(of: prepared), [UInt8](repeating: 0, count: 600))
        try append(wal, 1...3)
        // The first segment is the prepared file, renamed: full size, records then zeros.
        let first = "/wal/wal-00000000000000000001.log"
        XCTAssertEqual(try segmentNames(fileSystem), ["wal-00000000000000000001.log"])
        XCTAssertNil(fileSystem.contents(of: prepared))
        let used = encodedBatch(1...3).count
        XCTAssertEqual(fileSystem.contents(of: first), encodedBatch(1...3) + [UInt8](repeating: 0, count: 600 - used))

        // Until the segment is full: written in place, the file never grows.
        var next: UInt64 = 4
        while encodedBatch(1...(next + 1)).count <= 600 {
            try append(wal, next...(next + 1))
            next += 2
            XCTAssertEqual(fileSystem.contents(of: first)?.count, 600)
        }
        XCTAssertTrue(try wal.prepareNextSegment())
        try append(wal, next...(next + 1))
        let names = try segmentNames(fileSystem)
        XCTAssertEqual(names.count, 2)
        // The old segment is cut to its records at rollover: no zeros left in a non-last one.
        XCTAssertEqual(fileSystem.contents(of: first), encodedBatch(1...(next - 1)))
        XCTAssertEqual(fileSystem.contents(of: "/wal/" + names[1])?.count, 600)

        let (reopened, records, report) = try makeLog(fileSystem)
        XCTAssertEqual(records, (1...(next + 1)).map(makeRecord))
        XCTAssertNil(report.tornTail)
        XCTAssertEqual(report.unusedTailBytes, 600 - encodedBatch(next...(next + 1)).count)
        // After a restart the records continue in the room of the last segment.
        try append(reopened, (next + 2)...(next + 2))
        XCTAssertEqual(try segmentNames(fileSystem), names)
        XCTAssertEqual(fileSystem.contents(of: "/wal/" + names[1])?.count, 600)
        XCTAssertEqual(try makeLog(fileSystem).1, (1...(next + 2)).map(makeRecord))
    }

    func testPlainSegmentIsLeftForThePreparedOneAsSoonAsItIsReady() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try makeLog(fileSystem, segmentBytesMax: 10_000)
        try append(wal, 1...2) // nothing prepared yet: a plain segment that grows
        try append(wal, 3...3)
        XCTAssertEqual(fileSystem.contents(of: "/wal/wal-00000000000000000001.log"), encodedBatch(1...3))
        try wal.prepareNextSegment()
        try append(wal, 4...5)
        XCTAssertEqual(try segmentNames(fileSystem), ["wal-00000000000000000001.log", "wal-00000000000000000004.log"])
        XCTAssertEqual(fileSystem.contents(of: "/wal/wal-00000000000000000004.log")?.count, 10_000)
        XCTAssertEqual(try makeLog(fileSystem, segmentBytesMax: 10_000).1, (1...5).map(makeRecord))
    }

    func testOversizedBatchInAPreparedSegmentGrowsItAndIsCutAtRollover() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try makeLog(fileSystem, segmentBytesMax: 200)
        try wal.prepareNextSegment()
        try append(wal, 1...10) // larger than a segment: written past the prepared zeros
        try wal.prepareNextSegment()
        try append(wal, 11...11)
        XCTAssertEqual(fileSystem.contents(of: "/wal/wal-00000000000000000001.log"), encodedBatch(1...10))
        XCTAssertEqual(try makeLog(fileSystem, segmentBytesMax: 200).1, (1...11).map(makeRecord))
    }

    /// A torn record inside a preallocated segment, cut at every byte: dropped and the file
    /// cut there (room and all: a truncation cannot tear), earlier records intact; later
    /// appends go on, in the prepared segment as soon as there is one.
    func testTornRecordInsideAPreallocatedSegmentAtEveryCut() throws {
        let path = "/wal/wal-00000000000000000001.log"
        let whole = encodedBatch(1...3)
        let lastStart = encodedBatch(1...2).count
        for cut in lastStart..<whole.count {
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectory("/wal")
            fileSystem.overwriteFile(path, with: Array(whole[..<cut]) + [UInt8](repeating: 0, count: 600 - cut))
            let (wal, records, report) = try makeLog(fileSystem)
            XCTAssertEqual(records, (1...2).map(makeRecord), "cut at \(cut)")
            if whole[lastStart..<cut].contains(where: { $0 != 0 }) {
                XCTAssertEqual(report.tornTail?.offset, lastStart, "cut at \(cut)")
                XCTAssertEqual(fileSystem.contents(of: path), encodedBatch(1...2), "cut at \(cut)")
            } else {
                XCTAssertNil(report.tornTail, "cut at \(cut)")
                XCTAssertEqual(report.unusedTailBytes, 600 - lastStart)
                XCTAssertEqual(fileSystem.contents(of: path)?.count, 600)
            }
            try append(wal, 3...4)
            try wal.prepareNextSegment()
            try append(wal, 5...5)
            let (_, again, againReport) = try makeLog(fileSystem)
            XCTAssertEqual(again, (1...5).map(makeRecord), "cut at \(cut)")
            XCTAssertNil(againReport.tornTail)
        }
    }

    func testEmptyLastSegmentIsRemovedAndNamedAgainByTheNextRecord() throws {
        // A segment renamed into place whose first batch failed (cut back to nothing), made
        // durable by the directory sync; then a crash.
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try makeLog(fileSystem, segmentBytesMax: 300)
        try wal.prepareNextSegment()
        try append(wal, 1...2)
        try wal.prepareNextSegment()
        fileSystem.failNext(.write, errno: EIO)
        XCTAssertThrowsError(try append(wal, 3...8, sync: false))
        try wal.sync()
        let names = try segmentNames(fileSystem)
        XCTAssertEqual(names, ["wal-00000000000000000001.log", "wal-00000000000000000003.log"])
        XCTAssertEqual(fileSystem.contents(of: "/wal/" + names[1]), [])
        fileSystem.crash()

        let (reopened, records, report) = try makeLog(fileSystem, segmentBytesMax: 300)
        XCTAssertEqual(records, (1...2).map(makeRecord))
        XCTAssertEqual(report.removedEmptySegment, names[1])
        XCTAssertNil(report.tornTail)
        XCTAssertEqual(try segmentNames(fileSystem), [names[0]])
        try reopened.prepareNextSegment()
        try append(reopened, 3...4)
        XCTAssertEqual(try makeLog(fileSystem, segmentBytesMax: 300).1, (1...4).map(makeRecord))
    }

    func testFailedWriteInThePreparedRoomIsCutBack() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try makeLog(fileSystem, segmentBytesMax: 2000)
        try wal.prepareNextSegment()
        try append(wal, 1...2)
        fileSystem.failNext(.write, errno: EIO)
        XCTAssertThrowsError(try append(wal, 3...6))
        let path = "/wal/wal-00000000000000000001.log"
        XCTAssertEqual(fileSystem.contents(of: path), encodedBatch(1...2))
        try append(wal, 3...4) // shorter than the failed batch: nothing of it may show after
        XCTAssertEqual(try makeLog(fileSystem, segmentBytesMax: 2000).1, (1...4).map(makeRecord))
    }

    // MARK: Recovery rules

    func testZeroHeaderIsNeverARecord() throws {
        // A wholly zero last segment (prepared, renamed, nothing written): no record, removed.
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectory("/wal")
        fileSystem.overwriteFile("/wal/wal-00000000000000000001.log", with: encodedBatch(1...2))
        fileSystem.overwriteFile("/wal/wal-00000000000000000003.log", with: [UInt8](repeating: 0, count: 600))
        let (_, records, report) = try recoverAll(fileSystem: fileSystem)
        XCTAssertEqual(records, (1...2).map(makeRecord))
        XCTAssertEqual(report.removedEmptySegment, "wal-00000000000000000003.log")
        XCTAssertEqual(report.recordsRead, 2)
        XCTAssertNil(report.tornTail)

        // Exactly one zero header (8 bytes) after the records: room, not a record.
        let single = SimulatedFileSystem()
        try single.makeDirectory("/wal")
        single.overwriteFile("/wal/wal-00000000000000000001.log", with: encodedBatch(1...2) + [UInt8](repeating: 0, count: 8))
        let (_, singleRecords, singleReport) = try recoverAll(fileSystem: single)
        XCTAssertEqual(singleRecords, (1...2).map(makeRecord))
        XCTAssertEqual(singleReport.unusedTailBytes, 8)
        XCTAssertEqual(singleReport.recordsRead, 2)
    }

    func testZerosThenDataInTheLastSegmentIsCorruption() throws {
        // Zeros where a record should start, then non-zero bytes: lost bytes in the middle.
        let path = "/wal/wal-00000000000000000001.log"
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectory("/wal")
        let start = encodedBatch(1...2).count
        fileSystem.overwriteFile(path, with: encodedBatch(1...2) + [UInt8](repeating: 0, count: 100) + encodedBatch(3...3)
                                 + [UInt8](repeating: 0, count: 300))
        assertCorrupt(fileSystem, file: path, offset: start, "zero length")
        // A record whose checksum fails, with records (not only zeros) after it.
        var bytes = encodedBatch(1...4) + [UInt8](repeating: 0, count: 300)
        bytes[start + 12] ^= 0x20
        fileSystem.overwriteFile(path, with: bytes)
        assertCorrupt(fileSystem, file: path, offset: start, "checksum")
        // The same damage in the last record, only zeros after: a torn write.
        bytes = encodedBatch(1...3) + [UInt8](repeating: 0, count: 300)
        bytes[start + 12] ^= 0x20
        fileSystem.overwriteFile(path, with: bytes)
        let (_, records, report) = try recoverAll(fileSystem: fileSystem)
        XCTAssertEqual(records, (1...2).map(makeRecord))
        XCTAssertEqual(report.tornTail?.offset, start)
    }

    func testZeroTailInANonLastSegmentIsCorruption() throws {
        // Rollover cuts every segment to its records: zeros left in one that is not the last
        // mean the cut never happened or bytes were lost.
        let path = "/wal/wal-00000000000000000001.log"
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectory("/wal")
        fileSystem.overwriteFile(path, with: encodedBatch(1...2) + [UInt8](repeating: 0, count: 50))
        fileSystem.overwriteFile("/wal/wal-00000000000000000003.log", with: encodedBatch(3...4))
        assertCorrupt(fileSystem, file: path, offset: encodedBatch(1...2).count, "not the last")
    }

    // MARK: Crashes at every step

    /// A scenario of preparations, rollovers and appends, crashed at each of its disk
    /// operations in turn (with and without torn writes): recovery keeps every synced
    /// record, reads nothing invented, and the log goes on.
    func testCrashAtEveryOperationOfPreparationRolloverAndAppend() throws {
        var crashes = 0
        for tears in [false, true] {
            for crashAt in 1...400 {
                let fileSystem = SimulatedFileSystem(tearsWrites: tears, seed: UInt64(crashAt))
                let context = "crash at operation \(crashAt), tears \(tears)"
                var durable: UInt64 = 0
                var next: UInt64 = 1
                do {
                    let (wal, _, _) = try makeLog(fileSystem, segmentBytesMax: 400, chunk: 96)
                    fileSystem.crash(afterOperations: crashAt)
                    for step in 0..<24 {
                        if step % 5 == 0 { try wal.prepareNextSegment() }
                        let count = UInt64(1 + step % 4)
                        try append(wal, next...(next + count - 1), sync: false)
                        next += count
                        if step % 3 != 2 {
                            try wal.sync()
                            durable = next - 1
                        }
                    }
                    try wal.sync()
                    durable = next - 1
                } catch is SimulatedCrash {
                    crashes += 1
                }
                fileSystem.crash()
                let (wal, records, report) = try makeLog(fileSystem, segmentBytesMax: 400, chunk: 96)
                XCTAssertGreaterThanOrEqual(UInt64(records.count), durable, "synced records lost: \(context)")
                XCTAssertEqual(records, (1...max(1, UInt64(records.count))).prefix(records.count).map(makeRecord), context)
                if let torn = report.tornTail { XCTAssertTrue(torn.file.hasSuffix(".log"), context) }
                // The log goes on from there, through another rollover.
                var after = UInt64(records.count) + 1
                try wal.prepareNextSegment()
                for _ in 0..<6 {
                    try append(wal, after...(after + 2))
                    after += 3
                }
                XCTAssertEqual(try makeLog(fileSystem, segmentBytesMax: 400, chunk: 96).1,
                               (1...(after - 1)).map(makeRecord), context)
            }
        }
        XCTAssertGreaterThan(crashes, 100)
    }

    // MARK: Switching preallocation off, and the real disk

    func testTurningPreallocationOffCutsTheRoomAndRemovesThePreparedFile() throws {
        let fileSystem = SimulatedFileSystem()
        let (wal, _, _) = try makeLog(fileSystem)
        try wal.prepareNextSegment()
        try append(wal, 1...2)
        try wal.prepareNextSegment()
        XCTAssertNotNil(fileSystem.contents(of: prepared))
        let (plain, records, report) = try makeLog(fileSystem, preallocation: .off)
        XCTAssertEqual(records, (1...2).map(makeRecord))
        XCTAssertGreaterThan(report.unusedTailBytes, 0)
        XCTAssertNil(fileSystem.contents(of: prepared))
        XCTAssertEqual(fileSystem.contents(of: "/wal/wal-00000000000000000001.log"), encodedBatch(1...2))
        try append(plain, 3...3)
        XCTAssertEqual(try makeLog(fileSystem, preallocation: .off).1, (1...3).map(makeRecord))
    }

    func testPOSIXBackgroundPreparation() throws {
        try posixBackgroundPreparation(writesThrough: false)
    }

    /// The same, each prepared segment written through (`O_DIRECT | O_DSYNC` on a file system
    /// that takes it): the same records in the same files.
    func testPOSIXBackgroundPreparationWritingThrough() throws {
        try posixBackgroundPreparation(writesThrough: true)
    }

    private func posixBackgroundPreparation(writesThrough: Bool) throws {
        let directory = try makeTemporaryDirectory(self) + "/wal"
        let fileSystem = POSIXFileSystem()
        func open(after: UInt64 = 0) throws -> (WriteAheadLog, [WALRecord], RecoveryReport) {
            let wal = try WriteAheadLog(directory: directory, segmentBytesMax: 16 << 10, preallocation: .background,
                                        preparationChunkBytes: 4 << 10, writesThrough: writesThrough, fileSystem: fileSystem)
            var records: [WALRecord] = []
            let report = try wal.recover(after: after) { records.append($0) }
            return (wal, records, report)
        }
        let (wal, _, _) = try open()
        XCTAssertTrue(try wal.prepareNextSegment()) // waits for the log's thread
        let preparedPath = directory + "/" + WriteAheadLog.preparedSegmentName
        XCTAssertEqual(try fileSystem.fileSize(preparedPath), 16 << 10)
        var next: UInt64 = 1
        for _ in 0..<400 {
            try wal.append(encodedBatch(next...(next + 3)), firstSequence: next, lastSequence: next + 3)
            try wal.sync()
            next += 4
        }
        XCTAssertNil(wal.preparationFailure)
        // The last rollover may have found nothing prepared yet (a plain segment): once one
        // is, the next batch goes to a preallocated segment either way.
        XCTAssertTrue(try wal.prepareNextSegment())
        try wal.append(encodedBatch(next...next), firstSequence: next, lastSequence: next)
        try wal.sync()
        next += 1
        // A prepared segment is current now: written through if asked for and possible.
        XCTAssertEqual(wal.isWritingThrough, writesThrough && isDirectIOFileSystem(directory))
        // One log per directory at a time: let this one's thread finish the next segment.
        XCTAssertTrue(try wal.prepareNextSegment())
        let names = try fileSystem.listDirectory(directory).filter { $0.hasSuffix(".log") }.sorted()
        XCTAssertGreaterThan(names.count, 2)
        for name in names.dropLast() {
            XCTAssertNotEqual(try fileSystem.readFile(directory + "/" + name).suffix(8), [0, 0, 0, 0, 0, 0, 0, 0],
                              "\(name) is cut to its records")
        }
        XCTAssertEqual(try fileSystem.fileSize(directory + "/" + names.last!), 16 << 10)
        let (reopened, records, report) = try open()
        XCTAssertEqual(records, (1...(next - 1)).map(makeRecord))
        XCTAssertNil(report.tornTail)
        // The recovered last segment, preallocated, is written through as well.
        XCTAssertEqual(reopened.isWritingThrough, writesThrough && isDirectIOFileSystem(directory))
        try reopened.append(encodedBatch(next...next), firstSequence: next, lastSequence: next)
        try reopened.sync()
        XCTAssertGreaterThan(try reopened.removeSegments(through: next / 2), 0)
        XCTAssertTrue(try reopened.prepareNextSegment())
        let (_, again, _) = try open(after: next / 2)
        XCTAssertEqual(again.last, makeRecord(next))
    }
}
