import Foundation
import HeadcountCore

/// Feeds for end-to-end tests, and their wire form.
public enum TestFeeds {
    /// A seeded feed whose every event has its own `occurredAt` (so no answer depends on
    /// arrival order), covering every ticket and pass kind, delivered shuffled.
    public static func uniqueTimeFeed(seed: UInt64, count: Int, eventIds: [String], tickets: Int, base: Int64) -> [FeedEvent] {
        var random = SplitMix64(seed: seed)
        let kinds: [FeedEventKind] = FeedEventKind.allCases.filter(\.isTicketOrPass)
        var times = Array(0..<count).map { base + Int64($0) * 3 }
        times.shuffle(using: &random)
        var events: [FeedEvent] = []
        for index in 0..<count {
            let kind = kinds[Int(random.next() % UInt64(kinds.count))]
            let ticket = Int(random.next() % UInt64(tickets))
            let details: FeedEvent.Details
            switch kind {
            case .ticketDeleted: details = .deletion(isPending: random.next() % 2 == 0)
            case .ticketDownloaded, .ticketLoggedOut: details = .device("d\(random.next() % 3)")
            case .ticketActivated: details = .activation(ActivationMode.allCases[Int(random.next() % 4)])
            case .passSyncAdded, .passSyncRemoved:
                details = .pass(.ios, random.next() % 2 == 0 ? nil : PassStatus.allCases[Int(random.next() % 4)], nil)
            case .passStatusChanged:
                details = .pass(random.next() % 2 == 0 ? .ios : .android, PassStatus.allCases[Int(random.next() % 4)], nil)
            case .passInvalidated:
                details = .pass(random.next() % 2 == 0 ? .ios : .android, nil, InvalidationReason.allCases[Int(random.next() % 3)])
            case _ where kind.isPass:
                details = .pass(random.next() % 2 == 0 ? .ios : .android,
                                random.next() % 3 == 0 ? nil : PassStatus.allCases[Int(random.next() % 4)], nil)
            default: details = .none
            }
            events.append(FeedEvent(id: "c\(seed % 100_000)-\(index)", kind: kind,
                                    eventId: eventIds[ticket % eventIds.count], ticketId: "T\(ticket)",
                                    occurredAt: times[index], details: details))
        }
        return events
    }

    /// The event as one line of NDJSON, as a producer would send it.
    public static func ndjsonLine(_ event: FeedEvent) -> String {
        var fields: [(String, Any)] = [("id", event.id), ("type", event.kind.typeName), ("eventId", event.eventId),
                                       ("occurredAt", Timestamp.format(milliseconds: event.occurredAt))]
        if event.kind.isTicketOrPass { fields.append(("ticketId", event.ticketId)) }
        switch event.details {
        case .none: break
        case .deletion(let isPending): fields.append(("pending", isPending))
        case .device(let device): fields.append(("deviceId", device))
        case .activation(let mode): fields.append(("mode", mode.name))
        case .pass(let platform, let status, let reason):
            fields.append(("platform", platform.name))
            if let status { fields.append(("passStatus", status.name)) }
            if let reason { fields.append(("reason", reason.name)) }
        case .seatStatus(let change):
            fields.append(("objectLabel", change.objectLabel))
            fields.append(("status", change.status))
            fields.append(("quantity", change.quantity))
            fields.append(("displayedLabel", change.displayedLabel))
            if let orderId = change.orderId { fields.append(("orderId", orderId)) }
            if let holdToken = change.holdToken { fields.append(("holdToken", holdToken)) }
            var origin: [String: Any] = ["type": change.originType.name]
            if let ip = change.originIP { origin["ip"] = ip }
            fields.append(("origin", origin))
            if let extra = change.extraDataJSON,
               let object = try? JSONSerialization.jsonObject(with: Data(extra.utf8)) { fields.append(("extraData", object)) }
        case .chartObject(let label, let reason):
            fields.append(("objectLabel", label))
            if let reason { fields.append(("reason", reason.name)) }
        }
        let object = Dictionary(uniqueKeysWithValues: fields)
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}

