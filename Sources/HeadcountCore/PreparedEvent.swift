/// An admitted event reduced to what applying it takes (`Engine.apply(_:sequence:)`),
/// prepared where it was decoded — possibly another thread than the one that applies it.
///
/// A ticket or pass event becomes its show's id, its ticket's fingerprint and its history
/// argument: the applying thread then never touches the event's `id`, `ticketId` or device
/// strings (each a heap object when longer than 15 bytes), so it neither retains nor frees
/// memory another core wrote — measured on the server's intake thread, those cross-core
/// reference counts and frees made the loop thread's apply ~50% dearer. A seat or chart
/// event, which the status-change log keeps in full, travels whole in a box.
public struct PreparedEvent: Sendable {
    /// A seat or chart event, kept whole.
    public final class StatusChange: Sendable {
        public let event: FeedEvent
        init(_ event: FeedEvent) { self.event = event }
    }

    public let eventId: String
    /// `EventIdTag.of(eventId)`.
    public let eventIdTag: UInt64
    public let kind: FeedEventKind
    /// `Hash128.hash(ticketId)` (ticket and pass kinds).
    public let ticketKey: Hash128
    public let occurredAt: Int64
    /// The history argument byte and device hash (`FeedEvent.historyArgument`).
    public let argument: UInt8
    public let device: UInt64
    /// Non-nil for seat and chart kinds.
    public let statusChange: StatusChange?

    public init(_ event: FeedEvent) {
        eventId = event.eventId
        eventIdTag = EventIdTag.of(event.eventId)
        kind = event.kind
        occurredAt = event.occurredAt
        if event.kind.isTicketOrPass {
            ticketKey = Hash128.hash(event.ticketId)
            (argument, device) = event.historyArgument
            statusChange = nil
        } else {
            ticketKey = Hash128(low: 0, high: 0)
            argument = 0
            device = 0
            statusChange = StatusChange(event)
        }
    }

    /// `init(_:)` of `bytes.event`, without making the event's Strings. `eventId` is the
    /// String of `bytes.eventId` (shared among a show's events: `EventIdInterner`).
    public init(_ bytes: FeedEventBytes, eventId: String) {
        self.eventId = eventId
        eventIdTag = EventIdTag.of(bytes.eventId)
        kind = bytes.kind
        occurredAt = bytes.occurredAt
        ticketKey = Hash128.hash(bytes.ticketId)
        (argument, device) = bytes.historyArgument
        statusChange = nil
    }
}
