import Foundation
import HeadcountCore
import HeadcountFeed
import XCTest

final class FeedDecoderTests: XCTestCase {
    let t0: Int64 = 1_747_807_200_000 // 2025-05-21T06:00:00.000Z
    let envelope = #""id":"f-1","eventId":"E1","occurredAt":"2025-05-21T06:00:00.000Z""#

    private func decode(_ text: String, _ format: FeedBodyFormat = .json,
                        limits: FeedDecoderLimits = .init()) -> Result<[FeedItem], FeedBodyError> {
        FeedDecoder(limits: limits).decode(Array(text.utf8), format: format)
    }

    private func items(_ text: String, _ format: FeedBodyFormat = .json,
                       file: StaticString = #filePath, line: UInt = #line) -> [FeedItem] {
        switch decode(text, format) {
        case .success(let items): return items
        case .failure(let error):
            XCTFail("body failed: \(error)", file: file, line: line)
            return []
        }
    }

    /// The single event a one-object body decodes to.
    private func event(_ fields: String, file: StaticString = #filePath, line: UInt = #line) -> FeedEvent? {
        let result = items("{\(envelope),\(fields)}", file: file, line: line)
        guard result.count == 1, case .event(let event) = result[0] else {
            XCTFail("not accepted: \(result)", file: file, line: line)
            return nil
        }
        return event
    }

    private func ticketEvent(_ kind: FeedEventKind, _ details: FeedEvent.Details, ticketId: String = "T42") -> FeedEvent {
        FeedEvent(id: "f-1", kind: kind, eventId: "E1", ticketId: ticketId, occurredAt: t0, details: details)
    }

    // MARK: - Accepted events

    func testTicketKindsAccepted() {
        let plain: [FeedEventKind] = [.ticketCreated, .ticketRestored, .transferInitiated,
                                      .transferAccepted, .transferCancelled, .ticketControlled]
        for kind in plain {
            XCTAssertEqual(event(#""type":"\#(kind.typeName)","ticketId":"T42""#), ticketEvent(kind, .none))
        }
        XCTAssertEqual(event(#""type":"ticket.deleted","ticketId":"T42""#),
                       ticketEvent(.ticketDeleted, .deletion(isPending: false)))
        XCTAssertEqual(event(#""type":"ticket.deleted","ticketId":"T42","pending":true"#),
                       ticketEvent(.ticketDeleted, .deletion(isPending: true)))
        XCTAssertEqual(event(#""type":"ticket.deleted","ticketId":"T42","pending":null"#),
                       ticketEvent(.ticketDeleted, .deletion(isPending: false)))
        XCTAssertEqual(event(#""type":"ticket.downloaded","ticketId":"T42","deviceId":"d-9""#),
                       ticketEvent(.ticketDownloaded, .device("d-9")))
        XCTAssertEqual(event(#""type":"ticket.loggedOut","ticketId":"T42","deviceId":"d-9""#),
                       ticketEvent(.ticketLoggedOut, .device("d-9")))
        for mode in ActivationMode.allCases {
            XCTAssertEqual(event(#""type":"ticket.activated","ticketId":"T42","mode":"\#(mode.name)""#),
                           ticketEvent(.ticketActivated, .activation(mode)))
        }
        // The spec's own example, field order and offset variants.
        XCTAssertEqual(items(#"{"id":"f-000123","type":"ticket.downloaded","eventId":"E1","ticketId":"T42","occurredAt":"2025-05-21T06:00:00.000Z","deviceId":"d-9"}"#),
                       [.event(FeedEvent(id: "f-000123", kind: .ticketDownloaded, eventId: "E1", ticketId: "T42",
                                         occurredAt: t0, details: .device("d-9")))])
        XCTAssertEqual(items(#"{"deviceId":"d-9","occurredAt":"2025-05-21T08:00:00.0009+02:00","ticketId":"T\u00e9","eventId":"E\"1","type":"ticket.downloaded","id":"f\n1"}"#),
                       [.event(FeedEvent(id: "f\n1", kind: .ticketDownloaded, eventId: "E\"1", ticketId: "Té",
                                         occurredAt: t0, details: .device("d-9")))])
    }

    func testPassKindsAccepted() {
        XCTAssertEqual(event(#""type":"pass.added","ticketId":"T42","platform":"ios","passStatus":"ACTIVE""#),
                       ticketEvent(.passAdded, .pass(.ios, .active, nil)))
        XCTAssertEqual(event(#""type":"pass.syncAdded","ticketId":"T42","platform":"ios""#),
                       ticketEvent(.passSyncAdded, .pass(.ios, nil, nil)))
        XCTAssertEqual(event(#""type":"pass.removed","ticketId":"T42","platform":"android","passStatus":"INACTIVE""#),
                       ticketEvent(.passRemoved, .pass(.android, .inactive, nil)))
        XCTAssertEqual(event(#""type":"pass.syncRemoved","ticketId":"T42","platform":"ios","passStatus":null"#),
                       ticketEvent(.passSyncRemoved, .pass(.ios, nil, nil)))
        XCTAssertEqual(event(#""type":"pass.controlled","ticketId":"T42","platform":"android""#),
                       ticketEvent(.passControlled, .pass(.android, nil, nil)))
        XCTAssertEqual(event(#""type":"pass.invalidated","ticketId":"T42","platform":"ios","passStatus":"DELETED","reason":"reprint""#),
                       ticketEvent(.passInvalidated, .pass(.ios, .deleted, .reprint)))
        XCTAssertEqual(event(#""type":"pass.invalidated","ticketId":"T42","platform":"ios""#),
                       ticketEvent(.passInvalidated, .pass(.ios, nil, nil)))
        for reason in InvalidationReason.allCases {
            XCTAssertEqual(event(#""type":"pass.invalidated","ticketId":"T42","platform":"android","reason":"\#(reason.name)""#),
                           ticketEvent(.passInvalidated, .pass(.android, nil, reason)))
        }
        XCTAssertEqual(event(#""type":"pass.transferred","ticketId":"T42","platform":"ios""#),
                       ticketEvent(.passTransferred, .pass(.ios, nil, nil)))
        for status in PassStatus.allCases {
            XCTAssertEqual(event(#""type":"pass.statusChanged","ticketId":"T42","platform":"ios","passStatus":"\#(status.name)""#),
                           ticketEvent(.passStatusChanged, .pass(.ios, status, nil)))
        }
        // `reason` is only used by pass.invalidated.
        XCTAssertEqual(event(#""type":"pass.added","ticketId":"T42","platform":"ios","reason":"bogus""#),
                       ticketEvent(.passAdded, .pass(.ios, nil, nil)))
    }

    func testSeatKindsAccepted() {
        let full = #""type":"seat.statusChanged","ticketId":5,"objectLabel":"A-1","status":"booked","quantity":3,"orderId":"anOrder","extraData":{ "a" : [1, 2.5, true, null], "b" : {"c":"x\"y"} },"holdToken":"h-1","displayedLabel":"Seat A1","origin":{"type":"API_CALL","ip":"10.0.0.1","other":1}"#
        XCTAssertEqual(event(full), FeedEvent(
            id: "f-1", kind: .seatStatusChanged, eventId: "E1", ticketId: "", occurredAt: t0,
            details: .seatStatus(SeatStatusChange(
                objectLabel: "A-1", status: "booked", quantity: 3, orderId: "anOrder",
                extraDataJSON: #"{"a":[1,2.5,true,null],"b":{"c":"x\"y"}}"#, holdToken: "h-1",
                displayedLabel: "Seat A1", originType: .apiCall, originIP: "10.0.0.1"))))

        let minimal = #""type":"seat.statusChanged","objectLabel":"GA","status":"my-custom status","origin":{"type":"HELD_BY_USER","ip":"10.0.0.1"},"orderId":null,"holdToken":null,"extraData":null,"displayedLabel":null,"quantity":null"#
        XCTAssertEqual(event(minimal), FeedEvent(
            id: "f-1", kind: .seatStatusChanged, eventId: "E1", ticketId: "", occurredAt: t0,
            details: .seatStatus(SeatStatusChange(objectLabel: "GA", status: "my-custom status",
                                                  quantity: 1, displayedLabel: "GA", originType: .heldByUser))))
        for origin in SeatOriginType.allCases where origin != .apiCall {
            // `ip` is only kept (and only validated) with API_CALL.
            guard case .seatStatus(let seat)? = event(#""type":"seat.statusChanged","objectLabel":"A","status":"free","origin":{"type":"\#(origin.name)","ip":42}"#)?.details
            else { XCTFail("not a seat status"); continue }
            XCTAssertEqual(seat.originType, origin)
            XCTAssertNil(seat.originIP)
        }
        guard case .seatStatus(let seat)? = event(#""type":"seat.statusChanged","objectLabel":"A","status":"free","quantity":1000000,"extraData":{},"origin":{"type":"API_CALL"}"#)?.details
        else { return XCTFail("not a seat status") }
        XCTAssertEqual(seat.quantity, 1_000_000)
        XCTAssertEqual(seat.extraDataJSON, "{}")
        XCTAssertNil(seat.originIP)

        for reason in ChartRemovalReason.allCases {
            XCTAssertEqual(event(#""type":"chart.objectRemoved","objectLabel":"T-1","reason":"\#(reason.name)""#),
                           FeedEvent(id: "f-1", kind: .chartObjectRemoved, eventId: "E1", ticketId: "", occurredAt: t0,
                                     details: .chartObject(label: "T-1", removalReason: reason)))
        }
        XCTAssertEqual(event(#""type":"chart.objectRestored","objectLabel":"T-1","ticketId":"x","reason":"whatever""#),
                       FeedEvent(id: "f-1", kind: .chartObjectRestored, eventId: "E1", ticketId: "", occurredAt: t0,
                                 details: .chartObject(label: "T-1", removalReason: nil)))
    }

    func testEveryKindIsDecodable() {
        // A guard against a kind added to FeedEventKind without decoder support.
        for kind in FeedEventKind.allCases {
            let reason = kind == .passInvalidated ? "reprint" : "RENAMED_OR_DELETED"
            let fields = #""type":"\#(kind.typeName)","ticketId":"T","deviceId":"d","mode":"online","platform":"ios","passStatus":"ACTIVE","objectLabel":"A","status":"free","reason":"\#(reason)","origin":{"type":"API_CALL"}"#
            XCTAssertEqual(event(fields)?.kind, kind, kind.typeName)
        }
    }

    // MARK: - Rejections

    func testRejectionRules() {
        let ticket = #""eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","ticketId":"T""#
        let seat = #""eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","type":"seat.statusChanged","objectLabel":"A","status":"free""#
        let origin = #""origin":{"type":"API_CALL"}"#
        let long128 = String(repeating: "x", count: 128), long129 = String(repeating: "x", count: 129)
        let long256 = String(repeating: "é", count: 128), long257 = String(repeating: "x", count: 257)
        // (object body, id expected in the rejection, error)
        let table: [(String, String?, String)] = [
            // id
            (#"{"type":"ticket.created",\#(ticket)}"#, nil, "missing field: id"),
            (#"{"id":null,"type":"ticket.created",\#(ticket)}"#, nil, "missing field: id"),
            (#"{"id":"","type":"ticket.created",\#(ticket)}"#, nil, "id must be 1-128 bytes"),
            (#"{"id":"\#(long129)","type":"ticket.created",\#(ticket)}"#, nil, "id must be 1-128 bytes"),
            (#"{"id":12,"type":"ticket.created",\#(ticket)}"#, nil, "id must be a string"),
            // type
            (#"{"id":"a",\#(ticket)}"#, "a", "missing field: type"),
            (#"{"id":"a","type":null,\#(ticket)}"#, "a", "missing field: type"),
            (#"{"id":"a","type":"foo",\#(ticket)}"#, "a", "unknown type: foo"),
            (#"{"id":"a","type":"Ticket.created",\#(ticket)}"#, "a", "unknown type: Ticket.created"),
            (#"{"id":"a","type":["ticket.created"],\#(ticket)}"#, "a", "type must be a string"),
            // eventId
            (#"{"id":"a","type":"ticket.created","occurredAt":"2025-05-21T06:00:00Z","ticketId":"T"}"#, "a", "missing field: eventId"),
            (#"{"id":"a","type":"ticket.created","eventId":"","occurredAt":"2025-05-21T06:00:00Z","ticketId":"T"}"#, "a", "eventId must be 1-128 bytes"),
            (#"{"id":"a","type":"ticket.created","eventId":"\#(long129)","occurredAt":"2025-05-21T06:00:00Z","ticketId":"T"}"#, "a", "eventId must be 1-128 bytes"),
            (#"{"id":"a","type":"ticket.created","eventId":1,"occurredAt":"2025-05-21T06:00:00Z","ticketId":"T"}"#, "a", "eventId must be a string"),
            // ticketId
            (#"{"id":"a","type":"ticket.created","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z"}"#, "a", "missing field: ticketId"),
            (#"{"id":"a","type":"pass.added","platform":"ios","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","ticketId":null}"#, "a", "missing field: ticketId"),
            (#"{"id":"a","type":"ticket.created","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","ticketId":""}"#, "a", "ticketId must be 1-128 bytes"),
            (#"{"id":"a","type":"ticket.created","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","ticketId":"\#(long129)"}"#, "a", "ticketId must be 1-128 bytes"),
            (#"{"id":"a","type":"ticket.created","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","ticketId":7}"#, "a", "ticketId must be a string"),
            // occurredAt
            (#"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T"}"#, "a", "missing field: occurredAt"),
            (#"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T","occurredAt":null}"#, "a", "missing field: occurredAt"),
            (#"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T","occurredAt":"2025-05-21"}"#, "a", "invalid occurredAt: must be RFC 3339"),
            (#"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T","occurredAt":"2025-02-29T00:00:00Z"}"#, "a", "invalid occurredAt: must be RFC 3339"),
            (#"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T","occurredAt":1747807200000}"#, "a", "occurredAt must be a string"),
            // ticket kinds
            (#"{"id":"a","type":"ticket.deleted",\#(ticket),"pending":"yes"}"#, "a", "pending must be a boolean"),
            (#"{"id":"a","type":"ticket.deleted",\#(ticket),"pending":1}"#, "a", "pending must be a boolean"),
            (#"{"id":"a","type":"ticket.downloaded",\#(ticket)}"#, "a", "missing field: deviceId"),
            (#"{"id":"a","type":"ticket.loggedOut",\#(ticket),"deviceId":""}"#, "a", "deviceId must be 1-128 bytes"),
            (#"{"id":"a","type":"ticket.loggedOut",\#(ticket),"deviceId":"\#(long129)"}"#, "a", "deviceId must be 1-128 bytes"),
            (#"{"id":"a","type":"ticket.downloaded",\#(ticket),"deviceId":{}}"#, "a", "deviceId must be a string"),
            (#"{"id":"a","type":"ticket.activated",\#(ticket)}"#, "a", "missing field: mode"),
            (#"{"id":"a","type":"ticket.activated",\#(ticket),"mode":"Online"}"#, "a", "mode must be online, offline, manual or bluetooth"),
            (#"{"id":"a","type":"ticket.activated",\#(ticket),"mode":1}"#, "a", "mode must be online, offline, manual or bluetooth"),
            // pass kinds
            (#"{"id":"a","type":"pass.added",\#(ticket)}"#, "a", "missing field: platform"),
            (#"{"id":"a","type":"pass.added",\#(ticket),"platform":"windows"}"#, "a", "platform must be ios or android"),
            (#"{"id":"a","type":"pass.added",\#(ticket),"platform":true}"#, "a", "platform must be ios or android"),
            (#"{"id":"a","type":"pass.syncAdded",\#(ticket),"platform":"android"}"#, "a", "pass.syncAdded is ios only"),
            (#"{"id":"a","type":"pass.syncRemoved",\#(ticket),"platform":"android"}"#, "a", "pass.syncRemoved is ios only"),
            (#"{"id":"a","type":"pass.added",\#(ticket),"platform":"ios","passStatus":"active"}"#, "a", "passStatus must be ACTIVE, INACTIVE, EXPIRED or DELETED"),
            (#"{"id":"a","type":"pass.added",\#(ticket),"platform":"ios","passStatus":3}"#, "a", "passStatus must be ACTIVE, INACTIVE, EXPIRED or DELETED"),
            (#"{"id":"a","type":"pass.statusChanged",\#(ticket),"platform":"ios"}"#, "a", "missing field: passStatus"),
            (#"{"id":"a","type":"pass.statusChanged",\#(ticket),"platform":"ios","passStatus":null}"#, "a", "missing field: passStatus"),
            (#"{"id":"a","type":"pass.invalidated",\#(ticket),"platform":"ios","reason":"lost"}"#, "a", "reason must be cancellation, deletion or reprint"),
            (#"{"id":"a","type":"pass.invalidated",\#(ticket),"platform":"ios","reason":false}"#, "a", "reason must be cancellation, deletion or reprint"),
            // seat.statusChanged
            (#"{"id":"a",\#(seat.replacingOccurrences(of: #","objectLabel":"A""#, with: "")),\#(origin)}"#, "a", "missing field: objectLabel"),
            (#"{"id":"a",\#(seat),"objectLabel":"",\#(origin)}"#, "a", "objectLabel must be 1-256 bytes"),
            (#"{"id":"a",\#(seat),"objectLabel":"\#(long257)",\#(origin)}"#, "a", "objectLabel must be 1-256 bytes"),
            (#"{"id":"a",\#(seat.replacingOccurrences(of: #","status":"free""#, with: "")),\#(origin)}"#, "a", "missing field: status"),
            (#"{"id":"a",\#(seat),"status":"",\#(origin)}"#, "a", "status must be 1-256 bytes"),
            (#"{"id":"a",\#(seat),"status":{"x":1},\#(origin)}"#, "a", "status must be a string"),
            (#"{"id":"a",\#(seat),"quantity":0,\#(origin)}"#, "a", "quantity must be an integer from 1 to 1000000"),
            (#"{"id":"a",\#(seat),"quantity":-3,\#(origin)}"#, "a", "quantity must be an integer from 1 to 1000000"),
            (#"{"id":"a",\#(seat),"quantity":1000001,\#(origin)}"#, "a", "quantity must be an integer from 1 to 1000000"),
            (#"{"id":"a",\#(seat),"quantity":18446744073709551615,\#(origin)}"#, "a", "quantity must be an integer from 1 to 1000000"),
            (#"{"id":"a",\#(seat),"quantity":1.5,\#(origin)}"#, "a", "quantity must be an integer from 1 to 1000000"),
            (#"{"id":"a",\#(seat),"quantity":2.0,\#(origin)}"#, "a", "quantity must be an integer from 1 to 1000000"),
            (#"{"id":"a",\#(seat),"quantity":1e3,\#(origin)}"#, "a", "quantity must be an integer from 1 to 1000000"),
            (#"{"id":"a",\#(seat),"quantity":"2",\#(origin)}"#, "a", "quantity must be an integer from 1 to 1000000"),
            (#"{"id":"a",\#(seat),"orderId":"\#(long257)",\#(origin)}"#, "a", "orderId must be a string of at most 256 bytes"),
            (#"{"id":"a",\#(seat),"orderId":12,\#(origin)}"#, "a", "orderId must be a string of at most 256 bytes"),
            (#"{"id":"a",\#(seat),"holdToken":"\#(long257)",\#(origin)}"#, "a", "holdToken must be a string of at most 256 bytes"),
            (#"{"id":"a",\#(seat),"holdToken":[],\#(origin)}"#, "a", "holdToken must be a string of at most 256 bytes"),
            (#"{"id":"a",\#(seat),"extraData":"{}",\#(origin)}"#, "a", "extraData must be a JSON object"),
            (#"{"id":"a",\#(seat),"extraData":[1],\#(origin)}"#, "a", "extraData must be a JSON object"),
            (#"{"id":"a",\#(seat),"displayedLabel":"",\#(origin)}"#, "a", "displayedLabel must be 1-256 bytes"),
            (#"{"id":"a",\#(seat),"displayedLabel":"\#(long256)x",\#(origin)}"#, "a", "displayedLabel must be 1-256 bytes"),
            (#"{"id":"a",\#(seat)}"#, "a", "missing field: origin"),
            (#"{"id":"a",\#(seat),"origin":null}"#, "a", "missing field: origin"),
            (#"{"id":"a",\#(seat),"origin":"API_CALL"}"#, "a", "origin must be an object"),
            (#"{"id":"a",\#(seat),"origin":{}}"#, "a", "missing field: origin.type"),
            (#"{"id":"a",\#(seat),"origin":{"type":"api_call"}}"#, "a", "origin.type must be API_CALL, HELD_BY_USER, HOLD_RELEASED_BY_USER or HOLD_EXPIRED"),
            (#"{"id":"a",\#(seat),"origin":{"type":"API_CALL","ip":1}}"#, "a", "origin.ip must be a string of at most 256 bytes"),
            // chart kinds
            (#"{"id":"a","type":"chart.objectRemoved","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","reason":"RENAMED_OR_DELETED"}"#, "a", "missing field: objectLabel"),
            (#"{"id":"a","type":"chart.objectRemoved","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","objectLabel":"A"}"#, "a", "missing field: reason"),
            (#"{"id":"a","type":"chart.objectRemoved","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","objectLabel":"A","reason":"cancellation"}"#, "a", "reason must be RENAMED_OR_DELETED, SWITCHED_TO_BOOK_WHOLE_TABLE or SWITCHED_TO_BOOK_BY_SEAT"),
            (#"{"id":"a","type":"chart.objectRestored","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","objectLabel":5}"#, "a", "objectLabel must be a string"),
        ]
        // The limits that must still pass.
        XCTAssertEqual(items(#"{"id":"\#(long128)","type":"ticket.created",\#(ticket)}"#).count, 1)
        if case .rejected(_, _, let error)? = items(#"{"id":"\#(long128)","type":"ticket.created",\#(ticket)}"#).first {
            XCTFail("128-byte id rejected: \(error)")
        }
        if case .rejected(_, _, let error)? = items(#"{"id":"a",\#(seat),"displayedLabel":"\#(long256)","objectLabel":"\#(long256)",\#(origin)}"#).first {
            XCTFail("256-byte labels rejected: \(error)")
        }

        // Each alone, then all together in one array and as NDJSON: same verdicts, by index.
        for (body, id, error) in table {
            XCTAssertEqual(items(body), [.rejected(index: 0, id: id, error: error)], body)
        }
        let expected = table.enumerated().map { FeedItem.rejected(index: $0.offset, id: $0.element.1, error: $0.element.2) }
        XCTAssertEqual(items("[" + table.map(\.0).joined(separator: ",") + "]"), expected)
        XCTAssertEqual(items(table.map(\.0).joined(separator: "\n"), .ndjson), expected)
    }

    // MARK: - Framing

    func testObjectArrayAndNDJSON() {
        let a = #"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T1","occurredAt":"2025-05-21T06:00:00Z"}"#
        let b = #"{"id":"b","type":"ticket.created","eventId":"E1","ticketId":"T2","occurredAt":"2025-05-21T06:00:00Z"}"#
        let ea = FeedItem.event(FeedEvent(id: "a", kind: .ticketCreated, eventId: "E1", ticketId: "T1", occurredAt: t0))
        let eb = FeedItem.event(FeedEvent(id: "b", kind: .ticketCreated, eventId: "E1", ticketId: "T2", occurredAt: t0))

        XCTAssertEqual(items(a), [ea])
        XCTAssertEqual(items(" \n\t" + a + "\r\n "), [ea])
        XCTAssertEqual(items("[\(a),\(b)]"), [ea, eb])
        XCTAssertEqual(items("[]"), [])
        XCTAssertEqual(items("\u{FEFF}[\(a)]"), [ea]) // a leading byte order mark is tolerated

        // NDJSON: blank and whitespace-only lines take no index; CRLF; no final newline.
        XCTAssertEqual(items("\(a)\n\(b)", .ndjson), [ea, eb])
        XCTAssertEqual(items("\n\n\(a)\r\n  \r\n\t\n\r\n\(b)\r\n\n", .ndjson), [ea, eb])
        // A broken line in the middle rejects that line alone.
        let broken = items("\(a)\n{\"id\":\"x\",\n\n[1,2]\n42\n\(b)\n", .ndjson)
        XCTAssertEqual(broken.count, 5)
        XCTAssertEqual(broken[0], ea)
        guard case .rejected(1, nil, let parseError) = broken[1] else { return XCTFail("\(broken[1])") }
        XCTAssertTrue(parseError.hasPrefix("invalid JSON"), parseError)
        XCTAssertEqual(broken[2], .rejected(index: 2, id: nil, error: "event must be a JSON object"))
        XCTAssertEqual(broken[3], .rejected(index: 3, id: nil, error: "event must be a JSON object"))
        XCTAssertEqual(broken[4], eb)
        // Two objects on one line are not two events.
        guard case .rejected(0, nil, _)? = items("\(a)\(b)", .ndjson).first else { return XCTFail() }
        XCTAssertEqual(items("\(a)\(b)", .ndjson).count, 1)
        // An object spread over lines is not one event.
        XCTAssertEqual(items("{\"id\":\"a\",\n\"type\":\"x\"}", .ndjson).count, 2)
    }

    func testInvalidBodies() {
        let decoder = FeedDecoder()
        func json(_ bytes: [UInt8]) -> FeedBodyError? {
            if case .failure(let error) = decoder.decode(bytes, format: .json) { return error }
            return nil
        }
        let a = Array(#"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T1","occurredAt":"2025-05-21T06:00:00Z"}"#.utf8)

        // Empty or blank: invalid JSON, but an empty NDJSON request.
        XCTAssertNotNil(json([]))
        XCTAssertNotNil(json(Array("  \n".utf8)))
        XCTAssertEqual(decoder.decode([UInt8](), format: .ndjson), .success([]))
        XCTAssertEqual(decoder.decode(Array(" \n\r\n\n".utf8), format: .ndjson), .success([]))
        XCTAssertEqual(decoder.decode(UnsafeRawBufferPointer(start: nil, count: 0), format: .ndjson), .success([]))

        // Top-level scalars and broken JSON.
        for text in ["42", "\"x\"", "null", "true", "[1", "{\"id\":}", "[{}]x", "{} {}", "{\"a\":1e999}"] {
            guard case .invalidJSON(let message)? = json(Array(text.utf8)) else {
                XCTFail("accepted \(text)"); continue
            }
            XCTAssertFalse(message.isEmpty)
        }
        XCTAssertEqual(json(Array("42".utf8)), .invalidJSON("the body must be a JSON object or an array of objects"))

        // Invalid UTF-8: the whole JSON body is rejected, even inside an unused field.
        var bad = Array(#"[{"id":"b","x":""#.utf8) + [0xFF, 0xFE] + Array(#""},"#.utf8) + a + Array("]".utf8)
        XCTAssertEqual(json(bad), .invalidJSON("invalid JSON: invalid UTF-8"))
        bad = Array(#"{"id":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        XCTAssertEqual(json(bad), .invalidJSON("invalid JSON: invalid UTF-8"))

        // ...but in NDJSON only that line.
        let lines = a + [0x0A] + Array(#"{"id":"b","eventId":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8) + [0x0A] + a
        guard case .success(let items) = decoder.decode(lines, format: .ndjson) else { return XCTFail() }
        XCTAssertEqual(items.count, 3)
        XCTAssertEqual(items[1], .rejected(index: 1, id: nil, error: "invalid JSON: invalid UTF-8"))
        guard case .event = items[0], case .event = items[2] else { return XCTFail("\(items)") }

        // The decoder is reusable after failures.
        guard case .success(let again) = decoder.decode(a, format: .json), again.count == 1 else { return XCTFail() }
    }

    func testNonObjectArrayElements() {
        let a = #"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T1","occurredAt":"2025-05-21T06:00:00Z"}"#
        let result = items("[1, \(a), \"s\", null, [\(a)], true, {}, \(a)]")
        XCTAssertEqual(result.count, 8)
        for i in [0, 2, 3, 4, 5] {
            XCTAssertEqual(result[i], .rejected(index: i, id: nil, error: "event must be a JSON object"))
        }
        XCTAssertEqual(result[6], .rejected(index: 6, id: nil, error: "missing field: id"))
        guard case .event = result[1], case .event = result[7] else { return XCTFail("\(result)") }
    }

    func testUnknownAndUnusedFieldsIgnored() {
        let body = #"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T1","occurredAt":"2025-05-21T06:00:00Z","#
            + #""future":{"deep":[1,{"x":null}]},"deviceId":17,"mode":"warp","platform":"beos","passStatus":[],"#
            + #""pending":"maybe","quantity":-1,"extraData":"nope","origin":42,"objectLabel":false,"status":{},"#
            + #""orderId":1.5,"holdToken":true,"displayedLabel":0,"reason":"?","Id":5,"ID":"x","type ":1}"#
        XCTAssertEqual(items(body), [.event(FeedEvent(id: "a", kind: .ticketCreated, eventId: "E1", ticketId: "T1", occurredAt: t0))])
        // Escaped keys are matched after unescaping; the last duplicate wins.
        let escaped = #"{"\u0069d":"a","type":"ticket.deleted","eventId":"E0","eventId":"E1","ticketId":"T1","occurredAt":"2025-05-21T06:00:00Z","pending":false,"pending":true}"#
        XCTAssertEqual(items(escaped), [.event(FeedEvent(id: "a", kind: .ticketDeleted, eventId: "E1", ticketId: "T1",
                                                        occurredAt: t0, details: .deletion(isPending: true)))])
    }

    func testExtraDataMinifiedAndLimited() {
        enum Outcome: Equatable { case success(String?), failure(String) }
        func extraData(_ value: String, limits: FeedDecoderLimits = .init()) -> Outcome {
            let body = #"{"id":"a","type":"seat.statusChanged","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","objectLabel":"A","status":"free","origin":{"type":"HOLD_EXPIRED"},"extraData":\#(value)}"#
            switch FeedDecoder(limits: limits).decode(Array(body.utf8), format: .json) {
            case .success(let items):
                switch items.first {
                case .event(let event)?:
                    guard case .seatStatus(let seat) = event.details else { return .failure("not a seat") }
                    return .success(seat.extraDataJSON)
                case .rejected(_, _, let error)?: return .failure(error)
                case nil: return .failure("no item")
                }
            case .failure(let error): return .failure("\(error)")
            }
        }
        XCTAssertEqual(extraData(" { \"k\" : \"v w\" ,\n \"n\" : [ 1 , -2 , 0.5 ] , \"u\" : \"\\u00e9\\n\" } "),
                       .success(#"{"k":"v w","n":[1,-2,0.5],"u":"é\n"}"#))
        XCTAssertEqual(extraData("null"), .success(nil))
        // Exactly the limit passes; one byte more is rejected.
        let fits = "{\"k\" : \"" + String(repeating: "a", count: 4096 - 8) + "\"}"
        guard case .success(let text?) = extraData(fits) else { return XCTFail("\(extraData(fits))") }
        XCTAssertEqual(text.utf8.count, 4096)
        let over = "{\"k\":\"" + String(repeating: "a", count: 4096 - 7) + "\"}"
        XCTAssertEqual(extraData(over), .failure("extraData must be at most 4096 bytes as minified JSON"))
        XCTAssertEqual(extraData(#"{"k":"abc"}"#, limits: .init(extraDataBytesMax: 10)),
                       .failure("extraData must be at most 10 bytes as minified JSON"))
        // Whitespace does not count against the limit.
        let spaced = "{\"k\":" + String(repeating: " ", count: 10_000) + "1}"
        XCTAssertEqual(extraData(spaced), .success(#"{"k":1}"#))
    }

    func testEventsPerRequestMax() {
        let limits = FeedDecoderLimits(eventsPerRequestMax: 3)
        let a = #"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T1","occurredAt":"2025-05-21T06:00:00Z"}"#
        func count(_ result: Result<[FeedItem], FeedBodyError>) -> Int? {
            if case .success(let items) = result { return items.count }
            return nil
        }
        XCTAssertEqual(count(decode("[\(a),\(a),\(a)]", limits: limits)), 3)
        XCTAssertEqual(decode("[\(a),\(a),\(a),\(a)]", limits: limits), .failure(.tooManyEvents(limit: 3)))
        XCTAssertEqual(decode("[1,2,3,4]", limits: limits), .failure(.tooManyEvents(limit: 3)))
        XCTAssertEqual(count(decode("\(a)\n\n\(a)\n  \n\(a)\n\n", .ndjson, limits: limits)), 3)
        XCTAssertEqual(decode("\(a)\n\(a)\nbroken\n\(a)\n", .ndjson, limits: limits), .failure(.tooManyEvents(limit: 3)))
        XCTAssertEqual(count(decode(a, limits: FeedDecoderLimits(eventsPerRequestMax: 1))), 1)
    }

    func testReuseAcrossBodies() {
        let decoder = FeedDecoder()
        var all: [FeedItem] = []
        for i in 0 ..< 50 {
            let body = (0 ..< i).map { #"{"id":"\#($0)","type":"ticket.created","eventId":"E","ticketId":"T\#($0)","occurredAt":"2025-05-21T06:00:00Z"}"# }
            let text = i % 2 == 0 ? "[" + body.joined(separator: ",") + "]" : body.joined(separator: "\n")
            guard case .success(let items) = decoder.decode(Array(text.utf8), format: i % 2 == 0 ? .json : .ndjson) else {
                return XCTFail("body \(i)")
            }
            XCTAssertEqual(items.count, i)
            all += items
        }
        XCTAssertFalse(all.contains { if case .rejected = $0 { return true } else { return false } })

        // Bodies past the retained buffer size (1 MiB) release their buffers afterwards; the
        // decoder keeps working, with large extraData too.
        let big = #"{"k":"\#(String(repeating: "z", count: 3_000_000))"}"#
        let seat = #"{"id":"s","type":"seat.statusChanged","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","objectLabel":"A","status":"free","origin":{"type":"API_CALL"},"extraData":\#(big)}"#
        let small = #"{"id":"a","type":"ticket.created","eventId":"E","ticketId":"T","occurredAt":"2025-05-21T06:00:00Z"}"#
        for format in [FeedBodyFormat.json, .ndjson] {
            guard case .success(let items) = decoder.decode(Array((small + "\n" + seat).utf8), format: format) else {
                guard format == .json else { return XCTFail("ndjson") }
                continue // two objects are not one JSON value
            }
            XCTAssertEqual(items.count, 2)
            XCTAssertEqual(items[1], .rejected(index: 1, id: "s", error: "extraData must be at most 4096 bytes as minified JSON"))
            guard case .success(let again) = decoder.decode(Array(small.utf8), format: format) else { return XCTFail() }
            XCTAssertEqual(again.count, 1)
        }
        guard case .success(let items) = FeedDecoder(limits: .init(extraDataBytesMax: 4_000_000)).decode(Array(seat.utf8), format: .json),
              case .event(let event)? = items.first, case .seatStatus(let change) = event.details else { return XCTFail() }
        XCTAssertEqual(change.extraDataJSON?.utf8.count, big.utf8.count)
    }

    /// Mutated bodies (deterministic): never a crash, and the item count always agrees with
    /// the framing.
    func testMutatedBodiesNeverCrash() {
        var rng = SplitMix64(seed: 0x5eed)
        let seeds = [
            #"[{"id":"a","type":"seat.statusChanged","eventId":"E1","occurredAt":"2025-05-21T06:00:00.5+01:00","objectLabel":"A","status":"free","quantity":2,"extraData":{"x":[1,{"y":"\u00e9"}]},"origin":{"type":"API_CALL","ip":"::1"}},{"id":"b","type":"pass.invalidated","eventId":"E1","ticketId":"T","occurredAt":"2025-05-21T06:00:00Z","platform":"ios","reason":"reprint"}]"#,
            #"{"id":"c","type":"ticket.activated","eventId":"E1","ticketId":"T","occurredAt":"2025-05-21T06:00:00Z","mode":"online","pending":true}"#,
        ]
        let alphabet = Array(#"{}[]:,"\ 0123456789.eE+-tfnul\#n\#r\#t"#.utf8) + [0x00, 0x80, 0xC3, 0xFF]
        let decoder = FeedDecoder()
        for i in 0 ..< 20_000 {
            var body = Array(seeds[i % seeds.count].utf8)
            for _ in 0 ... Int(rng.next() % 4) {
                let at = Int(rng.next() % UInt64(body.count + 1))
                switch rng.next() % 3 {
                case 0: if at < body.count { body.remove(at: at) }
                case 1: body.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                default: if at < body.count { body[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))] }
                }
            }
            let cut = Int(rng.next() % UInt64(body.count + 1))
            let sample = rng.next() % 4 == 0 ? Array(body[..<cut]) : body
            if case .success(let items) = decoder.decode(sample, format: .ndjson) {
                let lines = sample.split(separator: 0x0A, omittingEmptySubsequences: false)
                    .filter { !$0.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D } }
                XCTAssertEqual(items.count, lines.count)
            } else {
                XCTFail("ndjson body failed")
            }
            if case .success(let items) = decoder.decode(sample, format: .json) {
                XCTAssertGreaterThanOrEqual(items.count, 0)
            }
        }
    }

    /// An NDJSON body is parsed as one stream of documents until a line's document is not
    /// exactly that line's value, then line by line: the outcome of every line must be the
    /// line-by-line one. Random bodies of valid, mutated and odd lines (two values on a line,
    /// scalars, arrays, blank and CRLF lines, invalid UTF-8, unclosed strings, a cut last
    /// line), decoded whole and in steps, by a streaming and a line-by-line decoder. (Bodies
    /// under 1 KiB are parsed line by line either way.)
    func testStreamedNDJSONDecodesAsLineByLine() {
        let seed = ProcessInfo.processInfo.environment["HEADCOUNT_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print("testStreamedNDJSONDecodesAsLineByLine HEADCOUNT_TEST_SEED=\(seed)")
        var rng = SplitMix64(seed: seed)
        let valid = [
            #"{"id":"a1","type":"ticket.created","eventId":"E1","ticketId":"T1","occurredAt":"2025-05-21T06:00:00Z"}"#,
            #"{"id":"a2","type":"ticket.downloaded","eventId":"E1","ticketId":"T1","occurredAt":"2025-05-21T06:00:01.5+01:00","deviceId":"d\u00e9"}"#,
            #"  {"id":"a3","type":"pass.added","eventId":"E2","ticketId":"T2","occurredAt":"2025-05-21T06:00:00Z","platform":"ios"}  "#,
            #"{"id":"a4","type":"seat.statusChanged","eventId":"E1","occurredAt":"2025-05-21T06:00:00Z","objectLabel":"A-1","status":"booked","extraData":{"k":[1,2]},"origin":{"type":"API_CALL","ip":"::1"}}"#,
        ]
        let odd = [
            "", "   ", "\r", #"{"id":"b1"} {"id":"b2"}"#, #"{"id":"b3"}{"id":"b4"}"#, "42", "\"text\"", "[1,2]", "[]", "null", "{}",
            #"{"id":"b5","type":"ticket.created""#, #"{"id":"b6","type":"ticket.created","eventId":"E1","ticketId":"T","occurredAt":"x"}"#,
            #"{"id":"unclosed"#, "}", "{", #"{"a":tru}"#, #"{"id":"b7"} x"#,
        ]
        let alphabet = Array(#"{}[]:,"\ 0123456789tfnul"#.utf8) + [0x00, 0x0A, 0x0D, 0x80, 0xC3, 0xFF]
        let streaming = FeedDecoder(limits: FeedDecoderLimits(eventsPerRequestMax: 1000))
        let lineByLine = FeedDecoder(limits: FeedDecoderLimits(eventsPerRequestMax: 1000), streamsNDJSON: false)
        for round in 0 ..< 3_000 {
            var lines: [[UInt8]] = []
            // 8–30 lines: most bodies reach the 1 KiB from which NDJSON is streamed.
            for _ in 0 ..< 8 + Int(rng.next() % 23) {
                var line = Array((rng.next() % 3 == 0 ? odd[Int(rng.next() % UInt64(odd.count))] : valid[Int(rng.next() % UInt64(valid.count))]).utf8)
                if rng.next() % 4 == 0 {
                    let at = Int(rng.next() % UInt64(line.count + 1))
                    let byte = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                    if rng.next() % 2 == 0 || at == line.count { line.insert(byte, at: at) } else { line[at] = byte }
                }
                if rng.next() % 8 == 0 { line.append(0x0D) }
                lines.append(line)
            }
            var body = Array(lines.joined(separator: [0x0A]))
            if rng.next() % 6 == 0 { body = Array(body[..<Int(rng.next() % UInt64(body.count + 1))]) }
            let expected = lineByLine.decode(body, format: .ndjson)
            XCTAssertEqual(streaming.decode(body, format: .ndjson), expected, "round \(round), HEADCOUNT_TEST_SEED=\(seed): \(String(decoding: body, as: UTF8.self))")
            if let stepped = decodeInSteps(streaming, body, .ndjson, step: 1 + Int(rng.next() % 3)) {
                XCTAssertEqual(stepped, expected, "in steps, round \(round), HEADCOUNT_TEST_SEED=\(seed)")
            }
        }
    }

    // MARK: - Decoding in steps

    /// What decoding `body` in steps of `step` events gives: the whole body's failure, nil
    /// (must be decoded whole), or the items, with the decoder reused meanwhile.
    private func decodeInSteps(_ decoder: FeedDecoder, _ body: [UInt8], _ format: FeedBodyFormat, step: Int) -> Result<[FeedItem], FeedBodyError>? {
        guard let begun = body.withUnsafeBytes({ decoder.beginItems($0, format: format) }) else { return nil }
        if case .failure(let error) = begun { return .failure(error) }
        var items: [FeedItem] = []
        while !decoder.nextItems(into: &items, max: step) {}
        decoder.endItems()
        return .success(items)
    }

    /// Decoding in steps (the loop's way with large bodies) gives exactly what decoding the
    /// whole body gives, for any step size, and refuses to begin only a body whose failure as
    /// a whole cannot be known up front (then the caller decodes it whole).
    func testDecodingInStepsMatchesWholeBodies() {
        let limits = FeedDecoderLimits(eventsPerRequestMax: 5)
        let decoder = FeedDecoder(limits: limits)
        let a = #"{"id":"a","type":"ticket.created","eventId":"E1","ticketId":"T1","occurredAt":"2025-05-21T06:00:00Z"}"#
        let bodies: [(String, FeedBodyFormat)] = [
            ("[\(a),\(a),\(a)]", .json), ("[\(a),\(a),\(a),\(a),\(a),\(a)]", .json), ("[1,2,{\"id\":3}]", .json),
            ("[]", .json), (a, .json), ("[\(a),", .json), ("7", .json), ("", .json),
            ("\(a)\n\n\(a)\nbroken\n\(a)", .ndjson), ("\(a)\n\(a)\n\(a)\n\(a)\n\(a)\n\(a)", .ndjson),
            ("\(a)\n\n\n\n\n\(a)", .ndjson), ("", .ndjson), ("\(a)\n", .ndjson),
        ]
        var begun = 0
        for (index, (text, format)) in bodies.enumerated() {
            let body = Array(text.utf8)
            let whole = decoder.decode(body, format: format)
            for step in [1, 2, 64] {
                guard let stepped = decodeInSteps(decoder, body, format, step: step) else {
                    // Refused: only where the whole body may still fail at its end.
                    XCTAssertEqual(format, .ndjson, "body \(index)")
                    XCTAssertGreaterThan(body.filter { $0 == 0x0A }.count + 1, limits.eventsPerRequestMax, "body \(index)")
                    continue
                }
                begun += 1
                XCTAssertEqual(stepped, whole, "body \(index), step \(step)")
            }
        }
        XCTAssertGreaterThan(begun, 20)

        // Mutated bodies, with the decoder used for whole bodies in between.
        var rng = SplitMix64(seed: 0x57e95)
        let seed = Array("[\(a),{\"id\":\"b\",\"type\":\"pass.added\",\"eventId\":\"E1\",\"ticketId\":\"T\",\"occurredAt\":\"2025-05-21T06:00:00Z\",\"platform\":\"ios\"}]".utf8)
        let alphabet = Array(#"{}[]:,"\ 0123456789\#n"#.utf8) + [0x00, 0xC3, 0xFF]
        let other = FeedDecoder(limits: limits)
        for _ in 0 ..< 3_000 {
            var body = seed
            for _ in 0 ... Int(rng.next() % 3) {
                let at = Int(rng.next() % UInt64(body.count))
                body[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
            }
            for format in [FeedBodyFormat.json, .ndjson] {
                let whole = other.decode(body, format: format)
                if let stepped = decodeInSteps(decoder, body, format, step: Int(rng.next() % 3) + 1) {
                    XCTAssertEqual(stepped, whole)
                }
            }
        }
    }

    // MARK: - Throughput (printed, never asserted)

    func testThroughputPrinted() {
        var lines: [String] = []
        var size = 0
        var i = 0
        while size < 1_000_000 {
            let line: String
            switch i % 5 {
            case 0: line = #"{"id":"f-\#(i)","type":"ticket.downloaded","eventId":"E1","ticketId":"T\#(i % 977)","occurredAt":"2025-05-21T06:00:00.000Z","deviceId":"d-9"}"#
            case 1: line = #"{"id":"f-\#(i)","type":"ticket.created","eventId":"E1","ticketId":"T\#(i % 977)","occurredAt":"2025-05-21T06:00:00.123Z"}"#
            case 2: line = #"{"id":"f-\#(i)","type":"pass.added","eventId":"E1","ticketId":"T\#(i % 977)","occurredAt":"2025-05-21T08:00:00+02:00","platform":"ios","passStatus":"ACTIVE"}"#
            case 3: line = #"{"id":"f-\#(i)","type":"ticket.activated","eventId":"E1","ticketId":"T\#(i % 977)","occurredAt":"2025-05-21T06:00:00Z","mode":"offline"}"#
            default: line = #"{"id":"f-\#(i)","type":"seat.statusChanged","eventId":"E1","occurredAt":"2025-05-21T06:00:00.000Z","objectLabel":"A-\#(i % 100)","status":"booked","origin":{"type":"API_CALL","ip":"10.0.0.1"}}"#
            }
            lines.append(line)
            size += line.utf8.count + 1
            i += 1
        }
        let body = Array(lines.joined(separator: "\n").utf8)
        let decoder = FeedDecoder(limits: .init(eventsPerRequestMax: 1_000_000))
        var best = Double.infinity
        var accepted = 0
        for _ in 0 ..< 5 {
            let start = ContinuousClock.now
            guard case .success(let items) = decoder.decode(body, format: .ndjson) else { return XCTFail() }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            best = min(best, seconds)
            accepted = items.count(where: { if case .event = $0 { return true } else { return false } })
        }
        XCTAssertEqual(accepted, lines.count)
        print(String(format: "feed decode: %d events, %d bytes of NDJSON, best of 5: %.2f ms, %.0f events/s",
                     lines.count, body.count, best * 1000, Double(lines.count) / best))
    }
}

