import CPrefetch
import HeapModule

/// The pure core of Headcount: every accepted feed event goes in, point-in-time answers come
/// out. No I/O, no clock: times arrive as values (milliseconds since the epoch).
///
/// How an answer stays exact under a late, out-of-order, duplicated feed (docs/ARCHITECTURE.md):
/// an event's counters are the sum of its tickets' contributions; a ticket's contribution
/// changes only at its own events, so each ticket event yields one delta record, and the
/// counters at T are the sum of the records up to T (`DeltaIndex`, with a snapshot every
/// chunk). A late event re-folds its own ticket's short history and corrects only that
/// ticket's records after it.
///
/// Threading: one thread owns an `Engine` and calls every method on it. The live counters
/// of an event (`publishedCounters(eventId:)`) may be read from any thread, lock-free.
public struct EngineConfiguration: Sendable, Equatable {
    /// How far back `dateTime` may go (SPEC §4, default 365 days).
    public var retentionMilliseconds: Int64 = 365 * 86_400_000
    /// How long an accepted `id` is remembered as a duplicate (SPEC §2, default 7 days).
    public var idempotencyWindowMilliseconds: Int64 = 7 * 86_400_000
    /// Delta records per snapshot chunk; a query replays at most twice this many.
    public var deltasPerSnapshot: Int = 256
    /// Memory for the delta records behind the snapshots. Past it, the records of the oldest
    /// chunks go to the spill store (if one is set); their snapshots stay in memory.
    public var deltaMemoryBytesMax: Int = 512 << 20
    /// Memory for ticket histories. Past it, the oldest pages (4 Ki entries, 128 KiB) go to
    /// the spill store and come back when a late or new event of one of their tickets
    /// touches them.
    public var historyMemoryBytesMax: Int = 1 << 30
    /// log2 of the entries in a history page (12: 4 Ki entries, 128 KiB). A page is the unit
    /// of copy-on-write after a snapshot and of spilling: the first append after a snapshot
    /// copies its ledger's last page, a late event the page it links into, so pages are kept
    /// small (2 MiB pages put ~10 ms of copying into the first slice after each snapshot).
    public var historyPageShift: Int = 12

    public init() {}
}

public final class Engine {
    public let configuration: EngineConfiguration
    /// Every event's ledger. Only grows: `prefetch` keeps unretained references to ledgers.
    var ledgers: [String: EventLedger] = [:]
    var idempotencyKeys = IdempotencyKeys()
    /// The seat status-change log (SPEC §5), fed by seat and chart events.
    public internal(set) var statusChanges: StatusChangeLog
    /// The last ledger used: a feed is mostly a few events, so this skips most lookups.
    private var cachedLedger: EventLedger?
    private var ledgersPendingPublish: [EventLedger] = []
    /// Where old chunks' delta records go past `deltaMemoryBytesMax` (nil: they stay).
    public var spillStore: SpillStore? {
        didSet { for ledger in ledgers.values { ledger.setSpillStore(spillStore) } }
    }

    /// The sequence of the last applied event (0 before any).
    public internal(set) var lastAppliedSequence: UInt64 = 0
    /// Events applied since start (ticket, pass and seat kinds).
    public internal(set) var appliedEventCount = 0

    public init(configuration: EngineConfiguration = EngineConfiguration()) {
        precondition(configuration.deltasPerSnapshot >= 2, "deltasPerSnapshot must be at least 2")
        precondition(configuration.retentionMilliseconds > 0 && configuration.idempotencyWindowMilliseconds > 0)
        self.configuration = configuration
        statusChanges = StatusChangeLog(retentionMilliseconds: configuration.retentionMilliseconds)
    }

    /// Records `id` as accepted at `arrivalMilliseconds` if it is new; false for a duplicate
    /// (an `id` accepted within the idempotency window). Call before writing the event to the
    /// WAL; `apply` it once it is durable.
    public func admit(id: String, arrivalMilliseconds: Int64) -> Bool {
        idempotencyKeys.admit(Hash128.hash(id), arrivalMilliseconds: arrivalMilliseconds)
    }

    /// The duplicate-check key of a feed `id` (for `admit(key:…)`).
    @inlinable
    public static func admissionKey(id: String) -> Hash128 { Hash128.hash(id) }
    /// `admissionKey(id:)` of the id's UTF-8 bytes.
    public static func admissionKey(id: UnsafeRawBufferPointer) -> Hash128 { Hash128.hash(id) }

    /// Touches the duplicate-check table where these keys live, so that admitting them next
    /// overlaps their cache misses (a batch's random keys miss the cache one by one otherwise).
    /// Returns a word of the loaded slots, for the caller to store somewhere it owns: that
    /// keeps the loads from being optimized away (no state is written here, so the caller
    /// may be on any thread that holds the table).
    public func touchAdmissions(_ keys: UnsafeBufferPointer<Hash128>) -> UInt64 {
        var sink: UInt64 = 0
        for key in keys { sink ^= idempotencyKeys.touch(key) }
        return sink
    }

    /// `admit(id:…)` with the key already computed.
    public func admit(key: Hash128, arrivalMilliseconds: Int64) -> Bool {
        idempotencyKeys.admit(key, arrivalMilliseconds: arrivalMilliseconds)
    }

    /// Applies an admitted event. `sequence` is its WAL sequence number: strictly increasing,
    /// the arrival order that breaks ties between equal `occurredAt`.
    public func apply(_ event: FeedEvent, sequence: UInt64) {
        if event.kind.isTicketOrPass {
            let (argument, device) = event.historyArgument
            applyTicketOrPass(eventId: event.eventId, tag: EventIdTag.of(event.eventId), kind: event.kind, ticket: Hash128.hash(event.ticketId),
                              occurredAt: event.occurredAt, argument: argument, device: device, sequence: sequence)
        } else {
            applyStatusChange(event, sequence: sequence)
        }
    }

    /// `apply(_:sequence:)` for an event prepared beforehand (`PreparedEvent`), possibly on
    /// another thread: the same outcome, without touching the event's id strings here.
    public func apply(_ prepared: PreparedEvent, sequence: UInt64) {
        if let status = prepared.statusChange {
            applyStatusChange(status.event, sequence: sequence)
        } else {
            applyTicketOrPass(eventId: prepared.eventId, tag: prepared.eventIdTag, kind: prepared.kind, ticket: prepared.ticketKey,
                              occurredAt: prepared.occurredAt, argument: prepared.argument, device: prepared.device,
                              sequence: sequence)
        }
    }

    @inline(__always)
    private func applyTicketOrPass(eventId: String, tag: UInt64, kind: FeedEventKind, ticket: Hash128, occurredAt: Int64,
                                   argument: UInt8, device: UInt64, sequence: UInt64) {
        precondition(sequence > lastAppliedSequence, "sequences must increase (\(sequence) after \(lastAppliedSequence))")
        let ledger = self.ledger(for: eventId, tag: tag)
        if !ledger.isPublishPending { ledgersPendingPublish.append(ledger) }
        ledger.apply(kind: kind, ticket: ticket, occurredAt: occurredAt, sequence: sequence, argument: argument, device: device)
        lastAppliedSequence = sequence
        appliedEventCount += 1
    }

    private func applyStatusChange(_ event: FeedEvent, sequence: UInt64) {
        precondition(sequence > lastAppliedSequence, "sequences must increase (\(sequence) after \(lastAppliedSequence))")
        _ = self.ledger(for: event.eventId)  // a seat-only event is known, with zero counters
        statusChanges.apply(event, sequence: sequence)
        lastAppliedSequence = sequence
        appliedEventCount += 1
    }

    // MARK: - Prefetching

    /// How many events ahead of `apply` to call `prefetch` (see there). At least 6, for its
    /// last stage to come before the apply; 6 and 8 measured alike at 2 M tickets, 12 less
    /// well (the benchmark's `--prefetch-distance`).
    public static let prefetchDistance = 8

    /// Starts loading, without waiting, what applying `event` will read from a large state,
    /// in stages spread over the next calls (each stage's addresses come from the memory the
    /// stage before loaded, cached by then): the ticket's shard header in its event's ticket
    /// index; on the next call the ticket's slot; two calls later the ticket's tail and state;
    /// two calls after that its latest history entry. Call it in apply order for the event
    /// `prefetchDistance` places ahead of the one about to be applied (at the start of a
    /// batch, for its first `prefetchDistance` events in order): the cache misses of a large
    /// state then overlap with applying the events before, instead of each apply waiting for
    /// its own chain of DRAM misses.
    ///
    /// No effect on any state or answer: it inserts no ticket, creates no ledger, and `apply`
    /// reads nothing it leaves. An event prefetched and never applied, applied without being
    /// prefetched, or prefetched out of order is only a wasted hint.
    public func prefetch(_ event: FeedEvent) {
        if event.kind.isTicketOrPass {
            prefetch(eventId: event.eventId, tag: EventIdTag.of(event.eventId), ticket: Hash128.hash(event.ticketId))
        } else {
            prefetch(eventId: nil, tag: 0, ticket: Hash128(low: 0, high: 0))
        }
    }

    /// `prefetch(_:)` for a prepared event (its ticket fingerprint is already computed).
    public func prefetch(_ prepared: PreparedEvent) {
        prefetch(eventId: prepared.statusChange == nil ? prepared.eventId : nil, tag: prepared.eventIdTag, ticket: prepared.ticketKey)
    }

    @inline(__always)
    private func prefetch(eventId: String?, tag: UInt64, ticket key: Hash128) {
        let mask = Engine.prefetchHintCount - 1
        let slot = prefetchCalls & mask
        prefetchCalls &+= 1
        var hint = PrefetchHint()
        if let eventId, let ledger = knownLedger(for: eventId, tag: tag) {
            hc_prefetch(ledger._withUnsafeGuaranteedRef { $0.ticketShardAddress(key) })
            hint = PrefetchHint(ledger: ledger, key: key)
        }
        prefetchHints.withUnsafeMutableBufferPointer { hints in
            hints[slot] = hint
            let second = (slot &- Engine.prefetchSlotLag) & mask
            if let ledger = hints[second].ledger {
                let key = hints[second].key
                hc_prefetch(ledger._withUnsafeGuaranteedRef { $0.ticketSlotAddress(key) })
            }
            let third = (slot &- Engine.prefetchStateLag) & mask
            if let ledger = hints[third].ledger {
                let key = hints[third].key
                if let found = ledger._withUnsafeGuaranteedRef({ $0.ticketStateAddresses(key) }) {
                    hints[third].number = found.number
                    hc_prefetch(found.tail)
                    hc_prefetch(found.state)
                }
            }
            let fourth = (slot &- Engine.prefetchTailLag) & mask
            if let ledger = hints[fourth].ledger, hints[fourth].number >= 0 {
                let number = hints[fourth].number
                if let entry = ledger._withUnsafeGuaranteedRef({ $0.tailEntryAddress(number) }) { hc_prefetch(entry) }
            }
        }
    }

    /// What `prefetch` learnt of an event, for its later stages. Plain values, no reference
    /// counting (an atomic retain waits for the loads before it, the very misses prefetching
    /// is meant not to wait for): a ledger, once created, stays in `ledgers` as long as the
    /// engine lives, so an unretained reference to it stays valid.
    private struct PrefetchHint {
        var ledger: Unmanaged<EventLedger>?
        var key = Hash128(low: 0, high: 0)
        /// The ticket's number once stage 3 found it (-1: not yet, or a new ticket).
        var number: Int32 = -1
    }
    private static let prefetchHintCount = 16
    /// Calls after which a hint's slot, ticket state and tail entry are prefetched.
    private static let prefetchSlotLag = 1
    private static let prefetchStateLag = 3
    private static let prefetchTailLag = 5
    private var prefetchHints = [PrefetchHint](repeating: PrefetchHint(), count: Engine.prefetchHintCount)
    private var prefetchCalls = 0
    /// The ledger `prefetch` found last (unretained: see `PrefetchHint`).
    private var prefetchLedger: Unmanaged<EventLedger>?

    /// The event's ledger if it exists (never creates one), unretained.
    @inline(__always)
    private func knownLedger(for eventId: String, tag: UInt64) -> Unmanaged<EventLedger>? {
        if let prefetchLedger, prefetchLedger._withUnsafeGuaranteedRef({ $0.eventIdTag == tag && $0.eventId == eventId }) { return prefetchLedger }
        let unmanaged: Unmanaged<EventLedger>
        if let recent = recentLedger(eventId, tag: tag) {
            unmanaged = recent
        } else {
            guard let ledger = ledgers[eventId] else { return nil }
            unmanaged = Unmanaged.passUnretained(ledger)
            remember(unmanaged)
        }
        prefetchLedger = unmanaged
        return unmanaged
    }

    /// The ledgers of the last few events looked up (an event day's feed interleaves a handful
    /// of events, so the one-entry caches above miss on most events): a scan comparing tags
    /// (`EventIdTag`), and ids only where the tags match, instead of hashing the id for the
    /// dictionary twice per event (`prefetch`, `ledger(for:)`; 3% of a batched feed's
    /// instructions). Unretained: a ledger, once created, stays in `ledgers`.
    private var recentLedgers: [Unmanaged<EventLedger>] = []
    private var recentLedgerNext = 0
    private static let recentLedgerCount = 8

    @inline(__always)
    private func recentLedger(_ eventId: String, tag: UInt64) -> Unmanaged<EventLedger>? {
        for ledger in recentLedgers where ledger._withUnsafeGuaranteedRef({ $0.eventIdTag == tag && $0.eventId == eventId }) { return ledger }
        return nil
    }

    private func remember(_ ledger: Unmanaged<EventLedger>) {
        if recentLedgers.count < Engine.recentLedgerCount {
            recentLedgers.append(ledger)
        } else {
            recentLedgers[recentLedgerNext] = ledger
            recentLedgerNext = (recentLedgerNext + 1) % Engine.recentLedgerCount
        }
    }

    /// Publishes the live counters of every event changed since the last call, for readers
    /// on other threads (`publishedCounters(eventId:)`). Call after each applied batch.
    public func publish() {
        for ledger in ledgersPendingPublish { ledger.publish() }
        ledgersPendingPublish.removeAll(keepingCapacity: true)
    }

    func ledger(for eventId: String) -> EventLedger { ledger(for: eventId, tag: EventIdTag.of(eventId)) }

    /// `ledger(for:)` with the id's tag already computed (`EventIdTag`).
    func ledger(for eventId: String, tag: UInt64) -> EventLedger {
        if let cachedLedger, cachedLedger.eventIdTag == tag && cachedLedger.eventId == eventId { return cachedLedger }
        let ledger: EventLedger
        if let recent = recentLedger(eventId, tag: tag) {
            ledger = recent.takeUnretainedValue()
        } else if let existing = ledgers[eventId] {
            ledger = existing
            remember(Unmanaged.passUnretained(existing))
        } else {
            ledger = EventLedger(eventId: eventId, chunkCapacity: configuration.deltasPerSnapshot,
                                 historyPageShift: configuration.historyPageShift)
            ledger.setSpillStore(spillStore)
            ledgers[eventId] = ledger
            remember(Unmanaged.passUnretained(ledger))
        }
        cachedLedger = ledger
        return ledger
    }

    /// Whether any event with this `eventId` was ever applied.
    public func knowsEvent(_ eventId: String) -> Bool { ledgers[eventId] != nil }

    /// The event's statistics at `instant` (every event with `occurredAt <= instant`), or nil
    /// for an event never seen. O(log snapshots + deltasPerSnapshot).
    public func statistics(eventId: String, at instant: Int64) -> EventStatistics? {
        ledgers[eventId]?.statistics(at: instant)
    }

    /// The earliest `dateTime` still answerable at `now` (SPEC §4 retention).
    public func oldestAnswerableInstant(now: Int64) -> Int64 {
        now - configuration.retentionMilliseconds
    }

    /// Whether an idempotency-key sweep is under way (`expireIdempotencyKeys` continues it).
    public var isSweepingIdempotencyKeys: Bool { idempotencyKeys.isSweeping }

    /// The lock-free live counters of an event, to hand to another thread (nil if unknown).
    public func publishedCounters(eventId: String) -> PublishedCounters? { ledgers[eventId]?.published }

    /// Forgets idempotency keys accepted before `now - idempotencyWindowMilliseconds`: starts
    /// a sweep at most hourly and runs a bounded slice of it per call (call it regularly, as
    /// the server's housekeeping does every second); `isSweepingIdempotencyKeys` tells whether
    /// more calls are needed to finish.
    public func expireIdempotencyKeys(now: Int64) {
        idempotencyKeys.expire(arrivedBefore: now - configuration.idempotencyWindowMilliseconds)
    }

    /// Drops status changes dated before `now - retentionMilliseconds` (SPEC §5).
    public func expireStatusChanges(now: Int64) {
        statusChanges.expire(now: now)
    }

    /// Bytes of delta records held in memory.
    public var residentDeltaBytes: Int {
        ledgers.values.reduce(0) { $0 + $1.deltas.residentRecordCount } * MemoryLayout<DeltaRecord>.stride
    }

    /// Bytes of ticket history held in memory.
    public var residentHistoryBytes: Int {
        ledgers.values.reduce(0) { $0 + $1.history.residentPageCount * $1.history.pageSize }
            * MemoryLayout<EventLedger.HistoryEntry>.stride
    }

    /// Spills what exceeds the memory budgets (`deltaMemoryBytesMax`, `historyMemoryBytesMax`),
    /// oldest first across all events, until it fits in 90% of them — at most `maxBytes` per
    /// call, so that a caller on a latency-sensitive thread can spill a slice at a time and
    /// call again (the server spills ≤ 1 MiB every 50 ms). Returns the number of chunks and
    /// pages spilled.
    ///
    /// The oldest-first order is computed once per round of spilling (O(chunks log chunks))
    /// and then consumed slice by slice; an entry that moved meanwhile (a late event split a
    /// chunk before it) spills a neighbouring old chunk instead, which is as harmless: spilling
    /// is invisible in every answer.
    @discardableResult
    public func spillIfOverBudget(maxBytes: Int = .max) -> Int {
        let deltas = spillDeltasIfOverBudget(maxBytes: maxBytes)
        return deltas.count + spillHistoryIfOverBudget(maxBytes: max(maxBytes - deltas.bytes, 0))
    }

    /// Whether resident deltas or history exceed their budgets (a spill would do something).
    public var isOverMemoryBudget: Bool {
        spillStore != nil && (residentDeltaBytes > configuration.deltaMemoryBytesMax
            || residentHistoryBytes > configuration.historyMemoryBytesMax)
    }

    private func spillHistoryIfOverBudget(maxBytes: Int) -> Int {
        guard spillStore != nil else { return 0 }
        let pageBytes = (1 << configuration.historyPageShift) * MemoryLayout<EventLedger.HistoryEntry>.stride
        var resident = residentHistoryBytes
        let target = configuration.historyMemoryBytesMax / 10 * 9
        if resident <= configuration.historyMemoryBytesMax && historySpillQueue.isEmpty { return 0 }
        if resident <= target { historySpillQueue = []; return 0 }
        if historySpillQueue.isEmpty {
            var candidates: [(ledger: EventLedger, page: Int, firstSequence: UInt64)] = []
            for ledger in ledgers.values {
                for candidate in ledger.historySpillCandidates() { candidates.append((ledger, candidate.page, candidate.firstSequence)) }
            }
            candidates.sort { $0.firstSequence > $1.firstSequence }  // oldest last: popped first
            historySpillQueue = candidates.map { ($0.ledger, $0.page) }
        }
        var spilled = 0
        var bytes = 0
        while resident > target, bytes < maxBytes, let candidate = historySpillQueue.popLast() {
            if candidate.ledger.spillHistoryPage(candidate.page) {
                resident -= pageBytes
                bytes += pageBytes
                spilled += 1
            }
        }
        if resident <= target { historySpillQueue = [] }
        return spilled
    }
    private var historySpillQueue: [(ledger: EventLedger, page: Int)] = []

    /// History pages spilled, over all events.
    public var spilledHistoryPageCount: Int {
        ledgers.values.reduce(0) { $0 + ($1.history.pageCount - $1.history.residentPageCount) }
    }

    /// Spills the oldest delta chunks (by their last record's time) over all events.
    ///
    /// Each event's chunks are already in time order, so the oldest-first order over all of
    /// them is a merge: a heap holds each event's next candidate, and a spilled chunk's
    /// successor takes its place (`DeltaSpillRound`). Sorting every chunk of every event at the
    /// start of each round instead took 10–50 ms of one loop turn at 20 M events.
    private func spillDeltasIfOverBudget(maxBytes: Int) -> (count: Int, bytes: Int) {
        guard spillStore != nil else { return (0, 0) }
        let stride = MemoryLayout<DeltaRecord>.stride
        var resident = residentDeltaBytes
        let target = configuration.deltaMemoryBytesMax / 10 * 9
        if resident <= configuration.deltaMemoryBytesMax && deltaSpillRound == nil { return (0, 0) }
        if resident <= target { deltaSpillRound = nil; return (0, 0) }
        var round = deltaSpillRound ?? DeltaSpillRound(ledgers: Array(ledgers.values))
        deltaSpillRound = nil
        var spilled = 0
        var bytes = 0
        while resident > target, bytes < maxBytes, let candidate = round.next() {
            // A chunk that moved meanwhile (a late event split one before it) makes this
            // spill a neighbouring old chunk instead, which is as harmless.
            let ledger = round.ledgers[candidate.ledger]
            let before = ledger.deltas.residentRecordCount
            if ledger.spillChunk(candidate.chunk) {
                let freed = (before - ledger.deltas.residentRecordCount) * stride
                resident -= freed
                bytes += freed
                spilled += 1
            }
        }
        if resident > target && !round.isEmpty { deltaSpillRound = round }
        return (spilled, bytes)
    }
    private var deltaSpillRound: DeltaSpillRound?

    /// One round of delta spilling: every event's oldest resident chunk in a heap by time.
    private struct DeltaSpillRound {
        struct Candidate: Comparable {
            var lastOccurredAt: Int64
            var ledger: Int
            var chunk: Int
            static func < (a: Candidate, b: Candidate) -> Bool {
                (a.lastOccurredAt, a.ledger, a.chunk) < (b.lastOccurredAt, b.ledger, b.chunk)
            }
        }
        let ledgers: [EventLedger]
        private var heap = Heap<Candidate>()

        init(ledgers: [EventLedger]) {
            self.ledgers = ledgers
            for index in ledgers.indices { push(ledger: index, from: 0) }
        }

        var isEmpty: Bool { heap.isEmpty }

        /// The oldest candidate left; its event's next one takes its place.
        mutating func next() -> Candidate? {
            guard let oldest = heap.popMin() else { return nil }
            push(ledger: oldest.ledger, from: oldest.chunk + 1)
            return oldest
        }

        private mutating func push(ledger: Int, from chunk: Int) {
            if let candidate = ledgers[ledger].deltas.spillCandidate(from: chunk) {
                heap.insert(Candidate(lastOccurredAt: candidate.lastOccurredAt, ledger: ledger, chunk: candidate.chunk))
            }
        }
    }

    /// Chunks whose records are spilled, over all events.
    public var spilledChunkCount: Int { ledgers.values.reduce(0) { $0 + $1.deltas.spilledChunkCount } }
    /// The same, each chunk looked at (for tests of the kept count).
    var spilledChunksCounted: Int { ledgers.values.reduce(0) { $0 + $1.deltas.spilledChunksCounted } }

    // MARK: - Figures for metrics and benchmarks

    /// Where the engine's memory goes, counted from its arrays' capacities (not the
    /// allocator's overhead).
    public struct MemoryBreakdown: Sendable {
        /// Ticket index (fingerprint → number) and each ticket's first and last history entry:
        /// a ticket's *current state*.
        public var ticketStateBytes = 0
        /// Ticket histories kept to re-derive a ticket when a late event arrives.
        public var historyBytes = 0
        /// Delta records in memory, plus the counter snapshot heading each chunk.
        public var deltaBytes = 0
        /// Idempotency keys (feed id fingerprints with their arrival).
        public var idempotencyBytes = 0
        public var tickets = 0
        public var historyEntries = 0
    }

    public var memoryBreakdown: MemoryBreakdown {
        var breakdown = MemoryBreakdown()
        for ledger in ledgers.values {
            breakdown.ticketStateBytes += ledger.ticketNumbers.allocatedBytes
                + (ledger.ticketHeads.capacity + ledger.ticketTails.capacity) * MemoryLayout<Int32>.stride
                + ledger.ticketStates.capacity * MemoryLayout<UInt32>.stride
            breakdown.historyBytes += ledger.history.allocatedBytes
            breakdown.deltaBytes += ledger.deltas.allocatedBytes
            breakdown.tickets += ledger.ticketCount
            breakdown.historyEntries += ledger.history.count
        }
        breakdown.idempotencyBytes = idempotencyKeys.arrivals.allocatedBytes
        return breakdown
    }


    public var eventCount: Int { ledgers.count }
    public var ticketCount: Int { ledgers.values.reduce(0) { $0 + $1.ticketCount } }
    public var idempotencyKeyCount: Int { idempotencyKeys.count }
    public var deltaRecordCount: Int { ledgers.values.reduce(0) { $0 + $1.deltas.recordCount } }
}
