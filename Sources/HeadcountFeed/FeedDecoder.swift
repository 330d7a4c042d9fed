// Feed decoding: request bytes -> validated FeedEvent values (SPEC §2 and §5).
//
// simdjson (through the CFeedJSON bridge) parses and walks each event object once, filling a
// plain C struct with views of the fields the feed knows; this file applies the feed's rules
// and builds `FeedEvent`s. No Foundation, no JSONDecoder: this runs for every event.
import CFeedJSON
#if canImport(Glibc)
import Glibc
#endif
import HeadcountCore

/// How a `POST /v1/feed` body is framed.
public enum FeedBodyFormat: Sendable, Equatable {
    /// `application/json`: one JSON value, an event object or an array of them.
    case json
    /// `application/x-ndjson` (or no Content-Type): one event per line.
    case ndjson
}

public struct FeedDecoderLimits: Sendable, Equatable {
    /// More events than this in one request fails the whole request.
    public var eventsPerRequestMax = 100_000
    /// The largest `extraData` accepted, measured as minified JSON text.
    public var extraDataBytesMax = 4096

    public init(eventsPerRequestMax: Int = 100_000, extraDataBytesMax: Int = 4096) {
        self.eventsPerRequestMax = eventsPerRequestMax
        self.extraDataBytesMax = extraDataBytesMax
    }
}

/// The fate of one event of a request.
public enum FeedItem: Equatable, Sendable {
    case event(FeedEvent)
    /// `index`: the event's 0-based position in the request; `id`: its `id` when that is a
    /// valid string (1–128 bytes), else nil; `error`: a short message a person can act on.
    case rejected(index: Int, id: String?, error: String)
}

/// A body that fails as a whole: nothing in it is accepted.
public enum FeedBodyError: Error, Equatable, Sendable {
    /// An `application/json` body that does not parse (invalid UTF-8 included), or whose
    /// top-level value is not an object or an array.
    case invalidJSON(String)
    /// More than `FeedDecoderLimits.eventsPerRequestMax` events.
    case tooManyEvents(limit: Int)
}

/// Decodes feed request bodies. Reusable (keeps the simdjson parser and its buffers between
/// calls); not thread-safe: use one per thread.
public final class FeedDecoder {
    public let limits: FeedDecoderLimits
    private let handle: OpaquePointer
    /// Parser buffers sized for bodies up to this many bytes are kept between calls; larger
    /// ones are released after the call (simdjson needs ~10x the body).
    private static let retainedBufferBytes = 1 << 20

    /// `streamsNDJSON`: parse an NDJSON body as one stream of documents first (one SIMD
    /// pass over the whole body instead of one per line), line by line from the first line
    /// whose document is not exactly that line's value. The outcomes are the same either way
    /// (`FeedDecoderTests.testStreamedNDJSONDecodesAsLineByLine`); false is for that comparison.
    public init(limits: FeedDecoderLimits = .init(), streamsNDJSON: Bool = true) {
        guard let handle = hc_feed_decoder_new() else { fatalError("FeedDecoder: out of memory") }
        self.handle = handle
        self.limits = limits
        hc_feed_set_streaming(handle, streamsNDJSON ? 1 : 0)
    }

    deinit { hc_feed_decoder_free(handle) }

    /// One item per event, in request order; `index` = 0-based position of the event in the
    /// request (blank NDJSON lines take no index).
    public func decode(_ body: [UInt8], format: FeedBodyFormat) -> Result<[FeedItem], FeedBodyError> {
        body.withUnsafeBytes { decode($0, format: format) }
    }

    /// One item per event, in request order; `index` = 0-based position of the event in the
    /// request (blank NDJSON lines take no index). `body` is copied; it need not outlive the call.
    public func decode(_ body: UnsafeRawBufferPointer, format: FeedBodyFormat) -> Result<[FeedItem], FeedBodyError> {
        let collector = FeedItemCollector()
        collector.items.reserveCapacity(min(limits.eventsPerRequestMax, body.count / 128 + 1))
        if let error = decode(body, format: format, into: collector) { return .failure(error) }
        return .success(collector.items)
    }

    /// Hands the body's events to `sink`, in request order, without making their Strings
    /// (`FeedEventBytes`); nil when done, or the whole body's failure. On a failure found
    /// part-way (more events than the limit in an NDJSON body) `sink` has had the first
    /// events: the caller must drop them.
    public func decode(_ body: UnsafeRawBufferPointer, format: FeedBodyFormat, into sink: FeedEventSink) -> FeedBodyError? {
        defer { hc_feed_end(handle, Self.retainedBufferBytes) }
        switch begin(body, format: format) {
        case .success: break
        case .failure(let error): return error
        }
        let limit = limits.eventsPerRequestMax
        var event = hc_feed_event()
        var index = 0
        while hc_feed_next(handle, &event) != 0 {
            if index >= limit { return .tooManyEvents(limit: limit) }
            emit(&event, index: index, to: sink)
            index += 1
        }
        return nil
    }

    // MARK: - Incremental decoding

    /// Begins decoding `body` a few events at a time (`nextItems`), for a caller that must
    /// not spend a whole large body's decoding at once (the event loop, between queries).
    ///
    /// Only a body that can no longer fail as a whole is decoded this way, since its first
    /// events are admitted before its last ones are decoded: `.success` means it has begun
    /// and every later outcome is per event; `.failure` is the whole body's failure, found
    /// here; nil means that cannot be known before the end (an NDJSON body with more lines
    /// than the event limit, or an array too large to count): use `decode` instead. `body`
    /// is copied. Until `endItems`, this decoder must not be used for another body.
    public func beginItems(_ body: UnsafeRawBufferPointer, format: FeedBodyFormat) -> Result<Void, FeedBodyError>? {
        let limit = limits.eventsPerRequestMax
        if format == .ndjson {
            // Every event is a line: at most (newlines + 1) events.
            guard var cursor = body.baseAddress else { return nil }
            let end = cursor + body.count
            var lines = 1
            while let newline = memchr(cursor, 0x0A, end - cursor) {
                lines += 1
                if lines > limit { return nil }
                cursor = UnsafeRawPointer(newline) + 1
            }
        }
        itemsDecoded = 0
        switch begin(body, format: format) {
        case .failure(let error):
            endItems()
            return .failure(error)
        case .success(let info) where format == .json && info.event_count < 0:
            endItems()  // too many to count: only the end would tell
            return nil
        case .success:
            return .success(())
        }
    }

    /// Parses the body (JSON) or takes it (NDJSON) into the decoder: the whole body's
    /// failure — invalid JSON, not an object or array, more events than the limit — or its
    /// info (`event_count` -1 when unknown). The caller ends it (`hc_feed_end`) either way.
    private func begin(_ body: UnsafeRawBufferPointer, format: FeedBodyFormat) -> Result<hc_feed_body_info, FeedBodyError> {
        var info = hc_feed_body_info()
        let cFormat: hc_feed_format = format == .json ? .HC_FEED_FORMAT_JSON : .HC_FEED_FORMAT_NDJSON
        switch hc_feed_begin(handle, body.baseAddress, body.count, cFormat, &info) {
        case .HC_BODY_OK:
            break
        case .HC_BODY_INVALID_JSON:
            return .failure(.invalidJSON(Self.parseErrorMessage(info.error_code)))
        case .HC_BODY_NOT_CONTAINER:
            return .failure(.invalidJSON("the body must be a JSON object or an array of objects"))
        }
        let limit = limits.eventsPerRequestMax
        if info.event_count > Int64(limit) { return .failure(.tooManyEvents(limit: limit)) }
        return .success(info)
    }

    /// Appends the next events (at most `max`) of the body begun with `beginItems` to
    /// `items`, indexed from where the last call stopped; true once the body is exhausted.
    public func nextItems(into items: inout [FeedItem], max: Int) -> Bool {
        let collector = FeedItemCollector()
        swap(&collector.items, &items)
        defer { swap(&collector.items, &items) }
        return nextItems(into: collector, max: max)
    }

    /// `nextItems(into:max:)`, handing the events to `sink` (`FeedEventBytes`).
    public func nextItems(into sink: FeedEventSink, max: Int) -> Bool {
        var event = hc_feed_event()
        for _ in 0..<max {
            guard hc_feed_next(handle, &event) != 0 else { return true }
            emit(&event, index: itemsDecoded, to: sink)
            itemsDecoded += 1
        }
        return false
    }

    /// Ends an incremental decoding (releasing an oversized body's buffers).
    public func endItems() {
        hc_feed_end(handle, Self.retainedBufferBytes)
    }
    private var itemsDecoded = 0

    // MARK: - Validation

    private static func parseErrorMessage(_ code: Int32) -> String {
        "invalid JSON: " + String(cString: hc_feed_error_message(code))
    }

    private func emit(_ e: inout hc_feed_event, index: Int, to sink: FeedEventSink) {
        switch e.outcome {
        case .HC_EVENT_OBJECT:
            break
        case .HC_EVENT_INVALID_JSON:
            return sink.reject(index: index, id: nil, error: Self.parseErrorMessage(e.error_code))
        case .HC_EVENT_NOT_OBJECT:
            return sink.reject(index: index, id: nil, error: "event must be a JSON object")
        }
        switch e.id.type {
        case .HC_JSON_STRING:
            guard e.id.len >= 1 && e.id.len <= 128 else {
                return sink.reject(index: index, id: nil, error: "id must be 1-128 bytes")
            }
        case .HC_JSON_ABSENT, .HC_JSON_NULL:
            return sink.reject(index: index, id: nil, error: "missing field: id")
        default:
            return sink.reject(index: index, id: nil, error: "id must be a string")
        }
        do {
            switch try validated(&e) {
            case .bytes(let event): sink.accept(event, index: index)
            case .made(let event): sink.accept(event, index: index)
            }
        } catch {
            sink.reject(index: index, id: e.id.string, error: error.message)
        }
    }

    /// A valid event: a ticket or pass event as bytes, a seat or chart event made whole.
    private enum Validated {
        case bytes(FeedEventBytes)
        case made(FeedEvent)
    }

    private func validated(_ e: inout hc_feed_event) throws(Rejection) -> Validated {
        let kind: FeedEventKind
        switch e.type.type {
        case .HC_JSON_STRING:
            guard let known = Self.kind(e.type) else {
                throw Rejection("unknown type: " + e.type.prefix(64))
            }
            kind = known
        case .HC_JSON_ABSENT, .HC_JSON_NULL: throw Rejection("missing field: type")
        default: throw Rejection("type must be a string")
        }
        let eventId = try e.event_id.requiredBytes("eventId", max: 128)
        let ticketId = kind.isTicketOrPass ? try e.ticket_id.requiredBytes("ticketId", max: 128) : UnsafeRawBufferPointer(start: nil, count: 0)
        let id = e.id.bytes

        let occurredAt: Int64
        switch e.occurred_at.type {
        case .HC_JSON_STRING:
            guard let ms = Timestamp.parseMilliseconds(e.occurred_at.bytes) else {
                throw Rejection("invalid occurredAt: must be RFC 3339")
            }
            occurredAt = ms
        case .HC_JSON_ABSENT, .HC_JSON_NULL: throw Rejection("missing field: occurredAt")
        default: throw Rejection("occurredAt must be a string")
        }

        let details: FeedEventBytes.Details
        /// `FeedEvent` of a seat or chart event.
        func made(_ details: FeedEvent.Details) -> Validated {
            .made(FeedEvent(id: String(decoding: id, as: UTF8.self), kind: kind, eventId: String(decoding: eventId, as: UTF8.self),
                            ticketId: "", occurredAt: occurredAt, details: details))
        }
        switch kind {
        case .ticketCreated, .ticketRestored, .transferInitiated, .transferAccepted,
             .transferCancelled, .ticketControlled:
            details = .none
        case .ticketDeleted:
            switch e.pending.type {
            case .HC_JSON_ABSENT, .HC_JSON_NULL: details = .deletion(isPending: false)
            case .HC_JSON_BOOL: details = .deletion(isPending: e.pending.integer != 0)
            default: throw Rejection("pending must be a boolean")
            }
        case .ticketDownloaded, .ticketLoggedOut:
            details = .device(try e.device_id.requiredBytes("deviceId", max: 128))
        case .ticketActivated:
            let mode = e.mode
            if mode.isMissing { throw Rejection("missing field: mode") }
            guard let value = Self.activationMode(mode) else {
                throw Rejection("mode must be online, offline, manual or bluetooth")
            }
            details = .activation(value)
        case .passAdded, .passSyncAdded, .passRemoved, .passSyncRemoved, .passControlled,
             .passInvalidated, .passTransferred, .passStatusChanged:
            details = try Self.passDetails(&e, kind: kind)
        case .seatStatusChanged:
            return made(.seatStatus(try seatStatus(&e)))
        case .chartObjectRemoved:
            let label = try e.object_label.requiredString("objectLabel", max: 256)
            let reason = e.reason
            if reason.isMissing { throw Rejection("missing field: reason") }
            guard let value = Self.removalReason(reason) else {
                throw Rejection("reason must be RENAMED_OR_DELETED, SWITCHED_TO_BOOK_WHOLE_TABLE or SWITCHED_TO_BOOK_BY_SEAT")
            }
            return made(.chartObject(label: label, removalReason: value))
        case .chartObjectRestored:
            return made(.chartObject(label: try e.object_label.requiredString("objectLabel", max: 256), removalReason: nil))
        }
        return .bytes(FeedEventBytes(kind: kind, occurredAt: occurredAt, id: id, eventId: eventId, ticketId: ticketId,
                                     details: details))
    }

    private static func passDetails(_ e: inout hc_feed_event, kind: FeedEventKind) throws(Rejection) -> FeedEventBytes.Details {
        let platformValue = e.platform
        if platformValue.isMissing { throw Rejection("missing field: platform") }
        let platform: PassPlatform
        if platformValue.equals("ios") {
            platform = .ios
        } else if platformValue.equals("android") {
            platform = .android
        } else {
            throw Rejection("platform must be ios or android")
        }
        if platform == .android && (kind == .passSyncAdded || kind == .passSyncRemoved) {
            throw Rejection(kind.typeName + " is ios only")
        }

        var status: PassStatus? = nil
        let statusValue = e.pass_status
        if statusValue.isMissing {
            if kind == .passStatusChanged { throw Rejection("missing field: passStatus") }
        } else {
            guard let value = passStatus(statusValue) else {
                throw Rejection("passStatus must be ACTIVE, INACTIVE, EXPIRED or DELETED")
            }
            status = value
        }

        var reason: InvalidationReason? = nil
        if kind == .passInvalidated && !e.reason.isMissing {
            let r = e.reason
            if r.equals("cancellation") {
                reason = .cancellation
            } else if r.equals("deletion") {
                reason = .deletion
            } else if r.equals("reprint") {
                reason = .reprint
            } else {
                throw Rejection("reason must be cancellation, deletion or reprint")
            }
        }
        return .pass(platform, status, reason)
    }

    private func seatStatus(_ e: inout hc_feed_event) throws(Rejection) -> SeatStatusChange {
        let objectLabel = try e.object_label.requiredString("objectLabel", max: 256)
        let status = try e.status.requiredString("status", max: 256)

        var quantity: Int64 = 1
        let q = e.quantity
        if !q.isMissing {
            guard q.type == .HC_JSON_INT64, q.integer >= 1, q.integer <= 1_000_000 else {
                throw Rejection("quantity must be an integer from 1 to 1000000")
            }
            quantity = q.integer
        }

        let orderId = try e.order_id.optionalString("orderId", max: 256)
        let holdToken = try e.hold_token.optionalString("holdToken", max: 256)

        var extraData: String? = nil
        let x = e.extra_data
        switch x.type {
        case .HC_JSON_ABSENT, .HC_JSON_NULL:
            break
        case .HC_JSON_OBJECT:
            guard x.len <= limits.extraDataBytesMax else {
                throw Rejection("extraData must be at most \(limits.extraDataBytesMax) bytes as minified JSON")
            }
            extraData = x.string
        default:
            throw Rejection("extraData must be a JSON object")
        }

        var displayedLabel: String? = nil
        if !e.displayed_label.isMissing {
            displayedLabel = try e.displayed_label.requiredString("displayedLabel", max: 256)
        }

        switch e.origin.type {
        case .HC_JSON_OBJECT: break
        case .HC_JSON_ABSENT, .HC_JSON_NULL: throw Rejection("missing field: origin")
        default: throw Rejection("origin must be an object")
        }
        let t = e.origin_type
        if t.isMissing { throw Rejection("missing field: origin.type") }
        let originType: SeatOriginType
        if t.equals("API_CALL") {
            originType = .apiCall
        } else if t.equals("HELD_BY_USER") {
            originType = .heldByUser
        } else if t.equals("HOLD_RELEASED_BY_USER") {
            originType = .holdReleasedByUser
        } else if t.equals("HOLD_EXPIRED") {
            originType = .holdExpired
        } else {
            throw Rejection("origin.type must be API_CALL, HELD_BY_USER, HOLD_RELEASED_BY_USER or HOLD_EXPIRED")
        }
        let ip = originType == .apiCall ? try e.origin_ip.optionalString("origin.ip", max: 256) : nil

        return SeatStatusChange(objectLabel: objectLabel, status: status, quantity: quantity,
                                orderId: orderId, extraDataJSON: extraData, holdToken: holdToken,
                                displayedLabel: displayedLabel, originType: originType, originIP: ip)
    }

    private static func activationMode(_ v: hc_value) -> ActivationMode? {
        if v.equals("online") { return .online }
        if v.equals("offline") { return .offline }
        if v.equals("manual") { return .manual }
        if v.equals("bluetooth") { return .bluetooth }
        return nil
    }

    private static func passStatus(_ v: hc_value) -> PassStatus? {
        if v.equals("ACTIVE") { return .active }
        if v.equals("INACTIVE") { return .inactive }
        if v.equals("EXPIRED") { return .expired }
        if v.equals("DELETED") { return .deleted }
        return nil
    }

    private static func removalReason(_ v: hc_value) -> ChartRemovalReason? {
        if v.equals("RENAMED_OR_DELETED") { return .renamedOrDeleted }
        if v.equals("SWITCHED_TO_BOOK_WHOLE_TABLE") { return .switchedToBookWholeTable }
        if v.equals("SWITCHED_TO_BOOK_BY_SEAT") { return .switchedToBookBySeat }
        return nil
    }

    /// The kind of a `type` string value, by length first, without building a String.
    private static func kind(_ v: hc_value) -> FeedEventKind? {
        switch v.len {
        case 10:
            if v.equals("pass.added") { return .passAdded }
        case 12:
            if v.equals("pass.removed") { return .passRemoved }
        case 14:
            if v.equals("ticket.created") { return .ticketCreated }
            if v.equals("ticket.deleted") { return .ticketDeleted }
            if v.equals("pass.syncAdded") { return .passSyncAdded }
        case 15:
            if v.equals("ticket.restored") { return .ticketRestored }
            if v.equals("pass.controlled") { return .passControlled }
        case 16:
            if v.equals("ticket.loggedOut") { return .ticketLoggedOut }
            if v.equals("ticket.activated") { return .ticketActivated }
            if v.equals("pass.syncRemoved") { return .passSyncRemoved }
            if v.equals("pass.invalidated") { return .passInvalidated }
            if v.equals("pass.transferred") { return .passTransferred }
        case 17:
            if v.equals("ticket.downloaded") { return .ticketDownloaded }
            if v.equals("transfer.accepted") { return .transferAccepted }
            if v.equals("ticket.controlled") { return .ticketControlled }
        case 18:
            if v.equals("transfer.initiated") { return .transferInitiated }
            if v.equals("transfer.cancelled") { return .transferCancelled }
            if v.equals("pass.statusChanged") { return .passStatusChanged }
            if v.equals("seat.statusChanged") { return .seatStatusChanged }
        case 19:
            if v.equals("chart.objectRemoved") { return .chartObjectRemoved }
        case 20:
            if v.equals("chart.objectRestored") { return .chartObjectRestored }
        default:
            break
        }
        return nil
    }
}

/// Makes the `FeedItem`s of a body (`FeedDecoder.decode(_:format:)`).
final class FeedItemCollector: FeedEventSink {
    var items: [FeedItem] = []

    func accept(_ event: FeedEventBytes, index: Int) { items.append(.event(event.event)) }

    func accept(_ event: FeedEvent, index: Int) { items.append(.event(event)) }

    func reject(index: Int, id: String?, error: String) { items.append(.rejected(index: index, id: id, error: error)) }
}

/// Why one event is rejected.
struct Rejection: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

extension hc_value {
    /// Absent, or JSON null (which counts as absent everywhere in the feed).
    @inline(__always)
    var isMissing: Bool { type == .HC_JSON_ABSENT || type == .HC_JSON_NULL }

    @inline(__always)
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: ptr, count: len) }

    /// The bytes as a String (simdjson validated them as UTF-8).
    @inline(__always)
    var string: String { String(decoding: bytes, as: UTF8.self) }

    /// At most `maxBytes` leading bytes as a String (for echoing bad values in messages).
    func prefix(_ maxBytes: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: ptr, count: Swift.min(len, maxBytes)), as: UTF8.self)
    }

    /// A string value equal to `literal`, byte for byte.
    @inline(__always)
    func equals(_ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard type == .HC_JSON_STRING, len == n else { return false }
        let a = bytes, b = literal.utf8Start
        var i = 0
        while i < n {
            if a[i] != b[i] { return false }
            i &+= 1
        }
        return true
    }

    /// A required string of 1...max bytes, as its bytes.
    @inline(__always)
    func requiredBytes(_ name: String, max: Int) throws(Rejection) -> UnsafeRawBufferPointer {
        switch type {
        case .HC_JSON_STRING:
            guard len >= 1 && len <= max else { throw Rejection("\(name) must be 1-\(max) bytes") }
            return bytes
        case .HC_JSON_ABSENT, .HC_JSON_NULL:
            throw Rejection("missing field: " + name)
        default:
            throw Rejection(name + " must be a string")
        }
    }

    /// A required string of 1...max bytes.
    @inline(__always)
    func requiredString(_ name: String, max: Int) throws(Rejection) -> String {
        String(decoding: try requiredBytes(name, max: max), as: UTF8.self)
    }

    /// An optional string of 0...max bytes; JSON null is absent.
    @inline(__always)
    func optionalString(_ name: String, max: Int) throws(Rejection) -> String? {
        switch type {
        case .HC_JSON_STRING:
            guard len <= max else { throw Rejection("\(name) must be a string of at most \(max) bytes") }
            return string
        case .HC_JSON_ABSENT, .HC_JSON_NULL:
            return nil
        default:
            throw Rejection("\(name) must be a string of at most \(max) bytes")
        }
    }
}
