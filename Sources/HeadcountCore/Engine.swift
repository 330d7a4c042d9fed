/// The pure core of Headcount: every accepted feed event goes in, point-in-time answers come
/// out. No I/O, no clock: times arrive as values (milliseconds since the epoch).
///
/// Threading: one thread owns an `Engine` and calls every mutating method on it. The
/// per-event live counters it publishes (`liveCounters(eventId:)`) may be read from any
/// thread, lock-free, and always show each event wholly applied or not at all.
public struct EngineConfiguration: Sendable, Equatable {
    /// How far back `dateTime` may go (SPEC §4, default 365 days).
    public var retentionMilliseconds: Int64 = 365 * 86_400_000
    /// How long an accepted `id` is remembered as a duplicate (SPEC §2, default 7 days).
    public var idempotencyWindowMilliseconds: Int64 = 7 * 86_400_000
    /// Deltas between two snapshots of an event's counters (the longest replay of a query).
    public var deltasPerSnapshot: Int = 256

    public init() {}
}

public final class Engine {
    public let configuration: EngineConfiguration

    public init(configuration: EngineConfiguration = EngineConfiguration()) {
        self.configuration = configuration
        fatalError("not yet implemented")
    }

    /// Records `id` as accepted at `arrivalMilliseconds` if it is new; false for a duplicate
    /// (an `id` accepted within the idempotency window). Call before writing the event to
    /// the WAL; `apply` it once it is durable.
    public func admit(id: String, arrivalMilliseconds: Int64) -> Bool { fatalError() }

    /// Applies an admitted event. `sequence` is its WAL sequence number: strictly increasing,
    /// the arrival order that breaks ties between equal `occurredAt`.
    public func apply(_ event: FeedEvent, sequence: UInt64) { fatalError() }

    /// Whether any event with this `eventId` was ever applied.
    public func knowsEvent(_ eventId: String) -> Bool { fatalError() }

    /// The event's statistics at `instant` (every event with `occurredAt <= instant`), or nil
    /// for an event never seen.
    public func statistics(eventId: String, at instant: Int64) -> EventStatistics? { fatalError() }

    /// Forgets idempotency keys accepted before `now - idempotencyWindowMilliseconds`.
    public func expireIdempotencyKeys(now: Int64) { fatalError() }

    /// The sequence of the last applied event (0 before any).
    public private(set) var lastAppliedSequence: UInt64 = 0
}
