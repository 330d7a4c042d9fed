import CLibUV
import HeadcountCore
import HeadcountFeed
import HeadcountStorage
import Logging

/// Routing and the endpoints. Checks run in one order everywhere: the key (401), the
/// parameters (400), the key's rights (403), then existence (404).
extension HeadcountServer: HTTPRequestHandler {
    /// Routes on the path's bytes. No closure, String or object is made for a request that
    /// succeeds (the feed's hot path); the endpoints get non-escaping `respond` and `fail`.
    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        func respond(_ response: HTTPResponse) {
            send(response, to: responder, method: request.method, path: request.path)
        }
        func fail(_ error: APIError) { respond(error.response(requestId: request.requestId)) }

        if request.pathEquals("/v1/feed") {
            guard request.method == .post else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "POST")) }
            handleFeed(request, responder: responder, fail: fail)
        } else if request.pathEquals("/v1/event-statistics") {
            guard request.method == .get else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "GET")) }
            handleEventStatistics(request, respond: respond, fail: fail)
        } else if request.pathEquals("/healthz") {
            guard request.method == .get || request.method == .head else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "GET")) }
            respond(HTTPResponse(status: 200, contentType: .json, body: Array(#"{"status":"ok"}"#.utf8)))
        } else if request.pathEquals("/metrics") {
            guard request.method == .get else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "GET")) }
            metrics.update(server: self)
            respond(HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                 body: registry.emitToBuffer()))
        } else if request.pathHasPrefix("/events/") {
            guard request.method == .get else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "GET")) }
            handleStatusChanges(request, respond: respond, fail: fail)
        } else {
            fail(.routeNotFound(request.path))
        }
    }

    /// Counts a response and sends it; a failure is logged with the request's method and path
    /// (made into Strings only then).
    func send(_ response: HTTPResponse, to responder: HTTPResponder, method: HTTPMethod, path: @autoclosure () -> String) {
        metrics.recordResponse(status: response.status)
        if response.status >= 400 {
            logger.info("request failed", metadata: [
                "requestId": "\(responder.requestId.description)", "method": "\(method)", "path": "\(path())",
                "status": "\(response.status)",
            ])
        }
        responder.respond(response)
    }

    private func authenticate(_ request: HTTPRequest) -> Result<KeyStore.Principal, APIError> {
        keys.authenticate(authorizationBytes: request.headers.value("authorization"))
    }

    // MARK: - POST /v1/feed

    private func handleFeed(_ request: HTTPRequest, responder: HTTPResponder, fail: (APIError) -> Void) {
        let principal: KeyStore.Principal
        switch authenticate(request) {
        case .success(let value): principal = value
        case .failure(let error): return fail(error)
        }
        guard principal.canWriteFeed else { return fail(.forbidden("This key cannot write the feed: use a feed or admin key")) }
        guard isAcceptingFeed else { return fail(.shuttingDown) }

        let format: FeedBodyFormat
        switch HeadcountServer.feedBodyFormat(contentType: request.headers.value("content-type")) {
        case .success(let value): format = value
        case .failure(let error): return fail(error)
        }

        // Decoding, the duplicate check and the WAL encoding run in time slices (FeedIntake),
        // so that queries are answered between them.
        intake.enqueue(FeedIntake.Job(body: request.body, format: format, arrivalMilliseconds: Clock.nowMilliseconds(),
                                      responder: responder))
    }

    /// The body format a feed request's Content-Type names (SPEC: JSON or NDJSON; none means
    /// NDJSON), or the 415 for another media type.
    ///
    /// The media type is the first non-empty `;`-separated part, trimmed, compared without
    /// case. A value of printable ASCII that names a supported type is read from its bytes;
    /// anything else takes the String path (which makes the error message).
    static func feedBodyFormat(contentType value: ArraySlice<UInt8>?) -> Result<FeedBodyFormat, APIError> {
        if let value, let format = feedBodyFormatFromASCII(value) { return .success(format) }
        let contentType = String(decoding: value ?? [], as: UTF8.self)
            .split(separator: ";", maxSplits: 1).first.map { $0.trimmingHTTPWhitespace.lowercased() } ?? ""
        switch contentType {
        case "application/json": return .success(.json)
        case "", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines": return .success(.ndjson)
        default: return .failure(.unsupportedMediaType(contentType))
        }
    }

    /// The format of a printable-ASCII Content-Type naming a supported type; nil otherwise.
    private static func feedBodyFormatFromASCII(_ value: ArraySlice<UInt8>) -> FeedBodyFormat? {
        guard value.isPrintableASCIIOrTab else { return nil }
        // The first non-empty part between semicolons (as `split` omitting empty parts finds it).
        var start = value.startIndex
        var end = start
        while true {
            end = value[start...].firstIndex(of: UInt8(ascii: ";")) ?? value.endIndex
            if end > start || end == value.endIndex { break }
            start = end + 1
        }
        while start < end, value[start] == 0x20 || value[start] == 0x09 { start += 1 }
        while end > start, value[end - 1] == 0x20 || value[end - 1] == 0x09 { end -= 1 }
        let mediaType = value[start..<end]
        if mediaType.equalsIgnoringASCIICase("application/json") { return .json }
        if mediaType.isEmpty || mediaType.equalsIgnoringASCIICase("application/x-ndjson")
            || mediaType.equalsIgnoringASCIICase("application/ndjson") || mediaType.equalsIgnoringASCIICase("application/jsonl")
            || mediaType.equalsIgnoringASCIICase("application/x-jsonlines") {
            return .ndjson
        }
        return nil
    }

    /// A queued feed request is fully admitted: count it, and answer it once its events are
    /// durable and applied.
    func feedRequestAdmitted(_ job: FeedIntake.Job) {
        metrics.recordFeed(accepted: job.accepted, duplicates: job.duplicates, rejected: job.rejections.count,
                           onIntakeThread: job.wasOnIntakeThread)
        let body: [UInt8]
        if job.rejections.isEmpty && job.accepted < FeedAnswerBodies.countLimit && job.duplicates < FeedAnswerBodies.countLimit {
            body = FeedAnswerBodies.common[job.accepted * FeedAnswerBodies.countLimit + job.duplicates]
        } else {
            body = HeadcountServer.feedAnswerBody(accepted: job.accepted, duplicates: job.duplicates, rejections: job.rejections)
        }
        committer.whenDurable(through: job.throughSequence, answer: FeedAnswer(responder: job.responder, body: body))
    }

    /// The feed's 200 body: `{"accepted":N,"duplicates":N,"rejected":[...]}`.
    static func feedAnswerBody(accepted: Int, duplicates: Int, rejections: [(index: Int, id: String?, error: String)]) -> [UInt8] {
        var writer = JSONWriter(capacity: 64 + 96 * rejections.count)
        writer.beginObject()
        writer.key("accepted"); writer.int(Int64(accepted))
        writer.key("duplicates"); writer.int(Int64(duplicates))
        writer.key("rejected")
        writer.beginArray()
        for rejection in rejections {
            writer.beginObject()
            writer.key("index"); writer.int(Int64(rejection.index))
            writer.key("id"); if let id = rejection.id { writer.string(id) } else { writer.null() }
            writer.key("error"); writer.string(rejection.error)
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    /// Sends a feed answer once its events are durable, or the 503 if storage failed.
    func feedAnswerDurable(_ answer: FeedAnswer, failure: String?) {
        if let failure {
            feedAnswered(APIError.storageUnavailable(failure).response(requestId: answer.responder.requestId), answer.responder)
        } else {
            feedAnswered(HTTPResponse(status: 200, contentType: .json, body: answer.body), answer.responder)
        }
    }

    /// Sends a feed request's answer (the request itself is gone by now: its route was
    /// exactly POST /v1/feed).
    func feedAnswered(_ response: HTTPResponse, _ responder: HTTPResponder) {
        send(response, to: responder, method: .post, path: "/v1/feed")
    }

    // MARK: - GET /v1/event-statistics

    private func handleEventStatistics(_ request: HTTPRequest, respond: (HTTPResponse) -> Void, fail: (APIError) -> Void) {
        let started = uv_hrtime()
        intake.lastQueryAt = started  // queries first: the feed stays on the loop a while (FeedIntake)
        let principal: KeyStore.Principal
        switch authenticate(request) {
        case .success(let value): principal = value
        case .failure(let error): return fail(error)
        }
        guard principal.canRead else { return fail(.forbidden("This key cannot read statistics: use a read or admin key")) }
        guard let parameters = QueryParameters(request.query) else {
            return fail(.invalidParameter("query", reason: "not valid percent-encoded UTF-8"))
        }
        let eventIds = parameters.values("eventIds")
        if eventIds.isEmpty {
            return fail(.missingParameter("eventIds", hint: "give 1 to 8 events, e.g. eventIds=E1&eventIds=E2"))
        }
        if eventIds.count > 8 {
            return fail(.invalidParameter("eventIds", reason: "at most 8 events per request, got \(eventIds.count)"))
        }
        for (position, eventId) in eventIds.enumerated() {
            if eventId.isEmpty || eventId.utf8.count > 128 {
                return fail(.invalidParameter("eventIds", reason: "an event id is 1-128 bytes"))
            }
            if eventIds[..<position].contains(eventId) {  // at most 8: no set to hash them into
                return fail(.invalidParameter("eventIds", reason: "\(eventId) is given twice; give distinct events"))
            }
        }
        guard let dateTimeText = parameters.first("dateTime") else {
            return fail(.missingParameter("dateTime", hint: "give an RFC 3339 time such as 2025-05-21T06:00:00.000Z"))
        }
        guard let instant = Timestamp.parseMilliseconds(dateTimeText) else {
            return fail(.invalidParameter("dateTime", reason: "\(dateTimeText) is not an RFC 3339 time such as 2025-05-21T06:00:00.000Z"))
        }
        let oldest = engine.oldestAnswerableInstant(now: Clock.nowMilliseconds())
        if instant < oldest {
            return fail(.dateTimeOutOfRetention(oldest: Timestamp.format(milliseconds: oldest)))
        }
        for eventId in eventIds where !principal.canRead(eventId: eventId) {
            return fail(.forbidden("This key may not read event \(eventId)"))
        }
        var answers: [EventStatistics] = []
        answers.reserveCapacity(eventIds.count)
        for eventId in eventIds {
            guard let statistics = engine.statistics(eventId: eventId, at: instant) else {
                return fail(.eventNotFound(eventId))
            }
            answers.append(statistics)
        }
        var writer = JSONWriter(capacity: 1200 * answers.count)
        writer.beginArray()
        for statistics in answers { statistics.writeJSON(into: &writer) }
        writer.endArray()
        metrics.recordQuery()
        metrics.recordStatisticsQuery(nanoseconds: uv_hrtime() &- started)
        respond(HTTPResponse(status: 200, contentType: .json, body: writer.bytes))
    }

    // MARK: - GET /events/{eventKey}/status-changes, /events/{eventKey}/objects/{objectLabel}/status-changes

    private func handleStatusChanges(_ request: HTTPRequest, respond: (HTTPResponse) -> Void, fail: (APIError) -> Void) {
        intake.lastQueryAt = uv_hrtime()  // queries first: the feed stays on the loop a while (FeedIntake)
        let principal: KeyStore.Principal
        switch authenticate(request) {
        case .success(let value): principal = value
        case .failure(let error): return fail(error)
        }
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()  // "" before the first "/"
        // ["events", key, "status-changes"] or ["events", key, "objects", label, "status-changes"]
        let parts = Array(segments)
        let eventKeyRaw: Substring
        var objectLabelRaw: Substring?
        if parts.count == 3 && parts[2] == "status-changes" {
            eventKeyRaw = parts[1]
        } else if parts.count == 5 && parts[2] == "objects" && parts[4] == "status-changes" {
            eventKeyRaw = parts[1]
            objectLabelRaw = parts[3]
        } else {
            return fail(.routeNotFound(request.path))
        }
        guard principal.canRead else { return fail(.forbidden("This key cannot read status changes: use a read or admin key")) }
        guard let eventKey = QueryParameters.percentDecode(eventKeyRaw, plusAsSpace: false), !eventKey.isEmpty else {
            return fail(.invalidParameter("eventKey", reason: "not valid percent-encoded UTF-8"))
        }
        var objectLabel: String?
        if let objectLabelRaw {
            guard let decoded = QueryParameters.percentDecode(objectLabelRaw, plusAsSpace: false), !decoded.isEmpty else {
                return fail(.invalidParameter("objectLabel", reason: "not valid percent-encoded UTF-8"))
            }
            objectLabel = decoded
        }
        guard let parameters = QueryParameters(request.query) else {
            return fail(.invalidParameter("query", reason: "not valid percent-encoded UTF-8"))
        }
        let query: StatusChangeQuery
        switch StatusChangeQuery.parse(queryItems: parameters.pairs.map { ($0.name, $0.value) }) {
        case .success(let parsed): query = parsed
        case .failure(let error): return fail(.invalidParameter(error.parameter, reason: error.message))
        }
        guard principal.canRead(eventId: eventKey) else { return fail(.forbidden("This key may not read event \(eventKey)")) }
        let page: StatusChangePage?
        do {
            page = try engine.statusChanges.list(eventKey: eventKey, objectLabel: objectLabel, query: query,
                                                 now: Clock.nowMilliseconds())
        } catch {
            return fail(.invalidParameter(error.parameter, reason: error.message))
        }
        guard let page else {
            guard engine.knowsEvent(eventKey) else { return fail(.eventNotFound(eventKey)) }
            // Known from ticket or pass events only: no status change yet, an empty list (an
            // event is known once any of its events was accepted, docs/API.md), and no cursor
            // can name one of its status changes.
            switch query.cursor {
            case .none: break
            case .startAfter(let id), .endBefore(let id):
                let parameter = query.cursor == .startAfter(id) ? "start_after_id" : "end_before_id"
                return fail(.invalidParameter(parameter, reason: "Invalid \(parameter) \(id): no status change with this id in event \(eventKey)"))
            }
            metrics.recordQuery()
            respond(HTTPResponse(status: 200, contentType: .json, body: Array(#"{"items":[]}"#.utf8)))
            return
        }
        var writer = JSONWriter(capacity: 256 * max(page.items.count, 1))
        page.writeJSON(into: &writer)
        metrics.recordQuery()
        respond(HTTPResponse(status: 200, contentType: .json, body: writer.bytes))
    }
}

/// The feed bodies of requests without rejections and few events, made once and shared (the
/// one-event request's answer costs no allocation).
enum FeedAnswerBodies {
    static let countLimit = 16
    static let common: [[UInt8]] = (0..<(countLimit * countLimit)).map { index in
        HeadcountServer.feedAnswerBody(accepted: index / countLimit, duplicates: index % countLimit, rejections: [])
    }
}

extension EventStatistics {
    /// The answer object of SPEC §4, fields in the seed document's order.
    func writeJSON(into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("eventId")
        writer.string(eventId)
        let keys = StatisticsCounter.answerKeys
        keys.bytes.withUnsafeBytes { names in
            for (slot, start, end) in keys.ranges {
                writer.key(quotedWithColon: UnsafeRawBufferPointer(rebasing: names[start..<end]))
                writer.int(counters[slot])
            }
        }
        writer.key("updatedAt")
        if let updatedAt { writer.string(Timestamp.format(milliseconds: updatedAt)) } else { writer.null() }
        writer.endObject()
    }
}
