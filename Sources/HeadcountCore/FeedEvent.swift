/// A validated feed event: what `POST /v1/feed` accepted, what the WAL stores and what the
/// engine applies. Decoding and validation happen in `HeadcountFeed`; by the time a value of
/// this type exists, every rule of SPEC §2 holds for it.
///
/// Times are milliseconds since the Unix epoch (UTC), the precision the spec stores.
public struct FeedEvent: Sendable, Equatable {
    /// The idempotency key (1–128 bytes).
    public var id: String
    public var kind: FeedEventKind
    /// The show/match the event belongs to (1–128 bytes).
    public var eventId: String
    /// The ticket (1–128 bytes) for ticket and pass kinds; empty for seat and chart kinds.
    public var ticketId: String
    /// `occurredAt`, in milliseconds since the epoch: the event time all statistics use.
    public var occurredAt: Int64
    /// Kind-specific fields.
    public var details: Details

    public init(id: String, kind: FeedEventKind, eventId: String, ticketId: String,
                occurredAt: Int64, details: Details = .none) {
        self.id = id
        self.kind = kind
        self.eventId = eventId
        self.ticketId = ticketId
        self.occurredAt = occurredAt
        self.details = details
    }

    /// The fields a kind uses beyond the envelope.
    public enum Details: Sendable, Equatable {
        /// ticket.created, ticket.restored, transfer.*, ticket.controlled.
        case none
        /// ticket.deleted: `pending` (a pending deletion counts as deleted).
        case deletion(isPending: Bool)
        /// ticket.downloaded / ticket.loggedOut: the device.
        case device(String)
        /// ticket.activated.
        case activation(ActivationMode)
        /// pass.*: the platform, the pass status after the action (if given) and, for
        /// pass.invalidated, the reason (if given).
        case pass(PassPlatform, PassStatus?, InvalidationReason?)
        /// seat.statusChanged.
        case seatStatus(SeatStatusChange)
        /// chart.objectRemoved (with its reason) and chart.objectRestored (reason nil).
        case chartObject(label: String, removalReason: ChartRemovalReason?)
    }
}

/// Every feed `type` the server understands. Raw values are stable: they are written to the
/// WAL (docs/FORMATS.md) and must never be renumbered.
public enum FeedEventKind: UInt8, Sendable, CaseIterable {
    case ticketCreated = 1
    case ticketDeleted = 2
    case ticketRestored = 3
    case ticketDownloaded = 4
    case ticketLoggedOut = 5
    case transferInitiated = 6
    case transferAccepted = 7
    case transferCancelled = 8
    case ticketControlled = 9
    case ticketActivated = 10

    case passAdded = 20
    case passSyncAdded = 21
    case passRemoved = 22
    case passSyncRemoved = 23
    case passControlled = 24
    case passInvalidated = 25
    case passTransferred = 26
    case passStatusChanged = 27

    case seatStatusChanged = 40
    case chartObjectRemoved = 41
    case chartObjectRestored = 42

    /// The feed's `type` string.
    public var typeName: String {
        switch self {
        case .ticketCreated: return "ticket.created"
        case .ticketDeleted: return "ticket.deleted"
        case .ticketRestored: return "ticket.restored"
        case .ticketDownloaded: return "ticket.downloaded"
        case .ticketLoggedOut: return "ticket.loggedOut"
        case .transferInitiated: return "transfer.initiated"
        case .transferAccepted: return "transfer.accepted"
        case .transferCancelled: return "transfer.cancelled"
        case .ticketControlled: return "ticket.controlled"
        case .ticketActivated: return "ticket.activated"
        case .passAdded: return "pass.added"
        case .passSyncAdded: return "pass.syncAdded"
        case .passRemoved: return "pass.removed"
        case .passSyncRemoved: return "pass.syncRemoved"
        case .passControlled: return "pass.controlled"
        case .passInvalidated: return "pass.invalidated"
        case .passTransferred: return "pass.transferred"
        case .passStatusChanged: return "pass.statusChanged"
        case .seatStatusChanged: return "seat.statusChanged"
        case .chartObjectRemoved: return "chart.objectRemoved"
        case .chartObjectRestored: return "chart.objectRestored"
        }
    }

    /// Looks a feed `type` string up; nil for an unknown type.
    public init?(typeName: String) {
        guard let kind = FeedEventKind.byTypeName[typeName] else { return nil }
        self = kind
    }

    private static let byTypeName: [String: FeedEventKind] = {
        var table: [String: FeedEventKind] = [:]
        for kind in FeedEventKind.allCases { table[kind.typeName] = kind }
        return table
    }()

    /// Ticket kinds and pass kinds carry a `ticketId` and count in event statistics.
    public var isTicketOrPass: Bool { rawValue < 40 }
    public var isPass: Bool { rawValue >= 20 && rawValue < 40 }
    public var isSeat: Bool { rawValue >= 40 }
}

public enum ActivationMode: UInt8, Sendable, CaseIterable {
    case online = 1, offline = 2, manual = 3, bluetooth = 4

    public var name: String {
        switch self {
        case .online: return "online"
        case .offline: return "offline"
        case .manual: return "manual"
        case .bluetooth: return "bluetooth"
        }
    }

    public init?(name: String) {
        switch name {
        case "online": self = .online
        case "offline": self = .offline
        case "manual": self = .manual
        case "bluetooth": self = .bluetooth
        default: return nil
        }
    }
}

public enum PassPlatform: UInt8, Sendable, CaseIterable {
    case ios = 1, android = 2

    public var name: String { self == .ios ? "ios" : "android" }

    public init?(name: String) {
        switch name {
        case "ios": self = .ios
        case "android": self = .android
        default: return nil
        }
    }
}

public enum PassStatus: UInt8, Sendable, CaseIterable {
    case active = 1, inactive = 2, expired = 3, deleted = 4

    public var name: String {
        switch self {
        case .active: return "ACTIVE"
        case .inactive: return "INACTIVE"
        case .expired: return "EXPIRED"
        case .deleted: return "DELETED"
        }
    }

    public init?(name: String) {
        switch name {
        case "ACTIVE": self = .active
        case "INACTIVE": self = .inactive
        case "EXPIRED": self = .expired
        case "DELETED": self = .deleted
        default: return nil
        }
    }
}

public enum InvalidationReason: UInt8, Sendable, CaseIterable {
    case cancellation = 1, deletion = 2, reprint = 3

    public var name: String {
        switch self {
        case .cancellation: return "cancellation"
        case .deletion: return "deletion"
        case .reprint: return "reprint"
        }
    }

    public init?(name: String) {
        switch name {
        case "cancellation": self = .cancellation
        case "deletion": self = .deletion
        case "reprint": self = .reprint
        default: return nil
        }
    }
}

/// Why an object is no longer a bookable object on the chart (SPEC §5).
public enum ChartRemovalReason: UInt8, Sendable, CaseIterable {
    case renamedOrDeleted = 1, switchedToBookWholeTable = 2, switchedToBookBySeat = 3

    public var name: String {
        switch self {
        case .renamedOrDeleted: return "RENAMED_OR_DELETED"
        case .switchedToBookWholeTable: return "SWITCHED_TO_BOOK_WHOLE_TABLE"
        case .switchedToBookBySeat: return "SWITCHED_TO_BOOK_BY_SEAT"
        }
    }

    public init?(name: String) {
        switch name {
        case "RENAMED_OR_DELETED": self = .renamedOrDeleted
        case "SWITCHED_TO_BOOK_WHOLE_TABLE": self = .switchedToBookWholeTable
        case "SWITCHED_TO_BOOK_BY_SEAT": self = .switchedToBookBySeat
        default: return nil
        }
    }
}

/// Where a seat status change came from (SPEC §5 `origin.type`).
public enum SeatOriginType: UInt8, Sendable, CaseIterable {
    case apiCall = 1, heldByUser = 2, holdReleasedByUser = 3, holdExpired = 4

    public var name: String {
        switch self {
        case .apiCall: return "API_CALL"
        case .heldByUser: return "HELD_BY_USER"
        case .holdReleasedByUser: return "HOLD_RELEASED_BY_USER"
        case .holdExpired: return "HOLD_EXPIRED"
        }
    }

    public init?(name: String) {
        switch name {
        case "API_CALL": self = .apiCall
        case "HELD_BY_USER": self = .heldByUser
        case "HOLD_RELEASED_BY_USER": self = .holdReleasedByUser
        case "HOLD_EXPIRED": self = .holdExpired
        default: return nil
        }
    }
}

/// The payload of `seat.statusChanged` (SPEC §5).
public struct SeatStatusChange: Sendable, Equatable {
    public var objectLabel: String
    public var status: String
    /// Places of a general-admission area; ≥ 1.
    public var quantity: Int64
    public var orderId: String?
    /// `extraData` as minified JSON text of an object (≤ 4 KiB), returned as given.
    public var extraDataJSON: String?
    public var holdToken: String?
    /// Defaults to `objectLabel` when the feed leaves it out.
    public var displayedLabel: String
    public var originType: SeatOriginType
    /// Only with `API_CALL`.
    public var originIP: String?

    public init(objectLabel: String, status: String, quantity: Int64 = 1, orderId: String? = nil,
                extraDataJSON: String? = nil, holdToken: String? = nil, displayedLabel: String? = nil,
                originType: SeatOriginType, originIP: String? = nil) {
        self.objectLabel = objectLabel
        self.status = status
        self.quantity = quantity
        self.orderId = orderId
        self.extraDataJSON = extraDataJSON
        self.holdToken = holdToken
        self.displayedLabel = displayedLabel ?? objectLabel
        self.originType = originType
        self.originIP = originIP
    }
}
