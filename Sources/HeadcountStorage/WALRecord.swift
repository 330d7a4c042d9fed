import HeadcountCore

/// One accepted feed event as the WAL stores it: the server's sequence number, the arrival
/// time (kept for ties in `occurredAt`, SPEC §3) and the event.
///
/// ## Framing (all integers little-endian)
/// ```
/// u32 payloadLength | u32 crc32c(payload) | payload
/// ```
/// ## Payload, format version 1
/// ```
/// u8  version (1)
/// u64 sequence
/// i64 arrivalMilliseconds
/// u8  kind                     FeedEventKind raw value
/// i64 occurredAt               milliseconds since the epoch
/// str id, str eventId, str ticketId          str = varint byte count + UTF-8 bytes
/// u8  details tag, then the details:
///     0 none
///     1 deletion      u8 isPending (0 or 1)
///     2 device        str deviceId
///     3 activation    u8 ActivationMode
///     4 pass          u8 flags (1 status, 2 reason) | u8 PassPlatform
///                     | [u8 PassStatus] | [u8 InvalidationReason]
///     5 seatStatus    u8 flags (1 orderId, 2 extraData, 4 holdToken, 8 originIP,
///                     16 displayedLabel differs from objectLabel)
///                     | str objectLabel | str status | varint quantity | u8 SeatOriginType
///                     | [str orderId] | [str extraData] | [str holdToken] | [str originIP]
///                     | [str displayedLabel]
///     6 chartObject   u8 flags (1 reason) | str label | [u8 ChartRemovalReason]
/// ```
/// Varints are unsigned LEB128 (7 bits a byte, low group first), at most 10 bytes.
///
/// ## Worked example
/// Sequence 7, arrival 1747807200123 ms, `ticket.downloaded` of T42 in E1 at
/// 2025-05-21T06:00:00.000Z (1747807200000 ms), id `f-1`, device `d-9` (50 bytes):
/// ```
/// 2a 00 00 00  25 af db b6                          length 42, crc32c 0xB6DBAF25
/// 01                                                version 1
/// 07 00 00 00 00 00 00 00                           sequence 7
/// 7b 63 6d f1 96 01 00 00                           arrival 1747807200123 (0x196F16D637B)
/// 04                                                kind ticket.downloaded
/// 00 63 6d f1 96 01 00 00                           occurredAt 1747807200000
/// 03 66 2d 31   02 45 31   03 54 34 32              "f-1" "E1" "T42"
/// 02 03 64 2d 39                                    details tag 2 (device), "d-9"
/// ```
/// (Checked by `WALRecordCodecTests.testWorkedExampleBytes`; also in docs/FORMATS.md.)
///
/// The kind and the details are stored independently, with a tag, so a record round-trips
/// exactly whatever the engine hands over; the decoder checks every length, tag, flag and raw
/// value and rejects trailing bytes, so a damaged payload is an error, never a wrong event.
public struct WALRecord: Equatable, Sendable {
    public var sequence: UInt64
    public var arrivalMilliseconds: Int64
    public var event: FeedEvent

    public init(sequence: UInt64, arrivalMilliseconds: Int64, event: FeedEvent) {
        self.sequence = sequence
        self.arrivalMilliseconds = arrivalMilliseconds
        self.event = event
    }

    /// The payload format this code writes.
    public static let formatVersion: UInt8 = 1
    /// Bytes of framing before each payload (length and checksum).
    public static let headerByteCount = 8
    /// Header, format version, sequence, arrival time, kind and occurredAt.
    static let fixedPrefixBytes = headerByteCount + 1 + 8 + 8 + 1 + 8
    /// Limits of `id` and `eventId` (SPEC §2: 1–128 bytes) and of `ticketId` (0–128: empty
    /// for seat and chart kinds).
    public static let idBytesMax = 128
    /// Limit of every other string (device, labels, status, order, extraData, hold token,
    /// IP). The spec bounds extraData to 4 KiB and leaves the others open; the feed decoder
    /// must reject longer values (`encodingProblem(of:)` says which) before they get here.
    public static let stringBytesMax = 16 * 1024
    /// No valid payload is longer: 5 fixed fields, 3 ids, 7 strings, their length prefixes
    /// and the flags fit in it. A length field above it is damage, not a torn write.
    public static let payloadBytesMax = 128 * 1024

    /// Why `event` cannot be written, or nil if it can: a string over its limit, an empty
    /// `id`/`eventId`, or a quantity below 1. `encode` stops the process on such an event
    /// (it is a programmer error to pass one); the feed path calls this first to reject it.
    public static func encodingProblem(of event: FeedEvent) -> String? {
        func check(_ name: String, _ value: String, _ range: ClosedRange<Int>) -> String? {
            let count = value.utf8.count
            return range.contains(count) ? nil : "\(name) is \(count) bytes (allowed \(range.lowerBound)–\(range.upperBound))"
        }
        if let problem = check("id", event.id, 1...idBytesMax) { return problem }
        if let problem = check("eventId", event.eventId, 1...idBytesMax) { return problem }
        if let problem = check("ticketId", event.ticketId, 0...idBytesMax) { return problem }
        let strings = 0...stringBytesMax
        switch event.details {
        case .none, .deletion, .activation, .pass:
            return nil
        case .device(let device):
            return check("deviceId", device, strings)
        case .chartObject(let label, _):
            return check("objectLabel", label, strings)
        case .seatStatus(let seat):
            if seat.quantity < 1 { return "quantity is \(seat.quantity) (must be ≥ 1)" }
            // One by one rather than through an array: this runs for every encoded record.
            if let problem = check("objectLabel", seat.objectLabel, strings) { return problem }
            if let problem = check("status", seat.status, strings) { return problem }
            if let problem = check("displayedLabel", seat.displayedLabel, strings) { return problem }
            if let value = seat.orderId, let problem = check("orderId", value, strings) { return problem }
            if let value = seat.extraDataJSON, let problem = check("extraData", value, strings) { return problem }
            if let value = seat.holdToken, let problem = check("holdToken", value, strings) { return problem }
            if let value = seat.originIP, let problem = check("origin.ip", value, strings) { return problem }
            return nil
        }
    }

    // MARK: Encoding

    /// Appends this record, framed (length, checksum, payload), to `buffer`. Writes straight
    /// into the buffer, then patches the header: no intermediate allocation beyond the
    /// buffer's own growth. O(record size).
    ///
    /// - Precondition: `encodingProblem(of: event) == nil`.
    public func encode(into buffer: inout [UInt8]) {
        if let problem = WALRecord.encodingProblem(of: event) {
            preconditionFailure("WAL record \(sequence) cannot be encoded: \(problem)")
        }
        WALRecord.encode(sequence: sequence, arrivalMilliseconds: arrivalMilliseconds, event: event, into: &buffer)
    }

    /// `encode(into:)` of the record these make, without making it (no copy of the event) and
    /// without checking the event again: for a caller that checked `encodingProblem(of:)`.
    ///
    /// - Precondition: `encodingProblem(of: event) == nil`.
    public static func encode(sequence: UInt64, arrivalMilliseconds: Int64, event: FeedEvent, into buffer: inout [UInt8]) {
        let start = buffer.count
        let idCount = event.id.utf8.count, eventIdCount = event.eventId.utf8.count, ticketIdCount = event.ticketId.utf8.count
        // Header (patched below), version, sequence, arrival, kind, occurredAt and the three
        // ids: one append of zeros, then stores and copies into it. Appending field by field
        // cost ~100 instructions a call (`append(contentsOf:)` takes a generic path).
        let head = fixedPrefixBytes + varintByteCount(idCount) + idCount + varintByteCount(eventIdCount) + eventIdCount
            + varintByteCount(ticketIdCount) + ticketIdCount
        // Room for the details too, growing geometrically (an exact `reserveCapacity` per
        // record would reallocate every time).
        if buffer.capacity - start < head + 64 { buffer.reserveCapacity(max(buffer.capacity * 2, start + head + 64)) }
        buffer.append(contentsOf: repeatElement(0, count: head))
        buffer.withUnsafeMutableBytes { bytes in
            var offset = start + WALRecord.headerByteCount
            bytes[offset] = WALRecord.formatVersion
            bytes.storeBytes(of: sequence.littleEndian, toByteOffset: offset + 1, as: UInt64.self)
            bytes.storeBytes(of: UInt64(bitPattern: arrivalMilliseconds).littleEndian, toByteOffset: offset + 9, as: UInt64.self)
            bytes[offset + 17] = event.kind.rawValue
            bytes.storeBytes(of: UInt64(bitPattern: event.occurredAt).littleEndian, toByteOffset: offset + 18, as: UInt64.self)
            offset += 26
            offset = storeString(event.id, count: idCount, into: bytes, at: offset)
            offset = storeString(event.eventId, count: eventIdCount, into: bytes, at: offset)
            offset = storeString(event.ticketId, count: ticketIdCount, into: bytes, at: offset)
        }
        appendDetails(event.details, to: &buffer)
        let payloadCount = buffer.count - start - WALRecord.headerByteCount
        precondition(payloadCount <= WALRecord.payloadBytesMax, "WAL payload over its limit")
        buffer.withUnsafeMutableBytes { bytes in
            let payload = UnsafeRawBufferPointer(rebasing: bytes[(start + WALRecord.headerByteCount)...])
            let checksum = CRC32C.checksum(payload)
            bytes.storeBytes(of: UInt32(payloadCount).littleEndian, toByteOffset: start, as: UInt32.self)
            bytes.storeBytes(of: checksum.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    /// Appends the details' tag and fields.
    private static func appendDetails(_ details: FeedEvent.Details, to buffer: inout [UInt8]) {
    switch details {
    case .none:
        buffer.append(DetailsTag.none.rawValue)
    case .deletion(let isPending):
        buffer.append(DetailsTag.deletion.rawValue)
        buffer.append(isPending ? 1 : 0)
    case .device(let device):
        buffer.append(DetailsTag.device.rawValue)
        appendString(device, to: &buffer)
    case .activation(let mode):
        buffer.append(DetailsTag.activation.rawValue)
        buffer.append(mode.rawValue)
    case .pass(let platform, let status, let reason):
        buffer.append(DetailsTag.pass.rawValue)
        buffer.append((status != nil ? PassFlag.status : 0) | (reason != nil ? PassFlag.reason : 0))
        buffer.append(platform.rawValue)
        if let status { buffer.append(status.rawValue) }
        if let reason { buffer.append(reason.rawValue) }
    case .seatStatus(let seat):
        buffer.append(DetailsTag.seatStatus.rawValue)
        let hasDisplayedLabel = seat.displayedLabel != seat.objectLabel
        var flags: UInt8 = 0
        if seat.orderId != nil { flags |= SeatFlag.orderId }
        if seat.extraDataJSON != nil { flags |= SeatFlag.extraData }
        if seat.holdToken != nil { flags |= SeatFlag.holdToken }
        if seat.originIP != nil { flags |= SeatFlag.originIP }
        if hasDisplayedLabel { flags |= SeatFlag.displayedLabel }
        buffer.append(flags)
        appendString(seat.objectLabel, to: &buffer)
        appendString(seat.status, to: &buffer)
        appendVarint(UInt64(seat.quantity), to: &buffer)
        buffer.append(seat.originType.rawValue)
        if let orderId = seat.orderId { appendString(orderId, to: &buffer) }
        if let extraData = seat.extraDataJSON { appendString(extraData, to: &buffer) }
        if let holdToken = seat.holdToken { appendString(holdToken, to: &buffer) }
        if let originIP = seat.originIP { appendString(originIP, to: &buffer) }
        if hasDisplayedLabel { appendString(seat.displayedLabel, to: &buffer) }
    case .chartObject(let label, let reason):
        buffer.append(DetailsTag.chartObject.rawValue)
        buffer.append(reason != nil ? ChartFlag.reason : 0)
        appendString(label, to: &buffer)
        if let reason { buffer.append(reason.rawValue) }
    }
    }

    /// Why `event` cannot be written, or nil if it can (`encodingProblem(of:)` of
    /// `event.event`, without making it): never, for what the feed decoder accepts.
    @inline(__always)
    public static func encodingProblem(of event: FeedEventBytes) -> String? {
        var deviceCount = 0
        if case .device(let device) = event.details { deviceCount = device.count }
        if (1...idBytesMax).contains(event.id.count) && (1...idBytesMax).contains(event.eventId.count)
            && event.ticketId.count <= idBytesMax && deviceCount <= stringBytesMax {
            return nil
        }
        return encodingProblem(of: event.event)
    }

    /// Appends the record of `event` with sequence 0 and no checksum yet: `seal` gives it its
    /// sequence and checksum. For a caller that encodes an event before it knows its sequence
    /// (the feed path encodes while the decoder's bytes are valid, and assigns sequences when
    /// it admits). Returns the record's byte count.
    ///
    /// - Precondition: `encodingProblem(of: event) == nil`.
    @discardableResult
    public static func encodeUnsealed(arrivalMilliseconds: Int64, event: FeedEventBytes, into buffer: inout [UInt8]) -> Int {
        let start = buffer.count
        let idCount = event.id.count, eventIdCount = event.eventId.count, ticketIdCount = event.ticketId.count
        let head = fixedPrefixBytes + varintByteCount(idCount) + idCount + varintByteCount(eventIdCount) + eventIdCount
            + varintByteCount(ticketIdCount) + ticketIdCount
        var deviceCount = 0
        if case .device(let device) = event.details { deviceCount = device.count }
        // The details are a few bytes, or a device id: one append of zeros for all of it,
        // then stores into it (see `encode(sequence:…)`).
        let tail: Int
        switch event.details {
        case .none: tail = 1
        case .deletion, .activation: tail = 2
        case .device: tail = 1 + varintByteCount(deviceCount) + deviceCount
        case .pass(_, let status, let reason): tail = 3 + (status != nil ? 1 : 0) + (reason != nil ? 1 : 0)
        }
        if buffer.capacity - start < head + tail + 64 { buffer.reserveCapacity(max(buffer.capacity * 2, start + head + tail + 64)) }
        buffer.append(contentsOf: repeatElement(0, count: head + tail))
        buffer.withUnsafeMutableBytes { bytes in
            var offset = start + WALRecord.headerByteCount
            bytes[offset] = WALRecord.formatVersion
            // Sequence (offset + 1) stays 0 until `seal`.
            bytes.storeBytes(of: UInt64(bitPattern: arrivalMilliseconds).littleEndian, toByteOffset: offset + 9, as: UInt64.self)
            bytes[offset + 17] = event.kind.rawValue
            bytes.storeBytes(of: UInt64(bitPattern: event.occurredAt).littleEndian, toByteOffset: offset + 18, as: UInt64.self)
            offset += 26
            offset = storeBytes(event.id, into: bytes, at: offset)
            offset = storeBytes(event.eventId, into: bytes, at: offset)
            offset = storeBytes(event.ticketId, into: bytes, at: offset)
            switch event.details {
            case .none:
                bytes[offset] = DetailsTag.none.rawValue
            case .deletion(let isPending):
                bytes[offset] = DetailsTag.deletion.rawValue
                bytes[offset + 1] = isPending ? 1 : 0
            case .device(let device):
                bytes[offset] = DetailsTag.device.rawValue
                _ = storeBytes(device, into: bytes, at: offset + 1)
            case .activation(let mode):
                bytes[offset] = DetailsTag.activation.rawValue
                bytes[offset + 1] = mode.rawValue
            case .pass(let platform, let status, let reason):
                bytes[offset] = DetailsTag.pass.rawValue
                bytes[offset + 1] = (status != nil ? PassFlag.status : 0) | (reason != nil ? PassFlag.reason : 0)
                bytes[offset + 2] = platform.rawValue
                var at = offset + 3
                if let status { bytes[at] = status.rawValue; at += 1 }
                if let reason { bytes[at] = reason.rawValue }
            }
        }
        let payloadCount = buffer.count - start - WALRecord.headerByteCount
        precondition(payloadCount <= WALRecord.payloadBytesMax, "WAL payload over its limit")
        buffer.withUnsafeMutableBytes { bytes in
            bytes.storeBytes(of: UInt32(payloadCount).littleEndian, toByteOffset: start, as: UInt32.self)
        }
        return buffer.count - start
    }

    /// Gives a record from `encodeUnsealed` its sequence and checksum. `record` is exactly
    /// the record's bytes, header included.
    public static func seal(_ record: UnsafeMutableRawBufferPointer, sequence: UInt64) {
        record.storeBytes(of: sequence.littleEndian, toByteOffset: headerByteCount + 1, as: UInt64.self)
        let checksum = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: record[headerByteCount...]))
        record.storeBytes(of: checksum.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    /// `encode(sequence:arrivalMilliseconds:event:into:)` of `event.event`, from its bytes.
    ///
    /// - Precondition: `encodingProblem(of: event) == nil`.
    public static func encode(sequence: UInt64, arrivalMilliseconds: Int64, event: FeedEventBytes, into buffer: inout [UInt8]) {
        let start = buffer.count
        encodeUnsealed(arrivalMilliseconds: arrivalMilliseconds, event: event, into: &buffer)
        buffer.withUnsafeMutableBytes { seal(UnsafeMutableRawBufferPointer(rebasing: $0[start...]), sequence: sequence) }
    }

    // MARK: Decoding

    /// Decodes one payload (the bytes after the 8-byte header), checking every field.
    /// Throws `WALRecord.DecodingError` with the offset in the payload of the first bad
    /// field. O(payload size).
    public init(payload: UnsafeRawBufferPointer) throws {
        var reader = PayloadReader(bytes: payload)
        let version = try reader.byte("format version")
        guard version == WALRecord.formatVersion else {
            throw DecodingError(offset: 0, reason: "unknown format version \(version)")
        }
        let sequence = try reader.fixed64("sequence")
        let arrival = Int64(bitPattern: try reader.fixed64("arrival time"))
        let kindOffset = reader.offset
        let kindRaw = try reader.byte("kind")
        guard let kind = FeedEventKind(rawValue: kindRaw) else {
            throw DecodingError(offset: kindOffset, reason: "unknown event kind \(kindRaw)")
        }
        let occurredAt = Int64(bitPattern: try reader.fixed64("occurredAt"))
        let id = try reader.string("id", 1...WALRecord.idBytesMax)
        let eventId = try reader.string("eventId", 1...WALRecord.idBytesMax)
        let ticketId = try reader.string("ticketId", 0...WALRecord.idBytesMax)
        let tagOffset = reader.offset
        let tagRaw = try reader.byte("details tag")
        guard let tag = DetailsTag(rawValue: tagRaw) else {
            throw DecodingError(offset: tagOffset, reason: "unknown details tag \(tagRaw)")
        }
        let strings = 0...WALRecord.stringBytesMax
        let details: FeedEvent.Details
        switch tag {
        case .none:
            details = .none
        case .deletion:
            let flagOffset = reader.offset
            switch try reader.byte("pending flag") {
            case 0: details = .deletion(isPending: false)
            case 1: details = .deletion(isPending: true)
            case let other: throw DecodingError(offset: flagOffset, reason: "pending flag \(other) is not 0 or 1")
            }
        case .device:
            details = .device(try reader.string("deviceId", strings))
        case .activation:
            details = .activation(try reader.enumeration("activation mode", ActivationMode.self))
        case .pass:
            let flags = try reader.flags("pass flags", allowed: PassFlag.status | PassFlag.reason)
            let platform = try reader.enumeration("pass platform", PassPlatform.self)
            let status = flags & PassFlag.status != 0 ? try reader.enumeration("pass status", PassStatus.self) : nil
            let reason = flags & PassFlag.reason != 0
                ? try reader.enumeration("invalidation reason", InvalidationReason.self) : nil
            details = .pass(platform, status, reason)
        case .seatStatus:
            let flags = try reader.flags("seat flags", allowed: SeatFlag.all)
            let objectLabel = try reader.string("objectLabel", strings)
            let status = try reader.string("status", strings)
            let quantityOffset = reader.offset
            let quantity = try reader.varint("quantity")
            guard quantity >= 1 && quantity <= UInt64(Int64.max) else {
                throw DecodingError(offset: quantityOffset, reason: "quantity \(quantity) out of range")
            }
            let originType = try reader.enumeration("origin type", SeatOriginType.self)
            let orderId = flags & SeatFlag.orderId != 0 ? try reader.string("orderId", strings) : nil
            let extraData = flags & SeatFlag.extraData != 0 ? try reader.string("extraData", strings) : nil
            let holdToken = flags & SeatFlag.holdToken != 0 ? try reader.string("holdToken", strings) : nil
            let originIP = flags & SeatFlag.originIP != 0 ? try reader.string("origin.ip", strings) : nil
            let displayedLabel = flags & SeatFlag.displayedLabel != 0
                ? try reader.string("displayedLabel", strings) : objectLabel
            details = .seatStatus(SeatStatusChange(
                objectLabel: objectLabel, status: status, quantity: Int64(quantity), orderId: orderId,
                extraDataJSON: extraData, holdToken: holdToken, displayedLabel: displayedLabel,
                originType: originType, originIP: originIP))
        case .chartObject:
            let flags = try reader.flags("chart flags", allowed: ChartFlag.reason)
            let label = try reader.string("objectLabel", strings)
            let reason = flags & ChartFlag.reason != 0
                ? try reader.enumeration("removal reason", ChartRemovalReason.self) : nil
            details = .chartObject(label: label, removalReason: reason)
        }
        guard reader.offset == payload.count else {
            throw DecodingError(offset: reader.offset, reason: "\(payload.count - reader.offset) trailing bytes")
        }
        self.init(sequence: sequence, arrivalMilliseconds: arrival,
                  event: FeedEvent(id: id, kind: kind, eventId: eventId, ticketId: ticketId,
                                   occurredAt: occurredAt, details: details))
    }

    /// Decodes one payload given as an array (see `init(payload: UnsafeRawBufferPointer)`).
    public init(payload: [UInt8]) throws {
        self = try payload.withUnsafeBytes { try WALRecord(payload: $0) }
    }

    /// A payload that does not decode: where in the payload, and why.
    public struct DecodingError: Error, CustomStringConvertible, Equatable {
        public var offset: Int
        public var reason: String
        public var description: String { "payload offset \(offset): \(reason)" }
    }
}

// MARK: - Wire constants

/// Which `FeedEvent.Details` case follows. Stable: never renumber.
enum DetailsTag: UInt8 {
    case none = 0, deletion = 1, device = 2, activation = 3, pass = 4, seatStatus = 5, chartObject = 6
}

enum PassFlag {
    static let status: UInt8 = 1
    static let reason: UInt8 = 2
}

enum SeatFlag {
    static let orderId: UInt8 = 1
    static let extraData: UInt8 = 2
    static let holdToken: UInt8 = 4
    static let originIP: UInt8 = 8
    static let displayedLabel: UInt8 = 16
    static let all: UInt8 = 31
}

enum ChartFlag {
    static let reason: UInt8 = 1
}

// MARK: - Encoding helpers

@inline(__always)
private func appendVarint(_ value: UInt64, to buffer: inout [UInt8]) {
    var rest = value
    while rest >= 0x80 {
        buffer.append(UInt8(truncatingIfNeeded: rest) | 0x80)
        rest >>= 7
    }
    buffer.append(UInt8(rest))
}

@inline(__always)
private func varintByteCount(_ value: Int) -> Int {
    var count = 1
    var rest = UInt64(value) >> 7
    while rest > 0 { count += 1; rest >>= 7 }
    return count
}

/// Writes `value` as a varint at `offset`; returns the offset after it. The room must be there.
@inline(__always)
private func storeVarint(_ value: Int, into bytes: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
    var offset = offset
    var rest = UInt64(value)
    while rest >= 0x80 {
        bytes[offset] = UInt8(truncatingIfNeeded: rest) | 0x80
        rest >>= 7
        offset += 1
    }
    bytes[offset] = UInt8(rest)
    return offset + 1
}

/// Writes `value` (`count` UTF-8 bytes) as a varint length and its bytes at `offset`; returns
/// the offset after it. The room must be there.
@inline(__always)
private func storeString(_ value: String, count: Int, into bytes: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
    let offset = storeVarint(count, into: bytes, at: offset)
    let target = offset
    let copied: Void? = value.utf8.withContiguousStorageIfAvailable { utf8 in
        if let source = utf8.baseAddress { bytes.baseAddress!.advanced(by: target).copyMemory(from: source, byteCount: utf8.count) }
    }
    if copied == nil {  // a string without contiguous UTF-8 (bridged): byte by byte
        for (index, byte) in value.utf8.enumerated() { bytes[target + index] = byte }
    }
    return offset + count
}

/// Writes `value` as a varint length and its bytes at `offset`; returns the offset after it.
/// The room must be there.
@inline(__always)
private func storeBytes(_ value: UnsafeRawBufferPointer, into bytes: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
    let offset = storeVarint(value.count, into: bytes, at: offset)
    if let source = value.baseAddress, value.count > 0 {
        bytes.baseAddress!.advanced(by: offset).copyMemory(from: source, byteCount: value.count)
    }
    return offset + value.count
}

@inline(__always)
private func appendString(_ value: String, to buffer: inout [UInt8]) {
    var value = value
    value.withUTF8 { utf8 in
        appendVarint(UInt64(utf8.count), to: &buffer)
        buffer.append(contentsOf: utf8)
    }
}

// MARK: - Decoding helpers

/// A bounds-checked cursor over a payload. Every read names its field, so an error says what
/// was being read and where.
struct PayloadReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private func need(_ count: Int, _ field: String) throws {
        guard bytes.count - offset >= count else {
            throw WALRecord.DecodingError(offset: offset, reason: "payload ends inside \(field)")
        }
    }

    mutating func byte(_ field: String) throws -> UInt8 {
        try need(1, field)
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func fixed64(_ field: String) throws -> UInt64 {
        try need(8, field)
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    mutating func varint(_ field: String) throws -> UInt64 {
        let start = offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.byte(field)
            let group = UInt64(byte & 0x7F)
            // The tenth byte may carry only the top bit of a UInt64.
            guard shift < 63 || group <= 1 else {
                throw WALRecord.DecodingError(offset: start, reason: "\(field) varint overflows 64 bits")
            }
            value |= group << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func flags(_ field: String, allowed: UInt8) throws -> UInt8 {
        let start = offset
        let value = try byte(field)
        guard value & ~allowed == 0 else {
            throw WALRecord.DecodingError(offset: start, reason: "unknown bits in \(field) 0x\(String(value, radix: 16))")
        }
        return value
    }

    mutating func enumeration<E: RawRepresentable>(_ field: String, _ type: E.Type) throws -> E where E.RawValue == UInt8 {
        let start = offset
        let raw = try byte(field)
        guard let value = E(rawValue: raw) else {
            throw WALRecord.DecodingError(offset: start, reason: "unknown \(field) \(raw)")
        }
        return value
    }

    mutating func string(_ field: String, _ allowed: ClosedRange<Int>) throws -> String {
        let start = offset
        let length = try varint(field + " length")
        guard length <= UInt64(allowed.upperBound), allowed.contains(Int(length)) else {
            throw WALRecord.DecodingError(
                offset: start,
                reason: "\(field) length \(length) outside \(allowed.lowerBound)–\(allowed.upperBound)")
        }
        let count = Int(length)
        try need(count, field)
        let utf8 = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        // `String(decoding:)` would repair bad bytes into U+FFFD silently: check first.
        // (Hand-written because `String(validating:as:)` is unspecialized and several times
        // slower on this path.)
        guard isValidUTF8(utf8) else {
            throw WALRecord.DecodingError(offset: offset, reason: "\(field) is not valid UTF-8")
        }
        offset += count
        return String(decoding: utf8.assumingMemoryBound(to: UInt8.self), as: UTF8.self)
    }
}

/// Whether `bytes` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
/// above U+10FFFF). O(n), eight ASCII bytes per step.
func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    let count = bytes.count
    var index = 0
    @inline(__always) func isContinuation(_ at: Int) -> Bool { at < count && bytes[at] & 0xC0 == 0x80 }
    @inline(__always) func isIn(_ at: Int, _ range: ClosedRange<UInt8>) -> Bool { at < count && range.contains(bytes[at]) }
    while index < count {
        if count - index >= 8,
           bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
            index += 8
            continue
        }
        let lead = bytes[index]
        switch lead {
        case 0x00...0x7F:
            index += 1
        case 0xC2...0xDF:
            guard isContinuation(index + 1) else { return false }
            index += 2
        case 0xE0:
            guard isIn(index + 1, 0xA0...0xBF), isContinuation(index + 2) else { return false }
            index += 3
        case 0xE1...0xEC, 0xEE...0xEF:
            guard isContinuation(index + 1), isContinuation(index + 2) else { return false }
            index += 3
        case 0xED:
            guard isIn(index + 1, 0x80...0x9F), isContinuation(index + 2) else { return false }
            index += 3
        case 0xF0:
            guard isIn(index + 1, 0x90...0xBF), isContinuation(index + 2), isContinuation(index + 3) else { return false }
            index += 4
        case 0xF1...0xF3:
            guard isContinuation(index + 1), isContinuation(index + 2), isContinuation(index + 3) else { return false }
            index += 4
        case 0xF4:
            guard isIn(index + 1, 0x80...0x8F), isContinuation(index + 2), isContinuation(index + 3) else { return false }
            index += 4
        default:
            return false
        }
    }
    return true
}
