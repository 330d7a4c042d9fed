/// Everything the engine knows about one event (show, match) for its statistics: its tickets,
/// each ticket's own history (kept so a late event can re-derive that ticket alone), and the
/// delta index its point-in-time answers come from.
///
/// Memory: a ticket costs one `FingerprintMap` slot (16 + 4 bytes, 1.4–2.9 slots per
/// ticket) plus its head and tail (8 bytes); each ticket or pass event costs a 32-byte
/// history entry and a 24-byte delta record.
final class EventLedger {
    /// One ticket or pass event in a ticket's history. Entries of one ticket form a singly
    /// linked list through `next`, sorted by (occurredAt, sequence). 32 bytes.
    struct HistoryEntry {
        var occurredAt: Int64
        var sequence: UInt64
        /// The device hash for downloads and log-outs; the argument byte for other kinds.
        var payload: UInt64
        var next: Int32
        /// Bits 0–26: the ticket's contribution mask right after this entry; 27–31: kind code.
        var packed: UInt32

        init(occurredAt: Int64, sequence: UInt64, kind: FeedEventKind, argument: UInt8, device: UInt64, maskAfter: UInt64) {
            self.occurredAt = occurredAt
            self.sequence = sequence
            payload = EventLedger.isDeviceKind(kind) ? device : UInt64(argument)
            next = -1
            packed = UInt32(truncatingIfNeeded: maskAfter) | (UInt32(EventLedger.code(of: kind)) << 27)
        }

        @inline(__always) var maskAfter: UInt64 { UInt64(packed & 0x07ff_ffff) }
        @inline(__always) mutating func setMaskAfter(_ mask: UInt64) { packed = (packed & ~0x07ff_ffff) | UInt32(truncatingIfNeeded: mask) }
        @inline(__always) var kind: FeedEventKind { EventLedger.kind(ofCode: UInt8(packed >> 27)) }
        @inline(__always) var argument: UInt8 { EventLedger.isDeviceKind(kind) ? 0 : UInt8(truncatingIfNeeded: payload) }
        @inline(__always) var device: UInt64 { EventLedger.isDeviceKind(kind) ? payload : 0 }
    }

    @inline(__always)
    static func isDeviceKind(_ kind: FeedEventKind) -> Bool { kind == .ticketDownloaded || kind == .ticketLoggedOut }

    /// Ticket kinds (raw 1–10) and pass kinds (raw 20–27) numbered 0–17 to fit five bits.
    @inline(__always)
    static func code(of kind: FeedEventKind) -> UInt8 {
        kind.rawValue < 20 ? kind.rawValue - 1 : kind.rawValue - 10
    }

    @inline(__always)
    static func kind(ofCode code: UInt8) -> FeedEventKind {
        FeedEventKind(rawValue: code < 10 ? code + 1 : code + 10)!
    }

    let eventId: String
    /// `EventIdTag.of(eventId)`: compared before the id when looking a ledger up.
    let eventIdTag: UInt64
    /// Ticket fingerprint (Hash128 of the ticketId) → ticket number.
    private(set) var ticketNumbers = FingerprintMap<Int32>(capacity: 64, emptyValue: -1)
    private(set) var ticketHeads: [Int32] = []
    private(set) var ticketTails: [Int32] = []
    /// Each ticket's state after its latest entry (`TicketFold.packed`).
    private(set) var ticketStates: [UInt32] = []
    private(set) var history: PagedArray<HistoryEntry>
    private(set) var deltas: DeltaIndex
    /// The counters with everything applied, readable from any thread (see `publish`).
    let published = PublishedCounters()
    /// Whether `published` lags behind `deltas`.
    var isPublishPending = false
    private var scratchDevices: [UInt64] = []

    init(eventId: String, chunkCapacity: Int, historyPageShift: Int = 12) {
        self.eventId = eventId
        eventIdTag = EventIdTag.of(eventId)
        deltas = DeltaIndex(chunkCapacity: chunkCapacity)
        history = PagedArray(pageShift: historyPageShift)
    }

    var ticketCount: Int { ticketHeads.count }

    /// Applies one ticket or pass event. O(events of this ticket) for the re-fold, plus the
    /// delta index's cost (see `DeltaIndex`).
    func apply(kind: FeedEventKind, ticket ticketKey: Hash128, occurredAt: Int64, sequence: UInt64,
               argument: UInt8, device: UInt64) {
        let nextNumber = Int32(ticketHeads.count)
        let (number, isNew) = ticketNumbers.insertIfAbsent(ticketKey, nextNumber)
        let ticket = Int(number)
        if isNew {
            precondition(nextNumber < Int32.max, "ticket numbers are 32-bit per event")
            ticketHeads.append(-1)
            ticketTails.append(-1)
            ticketStates.append(TicketFold().packed(deviceCount: 0))
        }
        precondition(history.count < Int(Int32.max), "history entries are 32-bit per event")
        let entry = Int32(history.count)
        history.append(HistoryEntry(occurredAt: occurredAt, sequence: sequence, kind: kind, argument: argument,
                                    device: device, maskAfter: 0))
        let previousTail = ticketTails[ticket]
        link(entry, into: ticket)
        isPublishPending = true
        // The common case: the ticket's latest event, not one that needs the device set.
        // Its state follows from the cached state alone — no walk of the history.
        let cached = ticketStates[ticket]
        if ticketTails[ticket] == entry && !EventLedger.isDeviceKind(kind) && cached != TicketFold.unpackable {
            let deviceCount = Int(cached >> 19)
            var fold = TicketFold(packed: cached)
            var noDevices: [UInt64] = []
            fold.apply(kind: kind, argument: argument, device: device, devices: &noDevices)
            let mask = fold.contribution(deviceCount: deviceCount)
            let previousMask = previousTail >= 0 ? history[Int(previousTail)].maskAfter : 0
            deltas.insert(DeltaRecord(occurredAt: occurredAt, sequence: sequence,
                                      minus: previousMask & ~mask, plus: mask & ~previousMask,
                                      action: TicketFold.actionSlot(kind: kind, argument: argument)))
            history[Int(entry)].setMaskAfter(mask)
            ticketStates[ticket] = fold.packed(deviceCount: deviceCount)
            return
        }
        refold(ticket: ticket, inserted: entry)
    }

    // MARK: - Prefetching: addresses to prefetch, stage by stage (see `Engine.prefetch`)

    /// Stage 1: the ticket's shard header in `ticketNumbers`.
    @inline(__always)
    func ticketShardAddress(_ ticketKey: Hash128) -> UnsafeRawPointer {
        ticketNumbers.shardAddress(ticketKey)
    }

    /// Stage 2 (the shard header is cached by now): the ticket's slot.
    @inline(__always)
    func ticketSlotAddress(_ ticketKey: Hash128) -> UnsafeRawPointer {
        ticketNumbers.homeSlotAddress(ticketKey)
    }

    /// Stage 3 (the slot is cached by now): looks the ticket's number up, without inserting
    /// it; the addresses of its tail and state. Nil for a ticket not seen yet.
    @inline(__always)
    func ticketStateAddresses(_ ticketKey: Hash128) -> (number: Int32, tail: UnsafeRawPointer, state: UnsafeRawPointer)? {
        guard let number = ticketNumbers[ticketKey] else { return nil }
        let ticket = Int(number)
        guard ticket >= 0 && ticket < ticketTails.count && ticket < ticketStates.count else { return nil }
        let tail = ticketTails.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress! + ticket) }
        let state = ticketStates.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress! + ticket) }
        return (number, tail, state)
    }

    /// Stage 4 (the tail is cached by now): the address of the ticket's latest history entry,
    /// which applying reads (its order and contribution) and links the new entry to.
    @inline(__always)
    func tailEntryAddress(_ number: Int32) -> UnsafeRawPointer? {
        let ticket = Int(number)
        guard ticket >= 0 && ticket < ticketTails.count else { return nil }
        let tail = ticketTails.withUnsafeBufferPointer { $0[ticket] }
        return tail >= 0 ? history.prefetchAddress(Int(tail)) : nil
    }

    func setSpillStore(_ store: SpillStore?) {
        deltas.spillStore = store
        history.spillStore = store
    }

    func spillChunk(_ index: Int) -> Bool { deltas.spill(chunk: index) }

    func spillHistoryPage(_ page: Int) -> Bool { history.spill(page: page) }

    /// The first sequence on each spillable history page (its age), for choosing the oldest.
    func historySpillCandidates() -> [(page: Int, firstSequence: UInt64)] {
        history.spillablePages.map { page in
            (page, history.element(at: page << history.pageShift).sequence)
        }
    }

    /// Publishes the live counters for readers on other threads.
    func publish() {
        published.publish(deltas.live, updatedAt: deltas.recordCount > 0 ? deltas.latestOccurredAt : nil)
        isPublishPending = false
    }

    /// Inserts the entry into the ticket's sorted list. O(1) when it is the ticket's latest.
    private func link(_ entry: Int32, into ticket: Int) {
        let time = history[Int(entry)].occurredAt
        let sequence = history[Int(entry)].sequence
        let tail = ticketTails[ticket]
        if tail < 0 {
            ticketHeads[ticket] = entry
            ticketTails[ticket] = entry
            return
        }
        if !isBefore(time, sequence, entry: tail) {
            history[Int(tail)].next = entry
            ticketTails[ticket] = entry
            return
        }
        var previous: Int32 = -1
        var current = ticketHeads[ticket]
        while current >= 0 && !isBefore(time, sequence, entry: current) {
            previous = current
            current = history[Int(current)].next
        }
        history[Int(entry)].next = current
        if previous < 0 { ticketHeads[ticket] = entry } else { history[Int(previous)].next = entry }
    }

    /// Whether (time, sequence) sorts before the entry.
    @inline(__always)
    private func isBefore(_ time: Int64, _ sequence: UInt64, entry: Int32) -> Bool {
        let other = history[Int(entry)]
        return time < other.occurredAt || (time == other.occurredAt && sequence < other.sequence)
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
            let kind = entry.kind
            fold.apply(kind: kind, argument: entry.argument, device: entry.device, devices: &devices)
            let mask = fold.contribution(deviceCount: devices.count)
            if current == inserted {
                deltas.insert(DeltaRecord(occurredAt: entry.occurredAt, sequence: entry.sequence,
                                          minus: newPrevious & ~mask, plus: mask & ~newPrevious,
                                          action: TicketFold.actionSlot(kind: kind, argument: entry.argument)))
                history[Int(current)].setMaskAfter(mask)
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
                    history[Int(current)].setMaskAfter(mask)
                }
                oldPrevious = oldMask
                newPrevious = mask
            }
            current = entry.next
        }
        ticketStates[ticket] = fold.packed(deviceCount: devices.count)
    }

    /// The statistics at `instant`.
    func statistics(at instant: Int64) -> EventStatistics {
        // In place: a plain read of the stored index copies it (a retain and release of each
        // of its arrays) for every query.
        let (counters, updatedAt) = deltas.countersInPlace(at: instant)
        return EventStatistics(eventId: eventId, counters: counters, updatedAt: updatedAt)
    }

    // MARK: - Snapshot support

    /// Adds a ticket whose entries are sorted and folded (snapshot load). False if repeated.
    func adoptTicket(_ key: Hash128, entries: [HistoryEntry], finalState: UInt32) -> Bool {
        let number = Int32(ticketHeads.count)
        guard ticketNumbers.insertIfAbsent(key, number).inserted else { return false }
        let first = Int32(history.count)
        for (offset, entry) in entries.enumerated() {
            var entry = entry
            entry.next = offset + 1 < entries.count ? first + Int32(offset + 1) : -1
            history.append(entry)
        }
        ticketHeads.append(first)
        ticketTails.append(first + Int32(entries.count - 1))
        ticketStates.append(finalState)
        return true
    }

    /// Installs a ledger's whole state built in bulk (WAL replay, `BulkReplay`): the ticket
    /// map, each ticket's first and last history entry and packed state, the history and the
    /// delta index. The spill store stays.
    func adoptBuilt(ticketNumbers: FingerprintMap<Int32>, heads: [Int32], tails: [Int32], states: [UInt32],
                    history: PagedArray<HistoryEntry>, deltas: DeltaIndex) {
        let store = self.deltas.spillStore
        self.ticketNumbers = ticketNumbers
        ticketHeads = heads
        ticketTails = tails
        ticketStates = states
        self.history = history
        self.history.spillStore = store
        self.deltas = deltas
        self.deltas.spillStore = store
        publish()
    }

    /// Installs a delta index rebuilt from the tickets' records (snapshot load).
    func adoptDeltas(_ index: DeltaIndex) {
        let store = deltas.spillStore
        deltas = index
        deltas.spillStore = store
        publish()
    }
}
