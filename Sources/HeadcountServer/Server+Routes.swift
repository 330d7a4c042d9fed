import HeadcountCore
import HeadcountFeed
import HeadcountStorage
import Logging

/// Routing and the endpoints. Checks run in one order everywhere: the key (401), the
/// parameters (400), the key's rights (403), then existence (404).
extension HeadcountServer: HTTPRequestHandler {
    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let path = request.path
        let respond: (HTTPResponse) -> Void = { [unowned self] response in
            self.metrics.recordResponse(status: response.status)
            if response.status >= 400 {
                self.logger.info("request failed", metadata: [
                    "requestId": "\(request.requestId)", "method": "\(request.method)", "path": "\(path)",
                    "status": "\(response.status)",
                ])
            }
            responder.respond(response)
        }
        let fail: (APIError) -> Void = { error in respond(error.response(requestId: request.requestId)) }

        switch path {
        case "/healthz":
            guard request.method == .get || request.method == .head else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "GET")) }
            respond(HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(#"{"status":"ok"}"#.utf8)))
        case "/metrics":
            guard request.method == .get else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "GET")) }
            metrics.update(server: self)
            respond(HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                 body: registry.emitToBuffer()))
        case "/v1/feed":
            guard request.method == .post else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "POST")) }
            handleFeed(request, respond: respond, fail: fail)
        case "/v1/event-statistics":
            guard request.method == .get else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "GET")) }
            handleEventStatistics(request, respond: respond, fail: fail)
        default:
            if path.hasPrefix("/events/") {
                guard request.method == .get else { return fail(.methodNotAllowed(method: "\(request.method)", allowed: "GET")) }
                handleStatusChanges(request, respond: respond, fail: fail)
            } else {
                fail(.routeNotFound(path))
            }
        }
    }

    private func authenticate(_ request: HTTPRequest) -> Result<KeyStore.Principal, APIError> {
        keys.authenticate(authorization: request.headers["authorization"])
    }

    // MARK: - POST /v1/feed

    private func handleFeed(_ request: HTTPRequest, respond: @escaping (HTTPResponse) -> Void, fail: (APIError) -> Void) {
        let principal: KeyStore.Principal
        switch authenticate(request) {
        case .success(let value): principal = value
        case .failure(let error): return fail(error)
        }
        guard principal.canWriteFeed else { return fail(.forbidden("This key cannot write the feed: use a feed or admin key")) }
        guard isAcceptingFeed else { return fail(.shuttingDown) }

        let format: FeedBodyFormat
        let contentType = (request.headers["content-type"] ?? "")
            .split(separator: ";", maxSplits: 1).first.map { $0.trimmingHTTPWhitespace.lowercased() } ?? ""
        switch contentType {
        case "application/json": format = .json
        case "", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines": format = .ndjson
        default: return fail(.unsupportedMediaType(contentType))
        }

        // Decoding, the duplicate check and the WAL encoding run in time slices (FeedIntake),
        // so that queries are answered between them.
        intake.enqueue(FeedIntake.Job(body: request.body, format: format, arrivalMilliseconds: Clock.nowMilliseconds(),
                                      requestId: request.requestId, respond: respond))
    }

    /// A queued feed request is fully admitted: count it, and answer it once its events are
    /// durable and applied.
    func feedRequestAdmitted(_ job: FeedIntake.Job) {
        var writer = JSONWriter(capacity: 64 + 96 * job.rejections.count)
        writer.beginObject()
        writer.key("accepted"); writer.int(Int64(job.accepted))
        writer.key("duplicates"); writer.int(Int64(job.duplicates))
        writer.key("rejected")
        writer.beginArray()
        for rejection in job.rejections {
            writer.beginObject()
            writer.key("index"); writer.int(Int64(rejection.index))
            writer.key("id"); if let id = rejection.id { writer.string(id) } else { writer.null() }
            writer.key("error"); writer.string(rejection.error)
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        metrics.recordFeed(accepted: job.accepted, duplicates: job.duplicates, rejected: job.rejections.count)

        let body = writer.bytes
        let requestId = job.requestId
        let respond = job.respond
        committer.whenDurable(through: committer.lastAssignedSequence) { failure in
            if let failure {
                respond(APIError.storageUnavailable(failure).response(requestId: requestId))
            } else {
                respond(HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: body))
            }
        }
    }

    // MARK: - GET /v1/event-statistics

    private func handleEventStatistics(_ request: HTTPRequest, respond: (HTTPResponse) -> Void, fail: (APIError) -> Void) {
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
        var seen = Set<String>()
        for eventId in eventIds {
            if eventId.isEmpty || eventId.utf8.count > 128 {
                return fail(.invalidParameter("eventIds", reason: "an event id is 1-128 bytes"))
            }
            if !seen.insert(eventId).inserted {
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
        respond(HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: writer.bytes))
    }

    // MARK: - GET /events/{eventKey}/status-changes, /events/{eventKey}/objects/{objectLabel}/status-changes

    private func handleStatusChanges(_ request: HTTPRequest, respond: (HTTPResponse) -> Void, fail: (APIError) -> Void) {
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
            respond(HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(#"{"items":[]}"#.utf8)))
            return
        }
        var writer = JSONWriter(capacity: 256 * max(page.items.count, 1))
        page.writeJSON(into: &writer)
        metrics.recordQuery()
        respond(HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: writer.bytes))
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
