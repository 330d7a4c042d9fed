import Foundation
import HeadcountCore

/// A restart's replay of the WAL into the engine, in bulk (docs/ARCHITECTURE.md, "Recovery").
///
/// Same checks, same damage handling and same report as `WriteAheadLog.recover(after:_:)`
/// (it is that scan, with another payload decoder): a torn tail is dropped, anything else is
/// `WALError.corrupt` with file and offset. What differs is what a record becomes:
///
/// - A ticket or pass record is decoded straight from its bytes into fingerprints (id,
///   ticket, device: `Hash128` of the exact UTF-8 bytes, as the engine computes them from a
///   `String`), its eventId into a small table number: no `String` per record. The decoder
///   checks exactly what `WALRecord(payload:)` checks; anything it does not take the common
///   path for (seat and chart records, an unusual but valid encoding, or damage) goes to
///   `WALRecord(payload:)` itself, which decodes it or throws the same error.
/// - The records go to a `BulkReplay`, which builds each ledger once at the end.
///
/// With `pipelined`, the segments are read, checked and decoded on a second thread while the
/// calling thread hands the decoded records to the engine (the engine stays on the caller's
/// thread): batches of records go through a bounded queue. Then the build's independent jobs
/// (each ledger, the idempotency keys) run on libdispatch's threads, one per core; the call
/// returns when they are done.
public enum WALReplay {
    public struct Outcome: Sendable {
        public var report: RecoveryReport
        /// Records handed to the engine (sequence > the engine's at the start).
        public var replayed: Int
        /// Seconds spent reading, checking and decoding the log and handing the records over
        /// (with `pipelined`, the two threads overlap), then building the engine's state.
        public var readSeconds: Double
        public var buildSeconds: Double
    }

    /// Replays every record after `engine.lastAppliedSequence` into `engine` and finishes the
    /// bulk build. Runs `wal.recover`, so it must be the log's first use. Throws what
    /// `recover` throws; after a throw the engine may hold part of the records.
    public static func replay(_ wal: WriteAheadLog, into engine: Engine, pipelined: Bool = true) throws -> Outcome {
        let started = DispatchTime.now().uptimeNanoseconds
        let after = engine.lastAppliedSequence
        let expected = (try? wal.segmentBytesOnDisk()).map { $0 / averageRecordBytesGuess } ?? 0
        let bulk = BulkReplay(engine: engine, expectedRecords: expected)
        var applier = BatchApplier(bulk: bulk)
        let report: RecoveryReport
        if pipelined {
            report = try replayPipelined(wal, after: after, applier: &applier)
        } else {
            var decoder = ReplayDecoder()
            var batch = ReplayBatch()
            report = try wal.recover(after: after, decode: { try decoder.decode($0) }, sequenceOf: { $0.sequence }) { item in
                batch.append(item, decoder: &decoder)
                if batch.items.count >= batchRecords {
                    applier.apply(batch)
                    batch = ReplayBatch()
                }
            }
            applier.apply(batch)
        }
        let read = DispatchTime.now().uptimeNanoseconds
        // The build's jobs (each ledger, the idempotency keys) on every core as well.
        bulk.finish(concurrently: pipelined ? { count, job in DispatchQueue.concurrentPerform(iterations: count, execute: job) } : nil)
        let built = DispatchTime.now().uptimeNanoseconds
        return Outcome(report: report, replayed: bulk.count, readSeconds: Double(read - started) / 1e9,
                       buildSeconds: Double(built - read) / 1e9)
    }

    /// Records per batch handed from the reading thread to the applying one.
    static let batchRecords = 8_192
    /// Batches decoded ahead of the applier at most (bounds the memory in flight).
    static let batchesInFlightMax = 8
    /// A short ticket record is ~55 bytes; guessing low only over-sizes the idempotency table.
    static let averageRecordBytesGuess = 52

    private static func replayPipelined(_ wal: WriteAheadLog, after: UInt64, applier: inout BatchApplier) throws -> RecoveryReport {
        let queue = BatchQueue(capacity: batchesInFlightMax)
        let reader = Thread {
            var decoder = ReplayDecoder()
            var batch = ReplayBatch()
            do {
                let report = try wal.recover(after: after, decode: { try decoder.decode($0) },
                                             sequenceOf: { $0.sequence }) { item in
                    batch.append(item, decoder: &decoder)
                    if batch.items.count >= batchRecords {
                        queue.put(batch)
                        batch = ReplayBatch()
                    }
                }
                queue.put(batch)
                queue.close(.success(report))
            } catch {
                queue.close(.failure(error))
            }
        }
        reader.name = "headcount-wal-replay"
        reader.stackSize = 1 << 20
        reader.start()
        while let batch = queue.take() { applier.apply(batch) }
        return try queue.waitForResult().get()
    }
}

/// One decoded record: a ticket or pass event as fingerprints, or (kind 0) a record the
/// decoder keeps whole (`ReplayDecoder.lastFull`).
struct ReplayItem {
    var sequence: UInt64
    var arrivalMilliseconds: Int64
    var occurredAt: Int64
    var idKey: Hash128
    var ticket: Hash128
    var device: UInt64
    /// The decoder's eventId number (ticket and pass kinds), or the index in the batch's
    /// `records` (kind 0).
    var index: Int32
    /// The `FeedEventKind` raw value, or 0 for a whole record.
    var kind: UInt8
    var argument: UInt8
}

/// Decoded records in sequence order, with the eventIds first seen in them.
struct ReplayBatch {
    var items: [ReplayItem] = []
    var records: [WALRecord] = []
    /// eventIds the decoder numbered since the previous batch, in number order.
    var newEventIds: [String] = []

    init() { items.reserveCapacity(WALReplay.batchRecords) }

    mutating func append(_ item: ReplayItem, decoder: inout ReplayDecoder) {
        if !decoder.pendingEventIds.isEmpty {
            newEventIds += decoder.pendingEventIds
            decoder.pendingEventIds.removeAll()
        }
        var item = item
        if item.kind == 0 {
            item.index = Int32(records.count)
            records.append(decoder.lastFull!)
            decoder.lastFull = nil
        }
        items.append(item)
    }
}

/// Hands batches to the bulk replay, on the engine's thread.
struct BatchApplier {
    let bulk: BulkReplay
    /// Decoder eventId number → bulk ledger handle.
    var handles: [Int] = []

    init(bulk: BulkReplay) { self.bulk = bulk }

    mutating func apply(_ batch: ReplayBatch) {
        for eventId in batch.newEventIds { handles.append(bulk.ledgerHandle(eventId: eventId)) }
        for item in batch.items {
            if item.kind == 0 {
                let record = batch.records[Int(item.index)]
                bulk.add(record.event, sequence: record.sequence, arrivalMilliseconds: record.arrivalMilliseconds)
            } else {
                bulk.addTicketEvent(sequence: item.sequence, idKey: item.idKey, arrivalMilliseconds: item.arrivalMilliseconds,
                                    ledger: handles[Int(item.index)], kind: FeedEventKind(rawValue: item.kind)!,
                                    ticket: item.ticket, occurredAt: item.occurredAt, argument: item.argument,
                                    device: item.device)
            }
        }
    }
}

/// The fingerprint decoder of WAL payloads (format: `WALRecord`). Takes the common path —
/// a ticket or pass kind with details none, deletion, device, activation or pass, lengths in
/// one varint byte — and checks every field as `WALRecord(payload:)` does; anything else is
/// decoded by `WALRecord(payload:)`, which also throws the errors.
struct ReplayDecoder {
    /// The bytes of eventId number n: `eventIdBytes[eventIdStarts[n]..<eventIdStarts[n + 1]]`.
    private var eventIdBytes: [UInt8] = []
    private var eventIdStarts: [Int] = [0]
    /// Open addressing over the numbers, by a quick hash of the bytes (-1: empty).
    private var slots = [Int32](repeating: -1, count: 64)
    private var lastNumber: Int32 = -1
    /// eventIds numbered since the last batch took them.
    var pendingEventIds: [String] = []
    /// The last record decoded whole (the item says kind 0).
    var lastFull: WALRecord?

    mutating func decode(_ payload: UnsafeRawBufferPointer) throws -> ReplayItem {
        if let item = fastDecode(payload) { return item }
        let record = try WALRecord(payload: payload)
        lastFull = record
        return ReplayItem(sequence: record.sequence, arrivalMilliseconds: record.arrivalMilliseconds, occurredAt: 0,
                          idKey: Hash128(low: 0, high: 0), ticket: Hash128(low: 0, high: 0), device: 0, index: 0,
                          kind: 0, argument: 0)
    }

    /// The record, or nil for anything off the common path (including damage).
    @inline(__always)
    private mutating func fastDecode(_ payload: UnsafeRawBufferPointer) -> ReplayItem? {
        let count = payload.count
        // version, sequence, arrival, kind, occurredAt, three length bytes, the details tag.
        guard count >= 30, payload[0] == WALRecord.formatVersion else { return nil }
        let kindRaw = payload[17]
        guard let kind = FeedEventKind(rawValue: kindRaw), kind.isTicketOrPass else { return nil }
        let sequence = UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
        let arrival = Int64(littleEndian: payload.loadUnaligned(fromByteOffset: 9, as: Int64.self))
        let occurredAt = Int64(littleEndian: payload.loadUnaligned(fromByteOffset: 18, as: Int64.self))
        var offset = 26

        /// A string of `minimum…127` bytes (a one-byte length), valid UTF-8.
        @inline(__always)
        func string(_ minimum: Int, _ offset: inout Int) -> UnsafeRawBufferPointer? {
            guard offset < count else { return nil }
            let length = Int(payload[offset])
            guard length >= minimum, length < 0x80, count - offset - 1 >= length else { return nil }
            let bytes = UnsafeRawBufferPointer(rebasing: payload[(offset + 1)..<(offset + 1 + length)])
            guard isValidUTF8(bytes) else { return nil }
            offset += 1 + length
            return bytes
        }
        guard let id = string(1, &offset), let eventId = string(1, &offset), let ticketId = string(0, &offset),
              offset < count else { return nil }
        let tag = payload[offset]
        offset += 1
        var argument: UInt8 = 0
        var device: UInt64 = 0
        switch tag {
        case DetailsTag.none.rawValue:
            break
        case DetailsTag.deletion.rawValue:
            guard offset < count, payload[offset] <= 1 else { return nil }
            argument = payload[offset]
            offset += 1
        case DetailsTag.device.rawValue:
            guard let deviceId = string(0, &offset) else { return nil }
            device = Hash128.hash(deviceId).low
        case DetailsTag.activation.rawValue:
            guard offset < count, ActivationMode(rawValue: payload[offset]) != nil else { return nil }
            argument = payload[offset]
            offset += 1
        case DetailsTag.pass.rawValue:
            guard count - offset >= 2 else { return nil }
            let flags = payload[offset]
            guard flags & ~(PassFlag.status | PassFlag.reason) == 0,
                  let platform = PassPlatform(rawValue: payload[offset + 1]) else { return nil }
            offset += 2
            var status: PassStatus?
            var reason: InvalidationReason?
            if flags & PassFlag.status != 0 {
                guard offset < count, let value = PassStatus(rawValue: payload[offset]) else { return nil }
                status = value
                offset += 1
            }
            if flags & PassFlag.reason != 0 {
                guard offset < count, let value = InvalidationReason(rawValue: payload[offset]) else { return nil }
                reason = value
                offset += 1
            }
            argument = BulkReplay.passArgument(platform: platform, status: status, reason: reason)
        default:
            return nil
        }
        guard offset == count else { return nil }
        return ReplayItem(sequence: sequence, arrivalMilliseconds: arrival, occurredAt: occurredAt,
                          idKey: Hash128.hash(id), ticket: Hash128.hash(ticketId), device: device,
                          index: number(ofEventId: eventId), kind: kindRaw, argument: argument)
    }

    @inline(__always)
    private mutating func number(ofEventId bytes: UnsafeRawBufferPointer) -> Int32 {
        if lastNumber >= 0 && matches(bytes, lastNumber) { return lastNumber }
        return slowNumber(ofEventId: bytes)
    }

    private mutating func slowNumber(ofEventId bytes: UnsafeRawBufferPointer) -> Int32 {
        var slot = ReplayDecoder.quickHash(bytes) & (slots.count - 1)
        while slots[slot] >= 0 {
            if matches(bytes, slots[slot]) {
                lastNumber = slots[slot]
                return lastNumber
            }
            slot = (slot + 1) & (slots.count - 1)
        }
        let number = Int32(eventIdStarts.count - 1)
        eventIdBytes.append(contentsOf: bytes)
        eventIdStarts.append(eventIdBytes.count)
        pendingEventIds.append(String(decoding: bytes.bindMemory(to: UInt8.self), as: UTF8.self))
        slots[slot] = number
        if eventIdStarts.count * 2 > slots.count { rehash() }
        lastNumber = number
        return number
    }

    private mutating func rehash() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        for number in 0..<(eventIdStarts.count - 1) {
            let hash = eventIdBytes.withUnsafeBytes {
                ReplayDecoder.quickHash(UnsafeRawBufferPointer(rebasing: $0[eventIdStarts[number]..<eventIdStarts[number + 1]]))
            }
            var slot = hash & (slots.count - 1)
            while slots[slot] >= 0 { slot = (slot + 1) & (slots.count - 1) }
            slots[slot] = Int32(number)
        }
    }

    /// FNV-1a: eventIds are short.
    @inline(__always)
    private static func quickHash(_ bytes: UnsafeRawBufferPointer) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: hash ^ (hash >> 29))
    }

    /// Whether `bytes` are those of eventId `number`.
    @inline(__always)
    private func matches(_ bytes: UnsafeRawBufferPointer, _ number: Int32) -> Bool {
        let start = eventIdStarts[Int(number)]
        let count = eventIdStarts[Int(number) + 1] - start
        guard bytes.count == count else { return false }
        return eventIdBytes.withUnsafeBytes { stored in
            var index = 0
            while count - index >= 8 {
                if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    != stored.loadUnaligned(fromByteOffset: start + index, as: UInt64.self) { return false }
                index += 8
            }
            while index < count {
                if bytes[index] != stored[start + index] { return false }
                index += 1
            }
            return true
        }
    }
}

/// A bounded queue of batches from the reading thread to the applying one, closed with the
/// scan's outcome.
private final class BatchQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var batches: [ReplayBatch] = []
    private let capacity: Int
    private var result: Result<RecoveryReport, Error>?

    init(capacity: Int) { self.capacity = capacity }

    func put(_ batch: ReplayBatch) {
        condition.lock()
        while batches.count >= capacity { condition.wait() }
        batches.append(batch)
        condition.broadcast()
        condition.unlock()
    }

    func close(_ outcome: Result<RecoveryReport, Error>) {
        condition.lock()
        result = outcome
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch, or nil once the queue is closed and empty.
    func take() -> ReplayBatch? {
        condition.lock()
        defer { condition.unlock() }
        while batches.isEmpty && result == nil { condition.wait() }
        guard !batches.isEmpty else { return nil }
        let batch = batches.removeFirst()
        condition.broadcast()
        return batch
    }

    func waitForResult() -> Result<RecoveryReport, Error> {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return result!
    }
}
