/// Applies a run of WAL records to an engine in bulk, for a restart: the same state as
/// `admit` + `apply` of each record in sequence order, built the way a snapshot load builds
/// it (docs/ARCHITECTURE.md, "Recovery").
///
/// Per record, `add…` does only O(1) work: the idempotency key goes into the table, a seat or
/// chart event goes to the status-change log (in order, as online), and a ticket or pass
/// event is appended to its ledger's pending list with its ticket numbered on first sight
/// (the same numbers online apply gives). `finish()` then builds each ledger at once:
/// group the entries by ticket (a counting sort), sort each ticket's few entries by
/// (occurredAt, sequence), fold each ticket once, and build the delta index from the records
/// sorted in one pass. No late corrections, no per-record index inserts.
///
/// A ledger that already holds history (replay on top of a snapshot) is rebuilt the same way
/// from its old entries plus the new ones when the new ones are at least a quarter of the old
/// and nothing of it is spilled; otherwise its new entries are applied one by one as online.
/// Either way the answers are the ones online apply gives.
///
/// Idempotency keys: a key that appears twice in the WAL (accepted again after it expired)
/// keeps its latest arrival, as the online table does.
///
/// Memory: until `finish()`, 32 bytes per pending ticket or pass event beside the engine;
/// during a ledger's build, about 100 bytes per entry of that ledger beside its final state.
///
/// Threading: the engine's owner thread only, like the engine. Between `init` and `finish()`
/// the engine must not be used otherwise.
public final class BulkReplay {
    public let engine: Engine
    private var builders: [LedgerBuilder] = []
    /// Builders by eventId (String equality, as `Engine.ledgers` keys them).
    private var buildersByEventId: [String: Int] = [:]
    /// A handle is one exact spelling of an eventId (its bytes) and its builder: spellings
    /// that are equal as `String`s share a builder, and the ledger is made with the spelling
    /// of the first event that reaches it, as online.
    private var spellings: [(eventId: String, bytes: [UInt8], builder: Int)] = []
    /// Handles by the fingerprint of their bytes (checked against the bytes).
    private var handlesByBytes: [Hash128: [Int]] = [:]
    private var lastHandle = -1
    private var lastSequence: UInt64
    private var addedCount = 0
    private var isFinished = false
    /// The idempotency keys replayed, grouped by the low bits the table's directory uses:
    /// inserted group by group at the end, each group's inserts land in 1/256 of the table
    /// (in cache), where inserting each key as it comes misses the cache every time.
    private var replayedKeys = FingerprintMap<Int64>.Batch()

    /// `expectedRecords`, if known (e.g. from the WAL's size), sizes the key lists once.
    public init(engine: Engine, expectedRecords: Int = 0) {
        self.engine = engine
        lastSequence = engine.lastAppliedSequence
        if expectedRecords > 0 { replayedKeys.reserveCapacity(expectedRecords) }
    }

    /// Records added so far.
    public var count: Int { addedCount }

    // MARK: - Adding records

    /// The handle of an eventId given as its UTF-8 bytes (valid UTF-8). O(bytes); a repeat
    /// of the previous eventId costs one comparison.
    public func ledgerHandle(eventIdUTF8 bytes: UnsafeRawBufferPointer) -> Int {
        if lastHandle >= 0 && BulkReplay.equal(bytes, spellings[lastHandle].bytes) { return lastHandle }
        let fingerprint = Hash128.hash(bytes)
        for handle in handlesByBytes[fingerprint] ?? [] where BulkReplay.equal(bytes, spellings[handle].bytes) {
            lastHandle = handle
            return handle
        }
        let eventId = String(decoding: bytes.bindMemory(to: UInt8.self), as: UTF8.self)
        let builder: Int
        if let existing = buildersByEventId[eventId] {
            builder = existing
        } else {
            builder = builders.count
            builders.append(LedgerBuilder())
            buildersByEventId[eventId] = builder
        }
        let handle = spellings.count
        spellings.append((eventId, Array(bytes), builder))
        handlesByBytes[fingerprint, default: []].append(handle)
        lastHandle = handle
        return handle
    }

    /// The handle of `eventId` (its exact spelling).
    public func ledgerHandle(eventId: String) -> Int {
        var eventId = eventId
        return eventId.withUTF8 { ledgerHandle(eventIdUTF8: UnsafeRawBufferPointer($0)) }
    }

    /// Adds a ticket or pass event given by its fingerprints: `idKey` = `Hash128.hash(id)`,
    /// `ticket` = `Hash128.hash(ticketId)`, and the history argument (the deletion's
    /// pending flag, the activation mode, `passArgument`, else 0) and device hash
    /// (`Hash128.hash(deviceId).low` for a device, else 0) of its details.
    ///
    /// - Precondition: `sequence` is above every sequence added or applied before; the kind
    ///   is a ticket or pass kind.
    @inline(__always)
    public func addTicketEvent(sequence: UInt64, idKey: Hash128, arrivalMilliseconds: Int64, ledger handle: Int,
                               kind: FeedEventKind, ticket: Hash128, occurredAt: Int64, argument: UInt8, device: UInt64) {
        precondition(sequence > lastSequence, "sequences must increase (\(sequence) after \(lastSequence))")
        precondition(kind.isTicketOrPass, "a seat or chart kind is not ticket history")
        lastSequence = sequence
        addedCount += 1
        replayedKeys.append(idKey, arrivalMilliseconds)
        // The ledger is made by its first event, with that event's spelling, as online (a
        // handle alone makes none).
        let builder = spellings[handle].builder
        if builders[builder].ledger == nil { builders[builder].ledger = engine.ledger(for: spellings[handle].eventId) }
        builders[builder].add(kind: kind, ticket: ticket, occurredAt: occurredAt, sequence: sequence,
                             argument: argument, device: device)
    }

    /// Adds any event (ticket, pass, seat or chart kind).
    public func add(_ event: FeedEvent, sequence: UInt64, arrivalMilliseconds: Int64) {
        if event.kind.isTicketOrPass {
            let (argument, device) = event.historyArgument
            let handle = ledgerHandle(eventId: event.eventId)
            addTicketEvent(sequence: sequence, idKey: Hash128.hash(event.id), arrivalMilliseconds: arrivalMilliseconds,
                           ledger: handle, kind: event.kind, ticket: Hash128.hash(event.ticketId),
                           occurredAt: event.occurredAt, argument: argument, device: device)
        } else {
            precondition(sequence > lastSequence, "sequences must increase (\(sequence) after \(lastSequence))")
            lastSequence = sequence
            addedCount += 1
            replayedKeys.append(Hash128.hash(event.id), arrivalMilliseconds)
            _ = engine.ledger(for: event.eventId)  // as `Engine.apply`: a seat-only event is known, with zero counters
            engine.statusChanges.apply(event, sequence: sequence)
        }
    }

    /// The history argument byte of pass details.
    @inline(__always)
    public static func passArgument(platform: PassPlatform, status: PassStatus?, reason: InvalidationReason?) -> UInt8 {
        PassArgument(platform: platform, status: status, reason: reason).rawValue
    }

    /// Builds every ledger and sets the engine's last applied sequence. Call once, after the
    /// last `add`. O(n log n) in the worst case, about O(n) for a feed mostly in time order.
    ///
    /// The build is made of independent jobs — the idempotency keys, and each ledger — that
    /// touch disjoint state. The core runs no thread itself: `concurrently`, if given, may run
    /// them on several threads; it must call `job(i)` exactly once for each `i` in
    /// `0..<count`, and return once all have returned (e.g. `DispatchQueue.concurrentPerform`).
    /// The jobs come largest first.
    public func finish(concurrently: ((_ count: Int, _ job: (Int) -> Void) -> Void)? = nil) {
        precondition(!isFinished, "BulkReplay.finish runs once")
        isFinished = true
        let chunkCapacity = engine.configuration.deltasPerSnapshot
        let order = builders.indices.filter { builders[$0].pendingCount > 0 }
            .sorted { builders[$0].pendingCount > builders[$1].pendingCount }
        let engine = self.engine
        let keys = replayedKeys
        replayedKeys = FingerprintMap<Int64>.Batch()
        builders.withUnsafeMutableBufferPointer { buffer in
            let builders = buffer  // each job touches one element
            let job = { (index: Int) in
                if index == 0 {
                    engine.idempotencyKeys.recordReplayed(keys)
                } else {
                    builders[order[index - 1]].finish(chunkCapacity: chunkCapacity)
                }
            }
            if let concurrently {
                concurrently(order.count + 1, job)
            } else {
                for index in 0...order.count { job(index) }
            }
        }
        builders.removeAll()
        engine.lastAppliedSequence = lastSequence
        engine.appliedEventCount += addedCount
    }

    @inline(__always)
    private static func equal(_ bytes: UnsafeRawBufferPointer, _ other: [UInt8]) -> Bool {
        guard bytes.count == other.count else { return false }
        return other.withUnsafeBytes { other in
            var index = 0
            let count = bytes.count
            while count - index >= 8 {
                if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    != other.loadUnaligned(fromByteOffset: index, as: UInt64.self) { return false }
                index += 8
            }
            while index < count {
                if bytes[index] != other[index] { return false }
                index += 1
            }
            return true
        }
    }
}

/// The pending entries of one ledger during a bulk replay, and its build.
struct LedgerBuilder {
    typealias HistoryEntry = EventLedger.HistoryEntry

    struct Pending {
        var ticket: Hash128
        var entry: HistoryEntry
    }

    var ledger: EventLedger!
    /// Pending entries in sequence order, with their ticket's fingerprint. Tickets are
    /// numbered at the build, one ledger at a time: its ticket table then stays in cache,
    /// where numbering them as they come would miss the cache for each of them.
    private var pending: [Pending] = []

    init() {}

    var pendingCount: Int { pending.count }

    @inline(__always)
    mutating func add(kind: FeedEventKind, ticket: Hash128, occurredAt: Int64, sequence: UInt64, argument: UInt8, device: UInt64) {
        pending.append(Pending(ticket: ticket, entry: HistoryEntry(occurredAt: occurredAt, sequence: sequence, kind: kind,
                                                                   argument: argument, device: device, maskAfter: 0)))
    }

    mutating func finish(chunkCapacity: Int) {
        guard !pending.isEmpty else { return }
        let existing = ledger.history.count
        if existing > 0 {
            let isResident = ledger.history.residentPageCount == ledger.history.pageCount
                && ledger.deltas.spilledChunkCount == 0
            guard isResident && pending.count * 4 >= existing else {
                applyOneByOne()
                return
            }
        }
        build(chunkCapacity: chunkCapacity)
    }

    /// The online path, entry by entry (a big ledger with a few new entries).
    private mutating func applyOneByOne() {
        for item in pending {
            let entry = item.entry
            ledger.apply(kind: entry.kind, ticket: item.ticket, occurredAt: entry.occurredAt,
                         sequence: entry.sequence, argument: entry.argument, device: entry.device)
        }
        pending = []
        ledger.publish()
    }

    /// Builds the ledger's whole state from its existing entries (if any) and the pending ones.
    private mutating func build(chunkCapacity: Int) {
        let existingTickets = ledger.ticketCount
        let existingEntries = ledger.history.count
        let pendingCount = pending.count
        let total = existingEntries + pendingCount
        precondition(total < Int(Int32.max), "history entries are 32-bit per event")

        // Number the tickets: the existing ones keep theirs; new ones follow in order of
        // first sight, as online apply numbers them.
        var ticketNumbers = existingTickets == 0
            ? FingerprintMap<Int32>(capacity: pendingCount / 8, emptyValue: -1) : ledger.ticketNumbers
        var pendingTickets = [Int32](repeating: 0, count: pendingCount)
        var nextNumber = Int32(existingTickets)
        pending.withUnsafeBufferPointer { pending in
            for index in 0..<pendingCount {
                let (number, inserted) = ticketNumbers.insertIfAbsent(pending[index].ticket, nextNumber)
                if inserted {
                    precondition(nextNumber < Int32.max, "ticket numbers are 32-bit per event")
                    nextNumber += 1
                }
                pendingTickets[index] = number
            }
        }
        let ticketCount = Int(nextNumber)

        // Group by ticket (a stable counting sort): the existing entries (each ticket's, in
        // order), then the pending ones. An entry's *source index* is its place in that
        // sequence; `next` carries it until the fold.
        var starts = [Int32](repeating: 0, count: ticketCount + 1)
        for ticket in 0..<existingTickets {
            var current = ledger.ticketHeads[ticket]
            while current >= 0 {
                starts[ticket + 1] += 1
                current = ledger.history.element(at: Int(current)).next
            }
        }
        for ticket in pendingTickets { starts[Int(ticket) + 1] += 1 }
        for ticket in 0..<ticketCount { starts[ticket + 1] += starts[ticket] }
        var grouped = [HistoryEntry](unsafeUninitializedCapacity: total) { buffer, initialized in
            var fill = starts
            var source: Int32 = 0
            for ticket in 0..<existingTickets {
                var current = ledger.ticketHeads[ticket]
                while current >= 0 {
                    var entry = ledger.history.element(at: Int(current))
                    current = entry.next
                    entry.next = source
                    source += 1
                    (buffer.baseAddress! + Int(fill[ticket])).initialize(to: entry)
                    fill[ticket] += 1
                }
            }
            precondition(Int(source) == existingEntries, "every history entry belongs to one ticket")
            pending.withUnsafeBufferPointer { pending in
                for index in 0..<pendingCount {
                    var entry = pending[index].entry
                    let ticket = Int(pendingTickets[index])
                    entry.next = source
                    source += 1
                    (buffer.baseAddress! + Int(fill[ticket])).initialize(to: entry)
                    fill[ticket] += 1
                }
            }
            initialized = total
        }
        pending = []
        pendingTickets = []

        // Per ticket: sort by (occurredAt, sequence), fold, and write each entry's delta
        // record at its source index (sequence order for a new ledger: nearly time order).
        var heads = [Int32](repeating: 0, count: ticketCount)
        var tails = [Int32](repeating: 0, count: ticketCount)
        var states = [UInt32](repeating: 0, count: ticketCount)
        var records = [DeltaRecord](unsafeUninitializedCapacity: total) { recordBuffer, initialized in
            grouped.withUnsafeMutableBufferPointer { grouped in
                var devices: [UInt64] = []
                for ticket in 0..<ticketCount {
                    let start = Int(starts[ticket])
                    let end = Int(starts[ticket + 1])
                    LedgerBuilder.insertionSort(grouped, start, end)
                    var fold = TicketFold()
                    devices.removeAll(keepingCapacity: true)
                    var previousMask: UInt64 = 0
                    for position in start..<end {
                        let entry = grouped[position]
                        let kind = entry.kind
                        let argument = entry.argument
                        fold.apply(kind: kind, argument: argument, device: entry.device, devices: &devices)
                        let mask = fold.contribution(deviceCount: devices.count)
                        (recordBuffer.baseAddress! + Int(entry.next)).initialize(to: DeltaRecord(
                            occurredAt: entry.occurredAt, sequence: entry.sequence,
                            minus: previousMask & ~mask, plus: mask & ~previousMask,
                            action: TicketFold.actionSlot(kind: kind, argument: argument)))
                        previousMask = mask
                        grouped[position].setMaskAfter(mask)
                        grouped[position].next = position + 1 < end ? Int32(truncatingIfNeeded: position + 1) : -1
                    }
                    heads[ticket] = Int32(truncatingIfNeeded: start)
                    tails[ticket] = Int32(truncatingIfNeeded: end - 1)
                    states[ticket] = fold.packed(deviceCount: devices.count)
                }
            }
            initialized = total
        }
        var history = PagedArray<HistoryEntry>(pageShift: ledger.history.pageShift)
        grouped.withUnsafeBufferPointer { history.append(contentsOf: $0) }
        grouped = []
        LedgerBuilder.sortNearlySorted(&records)
        let deltas = DeltaIndex(sortedRecords: records, chunkCapacity: chunkCapacity)
        records = []
        ledger.adoptBuilt(ticketNumbers: ticketNumbers, heads: heads, tails: tails, states: states,
                          history: history, deltas: deltas)
    }

    /// Sorts a ticket's entries `start..<end` by (occurredAt, sequence): they are few and
    /// nearly always in order already.
    @inline(__always)
    private static func insertionSort(_ entries: UnsafeMutableBufferPointer<HistoryEntry>, _ start: Int, _ end: Int) {
        guard end - start > 1 else { return }
        for position in (start + 1)..<end {
            let entry = entries[position]
            var slot = position
            while slot > start {
                let before = entries[slot - 1]
                guard entry.occurredAt < before.occurredAt
                    || (entry.occurredAt == before.occurredAt && entry.sequence < before.sequence) else { break }
                entries[slot] = before
                slot -= 1
            }
            if slot != position { entries[slot] = entry }
        }
    }

    /// Sorts records by (occurredAt, sequence) when most are in order already (a feed in
    /// arrival order with some late deliveries): the records in order of a greedy increasing
    /// run stay, the others are sorted apart (O(k log k)) and merged in. Any input is sorted
    /// correctly; a shuffled one costs an ordinary sort.
    static func sortNearlySorted(_ records: inout [DeltaRecord]) {
        let count = records.count
        guard count > 1 else { return }
        var late: [DeltaRecord] = []
        var kept = 0
        records.withUnsafeMutableBufferPointer { records in
            var last = records[0]
            kept = 1
            for index in 1..<count {
                let record = records[index]
                if record.precedes(occurredAt: last.occurredAt, sequence: last.sequence) {
                    late.append(record)
                } else {
                    records[kept] = record
                    kept += 1
                    last = record
                }
            }
        }
        guard !late.isEmpty else { return }
        late.sort { $0.precedes(occurredAt: $1.occurredAt, sequence: $1.sequence) }
        // Merge from the back: the kept run is in records[0..<kept], the output fills
        // records[0..<count] from the end.
        records.withUnsafeMutableBufferPointer { records in
            var write = count - 1
            var keptIndex = kept - 1
            var lateIndex = late.count - 1
            while lateIndex >= 0 {
                if keptIndex >= 0 && late[lateIndex].precedes(occurredAt: records[keptIndex].occurredAt,
                                                              sequence: records[keptIndex].sequence) {
                    records[write] = records[keptIndex]
                    keptIndex -= 1
                } else {
                    records[write] = late[lateIndex]
                    lateIndex -= 1
                }
                write -= 1
            }
        }
    }
}
