/// A validated ticket or pass event as the decoder hands it out, before any String is made:
/// its strings are still views of the decoder's buffers, valid only during the call that
/// hands it out (`FeedEventSink.accept`). A plain value (no reference counting to copy it). What the feed path needs of a ticket or pass event — the
/// duplicate-check key, the ticket's fingerprint, the device hash and the WAL record — is all
/// made from these bytes, so such an event costs no heap object on its way in (only its
/// show's id becomes a String, and the server shares one per show). `event` makes the
/// `FeedEvent` it stands for.
///
/// Every rule of SPEC §2 holds for it, as for a `FeedEvent`.
public struct FeedEventBytes {
    public var kind: FeedEventKind
    /// Milliseconds since the epoch.
    public var occurredAt: Int64
    /// 1–128 bytes each.
    public var id: UnsafeRawBufferPointer
    public var eventId: UnsafeRawBufferPointer
    /// 1–128 bytes.
    public var ticketId: UnsafeRawBufferPointer
    public var details: Details

    public init(kind: FeedEventKind, occurredAt: Int64, id: UnsafeRawBufferPointer, eventId: UnsafeRawBufferPointer,
                ticketId: UnsafeRawBufferPointer, details: Details) {
        self.kind = kind
        self.occurredAt = occurredAt
        self.id = id
        self.eventId = eventId
        self.ticketId = ticketId
        self.details = details
    }

    /// `FeedEvent.Details` of ticket and pass kinds, with the device still bytes.
    public enum Details {
        case none
        case deletion(isPending: Bool)
        case device(UnsafeRawBufferPointer)
        case activation(ActivationMode)
        case pass(PassPlatform, PassStatus?, InvalidationReason?)
    }

    /// The event these bytes stand for (makes its Strings).
    public var event: FeedEvent {
        let made: FeedEvent.Details
        switch details {
        case .none: made = .none
        case .deletion(let isPending): made = .deletion(isPending: isPending)
        case .device(let device): made = .device(String(decoding: device, as: UTF8.self))
        case .activation(let mode): made = .activation(mode)
        case .pass(let platform, let status, let reason): made = .pass(platform, status, reason)
        }
        return FeedEvent(id: String(decoding: id, as: UTF8.self), kind: kind,
                         eventId: String(decoding: eventId, as: UTF8.self),
                         ticketId: String(decoding: ticketId, as: UTF8.self), occurredAt: occurredAt, details: made)
    }

    /// The history argument byte and device hash (`FeedEvent.historyArgument`).
    var historyArgument: (argument: UInt8, device: UInt64) {
        switch details {
        case .deletion(let isPending): return (isPending ? 1 : 0, 0)
        case .device(let device): return (0, Hash128.hash(device).low)
        case .activation(let mode): return (mode.rawValue, 0)
        case .pass(let platform, let status, let reason):
            return (PassArgument(platform: platform, status: status, reason: reason).rawValue, 0)
        case .none: return (0, 0)
        }
    }
}

/// Receives a feed body's events from the decoder (`FeedDecoder.decode(_:format:into:)`),
/// one call per event, in request order.
public protocol FeedEventSink: AnyObject {
    /// A ticket or pass event that passed every rule; `index` is its 0-based position in the
    /// request. The bytes are valid only during this call.
    func accept(_ event: FeedEventBytes, index: Int)
    /// A seat or chart event that passed every rule, made whole (the status-change log keeps
    /// its strings anyway).
    func accept(_ event: FeedEvent, index: Int)
    /// An event that did not: `id` when it was a valid string (1–128 bytes), and a short
    /// message a person can act on.
    func reject(index: Int, id: String?, error: String)
}

/// Interns show ids: a feed's events name a handful of shows, and each ticket event's
/// `PreparedEvent` carries its show's id; made once and shared, it costs a retain instead of
/// an allocation and a free per event. Holds the last `capacity` distinct ids (a show id
/// seen again after that is made again: correct, only dearer).
public struct EventIdInterner {
    private var strings: [String] = []
    private var tags: [UInt64] = []
    private var next = 0
    private let capacity: Int

    public init(capacity: Int = 16) {
        self.capacity = capacity
        strings.reserveCapacity(capacity)
        tags.reserveCapacity(capacity)
    }

    /// The String of `bytes` (valid UTF-8).
    public mutating func string(_ bytes: UnsafeRawBufferPointer) -> String {
        let tag = Self.tag(bytes)
        for index in tags.indices where tags[index] == tag {
            let string = strings[index]
            let isEqual = string.utf8.withContiguousStorageIfAvailable { utf8 in
                utf8.count == bytes.count && (bytes.count == 0 || memcmpEqual(UnsafeRawPointer(utf8.baseAddress!), bytes.baseAddress!, bytes.count))
            } ?? (string == String(decoding: bytes, as: UTF8.self))
            if isEqual { return string }
        }
        let string = String(decoding: bytes, as: UTF8.self)
        if strings.count < capacity {
            strings.append(string)
            tags.append(tag)
        } else {
            strings[next] = string
            tags[next] = tag
            next = (next + 1) % capacity
        }
        return string
    }

    @inline(__always)
    private static func tag(_ bytes: UnsafeRawBufferPointer) -> UInt64 { EventIdTag.of(bytes) }
}

/// A cheap fingerprint of a show id (its length and first and last 8 bytes), for skipping most
/// comparisons of ids that differ: a feed interleaves a handful of shows, and finding an
/// event's ledger compared its id with several others (Swift's String comparison of unequal
/// strings: ~250 instructions per event). Equal ids have equal tags; unequal ones usually not.
public enum EventIdTag {
    @inline(__always)
    public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let count = bytes.count
        guard count >= 8 else {
            var word: UInt64 = 0
            for index in 0..<count { word = word << 8 | UInt64(bytes[index]) }
            return word ^ UInt64(count) << 56
        }
        let first = bytes.loadUnaligned(as: UInt64.self)
        let last = bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        return first ^ (last &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(count)
    }

    public static func of(_ string: String) -> UInt64 {
        if let tag = string.utf8.withContiguousStorageIfAvailable({ of(UnsafeRawBufferPointer($0)) }) { return tag }
        var string = string
        return string.withUTF8 { of(UnsafeRawBufferPointer($0)) }
    }
}

@inline(__always)
private func memcmpEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    var index = 0
    while index + 8 <= count {
        if a.loadUnaligned(fromByteOffset: index, as: UInt64.self) != b.loadUnaligned(fromByteOffset: index, as: UInt64.self) { return false }
        index += 8
    }
    while index < count {
        if a.load(fromByteOffset: index, as: UInt8.self) != b.load(fromByteOffset: index, as: UInt8.self) { return false }
        index += 1
    }
    return true
}
