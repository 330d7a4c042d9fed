import HeadcountCore

/// The test oracle for event statistics (SPEC §3–§4): deliberately simple and obviously
/// correct, never fast.
///
/// It keeps every applied `(FeedEvent, sequence)`. The statistics of an event at T are the sum,
/// over its tickets, of each ticket's contribution; a ticket's contribution is computed from
/// scratch from its events with `occurredAt <= T` in `(occurredAt, sequence)` order: fold its
/// state (`fold`), then count it in the table of SPEC §4 (`contribution`).
///
/// Since a contribution depends only on that prefix of the ticket's events, it is memoized by
/// prefix length (and forgotten when the ticket gets an event); `memoize: false` turns that
/// off, and a self-test checks both agree.
///
/// Decisions where SPEC is silent (keep `docs/` in line with these):
/// - Every attribute of a ticket is driven only by the events SPEC names for it, whatever the
///   ticket's deletion state at the time: a download, an activation, a control or an accepted
///   transfer on a deleted ticket is recorded, and shows once the ticket is restored.
/// - `ticket.deleted` twice then `ticket.restored` once leaves the ticket valid (a flag, not a
///   count). A `ticket.restored` or `ticket.loggedOut` or `transfer.cancelled` with nothing to
///   undo changes nothing. `transfer.accepted` with no pending transfer still counts.
///   `ticket.created` on an existing (even deleted) ticket changes nothing.
/// - A pass with no `passStatus` ever given counts in none of the status counters.
/// - Pass action counters and `…PassControlled` count on deleted tickets too (wallet counters
///   describe passes, not tickets).
/// - A pass action with no counter of its own (`pass.syncAdded`/`pass.syncRemoved` on android,
///   which the decoder rejects anyway) still makes its ticket exist and still sets its status.
/// - An `eventId` is known once any event carrying it (seat kinds too) was applied; it is
///   known at every instant, so a query before its first event answers zeros with
///   `updatedAt == nil`, never nil.
public final class ReferenceModel {
    struct Applied {
        let event: FeedEvent
        let sequence: UInt64
    }

    final class TicketRecord {
        /// In (occurredAt, sequence) order, the order SPEC §3 applies them in.
        var events: [Applied] = []
        /// `events[i].event.occurredAt`, for finding the events at T quickly.
        var times: [Int64] = []
        /// The non-zero slots of `contribution` of the first k events at index k, once computed
        /// (reset when `events` changes).
        var memo: [[(slot: Int, value: Int64)]?] = []
    }

    let memoize: Bool
    /// Every eventId any applied event carried (seat kinds too).
    private var knownEventIds: Set<String> = []
    /// Every applied ticket and pass event, by eventId and ticketId.
    private var tickets: [String: [String: TicketRecord]] = [:]
    /// Every id ever admitted (the idempotency window never expires in these tests).
    private var admittedIds: Set<String> = []

    public init(memoize: Bool = true) {
        self.memoize = memoize
    }

    /// True the first time an id is seen; false for a duplicate, which must not be applied.
    public func admit(id: String, arrivalMilliseconds: Int64) -> Bool {
        admittedIds.insert(id).inserted
    }

    public func apply(_ event: FeedEvent, sequence: UInt64) {
        knownEventIds.insert(event.eventId)
        guard event.kind.isTicketOrPass else { return }
        let record = tickets[event.eventId, default: [:]][event.ticketId] ?? TicketRecord()
        tickets[event.eventId, default: [:]][event.ticketId] = record
        let key = (event.occurredAt, sequence)
        let position = record.events.firstIndex { ($0.event.occurredAt, $0.sequence) > key } ?? record.events.endIndex
        record.events.insert(Applied(event: event, sequence: sequence), at: position)
        record.times.insert(event.occurredAt, at: position)
        record.memo = Array(repeating: nil, count: record.events.count + 1)
    }

    public func knowsEvent(_ eventId: String) -> Bool {
        knownEventIds.contains(eventId)
    }

    /// The state of one ticket after folding its events in order.
    struct TicketState {
        var deleted = false
        var devices: Set<String> = []
        var everDownloaded = false
        var pendingTransfer = false
        var successfulTransfers: Int64 = 0
        var controlled = false
        var activation: ActivationMode? = nil
        var passes: [PassPlatform: PassState] = [:]
    }

    struct PassState {
        var status: PassStatus? = nil
        var controlled = false
    }

    static func fold(_ events: some Sequence<FeedEvent>) -> TicketState {
        var ticket = TicketState()
        for event in events {
            switch event.kind {
            case .ticketCreated:
                break
            case .ticketDeleted:
                ticket.deleted = true
            case .ticketRestored:
                ticket.deleted = false
            case .ticketDownloaded:
                if case .device(let device) = event.details {
                    ticket.devices.insert(device)
                }
                ticket.everDownloaded = true
            case .ticketLoggedOut:
                if case .device(let device) = event.details {
                    ticket.devices.remove(device)
                }
            case .transferInitiated:
                ticket.pendingTransfer = true
            case .transferAccepted:
                ticket.pendingTransfer = false
                ticket.successfulTransfers += 1
            case .transferCancelled:
                ticket.pendingTransfer = false
            case .ticketControlled:
                ticket.controlled = true
            case .ticketActivated:
                if ticket.activation == nil, case .activation(let mode) = event.details {
                    ticket.activation = mode
                }
            case .passAdded, .passSyncAdded, .passRemoved, .passSyncRemoved, .passControlled,
                 .passInvalidated, .passTransferred, .passStatusChanged:
                guard case .pass(let platform, let status, _) = event.details else { break }
                var pass = ticket.passes[platform] ?? PassState()
                if let status { pass.status = status }
                if event.kind == .passControlled { pass.controlled = true }
                ticket.passes[platform] = pass
            case .seatStatusChanged, .chartObjectRemoved, .chartObjectRestored:
                break
            }
        }
        return ticket
    }

    /// The pass action counter an event increments, if any.
    static func actionCounter(_ event: FeedEvent) -> StatisticsCounter? {
        guard case .pass(let platform, _, _) = event.details else { return nil }
        switch (event.kind, platform) {
        case (.passAdded, .ios): return .iosPassAdded
        case (.passSyncAdded, .ios): return .iosPassSyncAdded
        case (.passRemoved, .ios): return .iosPassRemoved
        case (.passSyncRemoved, .ios): return .iosPassSyncRemoved
        case (.passInvalidated, .ios): return .iosPassInvalidated
        case (.passTransferred, .ios): return .iosPassTransferred
        case (.passAdded, .android): return .androidPassAdded
        case (.passRemoved, .android): return .androidPassRemoved
        case (.passInvalidated, .android): return .androidPassInvalidated
        case (.passTransferred, .android): return .androidPassTransferred
        default: return nil
        }
    }

    static func statusCounter(_ platform: PassPlatform, _ status: PassStatus) -> StatisticsCounter {
        switch (platform, status) {
        case (.ios, .active): return .iosPassActive
        case (.ios, .inactive): return .iosPassInactive
        case (.ios, .expired): return .iosPassExpired
        case (.ios, .deleted): return .iosPassDeleted
        case (.android, .active): return .androidPassActive
        case (.android, .inactive): return .androidPassInactive
        case (.android, .expired): return .androidPassExpired
        case (.android, .deleted): return .androidPassDeleted
        }
    }

    /// The event's statistics at `instant`, or nil when no event with this eventId was applied.
    public func statistics(eventId: String, at instant: Int64) -> EventStatistics? {
        guard knowsEvent(eventId) else { return nil }
        var sums = [Int64](repeating: 0, count: StatisticsCounter.count)
        var updatedAt: Int64? = nil
        for record in (tickets[eventId] ?? [:]).values {
            // This ticket's events at T are its first k.
            var k = 0
            while k < record.times.count && record.times[k] <= instant { k += 1 }
            guard k > 0 else { continue }   // the ticket does not exist yet at T
            updatedAt = max(updatedAt ?? record.times[k - 1], record.times[k - 1])
            if memoize, let known = record.memo[k] {
                for (slot, value) in known { sums[slot] += value }
            } else {
                let computed = ReferenceModel.contribution(of: record.events.prefix(k).map(\.event))
                let nonZero = (0..<StatisticsCounter.count).filter { computed[$0] != 0 }.map { (slot: $0, value: computed[$0]) }
                if memoize { record.memo[k] = nonZero }
                for (slot, value) in nonZero { sums[slot] += value }
            }
        }
        var counters = CounterVector()
        for slot in 0..<StatisticsCounter.count { counters[slot] = sums[slot] }
        return EventStatistics(eventId: eventId, counters: counters, updatedAt: updatedAt)
    }

    /// One ticket's share of every counter, given its events at T (at least one: it exists) in
    /// the order they apply.
    static func contribution(of events: [FeedEvent]) -> CounterVector {
        var c = CounterVector()

        // Pass actions count events, whatever happened to their ticket.
        for event in events {
            if let counter = actionCounter(event) { c[counter] += 1 }
        }

        let t = fold(events)
        c[.totalTickets] = 1

        // Transfers: deleted tickets included.
        switch t.successfulTransfers {
        case 0: c[.neverTransferred] = 1
        case 1: c[.transferredOnce] = 1
        case 2: c[.transferredTwice] = 1
        case 3: c[.transferred3Times] = 1
        default: c[.transferred4PlusTimes] = 1
        }
        c[.totalTransferOperations] = t.successfulTransfers

        // Passes: the ticket's deletion does not matter.
        for (platform, pass) in t.passes {
            if let status = pass.status { c[statusCounter(platform, status)] += 1 }
            if pass.controlled { c[platform == .ios ? .iosPassControlled : .androidPassControlled] += 1 }
        }

        if t.deleted {
            c[.deletedTickets] = 1
            return c
        }

        // A valid ticket.
        c[.validTickets] = 1
        if t.devices.isEmpty {
            c[.notDownloadedTickets] = 1
            if !t.everDownloaded { c[.neverDownloadedTickets] = 1 }
        } else {
            c[.downloadedTickets] = 1
        }
        if t.pendingTransfer { c[.pendingTransferTickets] = 1 }
        if t.controlled { c[.controlledTickets] = 1 }
        switch t.activation {
        case nil:
            c[.notActivatedTickets] = 1
        case .some(let mode):
            c[.activatedTickets] = 1
            if mode == .offline { c[.offlineActivatedTickets] = 1 }
            if mode == .manual { c[.manualActivatedTickets] = 1 }
        }
        return c
    }
}
