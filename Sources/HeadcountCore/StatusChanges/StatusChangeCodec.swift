/// A snapshot of a `StatusChangeLog` that cannot be read back.
public struct StatusChangeLogDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "status-change snapshot: \(message)" }
}

/// Snapshot format (little-endian; `str` = u32 byte count + UTF-8 bytes):
///
///     "HCSCLOG1"  i64 retention  i64 expiryFloor  i64 nextID  u32 eventCount
///     per event, in number order (numbers are 1, 2, … by position):
///       str key
///       u32 L, L × str label (label ids 1…L)
///       u32 C, C × (u32 label, i64 time, u64 sequence, u8 removal): chart presence, by label id
///       u32 S, S × str status
///       u32 P, P × str payload string (orderId / extraData / holdToken / displayedLabel / ip)
///       u32 n, n × i64 id, n × i64 date, n × u32 label, n × u32 status,
///       n × (u32 quantity, u32 orderId, u32 extraData, u32 holdToken, u32 displayedLabel, u32 ip, u8 origin)
///       u32 Q, Q × (u32 local, i64 quantity)
///       n × u32 local: the date index, in order
///
/// Postings, label and status orders and counts are rebuilt on decode.
extension StatusChangeLog {
    static let snapshotMagic: [UInt8] = Array("HCSCLOG1".utf8)

    /// Appends the whole state (ids, event numbers, presence, expiry floor) to `buffer`.
    /// Same as `snapshotSource().encode(into:)`.
    public func encode(into buffer: inout [UInt8]) {
        snapshotSource().encode(into: &buffer)
    }

    /// An immutable copy of what a snapshot of the log holds, cheap to take: O(events), every
    /// array and table shared copy-on-write. So the log's encoding — 179 ms per million
    /// changes when it ran on the loop (docs/BENCHMARKS.md, session 14) — can run on the
    /// snapshot thread while the owner goes on applying; a store the owner changes meanwhile
    /// copies the pieces it changes first.
    public func snapshotSource() -> StatusChangeLogSnapshotSource {
        StatusChangeLogSnapshotSource(
            retentionMilliseconds: retentionMilliseconds, expiryFloor: expiryFloor, nextID: nextID,
            stores: events.map { store in
                StatusChangeLogSnapshotSource.Store(
                    key: store.key, labels: store.labels, presence: store.presence, statuses: store.statuses,
                    strings: store.strings, ids: store.ids, dates: store.dates, labelOf: store.labelOf,
                    statusOf: store.statusOf, payloads: store.payloads, quantityOverflow: store.quantityOverflow,
                    dateIndex: store.dateIndex)
            })
    }
    /// Reads a snapshot written by `encode`. `retentionMilliseconds` overrides the encoded
    /// retention (a changed configuration); the expiry floor is kept either way.
    public static func decode(_ bytes: UnsafeRawBufferPointer,
                              retentionMilliseconds: Int64? = nil) throws -> StatusChangeLog {
        var input = SCL.ByteReader(bytes: bytes)
        guard try input.bytes(8).elementsEqual(snapshotMagic) else {
            throw StatusChangeLogDecodingError("not a status-change snapshot (bad magic)")
        }
        let encodedRetention = try input.i64()
        let log = StatusChangeLog(retentionMilliseconds: retentionMilliseconds ?? encodedRetention)
        log.expiryFloor = try input.i64()
        log.nextID = try input.i64()
        guard log.nextID >= 1 else { throw StatusChangeLogDecodingError("bad next id \(log.nextID)") }
        let eventCount = try input.count(minimumBytesEach: 24)
        var allIDs: [Int64] = []
        for number in stride(from: 1, through: eventCount, by: 1) {
            let key = String(decoding: try input.bytes(try input.count(minimumBytesEach: 1)), as: UTF8.self)
            guard log.eventIndex[key] == nil else { throw StatusChangeLogDecodingError("event \(key) twice") }
            let store = SCL.EventStore(key: key, number: Int64(number))
            log.eventIndex[key] = log.events.count
            log.events.append(store)

            let labelCount = try input.count(minimumBytesEach: 4)
            store.labels = try input.pool(count: labelCount)
            var lastLabel: UInt32 = 0
            for _ in 0..<(try input.count(minimumBytesEach: 21)) {
                let label = try input.u32()
                let time = try input.i64()
                let sequence = try input.u64()
                let removal = try input.u8()
                guard label > lastLabel, Int(label) <= labelCount, removal <= 3 else {
                    throw StatusChangeLogDecodingError("bad presence")
                }
                lastLabel = label
                store.presence[label] = SCL.Presence(time: time, sequence: sequence, removal: removal)
            }
            store.labelPostings = Array(repeating: [], count: labelCount + 1)
            store.statuses = try input.pool(count: try input.count(minimumBytesEach: 4))
            store.strings = try input.pool(count: try input.count(minimumBytesEach: 4))
            let statusCount = store.statuses.count
            let stringCount = UInt32(store.strings.count)

            let n = try input.count(minimumBytesEach: 8 + 8 + 4 + 4 + 25 + 4)
            store.ids.reserveCapacity(n)
            for _ in 0..<n {
                let id = try input.i64()
                guard id >= 1, id < log.nextID, store.ids.last.map({ id > $0 }) ?? true else {
                    throw StatusChangeLogDecodingError("ids out of order in event \(key)")
                }
                store.ids.append(id)
                allIDs.append(id)
            }
            store.dates.reserveCapacity(n)
            for _ in 0..<n { store.dates.append(try input.i64()) }
            store.labelOf.reserveCapacity(n)
            for _ in 0..<n {
                let label = try input.u32()
                guard label >= 1 && Int(label) <= labelCount else { throw StatusChangeLogDecodingError("bad label id") }
                store.labelOf.append(label)
            }
            store.statusOf.reserveCapacity(n)
            for _ in 0..<n {
                let status = try input.u32()
                guard status >= 1 && Int(status) <= statusCount else { throw StatusChangeLogDecodingError("bad status id") }
                store.statusOf.append(status)
            }
            store.payloads.reserveCapacity(n)
            var escapes = 0
            for _ in 0..<n {
                let payload = SCL.Payload(quantity: try input.u32(), orderId: try input.u32(),
                                          extraData: try input.u32(), holdToken: try input.u32(),
                                          displayedLabel: try input.u32(), ip: try input.u32(),
                                          origin: try input.u8())
                guard payload.orderId <= stringCount, payload.extraData <= stringCount,
                      payload.holdToken <= stringCount, payload.displayedLabel <= stringCount,
                      payload.ip <= stringCount, SeatOriginType(rawValue: payload.origin) != nil,
                      payload.quantity != 0 else {
                    throw StatusChangeLogDecodingError("bad record payload")
                }
                if payload.quantity == SCL.Payload.quantityEscape { escapes += 1 }
                store.payloads.append(payload)
            }
            let overflowCount = try input.count(minimumBytesEach: 12)
            guard overflowCount == escapes else { throw StatusChangeLogDecodingError("bad quantity table") }
            for _ in 0..<overflowCount {
                let local = try input.u32()
                let value = try input.i64()
                guard Int(local) < n, store.payloads[Int(local)].quantity == SCL.Payload.quantityEscape,
                      store.quantityOverflow[local] == nil else {
                    throw StatusChangeLogDecodingError("bad quantity table")
                }
                store.quantityOverflow[local] = value
            }
            var order: [UInt32] = []
            order.reserveCapacity(n)
            for _ in 0..<n {
                let local = try input.u32()
                guard Int(local) < n else { throw StatusChangeLogDecodingError("bad date index") }
                if let previous = order.last {
                    let (d0, d1) = (store.dates[Int(previous)], store.dates[Int(local)])
                    guard d0 < d1 || (d0 == d1 && previous < local) else {
                        throw StatusChangeLogDecodingError("date index out of order")
                    }
                }
                order.append(local)
            }
            // Strictly increasing (date, local) pairs over n locals < n: a permutation.
            store.dateIndex = SCL.ChunkedIndex(sorted: order)

            // Rebuild the label and status orders and the postings.
            let labels = store.labels
            let sortedLabels = (0..<labelCount).map { UInt32($0 + 1) }.sorted { labels.compare($0, $1) < 0 }
            store.labelOrder = SCL.ChunkedIndex(sorted: sortedLabels)
            let statuses = store.statuses
            let sortedStatuses = (0..<statusCount).map { UInt32($0 + 1) }.sorted { statuses.compare($0, $1) < 0 }
            store.statusOrder = SCL.ChunkedIndex(sorted: sortedStatuses)
            store.statusRank = Array(repeating: 0, count: statusCount + 1)
            store.rankStatuses()
            store.statusPostings = Array(repeating: [], count: statusCount + 1)
            for local in 0..<n {
                store.labelPostings[Int(store.labelOf[local])].append(UInt32(local))
                store.statusPostings[Int(store.statusOf[local])].append(UInt32(local))
                if store.dates[local] < log.expiryFloor { store.deadCount += 1 }
            }
            log.liveTotal += store.liveCount
        }
        guard input.isAtEnd else { throw StatusChangeLogDecodingError("trailing bytes") }
        allIDs.sort()
        for i in allIDs.indices.dropFirst() where allIDs[i] == allIDs[i - 1] {
            throw StatusChangeLogDecodingError("id \(allIDs[i]) in two events")
        }
        return log
    }
}

extension SCL {
    struct ByteWriter {
        var buffer: [UInt8]

        mutating func u8(_ value: UInt8) { buffer.append(value) }
        mutating func u32(_ value: Int) {
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian) { buffer.append(contentsOf: $0) }
        }
        mutating func u64(_ value: UInt64) {
            withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
        }
        mutating func i64(_ value: Int64) {
            withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
        }
        mutating func bytes(_ value: [UInt8]) { buffer.append(contentsOf: value) }
        mutating func string(_ value: [UInt8]) {
            u32(value.count)
            buffer.append(contentsOf: value)
        }
        /// Integers, each as its little-endian bytes.
        mutating func column<T: FixedWidthInteger>(_ values: Column<T>) {
            values.forEachPage { column($0) }
        }

        mutating func column<T: FixedWidthInteger>(_ values: UnsafeBufferPointer<T>) {
            #if _endian(little)
            buffer.append(contentsOf: UnsafeRawBufferPointer(values))
            #else
            for value in values { withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) } }
            #endif
        }

        /// Each payload as (u32 quantity, u32 orderId, u32 extraData, u32 holdToken,
        /// u32 displayedLabel, u32 ip, u8 origin), 25 bytes, written in place.
        mutating func payloads(_ payloads: Column<Payload>) {
            let start = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: payloads.count * 25))
            buffer.withUnsafeMutableBytes { bytes in
                var offset = start
                for payload in payloads {
                    bytes.storeBytes(of: payload.quantity.littleEndian, toByteOffset: offset, as: UInt32.self)
                    bytes.storeBytes(of: payload.orderId.littleEndian, toByteOffset: offset + 4, as: UInt32.self)
                    bytes.storeBytes(of: payload.extraData.littleEndian, toByteOffset: offset + 8, as: UInt32.self)
                    bytes.storeBytes(of: payload.holdToken.littleEndian, toByteOffset: offset + 12, as: UInt32.self)
                    bytes.storeBytes(of: payload.displayedLabel.littleEndian, toByteOffset: offset + 16, as: UInt32.self)
                    bytes.storeBytes(of: payload.ip.littleEndian, toByteOffset: offset + 20, as: UInt32.self)
                    bytes[offset + 24] = payload.origin
                    offset += 25
                }
            }
        }

        mutating func pool(_ pool: StringPool) {
            u32(pool.count)
            for id in stride(from: 1, through: pool.count, by: 1) {
                pool.withBytes(UInt32(id)) { bytes in
                    u32(bytes.count)
                    buffer.append(contentsOf: bytes)
                }
            }
        }
    }

    struct ByteReader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        var isAtEnd: Bool { offset == bytes.count }

        mutating func bytes(_ count: Int) throws -> UnsafeRawBufferPointer {
            guard count >= 0, count <= bytes.count - offset else {
                throw StatusChangeLogDecodingError("truncated at byte \(offset)")
            }
            defer { offset += count }
            return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        }

        mutating func u8() throws -> UInt8 { try bytes(1)[0] }

        mutating func u32() throws -> UInt32 {
            let raw = try bytes(4)
            var value: UInt32 = 0
            for i in (0..<4).reversed() { value = value << 8 | UInt32(raw[i]) }
            return value
        }

        mutating func u64() throws -> UInt64 {
            let raw = try bytes(8)
            var value: UInt64 = 0
            for i in (0..<8).reversed() { value = value << 8 | UInt64(raw[i]) }
            return value
        }

        mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }

        /// A u32 count, checked against the bytes left (each element takes at least
        /// `minimumBytesEach`), so corrupt counts cannot trigger huge allocations.
        mutating func count(minimumBytesEach: Int) throws -> Int {
            let value = Int(try u32())
            guard value <= (bytes.count - offset) / max(minimumBytesEach, 1) else {
                throw StatusChangeLogDecodingError("count \(value) exceeds the snapshot at byte \(offset)")
            }
            return value
        }

        mutating func pool(count: Int) throws -> StringPool {
            var pool = StringPool(reservingStrings: count, bytes: 0)
            for index in 0..<count {
                let length = try self.count(minimumBytesEach: 1)
                let value = try bytes(length)
                guard pool.find(bytes: value) == nil, Int(pool.intern(bytes: value)) == index + 1 else {
                    throw StatusChangeLogDecodingError("duplicate string in a table")
                }
            }
            return pool
        }
    }
}

/// What a snapshot of a `StatusChangeLog` holds, frozen when it was taken
/// (`StatusChangeLog.snapshotSource()`); encoded on any thread.
public struct StatusChangeLogSnapshotSource: @unchecked Sendable {
    struct Store {
        var key: String
        var labels: SCL.StringPool
        var presence: [UInt32: SCL.Presence]
        var statuses: SCL.StringPool
        var strings: SCL.StringPool
        var ids: SCL.Column<Int64>
        var dates: SCL.Column<Int64>
        var labelOf: SCL.Column<UInt32>
        var statusOf: SCL.Column<UInt32>
        var payloads: SCL.Column<SCL.Payload>
        var quantityOverflow: [UInt32: Int64]
        var dateIndex: SCL.ChunkedIndex

        /// An upper bound of its encoded size, before the string pools.
        var fixedBytes: Int {
            64 + key.utf8.count + presence.count * 21 + ids.count * (8 + 8 + 4 + 4 + 25 + 4) + quantityOverflow.count * 12
        }
    }

    let retentionMilliseconds: Int64
    let expiryFloor: Int64
    let nextID: Int64
    let stores: [Store]

    /// Appends the encoded log (the format above `StatusChangeLog.encode(into:)`) to `buffer`.
    /// The columns are written whole: on a little-endian machine an `[Int64]` or `[UInt32]`
    /// already is its encoding.
    public func encode(into buffer: inout [UInt8]) {
        var out = SCL.ByteWriter(buffer: buffer)
        buffer = []
        var total = 40
        for store in stores {
            total += store.fixedBytes + store.labels.encodedBytes + store.statuses.encodedBytes + store.strings.encodedBytes
        }
        out.buffer.reserveCapacity(out.buffer.count + total)
        out.bytes(StatusChangeLog.snapshotMagic)
        out.i64(retentionMilliseconds)
        out.i64(expiryFloor)
        out.i64(nextID)
        out.u32(stores.count)
        for store in stores {
            out.string(Array(store.key.utf8))
            out.pool(store.labels)
            let presence = store.presence.sorted { $0.key < $1.key }
            out.u32(presence.count)
            for (label, state) in presence {
                out.u32(Int(label))
                out.i64(state.time)
                out.u64(state.sequence)
                out.u8(state.removal)
            }
            out.pool(store.statuses)
            out.pool(store.strings)
            out.u32(store.ids.count)
            out.column(store.ids)
            out.column(store.dates)
            out.column(store.labelOf)
            out.column(store.statusOf)
            out.payloads(store.payloads)
            let overflow = store.quantityOverflow.sorted { $0.key < $1.key }
            out.u32(overflow.count)
            for (local, value) in overflow {
                out.u32(Int(local))
                out.i64(value)
            }
            store.dateIndex.forEachChunk { out.column($0) }
        }
        buffer = out.buffer
    }
}
