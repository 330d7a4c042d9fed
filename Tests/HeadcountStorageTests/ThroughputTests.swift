import Foundation
import HeadcountCore
import HeadcountStorage
import XCTest

/// Encode and replay speed for 1M small records. Printed, never asserted (numbers depend on
/// the machine and on debug vs release builds).
final class ThroughputTests: XCTestCase {
    func testEncodeAndReplayThroughputOfOneMillionSmallRecords() throws {
        let recordCount = 1_000_000
        let batchSize = 1_000
        let records = (1...UInt64(recordCount)).map { sequence in
            WALRecord(sequence: sequence, arrivalMilliseconds: 1_747_807_200_000 + Int64(sequence),
                      event: FeedEvent(id: "f-\(sequence)", kind: .ticketDownloaded, eventId: "E\(sequence % 50)",
                                       ticketId: "T\(sequence % 100_000)", occurredAt: 1_747_800_000_000 + Int64(sequence),
                                       details: .device("d-\(sequence % 9)")))
        }

        // Encode, batch by batch into one reused buffer, as the group commit does.
        var buffer: [UInt8] = []
        buffer.reserveCapacity(batchSize * 64)
        var encodedBytes = 0
        var start = DispatchTime.now()
        for (index, record) in records.enumerated() {
            WriteAheadLog.encode(record, into: &buffer)
            if (index + 1) % batchSize == 0 {
                encodedBytes += buffer.count
                buffer.removeAll(keepingCapacity: true)
            }
        }
        let encodeSeconds = seconds(since: start)

        // Append to the real disk, one sync at the end (no fsync per batch: that measures the
        // disk, not this code).
        let directory = try makeTemporaryDirectory(self) + "/wal"
        let wal = try WriteAheadLog(directory: directory)
        _ = try wal.recover(after: 0) { _ in }
        start = DispatchTime.now()
        var batch: [UInt8] = []
        for first in stride(from: 0, to: recordCount, by: batchSize) {
            batch.removeAll(keepingCapacity: true)
            for record in records[first..<(first + batchSize)] { WriteAheadLog.encode(record, into: &batch) }
            try wal.append(batch, firstSequence: records[first].sequence, lastSequence: records[first + batchSize - 1].sequence)
        }
        try wal.sync()
        let appendSeconds = seconds(since: start)

        // Replay everything.
        start = DispatchTime.now()
        var replayed = 0
        let replaying = try WriteAheadLog(directory: directory)
        let report = try replaying.recover(after: 0) { _ in replayed += 1 }
        let replaySeconds = seconds(since: start)
        XCTAssertEqual(replayed, recordCount)

        #if DEBUG
        let build = "debug build"
        #else
        let build = "release build"
        #endif
        func rate(_ seconds: Double) -> String { String(format: "%.0f records/s", Double(recordCount) / seconds) }
        print("""
            WAL throughput, \(recordCount) records of \(encodedBytes / recordCount) bytes, \(build):
              encode           \(rate(encodeSeconds)) (\(String(format: "%.2f", encodeSeconds)) s)
              encode + append  \(rate(appendSeconds)) (\(String(format: "%.2f", appendSeconds)) s, \(report.segmentCount) segment(s), one fdatasync)
              replay           \(rate(replaySeconds)) (\(String(format: "%.2f", replaySeconds)) s, read + crc32c + decode)
            """)
    }

    private func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
}
