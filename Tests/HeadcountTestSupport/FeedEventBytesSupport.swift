import HeadcountCore

/// Calls `body` with the `FeedEventBytes` of a ticket or pass event (its strings' UTF-8).
public func withBytes<R>(of event: FeedEvent, _ body: (FeedEventBytes) throws -> R) rethrows -> R {
    precondition(event.kind.isTicketOrPass)
    var id = event.id, eventId = event.eventId, ticketId = event.ticketId
    var device = ""
    if case .device(let value) = event.details { device = value }
    return try id.withUTF8 { id in
        try eventId.withUTF8 { eventId in
            try ticketId.withUTF8 { ticketId in
                try device.withUTF8 { device in
                    let details: FeedEventBytes.Details
                    switch event.details {
                    case .none: details = .none
                    case .deletion(let isPending): details = .deletion(isPending: isPending)
                    case .device: details = .device(UnsafeRawBufferPointer(device))
                    case .activation(let mode): details = .activation(mode)
                    case .pass(let platform, let status, let reason): details = .pass(platform, status, reason)
                    case .seatStatus, .chartObject: preconditionFailure("not a ticket or pass event")
                    }
                    return try body(FeedEventBytes(kind: event.kind, occurredAt: event.occurredAt, id: UnsafeRawBufferPointer(id),
                                                   eventId: UnsafeRawBufferPointer(eventId), ticketId: UnsafeRawBufferPointer(ticketId),
                                                   details: details))
                }
            }
        }
    }
}
