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

    public func encodeSnapshot() -> [UInt8] {
        var writer = ByteWriter(capacity: 1 << 20)
        writer.u8(Engine.snapshotFormatVersion)
        writer.u64(lastAppliedSequence)
        writer.varint(UInt64(idempotencyKeys.count))
        idempotencyKeys.arrivals.forEach { key, arrival in
            writer.u64(key.low)
            writer.u64(key.high)
            writer.i64(arrival)
        }
        let eventIds = ledgers.keys.sorted()
        writer.varint(UInt64(eventIds.count))
        for eventId in eventIds {
            ledgers[eventId]!.encode(into: &writer)
        }
        var statusBytes: [UInt8] = []
        statusChanges.encode(into: &statusBytes)
        writer.blob(statusBytes)
        return writer.bytes
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

extension EventLedger {
    func encode(into writer: inout ByteWriter) {
        writer.string(eventId)
        writer.varint(UInt64(ticketCount))
        forEachTicket { key, entries in
            writer.u64(key.low)
            writer.u64(key.high)
            writer.varint(UInt64(entries.count))
            for entry in entries {
                writer.i64(entry.occurredAt)
                writer.u64(entry.sequence)
                writer.u64(entry.device)
                writer.u8(entry.kind.rawValue)
                writer.u8(entry.argument)
            }
        }
    }

    static func decode(from reader: inout ByteReader, chunkCapacity: Int, lastSequence: UInt64) throws -> EventLedger {
        let ledger = EventLedger(eventId: try reader.string(maxBytes: 128), chunkCapacity: chunkCapacity)
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
            guard ledger.adoptTicket(key, entries: entries) else {
                throw ByteReader.Malformed(offset: reader.offset, reason: "a ticket appears twice")
            }
        }
        records.sort { $0.precedes(occurredAt: $1.occurredAt, sequence: $1.sequence) }
        ledger.adoptDeltas(DeltaIndex(sortedRecords: records, chunkCapacity: chunkCapacity))
        return ledger
    }
}
