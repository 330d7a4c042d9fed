/// The counters of `GET /v1/event-statistics` (SPEC §4), in the order the answer lists them.
/// The raw value is the counter's slot in a `CounterVector` and, for counters that describe a
/// ticket's state, its bit in a ticket's contribution mask (see `TicketContribution`).
///
/// Slots 0–26 are the *state* counters a ticket's contribution mask can set (its bit `i` is
/// slot `i`); slots 27–37 count *actions*. `answerOrder` is the order of the JSON answer.
public enum StatisticsCounter: Int, CaseIterable, Sendable {
    // State counters (bits of a ticket's contribution mask).
    case totalTickets = 0
    case validTickets
    case deletedTickets
    case downloadedTickets
    case notDownloadedTickets
    case neverDownloadedTickets
    case pendingTransferTickets
    case controlledTickets
    case activatedTickets
    case offlineActivatedTickets
    case manualActivatedTickets
    case notActivatedTickets
    case transferredOnce
    case transferredTwice
    case transferred3Times
    case transferred4PlusTimes
    case neverTransferred
    case iosPassControlled
    case iosPassActive
    case iosPassInactive
    case iosPassExpired
    case iosPassDeleted
    case androidPassControlled
    case androidPassActive
    case androidPassInactive
    case androidPassExpired
    case androidPassDeleted = 26
    // Action counters.
    case totalTransferOperations = 27
    case iosPassAdded
    case iosPassSyncAdded
    case iosPassRemoved
    case iosPassSyncRemoved
    case iosPassInvalidated
    case iosPassTransferred
    case androidPassAdded
    case androidPassRemoved
    case androidPassInvalidated
    case androidPassTransferred = 37

    public static let count = 38
    /// Slots below this are state counters.
    public static let stateCount = 27

    /// The JSON field name of the answer.
    public var fieldName: String { String(describing: self) }

    /// The order of the fields in an answer: SPEC §4's table.
    public static let answerOrder: [StatisticsCounter] = [
        .totalTickets, .validTickets, .deletedTickets, .downloadedTickets, .notDownloadedTickets,
        .neverDownloadedTickets, .pendingTransferTickets, .controlledTickets, .activatedTickets,
        .offlineActivatedTickets, .manualActivatedTickets, .notActivatedTickets, .transferredOnce,
        .transferredTwice, .transferred3Times, .transferred4PlusTimes, .neverTransferred,
        .totalTransferOperations, .iosPassAdded, .iosPassSyncAdded, .iosPassRemoved, .iosPassSyncRemoved,
        .iosPassControlled, .iosPassInvalidated, .iosPassTransferred, .iosPassActive, .iosPassInactive,
        .iosPassExpired, .iosPassDeleted, .androidPassAdded, .androidPassRemoved, .androidPassControlled,
        .androidPassInvalidated, .androidPassTransferred, .androidPassActive, .androidPassInactive,
        .androidPassExpired, .androidPassDeleted,
    ]

    /// Field names by slot.
    public static let fieldNames: [String] = allCases.map(\.fieldName)

    /// The answer's members as written: `"fieldName":` per counter in `answerOrder`, all
    /// in one buffer with their (start, end) offsets — so writing an answer formats no names.
    public static let answerKeys: (bytes: [UInt8], ranges: [(slot: Int, start: Int, end: Int)]) = {
        var bytes: [UInt8] = []
        var ranges: [(slot: Int, start: Int, end: Int)] = []
        for counter in answerOrder {
            let start = bytes.count
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: counter.fieldName.utf8)
            bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
            ranges.append((counter.rawValue, start, bytes.count))
        }
        return (bytes, ranges)
    }()
}

/// One value per `StatisticsCounter`, stored inline (no heap allocation).
public struct CounterVector: Sendable, Equatable {
    public var storage: InlineArray<38, Int64>

    public init() { storage = InlineArray(repeating: 0) }

    @inline(__always)
    public subscript(counter: StatisticsCounter) -> Int64 {
        get { storage[counter.rawValue] }
        set { storage[counter.rawValue] = newValue }
    }

    @inline(__always)
    public subscript(slot: Int) -> Int64 {
        get { storage[slot] }
        set { storage[slot] = newValue }
    }

    public static func == (lhs: CounterVector, rhs: CounterVector) -> Bool {
        for i in 0..<StatisticsCounter.count where lhs.storage[i] != rhs.storage[i] { return false }
        return true
    }

    @inline(__always)
    public mutating func add(_ other: CounterVector) {
        for i in 0..<StatisticsCounter.count { storage[i] &+= other.storage[i] }
    }
}

/// The answer for one event at one instant.
public struct EventStatistics: Sendable, Equatable {
    public var eventId: String
    public var counters: CounterVector
    /// The latest `occurredAt` of this event's ticket and pass events applied at T, if any.
    public var updatedAt: Int64?

    public init(eventId: String, counters: CounterVector, updatedAt: Int64?) {
        self.eventId = eventId
        self.counters = counters
        self.updatedAt = updatedAt
    }

    public subscript(counter: StatisticsCounter) -> Int64 { counters[counter] }

    /// SPEC §4's invariants; nil when all hold, otherwise the first that does not.
    public func violatedInvariant() -> String? {
        let c = counters
        if c[.validTickets] + c[.deletedTickets] != c[.totalTickets] { return "valid + deleted = total" }
        if c[.downloadedTickets] + c[.notDownloadedTickets] != c[.validTickets] { return "downloaded + notDownloaded = valid" }
        if c[.neverDownloadedTickets] > c[.notDownloadedTickets] { return "neverDownloaded <= notDownloaded" }
        if c[.activatedTickets] + c[.notActivatedTickets] != c[.validTickets] { return "activated + notActivated = valid" }
        if c[.offlineActivatedTickets] + c[.manualActivatedTickets] > c[.activatedTickets] { return "offline + manual <= activated" }
        let buckets = c[.transferredOnce] + c[.transferredTwice] + c[.transferred3Times] + c[.transferred4PlusTimes] + c[.neverTransferred]
        if buckets != c[.totalTickets] { return "once + twice + 3Times + 4Plus + never = total" }
        let minimumOperations = c[.transferredOnce] + 2 * c[.transferredTwice] + 3 * c[.transferred3Times] + 4 * c[.transferred4PlusTimes]
        if c[.totalTransferOperations] < minimumOperations { return "totalTransferOperations >= once + 2 twice + 3 3Times + 4 4Plus" }
        for i in 0..<StatisticsCounter.count where c[i] < 0 { return "\(StatisticsCounter.fieldNames[i]) >= 0" }
        return nil
    }
}
