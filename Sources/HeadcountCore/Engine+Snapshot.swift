/// The engine's state as bytes, for snapshot files (docs/FORMATS.md, "Engine state").
///
/// Only what cannot be re-derived is written: each ticket's history and the idempotency keys.
/// Loading re-folds every ticket once and rebuilds each delta index from its sorted records:
/// O(n log n), with no duplicate checks and no late corrections, so it is faster than
/// replaying the same events from the WAL.
///
/// Layout (all integers little-endian, counts as LEB128 varints):
/// ```
/// u8  format version (1)
/// u64 lastAppliedSequence
/// varint idempotency key count, then per key: u64 low, u64 high, i64 arrival
/// varint event count, then per event:
///   string eventId
///   varint ticket count, then per ticket:
///     u64 low, u64 high   the ticket's fingerprint (Hash128 of its ticketId)
///     varint entry count, then per entry (in (occurredAt, sequence) order):
///       i64 occurredAt, u64 sequence, u64 device hash, u8 kind, u8 argument
/// blob   the status-change log (`StatusChangeLog.encode`)
/// ```
extension Engine {
    static let snapshotFormatVersion: UInt8 = 1

    /// The engine's state as bytes. Same as `snapshotSource().encode()`.
    public func encodeSnapshot() -> [UInt8] { snapshotSource().encode() }

    /// An immutable copy of the state a snapshot needs, cheap to take: the arrays are shared
    /// copy-on-write (the owner thread copies one only when it next changes it). `encode()`
    /// may then run on any thread while the owner goes on applying events. So does the
    /// status-change log's (`StatusChangeLog.snapshotSource()`).
    public func snapshotSource() -> EngineSnapshotSource {
        let statusChangeSource = statusChanges.snapshotSource()
        let ledgerStates = ledgers.keys.sorted().map { eventId -> EngineSnapshotSource.LedgerState in
            let ledger = ledgers[eventId]!
            return EngineSnapshotSource.LedgerState(eventId: eventId, ticketNumbers: ledger.ticketNumbers,
                                                    ticketHeads: ledger.ticketHeads, history: ledger.history)
        }
        return EngineSnapshotSource(lastAppliedSequence: lastAppliedSequence, idempotencyKeys: idempotencyKeys.arrivals,
                                    ledgers: ledgerStates, statusChanges: statusChangeSource)
    }

    public static func decodeSnapshot(_ bytes: UnsafeRawBufferPointer,
                                      configuration: EngineConfiguration = EngineConfiguration()) throws -> Engine {
        var reader = ByteReader(bytes)
        let version = try reader.u8()
        guard version == snapshotFormatVersion else {
            throw ByteReader.Malformed(offset: 0, reason: "unknown engine snapshot version \(version)")
        }
        let engine = Engine(configuration: configuration)
        engine.lastAppliedSequence = try reader.u64()
        let keyCount = try reader.count(minimumItemBytes: 24)
        for _ in 0..<keyCount {
            let key = Hash128(low: try reader.u64(), high: try reader.u64())
            _ = engine.idempotencyKeys.admit(key, arrivalMilliseconds: try reader.i64())
        }
        let eventCount = try reader.count()
        for _ in 0..<eventCount {
            let ledger = try EventLedger.decode(from: &reader, chunkCapacity: configuration.deltasPerSnapshot,
                                                historyPageShift: configuration.historyPageShift,
                                                lastSequence: engine.lastAppliedSequence)
            engine.ledgers[ledger.eventId] = ledger
        }
        engine.statusChanges = try StatusChangeLog.decode(try reader.blob(),
                                                          retentionMilliseconds: configuration.retentionMilliseconds)
        guard reader.isAtEnd else {
            throw ByteReader.Malformed(offset: reader.offset, reason: "trailing bytes after the engine state")
        }
        return engine
    }
}

/// What a snapshot holds, frozen at one sequence; see `Engine.snapshotSource()`.
public struct EngineSnapshotSource: @unchecked Sendable {
    struct LedgerState {
        var eventId: String
        var ticketNumbers: FingerprintMap<Int32>
        var ticketHeads: [Int32]
        var history: PagedArray<EventLedger.HistoryEntry>
    }

    public let lastAppliedSequence: UInt64
    private(set) var idempotencyKeys: FingerprintMap<Int64>
    private(set) var ledgers: [LedgerState]
    private(set) var statusChanges: StatusChangeLogSnapshotSource?

    init(lastAppliedSequence: UInt64, idempotencyKeys: FingerprintMap<Int64>, ledgers: [LedgerState],
         statusChanges: StatusChangeLogSnapshotSource) {
        self.lastAppliedSequence = lastAppliedSequence
        self.idempotencyKeys = idempotencyKeys
        self.ledgers = ledgers
        self.statusChanges = statusChanges
    }

    /// The snapshot payload (docs/FORMATS.md, "Engine state"). O(state); any thread.
    public func encode() -> [UInt8] {
        var payload: [UInt8] = []
        encode(pieceBytes: 1 << 20) { payload.append(contentsOf: $0) }
        return payload
    }

    /// The snapshot payload handed to `emit` in order, in pieces of about `pieceBytes` (a
    /// piece ends at a ticket's end, so one may be somewhat longer; the last may be shorter):
    /// the same bytes as `encode()`, without ever holding them all. A snapshot of tens of
    /// millions of events is a gigabyte or more; built whole it took that much memory more,
    /// and the kernel's zeroing of the fresh pages was half of the snapshot thread's time
    /// (`perf`, a snapshot of 21 M events; docs/BENCHMARKS.md, session 8). O(state); any thread.
    public func encode(pieceBytes: Int, into emit: (UnsafeRawBufferPointer) -> Void) {
        var copy = self
        copy.encodeReleasing(pieceBytes: pieceBytes, into: emit)
    }

    /// The same as `encode(pieceBytes:into:)`, letting go of the state as it goes: each shard
    /// of the duplicate-check table once its keys are encoded, each event's tickets and history
    /// once they are. The source is empty afterwards. For the snapshot thread: while it encodes,
    /// the loop goes on changing the same state, and every piece still shared with this copy
    /// is copied before its first change (a duplicate check touches a random shard: encoding a
    /// snapshot of 25 M events, the loop spent ~15% of its time copying shards and faulting in
    /// fresh pages for them, docs/BENCHMARKS.md, session 10). A piece let go of is the loop's
    /// alone again, and changes in place. Peak memory is lower for the same reason.
    public mutating func encodeReleasing(pieceBytes: Int, into emit: (UnsafeRawBufferPointer) -> Void) {
        // The status-change log first, although it goes last: its columns are whole arrays,
        // which the owner's next status change would copy entire while this copy shares them
        // (tens of megabytes at a million changes), so they are let go of as soon as possible.
        var statusChangeBytes: [UInt8] = []
        statusChanges?.encode(into: &statusChangeBytes)
        statusChanges = nil
        let threshold = max(pieceBytes, 1)
        var writer = ByteWriter(capacity: min(threshold, 1 << 24) + 4096)
        writer.u8(Engine.snapshotFormatVersion)
        writer.u64(lastAppliedSequence)
        writer.varint(UInt64(idempotencyKeys.count))
        idempotencyKeys.drain { key, arrival in
            writer.u64(key.low)
            writer.u64(key.high)
            writer.i64(arrival)
            writer.drain(ifAtLeast: threshold, into: emit)
        }
        writer.varint(UInt64(ledgers.count))
        // Each ledger leaves the source as it is encoded (last to first is the order `popLast`
        // gives, so the array is reversed first).
        var remaining = Array(ledgers.reversed())
        ledgers = []
        while let ledger = remaining.popLast() {
            writer.string(ledger.eventId)
            writer.varint(UInt64(ledger.ticketHeads.count))
            var tickets: [(Hash128, Int32)] = []
            tickets.reserveCapacity(ledger.ticketHeads.count)
            ledger.ticketNumbers.forEach { key, number in tickets.append((key, number)) }
            tickets.sort { $0.1 < $1.1 }
            var history = SpilledPageReader(history: ledger.history)
            for (key, number) in tickets {
                writer.u64(key.low)
                writer.u64(key.high)
                var count: UInt64 = 0
                var current = ledger.ticketHeads[Int(number)]
                while current >= 0 { count += 1; current = history.entry(Int(current)).next }
                writer.varint(count)
                current = ledger.ticketHeads[Int(number)]
                while current >= 0 {
                    let entry = history.entry(Int(current))
                    writer.i64(entry.occurredAt)
                    writer.u64(entry.sequence)
                    writer.u64(entry.device)
                    writer.u8(entry.kind.rawValue)
                    writer.u8(entry.argument)
                    current = entry.next
                }
                writer.drain(ifAtLeast: threshold, into: emit)
            }
        }
        // The status-change log, encoded at the start: its length, then its bytes.
        writer.varint(UInt64(statusChangeBytes.count))
        writer.drainAll(into: emit)
        statusChangeBytes.withUnsafeBytes { if !$0.isEmpty { emit($0) } }
        statusChangeBytes = []
    }
}

/// Reads a history copy whose pages may be spilled, keeping the last few spilled pages it
/// read (a ticket's entries are usually close together), so encoding never holds more than
/// `cachedPagesMax` pages of a spilled history in memory.
struct SpilledPageReader {
    let history: PagedArray<EventLedger.HistoryEntry>
    private var cache: [Int: PagedArray<EventLedger.HistoryEntry>.Page] = [:]
    private var order: [Int] = []
    static let cachedPagesMax = 32

    init(history: PagedArray<EventLedger.HistoryEntry>) { self.history = history }

    mutating func entry(_ index: Int) -> EventLedger.HistoryEntry {
        let page = index >> history.pageShift
        let offset = index & (history.pageSize - 1)
        if history.isResident(page) { return history.element(at: index) }
        if let cached = cache[page] { return cached.base[offset] }
        let contents = history.spilledPageContents(page)
        if order.count == Self.cachedPagesMax { cache[order.removeFirst()] = nil }
        cache[page] = contents
        order.append(page)
        return contents.base[offset]
    }
}

extension EventLedger {
    static func decode(from reader: inout ByteReader, chunkCapacity: Int, historyPageShift: Int,
                       lastSequence: UInt64) throws -> EventLedger {
        let ledger = EventLedger(eventId: try reader.string(maxBytes: 128), chunkCapacity: chunkCapacity,
                                 historyPageShift: historyPageShift)
        let ticketCount = try reader.count(minimumItemBytes: 17)
        var records: [DeltaRecord] = []
        var devices: [UInt64] = []
        var entries: [HistoryEntry] = []
        for _ in 0..<ticketCount {
            let key = Hash128(low: try reader.u64(), high: try reader.u64())
            let entryCount = try reader.count(minimumItemBytes: 26)
            guard entryCount > 0 else {
                throw ByteReader.Malformed(offset: reader.offset, reason: "a ticket without history")
            }
            var fold = TicketFold()
            devices.removeAll(keepingCapacity: true)
            entries.removeAll(keepingCapacity: true)
            var previousMask: UInt64 = 0
            var previousKey: (Int64, UInt64)? = nil
            for _ in 0..<entryCount {
                let occurredAt = try reader.i64()
                let sequence = try reader.u64()
                let device = try reader.u64()
                let rawKind = try reader.u8()
                let argument = try reader.u8()
                guard let kind = FeedEventKind(rawValue: rawKind), kind.isTicketOrPass else {
                    throw ByteReader.Malformed(offset: reader.offset, reason: "unknown history kind \(rawKind)")
                }
                guard sequence <= lastSequence, previousKey.map({ $0 < (occurredAt, sequence) }) ?? true else {
                    throw ByteReader.Malformed(offset: reader.offset, reason: "a ticket history out of order")
                }
                previousKey = (occurredAt, sequence)
                fold.apply(kind: kind, argument: argument, device: device, devices: &devices)
                let mask = fold.contribution(deviceCount: devices.count)
                records.append(DeltaRecord(occurredAt: occurredAt, sequence: sequence,
                                           minus: previousMask & ~mask, plus: mask & ~previousMask,
                                           action: TicketFold.actionSlot(kind: kind, argument: argument)))
                previousMask = mask
                entries.append(HistoryEntry(occurredAt: occurredAt, sequence: sequence, kind: kind, argument: argument,
                                            device: device, maskAfter: mask))
            }
            guard ledger.adoptTicket(key, entries: entries, finalState: fold.packed(deviceCount: devices.count)) else {
                throw ByteReader.Malformed(offset: reader.offset, reason: "a ticket appears twice")
            }
        }
        records.sort { $0.precedes(occurredAt: $1.occurredAt, sequence: $1.sequence) }
        ledger.adoptDeltas(DeltaIndex(sortedRecords: records, chunkCapacity: chunkCapacity))
        return ledger
    }
}
