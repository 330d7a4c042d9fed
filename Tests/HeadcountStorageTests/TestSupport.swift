import Foundation
import HeadcountCore
@testable import HeadcountStorage
import XCTest

/// One event of every kind, each with the details its kind uses, plus the edge cases of the
/// codec: seat changes with every optional present and absent, unicode, 128-byte ids.
func sampleEvents() -> [FeedEvent] {
    let at: Int64 = 1_747_807_200_000
    func ticket(_ kind: FeedEventKind, _ details: FeedEvent.Details = .none) -> FeedEvent {
        FeedEvent(id: "f-\(kind.rawValue)", kind: kind, eventId: "E1", ticketId: "T42", occurredAt: at, details: details)
    }
    var events: [FeedEvent] = [
        ticket(.ticketCreated),
        ticket(.ticketDeleted, .deletion(isPending: false)),
        ticket(.ticketDeleted, .deletion(isPending: true)),
        ticket(.ticketRestored),
        ticket(.ticketDownloaded, .device("d-9")),
        ticket(.ticketLoggedOut, .device("")),
        ticket(.transferInitiated),
        ticket(.transferAccepted),
        ticket(.transferCancelled),
        ticket(.ticketControlled),
    ]
    for mode in ActivationMode.allCases { events.append(ticket(.ticketActivated, .activation(mode))) }
    let passKinds: [FeedEventKind] = [.passAdded, .passSyncAdded, .passRemoved, .passSyncRemoved,
                                      .passControlled, .passInvalidated, .passTransferred, .passStatusChanged]
    for kind in passKinds {
        for platform in PassPlatform.allCases {
            events.append(ticket(kind, .pass(platform, nil, nil)))
            for status in PassStatus.allCases { events.append(ticket(kind, .pass(platform, status, nil))) }
        }
    }
    for reason in InvalidationReason.allCases {
        events.append(ticket(.passInvalidated, .pass(.ios, nil, reason)))
        events.append(ticket(.passInvalidated, .pass(.android, .deleted, reason)))
    }
    func seat(_ change: SeatStatusChange, id: String = "s-1") -> FeedEvent {
        FeedEvent(id: id, kind: .seatStatusChanged, eventId: "E1", ticketId: "", occurredAt: at, details: .seatStatus(change))
    }
    events.append(seat(SeatStatusChange(objectLabel: "A-1", status: "booked", originType: .heldByUser)))
    events.append(seat(SeatStatusChange(
        objectLabel: "A-1", status: "reservedByToken", quantity: 12, orderId: "order-7",
        extraDataJSON: #"{"note":"VIP","n":[1,2]}"#, holdToken: "hold-xyz", displayedLabel: "Row A, seat 1",
        originType: .apiCall, originIP: "203.0.113.9")))
    events.append(seat(SeatStatusChange(objectLabel: "GA", status: "free", quantity: Int64.max, originType: .holdExpired)))
    events.append(seat(SeatStatusChange(objectLabel: "B-2", status: "custom", orderId: "", holdToken: "",
                                        displayedLabel: "", originType: .holdReleasedByUser, originIP: "")))
    for origin in SeatOriginType.allCases {
        events.append(seat(SeatStatusChange(objectLabel: "C-\(origin.rawValue)", status: "resale", originType: origin)))
    }
    events.append(seat(SeatStatusChange(objectLabel: "Ränge 🎟️ 北", status: "réservé", extraDataJSON: #"{"emoji":"😀"}"#,
                                        displayedLabel: "Rang Ö", originType: .apiCall, originIP: "::1"), id: "ü-𝄞"))
    for reason in ChartRemovalReason.allCases {
        events.append(FeedEvent(id: "c-\(reason.rawValue)", kind: .chartObjectRemoved, eventId: "E1", ticketId: "",
                                occurredAt: at, details: .chartObject(label: "T-1", removalReason: reason)))
    }
    events.append(FeedEvent(id: "c-r", kind: .chartObjectRestored, eventId: "E1", ticketId: "",
                            occurredAt: at, details: .chartObject(label: "T-1", removalReason: nil)))
    // Limits: 128-byte ids (one of them multi-byte), extreme times, the largest strings.
    let long = String(repeating: "x", count: 128)
    let longUnicode = String(repeating: "é", count: 64) // 128 UTF-8 bytes
    events.append(FeedEvent(id: long, kind: .ticketCreated, eventId: longUnicode, ticketId: long, occurredAt: Int64.min))
    events.append(FeedEvent(id: "x", kind: .ticketDownloaded, eventId: "E", ticketId: "T", occurredAt: Int64.max,
                            details: .device(String(repeating: "d", count: WALRecord.stringBytesMax))))
    return events
}

/// A small deterministic record for a sequence, varying kind and details.
func makeRecord(_ sequence: UInt64) -> WALRecord {
    let kinds: [(FeedEventKind, FeedEvent.Details)] = [
        (.ticketCreated, .none), (.ticketDownloaded, .device("d-\(sequence % 7)")),
        (.ticketActivated, .activation(.offline)), (.passAdded, .pass(.ios, .active, nil)),
        (.ticketDeleted, .deletion(isPending: sequence % 2 == 0)),
    ]
    let (kind, details) = kinds[Int(sequence % UInt64(kinds.count))]
    return WALRecord(
        sequence: sequence, arrivalMilliseconds: 1_747_807_200_000 + Int64(sequence),
        event: FeedEvent(id: "f-\(sequence)", kind: kind, eventId: "E\(sequence % 3)",
                         ticketId: "T\(sequence % 1000)", occurredAt: 1_747_800_000_000 + Int64(sequence * 37 % 10_000),
                         details: details))
}

/// The framed bytes of records `first...last`.
func encodedBatch(_ sequences: ClosedRange<UInt64>) -> [UInt8] {
    var buffer: [UInt8] = []
    for sequence in sequences { WriteAheadLog.encode(makeRecord(sequence), into: &buffer) }
    return buffer
}

func hexDump(_ bytes: [UInt8]) -> String {
    bytes.map { byte -> String in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined(separator: " ")
}

/// Recovers a fresh log over `fileSystem` and returns the records delivered and the report.
func recoverAll(directory: String = "/wal", fileSystem: StorageFileSystem, after: UInt64 = 0,
                segmentBytesMax: Int = 64 << 20) throws -> (WriteAheadLog, [WALRecord], RecoveryReport) {
    let wal = try WriteAheadLog(directory: directory, segmentBytesMax: segmentBytesMax, fileSystem: fileSystem)
    var records: [WALRecord] = []
    let report = try wal.recover(after: after) { records.append($0) }
    return (wal, records, report)
}

/// A fresh directory under the system temp directory, removed by the test's teardown.
func makeTemporaryDirectory(_ testCase: XCTestCase) throws -> String {
    var template = Array((NSTemporaryDirectory() + "/headcount-storage-XXXXXX").utf8CString)
    let path = template.withUnsafeMutableBufferPointer { buffer -> String? in
        guard let result = mkdtemp(buffer.baseAddress!) else { return nil }
        return String(cString: result)
    }
    guard let path else { throw StorageError(operation: "mkdtemp", path: NSTemporaryDirectory(), errno: errno) }
    testCase.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// Recovery of the log at /wal must throw `WALError.corrupt` naming `file` and `offset` (also
/// in its description), with a reason containing `reasonContains`.
func assertCorrupt(_ fileSystem: StorageFileSystem, file: String, offset: Int, _ reasonContains: String,
                   line: UInt = #line) {
    XCTAssertThrowsError(try recoverAll(fileSystem: fileSystem), line: line) { error in
        guard case let WALError.corrupt(errorFile, errorOffset, reason) = error else {
            return XCTFail("unexpected \(error)", line: line)
        }
        XCTAssertEqual(errorFile, file, line: line)
        XCTAssertEqual(errorOffset, offset, line: line)
        XCTAssertTrue(reason.contains(reasonContains), reason, line: line)
        let description = "\(error)"
        XCTAssertTrue(description.contains(file) && description.contains("offset \(offset)"), description, line: line)
    }
}
