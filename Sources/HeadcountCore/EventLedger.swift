/// Everything the engine knows about one event (show, match) for its statistics: its tickets,
/// each ticket's own history (kept so a late event can re-derive that ticket alone), and the
/// delta index its point-in-time answers come from.
final class EventLedger {
    /// One ticket or pass event in a ticket's history. Entries of one ticket form a singly
    /// linked list through `next`, sorted by (occurredAt, sequence).
    struct HistoryEntry {
        var occurredAt: Int64
        var sequence: UInt64
        /// Hash of `deviceId` for downloads and log-outs, else 0.
        var device: UInt64
        /// The ticket's contribution mask right after this entry.
        var maskAfter: UInt64
        var next: Int32
        var kind: FeedEventKind
        var argument: UInt8
    }

    let eventId: String
    /// Ticket id → ticket number (an index into `ticketHeads` / `ticketTails`).
    private(set) var ticketNumbers: [String: Int32] = [:]
    private(set) var ticketHeads: [Int32] = []
    private(set) var ticketTails: [Int32] = []
    private(set) var history: [HistoryEntry] = []
    private(set) var deltas: DeltaIndex
    /// The counters with everything applied, readable from any thread.
    let published = PublishedCounters()

    init(eventId: String, chunkCapacity: Int) {
        self.eventId = eventId
        deltas = DeltaIndex(chunkCapacity: chunkCapacity)
    }

    var ticketCount: Int { ticketHeads.count }

    /// Applies one ticket or pass event. O(events of this ticket) for the re-fold, plus the
    /// delta index's cost (see `DeltaIndex`). `devices` is scratch space reused across calls.
    func apply(kind: FeedEventKind, ticketId: String, occurredAt: Int64, sequence: UInt64,
               argument: UInt8, device: UInt64, devices: inout [UInt64]) {
        let ticket: Int
        if let number = ticketNumbers[ticketId] {
            ticket = Int(number)
        } else {
            ticket = ticketHeads.count
            precondition(ticket < Int(Int32.max), "ticket numbers are 32-bit")
            ticketNumbers[ticketId] = Int32(ticket)
            ticketHeads.append(-1)
            ticketTails.append(-1)
        }
        let entry = Int32(history.count)
        precondition(history.count < Int(Int32.max), "history entries are 32-bit per event")
        history.append(HistoryEntry(occurredAt: occurredAt, sequence: sequence, device: device, maskAfter: 0,
                                    next: -1, kind: kind, argument: argument))
        link(entry, into: ticket)
        refold(ticket: ticket, inserted: entry)
        published.publish(deltas.live, updatedAt: deltas.recordCount > 0 ? deltas.latestOccurredAt : nil)
    }

    /// Inserts the entry into the ticket's sorted list. O(1) when it is the ticket's latest.
    private func link(_ entry: Int32, into ticket: Int) {
        let key = (history[Int(entry)].occurredAt, history[Int(entry)].sequence)
        let tail = ticketTails[ticket]
        if tail < 0 {
            ticketHeads[ticket] = entry
            ticketTails[ticket] = entry
            return
        }
        if !precedes(key, tail) {
            history[Int(tail)].next = entry
            ticketTails[ticket] = entry
            return
        }
        var previous: Int32 = -1
        var current = ticketHeads[ticket]
        while current >= 0 && precedes((history[Int(current)].occurredAt, history[Int(current)].sequence), entry) {
            previous = current
            current = history[Int(current)].next
        }
        history[Int(entry)].next = current
        if previous < 0 { ticketHeads[ticket] = entry } else { history[Int(previous)].next = entry }
    }

    @inline(__always)
    private func precedes(_ key: (Int64, UInt64), _ entry: Int32) -> Bool {
        let other = history[Int(entry)]
        return key.0 < other.occurredAt || (key.0 == other.occurredAt && key.1 < other.sequence)
    }

    /// Re-derives the ticket's contributions from its history, inserts the new entry's delta
    /// record and corrects the records of the entries after it whose change differs.
    private func refold(ticket: Int, inserted: Int32) {
        var devices = scratchDevices
        devices.removeAll(keepingCapacity: true)
        defer { scratchDevices = devices }
        var fold = TicketFold()
        var oldPrevious: UInt64 = 0
        var newPrevious: UInt64 = 0
        var passedInserted = false
        var current = ticketHeads[ticket]
        while current >= 0 {
            let entry = history[Int(current)]
            fold.apply(kind: entry.kind, argument: entry.argument, device: entry.device, devices: &devices)
            let mask = fold.contribution(deviceCount: devices.count)
            if current == inserted {
                deltas.insert(DeltaRecord(occurredAt: entry.occurredAt, sequence: entry.sequence,
                                          minus: newPrevious & ~mask, plus: mask & ~newPrevious,
                                          action: TicketFold.actionSlot(kind: entry.kind, argument: entry.argument)))
                history[Int(current)].maskAfter = mask
                newPrevious = mask
                passedInserted = true
            } else if !passedInserted {
                assert(entry.maskAfter == mask, "a history entry before a late one keeps its contribution")
                oldPrevious = mask
                newPrevious = mask
            } else {
                let oldMask = entry.maskAfter
                if oldPrevious != newPrevious || oldMask != mask {
                    let oldMinus = oldPrevious & ~oldMask, oldPlus = oldMask & ~oldPrevious
                    let newMinus = newPrevious & ~mask, newPlus = mask & ~newPrevious
                    if oldMinus != newMinus || oldPlus != newPlus {
                        deltas.update(occurredAt: entry.occurredAt, sequence: entry.sequence, minus: newMinus, plus: newPlus)
                    }
                    history[Int(current)].maskAfter = mask
                }
                oldPrevious = oldMask
                newPrevious = mask
            }
            current = entry.next
        }
    }

    private var scratchDevices: [UInt64] = []

    /// Adds a ticket whose entries are sorted and whose `maskAfter`s are folded (snapshot load).
    func adoptTicket(_ ticketId: String, entries: [HistoryEntry]) {
        let number = Int32(ticketHeads.count)
        ticketNumbers[ticketId] = number
        let first = Int32(history.count)
        for (offset, entry) in entries.enumerated() {
            var entry = entry
            entry.next = offset + 1 < entries.count ? first + Int32(offset + 1) : -1
            history.append(entry)
        }
        ticketHeads.append(first)
        ticketTails.append(first + Int32(entries.count - 1))
    }

    /// Installs a delta index rebuilt from the tickets' records (snapshot load).
    func adoptDeltas(_ index: DeltaIndex) {
        deltas = index
        published.publish(deltas.live, updatedAt: deltas.recordCount > 0 ? deltas.latestOccurredAt : nil)
    }

    /// The statistics at `instant`.
    func statistics(at instant: Int64) -> EventStatistics {
        let (counters, updatedAt) = deltas.counters(at: instant)
        return EventStatistics(eventId: eventId, counters: counters, updatedAt: updatedAt)
    }
}
