@testable import HeadcountCore
import HeadcountTestSupport
import XCTest

/// The feed path's events as bytes (`FeedEventBytes`): what is made from them is what is
/// made from the `FeedEvent` they stand for.
final class FeedEventBytesTests: XCTestCase {
    private let events: [FeedEvent] = {
        var events: [FeedEvent] = []
        let details: [FeedEvent.Details] = [
            .none, .deletion(isPending: true), .deletion(isPending: false), .device("phone-1"), .device(""),
            .device(String(repeating: "d", count: 128)), .activation(.bluetooth), .pass(.ios, nil, nil),
            .pass(.android, .expired, .cancellation),
        ]
        for (index, detail) in details.enumerated() {
            let kind: FeedEventKind
            switch detail {
            case .deletion: kind = .ticketDeleted
            case .device: kind = .ticketDownloaded
            case .activation: kind = .ticketActivated
            case .pass: kind = .passInvalidated
            default: kind = .ticketCreated
            }
            events.append(FeedEvent(id: "id-\(index)", kind: kind, eventId: index.isMultiple(of: 2) ? "E1" : "show-ñ-\(index)",
                                    ticketId: "ticket-\(index)-" + String(repeating: "t", count: index * 14),
                                    occurredAt: 1_747_807_200_000 + Int64(index), details: detail))
        }
        return events
    }()

    func testPreparedFromBytesIsPreparedFromTheEvent() {
        for event in events {
            withBytes(of: event) { bytes in
                XCTAssertEqual(bytes.event, event)
                let fromBytes = PreparedEvent(bytes, eventId: event.eventId)
                let fromEvent = PreparedEvent(event)
                XCTAssertEqual(fromBytes.eventId, fromEvent.eventId)
                XCTAssertEqual(fromBytes.kind, fromEvent.kind)
                XCTAssertEqual(fromBytes.ticketKey, fromEvent.ticketKey)
                XCTAssertEqual(fromBytes.occurredAt, fromEvent.occurredAt)
                XCTAssertEqual(fromBytes.argument, fromEvent.argument, "\(event.details)")
                XCTAssertEqual(fromBytes.device, fromEvent.device, "\(event.details)")
                XCTAssertNil(fromBytes.statusChange)
                XCTAssertEqual(Engine.admissionKey(id: bytes.id), Engine.admissionKey(id: event.id))
            }
        }
    }

    /// The interner gives back the string of the bytes, whatever it holds: ids that share
    /// their length and first and last 8 bytes (its fingerprint), more distinct ids than it
    /// keeps, short and non-ASCII ones.
    func testInternerAlwaysGivesTheStringOfTheBytes() {
        var interner = EventIdInterner(capacity: 4)
        var ids = ["E1", "E2", "", "é", "show-A-0000-middle-1-end", "show-A-0000-middle-2-end", "show-A-0000-middle-3-end"]
        ids += (0..<20).map { "show-\($0 % 9)-\(String(repeating: "x", count: $0))" }
        for round in 0..<3 {
            for id in ids + ids.reversed() {
                var copy = id
                let interned = copy.withUTF8 { interner.string(UnsafeRawBufferPointer($0)) }
                XCTAssertEqual(interned, id, "round \(round)")
            }
        }
    }
}
