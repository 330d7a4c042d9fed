import Foundation
@testable import HeadcountStorage
import HeadcountCore
import XCTest

/// WAL + snapshots over a disk that crashes (between operations and in the middle of them:
/// mid-recovery, mid-roll, mid-snapshot, mid-preparation of a preallocated segment, mid-record
/// inside one), loses unsynced writes and tears them, driven by one seed: printed on every
/// run, replayed with HEADCOUNT_TEST_SEED=<seed>. Rounds switch preallocation on and off over
/// the same files, as an operator may between restarts.
final class StorageSimulationTests: XCTestCase {
    private func snapshotPayload(_ sequence: UInt64) -> [UInt8] {
        Array("state through \(sequence)".utf8)
    }

    func testSeededCrashAndTearSimulation() throws {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("StorageSimulationTests seed: \(seed) (replay with HEADCOUNT_TEST_SEED=\(seed))")
        var random = SplitMix64(seed: seed)
        func roll(_ bound: Int) -> Int { Int(random.next() % UInt64(bound)) }

        let fileSystem = SimulatedFileSystem(tearsWrites: true, seed: random.next())
        var durable: UInt64 = 0      // every record ≤ this was synced: it must survive
        var stats = (rounds: 0, midOperationCrashes: 0, tornTails: 0, appended: 0, snapshots: 0,
                     segmentsTrimmed: 0, diskFullFaults: 0, preallocatedRounds: 0, preparations: 0,
                     recoveredWithRoom: 0)

        for round in 0..<300 {
            let context = "seed \(seed), round \(round)"
            fileSystem.tearsWrites = roll(3) != 0
            if roll(2) == 0 { fileSystem.crash(afterOperations: 1 + roll(80)) }
            do {
                let segmentBytesMax = 200 + roll(2000)
                let preallocates = roll(3) != 0
                if preallocates { stats.preallocatedRounds += 1 }
                let store = try SnapshotStore(directory: "/data", fileSystem: fileSystem)
                let wal = try WriteAheadLog(directory: "/data/wal", segmentBytesMax: segmentBytesMax,
                                            preallocation: preallocates ? .manual : .off,
                                            preparationChunkBytes: 64 + roll(512), fileSystem: fileSystem)

                // Recover: the newest snapshot, then the WAL after it, with no gap and nothing
                // partial or invented.
                let snapshot = try store.loadNewest()
                let base = snapshot?.sequence ?? 0
                if let snapshot { XCTAssertEqual(snapshot.payload, snapshotPayload(snapshot.sequence), context) }
                XCTAssertLessThanOrEqual(base, max(durable, base), context)
                var expected = base + 1
                let report = try wal.recover(after: base) { record in
                    XCTAssertEqual(record, makeRecord(expected), context)
                    expected = record.sequence + 1
                }
                if report.tornTail != nil { stats.tornTails += 1 }
                if report.unusedTailBytes > 0 { stats.recoveredWithRoom += 1 }
                let recovered = expected - 1
                XCTAssertGreaterThanOrEqual(recovered, durable, "synced records lost: \(context)")
                // What survived a crash was read back from the disk: it is durable now.
                durable = recovered
                var next = recovered + 1
                var snapshotSequence = base

                for _ in 0..<roll(40) {
                    switch roll(preallocates ? 22 : 20) {
                    case 0..<11:
                        let count = UInt64(1 + roll(8))
                        try wal.append(encodedBatch(next...(next + count - 1)), firstSequence: next, lastSequence: next + count - 1)
                        next += count
                        stats.appended += Int(count)
                    case 11..<16:
                        try wal.sync()
                        durable = next - 1
                    case 16, 17:
                        // The engine snapshots only state whose records are durable, then trims.
                        if durable > snapshotSequence {
                            try store.write(sequence: durable, payload: snapshotPayload(durable))
                            snapshotSequence = durable
                            stats.snapshots += 1
                            stats.segmentsTrimmed += try wal.removeSegments(through: durable)
                        }
                    case 18:
                        // A full disk mid-batch: the batch fails and is cut back; the log goes on.
                        fileSystem.failNext(.write, errno: ENOSPC)
                        XCTAssertThrowsError(try wal.append(encodedBatch(next...next), firstSequence: next, lastSequence: next)) {
                            XCTAssertTrue($0 is StorageError || $0 is SimulatedCrash, "\($0)")
                        }
                        if fileSystem.isCrashed { throw SimulatedCrash() }
                        stats.diskFullFaults += 1
                    case 19:
                        XCTAssertEqual(wal.segmentCount, try fileSystem.listDirectory("/data/wal")
                            .filter { $0.hasSuffix(".log") }.count, context)
                    default:
                        // Zero-fill the next segment (a chunk at a time, each synced): a crash
                        // may land in the middle; the next rollover renames it into place.
                        try wal.prepareNextSegment()
                        stats.preparations += 1
                    }
                }
            } catch is SimulatedCrash {
                stats.midOperationCrashes += 1
            }
            fileSystem.crash()
            stats.rounds += 1
        }
        print("StorageSimulationTests: \(stats)")
    }
}
