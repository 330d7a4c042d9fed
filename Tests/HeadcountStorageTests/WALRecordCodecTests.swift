import HeadcountCore
import HeadcountTestSupport
@testable import HeadcountStorage
import XCTest

final class WALRecordCodecTests: XCTestCase {
    func testRoundTripOfEveryKindAndDetailsCase() throws {
        let events = sampleEvents()
        // Every kind and every details case is in the table.
        XCTAssertEqual(Set(events.map(\.kind.rawValue)), Set(FeedEventKind.allCases.map(\.rawValue)))
        var buffer: [UInt8] = []
        var records: [WALRecord] = []
        for (index, event) in events.enumerated() {
            let record = WALRecord(sequence: UInt64(index) + 1, arrivalMilliseconds: -5 + Int64(index), event: event)
            records.append(record)
            XCTAssertNil(WALRecord.encodingProblem(of: event))
            WriteAheadLog.encode(record, into: &buffer)
        }
        // Decode the framed stream back.
        var offset = 0
        for record in records {
            let length = Int(buffer[offset]) | Int(buffer[offset + 1]) << 8 | Int(buffer[offset + 2]) << 16 | Int(buffer[offset + 3]) << 24
            let storedChecksum = UInt32(buffer[offset + 4]) | UInt32(buffer[offset + 5]) << 8
                | UInt32(buffer[offset + 6]) << 16 | UInt32(buffer[offset + 7]) << 24
            let payload = Array(buffer[(offset + 8)..<(offset + 8 + length)])
            XCTAssertEqual(CRC32C.checksum(payload), storedChecksum)
            XCTAssertEqual(try WALRecord(payload: payload), record)
            offset += 8 + length
        }
        XCTAssertEqual(offset, buffer.count)
    }

    func testExtremeSequenceAndTimes() throws {
        for (sequence, arrival, occurredAt) in [(UInt64.max, Int64.min, Int64.max), (0, 0, 0), (1 << 63, -1, Int64.min)] {
            let record = WALRecord(sequence: sequence, arrivalMilliseconds: arrival,
                                   event: FeedEvent(id: "a", kind: .ticketCreated, eventId: "b", ticketId: "", occurredAt: occurredAt))
            var buffer: [UInt8] = []
            record.encode(into: &buffer)
            XCTAssertEqual(try WALRecord(payload: Array(buffer[8...])), record)
        }
    }

    /// The worked example in `WALRecord`'s documentation and docs/FORMATS.md.
    func testWorkedExampleBytes() {
        let record = WALRecord(
            sequence: 7, arrivalMilliseconds: 1_747_807_200_123,
            event: FeedEvent(id: "f-1", kind: .ticketDownloaded, eventId: "E1", ticketId: "T42",
                             occurredAt: 1_747_807_200_000, details: .device("d-9")))
        var buffer: [UInt8] = []
        record.encode(into: &buffer)
        print("WAL worked example (\(buffer.count) bytes): \(hexDump(buffer))")
        XCTAssertEqual(hexDump(buffer), """
            2a 00 00 00 25 af db b6 01 07 00 00 00 00 00 00 00 7b 63 6d f1 96 01 00 00 04 \
            00 63 6d f1 96 01 00 00 03 66 2d 31 02 45 31 03 54 34 32 02 03 64 2d 39
            """)
    }

    /// The feed path encodes a ticket or pass event from the decoder's bytes, before it has a
    /// sequence (`encodeUnsealed`), and seals it when admitted (`seal`): the same bytes as
    /// encoding the `FeedEvent`, for every ticket and pass kind and details case, and for ids
    /// at the limits (two-byte length varints, multi-byte UTF-8), back to back in one buffer.
    func testRecordsEncodedFromBytesAreTheRecordsOfTheirEvents() throws {
        let long = String(repeating: "x", count: WALRecord.idBytesMax)
        let accented = String(repeating: "é", count: WALRecord.idBytesMax / 2)
        var events = sampleEvents().filter(\.kind.isTicketOrPass)
        events.append(FeedEvent(id: long, kind: .ticketDownloaded, eventId: accented, ticketId: long, occurredAt: -1,
                                details: .device(String(repeating: "d", count: 200))))
        events.append(FeedEvent(id: accented, kind: .passInvalidated, eventId: "Ω", ticketId: "tïcket-✓", occurredAt: Int64.max,
                                details: .pass(.android, .deleted, .reprint)))
        var unsealed: [UInt8] = []
        var ends: [Int] = []
        var expected: [UInt8] = []
        for (index, event) in events.enumerated() {
            let arrival = 1_747_807_200_000 + Int64(index)
            withBytes(of: event) { bytes in
                XCTAssertNil(WALRecord.encodingProblem(of: bytes))
                XCTAssertEqual(bytes.event, event)
                let count = WALRecord.encodeUnsealed(arrivalMilliseconds: arrival, event: bytes, into: &unsealed)
                XCTAssertEqual(unsealed.count, (ends.last ?? 0) + count)
                var alone: [UInt8] = []
                WALRecord.encode(sequence: UInt64(index) + 100, arrivalMilliseconds: arrival, event: bytes, into: &alone)
                var fromEvent: [UInt8] = []
                WALRecord(sequence: UInt64(index) + 100, arrivalMilliseconds: arrival, event: event).encode(into: &fromEvent)
                XCTAssertEqual(alone, fromEvent, "event \(index)")
                expected.append(contentsOf: fromEvent)
            }
            ends.append(unsealed.count)
        }
        // Sealed in place, one by one, with the sequences: the records of the events.
        unsealed.withUnsafeMutableBytes { buffer in
            for index in events.indices {
                let start = index == 0 ? 0 : ends[index - 1]
                WALRecord.seal(UnsafeMutableRawBufferPointer(rebasing: buffer[start..<ends[index]]), sequence: UInt64(index) + 100)
            }
        }
        XCTAssertEqual(unsealed, expected)
        var offset = 0
        for (index, event) in events.enumerated() {
            let record = try WALRecord(payload: Array(expected[(offset + 8)..<ends[index]]))
            XCTAssertEqual(record.event, event)
            XCTAssertEqual(record.sequence, UInt64(index) + 100)
            offset = ends[index]
        }
    }

    /// A device id over the WAL's string limit is reported from the bytes as from the event
    /// (the decoder limits devices to 128 bytes, so only a direct caller can hit this).
    func testEncodingProblemOfBytesMatchesTheEvent() {
        let tooLong = FeedEvent(id: "a", kind: .ticketDownloaded, eventId: "E", ticketId: "T", occurredAt: 0,
                                details: .device(String(repeating: "d", count: WALRecord.stringBytesMax + 1)))
        withBytes(of: tooLong) { bytes in
            XCTAssertNotNil(WALRecord.encodingProblem(of: bytes))
            XCTAssertEqual(WALRecord.encodingProblem(of: bytes), WALRecord.encodingProblem(of: tooLong))
        }
        let emptyId = FeedEvent(id: "", kind: .ticketCreated, eventId: "E", ticketId: "T", occurredAt: 0)
        withBytes(of: emptyId) { bytes in XCTAssertEqual(WALRecord.encodingProblem(of: bytes), WALRecord.encodingProblem(of: emptyId)) }
    }

    /// Ids at the length limit (a two-byte length varint), multi-byte UTF-8 and empty, through
    /// the encoder that writes the ids in place (`encode(sequence:…)`), appended one after the
    /// other into a buffer that has to grow.
    func testIdsAtTheLimitsRoundTrip() throws {
        let long = String(repeating: "x", count: WALRecord.idBytesMax)
        let accented = String(repeating: "é", count: WALRecord.idBytesMax / 2)  // 128 bytes
        let cases: [(String, String, String)] = [
            (long, "E1", ""), ("a", long, long), (accented, "Ω-show", "tïcket-✓"), ("f-1", accented, String(repeating: "z", count: 127)),
        ]
        var buffer: [UInt8] = []
        var records: [WALRecord] = []
        for (index, (id, eventId, ticketId)) in cases.enumerated() {
            let event = FeedEvent(id: id, kind: .ticketDownloaded, eventId: eventId, ticketId: ticketId,
                                  occurredAt: Int64(index) - 3, details: .device("dévice-\(index)"))
            XCTAssertNil(WALRecord.encodingProblem(of: event))
            let record = WALRecord(sequence: UInt64(index) + 1, arrivalMilliseconds: Int64(index) * 1000, event: event)
            records.append(record)
            WriteAheadLog.encode(sequence: record.sequence, arrivalMilliseconds: record.arrivalMilliseconds, checkedEvent: event, into: &buffer)
            var alone: [UInt8] = []
            record.encode(into: &alone)
            XCTAssertEqual(Array(buffer.suffix(alone.count)), alone, "both encoders write the same bytes")
        }
        var offset = 0
        for record in records {
            let length = Int(buffer[offset]) | Int(buffer[offset + 1]) << 8 | Int(buffer[offset + 2]) << 16 | Int(buffer[offset + 3]) << 24
            XCTAssertEqual(try WALRecord(payload: Array(buffer[(offset + 8)..<(offset + 8 + length)])), record)
            offset += 8 + length
        }
        XCTAssertEqual(offset, buffer.count)
    }

    func testEncodeAppendsWithoutDisturbingExistingBytes() {
        var buffer: [UInt8] = [0xAA, 0xBB]
        makeRecord(1).encode(into: &buffer)
        XCTAssertEqual(Array(buffer.prefix(2)), [0xAA, 0xBB])
        XCTAssertEqual(try WALRecord(payload: Array(buffer[10...])), makeRecord(1))
    }

    func testEncodingProblems() {
        var event = FeedEvent(id: "", kind: .ticketCreated, eventId: "E", ticketId: "T", occurredAt: 0)
        XCTAssertNotNil(WALRecord.encodingProblem(of: event))
        event.id = String(repeating: "x", count: 129)
        XCTAssertNotNil(WALRecord.encodingProblem(of: event))
        event.id = "ok"
        event.ticketId = String(repeating: "é", count: 65)
        XCTAssertNotNil(WALRecord.encodingProblem(of: event))
        event.ticketId = "T"
        XCTAssertNil(WALRecord.encodingProblem(of: event))
        event.details = .seatStatus(SeatStatusChange(objectLabel: "A", status: "free", quantity: 0, originType: .apiCall))
        XCTAssertNotNil(WALRecord.encodingProblem(of: event))
        event.details = .seatStatus(SeatStatusChange(objectLabel: "A", status: "free", originType: .apiCall,
                                                     originIP: String(repeating: "1", count: WALRecord.stringBytesMax + 1)))
        XCTAssertNotNil(WALRecord.encodingProblem(of: event))
    }

    // MARK: Bad payloads are errors

    private func payload(of record: WALRecord) -> [UInt8] {
        var buffer: [UInt8] = []
        record.encode(into: &buffer)
        return Array(buffer[8...])
    }

    private func assertRejected(_ bytes: [UInt8], offset: Int? = nil, _ reasonContains: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try WALRecord(payload: bytes), file: file, line: line) { error in
            guard let error = error as? WALRecord.DecodingError else {
                return XCTFail("unexpected error \(error)", file: file, line: line)
            }
            if let offset { XCTAssertEqual(error.offset, offset, "\(error)", file: file, line: line) }
            XCTAssertTrue(error.reason.contains(reasonContains), "\(error)", file: file, line: line)
        }
    }

    func testEveryTruncationOfEveryPayloadIsRejected() {
        for (index, event) in sampleEvents().enumerated() {
            let bytes = payload(of: WALRecord(sequence: UInt64(index), arrivalMilliseconds: 0, event: event))
            for cut in 0..<bytes.count {
                XCTAssertThrowsError(try WALRecord(payload: Array(bytes[..<cut])), "event \(index) cut at \(cut)")
            }
            assertRejected(bytes + [0], offset: bytes.count, "trailing")
        }
    }

    func testUnknownValuesAreRejected() {
        // Layout of this payload: 0 version, 1 sequence, 9 arrival, 17 kind, 18 occurredAt,
        // 26 id ("f-1": 4 bytes), 30 eventId ("E1": 3), 33 ticketId ("T": 2), 35 tag, 36…
        let base = WALRecord(sequence: 1, arrivalMilliseconds: 0,
                             event: FeedEvent(id: "f-1", kind: .passInvalidated, eventId: "E1", ticketId: "T",
                                              occurredAt: 0, details: .pass(.ios, .active, .reprint)))
        let bytes = payload(of: base)
        XCTAssertEqual(bytes[35], 4)
        func with(_ index: Int, _ value: UInt8) -> [UInt8] { var copy = bytes; copy[index] = value; return copy }
        assertRejected(with(0, 2), offset: 0, "format version")
        assertRejected(with(17, 0), offset: 17, "kind")
        assertRejected(with(17, 99), offset: 17, "kind")
        assertRejected(with(35, 7), offset: 35, "details tag")
        assertRejected(with(36, 4), offset: 36, "unknown bits")      // pass flags
        assertRejected(with(37, 3), offset: 37, "pass platform")
        assertRejected(with(38, 0), offset: 38, "pass status")
        assertRejected(with(39, 9), offset: 39, "invalidation reason")
        assertRejected(with(26, 0), offset: 26, "id length 0")       // empty id
        assertRejected(with(26, 200), offset: 26, "length")          // over 128
        assertRejected(with(26, 0x80), offset: 26, "id length")      // varint runs on into the text
        assertRejected(with(27, 0xFF), offset: 27, "UTF-8")          // invalid UTF-8 in id

        let deletion = payload(of: WALRecord(sequence: 1, arrivalMilliseconds: 0,
                                             event: FeedEvent(id: "f-1", kind: .ticketDeleted, eventId: "E1", ticketId: "T",
                                                              occurredAt: 0, details: .deletion(isPending: true))))
        var badFlag = deletion; badFlag[36] = 2
        assertRejected(badFlag, offset: 36, "pending flag")

        let activation = payload(of: WALRecord(sequence: 1, arrivalMilliseconds: 0,
                                               event: FeedEvent(id: "f-1", kind: .ticketActivated, eventId: "E1", ticketId: "T",
                                                                occurredAt: 0, details: .activation(.manual))))
        var badMode = activation; badMode[36] = 5
        assertRejected(badMode, offset: 36, "activation mode")

        let seat = payload(of: WALRecord(sequence: 1, arrivalMilliseconds: 0, event: FeedEvent(
            id: "f-1", kind: .seatStatusChanged, eventId: "E1", ticketId: "", occurredAt: 0,
            details: .seatStatus(SeatStatusChange(objectLabel: "A", status: "s", quantity: 1, originType: .apiCall)))))
        // 34 tag, 35 flags, 36 "A" (2), 38 "s" (2), 40 quantity, 41 origin type
        XCTAssertEqual(seat[34], 5)
        var badSeatFlags = seat; badSeatFlags[35] = 0x20
        assertRejected(badSeatFlags, offset: 35, "unknown bits")
        var zeroQuantity = seat; zeroQuantity[40] = 0
        assertRejected(zeroQuantity, offset: 40, "quantity")
        var badOrigin = seat; badOrigin[41] = 5
        assertRejected(badOrigin, offset: 41, "origin type")
        var hugeQuantity = Array(seat[..<40]) + [UInt8](repeating: 0xFF, count: 9) + [0x01] + Array(seat[41...])
        assertRejected(hugeQuantity, offset: 40, "quantity")     // 2^64 - 1 > Int64.max
        hugeQuantity = Array(seat[..<40]) + [UInt8](repeating: 0xFF, count: 9) + [0x02] + Array(seat[41...])
        assertRejected(hugeQuantity, offset: 40, "overflows")

        let chart = payload(of: WALRecord(sequence: 1, arrivalMilliseconds: 0, event: FeedEvent(
            id: "f-1", kind: .chartObjectRemoved, eventId: "E1", ticketId: "", occurredAt: 0,
            details: .chartObject(label: "A", removalReason: .switchedToBookBySeat))))
        // 34 tag, 35 flags, 36 "A" (2), 38 reason
        var badReason = chart; badReason[38] = 4
        assertRejected(badReason, offset: 38, "removal reason")
    }

    /// The hand-written UTF-8 check agrees with the standard library's on random bytes
    /// biased towards multi-byte sequences, and on the classic edge cases.
    func testUTF8ValidationMatchesTheStandardLibrary() {
        func agree(_ bytes: [UInt8], line: UInt = #line) {
            let expected = String(validating: bytes, as: UTF8.self) != nil
            XCTAssertEqual(bytes.withUnsafeBytes { isValidUTF8($0) }, expected, hexDump(bytes), line: line)
        }
        let edges: [[UInt8]] = [
            [], [0x41], [0xC0, 0x80], [0xC1, 0xBF], [0xC2, 0x80], [0xE0, 0x80, 0x80], [0xE0, 0xA0, 0x80],
            [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xEF, 0xBF, 0xBF], [0xF0, 0x8F, 0xBF, 0xBF],
            [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],
            [0xFF], [0x80], [0xE2, 0x82], Array("0123456789abcdé".utf8), Array("0123456789abcd".utf8) + [0xFE],
        ]
        for edge in edges { agree(edge) }
        var random = SplitMix64(seed: 3)
        let alphabet: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF,
                                 0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF]
        for _ in 0..<50_000 {
            let count = Int(random.next() % 12)
            agree((0..<count).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
        }
    }

    /// Random damage never crashes the decoder: it throws or yields some valid record.
    func testRandomDamageNeverCrashes() {
        var random = SplitMix64(seed: 11)
        let payloads = sampleEvents().enumerated().map {
            payload(of: WALRecord(sequence: UInt64($0.offset), arrivalMilliseconds: 0, event: $0.element))
        }
        for _ in 0..<20_000 {
            var bytes = payloads[Int(random.next() % UInt64(payloads.count))]
            for _ in 0...(random.next() % 3) {
                bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            }
            if let record = try? WALRecord(payload: bytes) {
                XCTAssertNil(WALRecord.encodingProblem(of: record.event))
            }
        }
    }
}
