/// The seat status-change log of SPEC §5: every `seat.statusChanged` becomes a listed item;
/// `chart.objectRemoved` / `chart.objectRestored` set whether its object is still on the chart.
///
/// Identity: item ids are 1, 2, … in `apply` order across all events; an event's number is
/// fixed when its key first appears in a seat or chart event. Both derive from the order of
/// `apply` calls alone, so replaying the same feed (snapshot + WAL) gives the same numbers.
///
/// Threading: not thread-safe. One owner applies, expires and lists (or serialises access).
///
/// Cost: `apply` is O(log n) (a binary search plus a bounded memmove in the date index);
/// a page of `limit` items costs O(log n + limit) for unfiltered listings (index walks from
/// the cursor's key), plus a scan of the event's distinct labels when filtered.
public final class StatusChangeLog {
    /// Changes dated earlier than `now - retentionMilliseconds` are neither listed nor kept.
    public let retentionMilliseconds: Int64

    var events: [SCL.EventStore] = []
    var eventIndex: [String: Int] = [:]
    var nextID: Int64 = 1
    /// The highest `now - retention` any `expire` saw: records dated before it are dead
    /// (dropped at `apply`, counted by `expire`, physically removed in batches).
    var expiryFloor: Int64 = .min
    var liveTotal = 0
    /// Up to this many candidate records (the changes of the labels a filter selects), a
    /// filtered date or status listing sorts the candidates; above it, it walks the full
    /// index skipping the others. (Tests set it to 0 or .max to force either path.)
    var gatherThreshold = 16_384

    public init(retentionMilliseconds: Int64 = 365 * 86_400_000) {
        self.retentionMilliseconds = max(0, retentionMilliseconds)
    }

    /// Applies `seat.statusChanged`, `chart.objectRemoved` and `chart.objectRestored`; other
    /// kinds (and a seat kind whose details do not match it) are ignored. Call in acceptance
    /// order; `sequence` (strictly increasing) breaks `occurredAt` ties between chart events.
    ///
    /// A status change dated before the expiry floor still takes an id (ids depend on the feed
    /// alone) but is not stored.
    public func apply(_ event: FeedEvent, sequence: UInt64) {
        switch (event.kind, event.details) {
        case (.seatStatusChanged, .seatStatus(let change)):
            let store = self.store(for: event.eventId)
            let id = nextID
            nextID += 1
            guard event.occurredAt >= expiryFloor else { return }
            store.append(id: id, date: event.occurredAt, change: change)
            liveTotal += 1
        case (.chartObjectRemoved, .chartObject(let label, let reason)):
            store(for: event.eventId).setPresence(
                label: label, time: event.occurredAt, sequence: sequence,
                removal: (reason ?? .renamedOrDeleted).rawValue)
        case (.chartObjectRestored, .chartObject(let label, _)):
            store(for: event.eventId).setPresence(label: label, time: event.occurredAt, sequence: sequence, removal: 0)
        default:
            return
        }
    }

    /// The event's number (`eventId` in items), or nil if no seat or chart event named it.
    public func eventNumber(forKey eventKey: String) -> Int64? {
        eventIndex[eventKey].map { events[$0].number }
    }

    /// One page of the event's status changes (or of one object's, with `objectLabel`), or
    /// nil for an event never seen. An unknown object label gives an empty page.
    ///
    /// A cursor is positioned by the key of its item in the requested order, so it works even
    /// when that item is filtered out or belongs to another object of the event. A cursor id
    /// that is not a status change of this event within the retention throws (parameter
    /// `start_after_id` / `end_before_id`): a 400.
    public func list(eventKey: String, objectLabel: String?, query: StatusChangeQuery,
                     now: Int64) throws(StatusChangeQueryError) -> StatusChangePage? {
        guard let index = eventIndex[eventKey] else { return nil }
        let store = events[index]
        let page = try store.page(objectLabel: objectLabel, query: query, floor: visibilityFloor(now: now),
                                  gatherThreshold: gatherThreshold)
        let items = page.locals.map { store.item($0) }
        return StatusChangePage(
            items: items,
            nextPageStartsAfter: page.next ? items.last?.id : nil,
            previousPageEndsBefore: page.previous ? items.first?.id : nil)
    }

    /// Drops the changes dated before `now - retentionMilliseconds`. They stop being listed
    /// and counted at once; their memory is reclaimed in batches (when an event's dead
    /// records reach 1/32 of it, or 65,536), so calling this often (e.g. every minute) is cheap.
    public func expire(now: Int64) {
        let newFloor = visibilityFloor(now: now)
        guard newFloor > expiryFloor else { return }
        for store in events where !store.dateIndex.isEmpty {
            liveTotal -= store.countDead(oldFloor: expiryFloor, newFloor: newFloor)
            if store.deadCount > 0 && (store.deadCount * 32 >= store.recordCount || store.deadCount >= 65_536) {
                store.compact(floor: newFloor)
            }
        }
        expiryFloor = newFloor
    }

    /// Status changes kept and not expired, over all events.
    public var changeCount: Int { liveTotal }

    /// The id of the latest status change applied (0 before any).
    public var lastChangeID: Int64 { nextID - 1 }

    /// Events seen (numbered).
    public var eventCount: Int { events.count }

    /// Approximate heap bytes held (for metrics and sizing).
    public var memoryFootprint: Int {
        var total = events.capacity * 8 + eventIndex.capacity * 40
        for store in events { total += store.footprint + store.key.utf8.count }
        return total
    }

    // MARK: internals

    func store(for eventKey: String) -> SCL.EventStore {
        if let index = eventIndex[eventKey] { return events[index] }
        let store = SCL.EventStore(key: eventKey, number: Int64(events.count + 1))
        eventIndex[eventKey] = events.count
        events.append(store)
        return store
    }

    func visibilityFloor(now: Int64) -> Int64 {
        let (cutoff, overflow) = now.subtractingReportingOverflow(retentionMilliseconds)
        return max(expiryFloor, overflow ? .min : cutoff)
    }
}
