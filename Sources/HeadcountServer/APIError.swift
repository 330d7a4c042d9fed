/// Every error the API answers with, mapped once to a status, a stable code and a message a
/// person can act on (SPEC §6). The JSON shape comes from `ErrorResponse`.
enum APIError: Error, Equatable {
    case missingParameter(String, hint: String)
    case invalidParameter(String, reason: String)
    case dateTimeOutOfRetention(oldest: String)
    case invalidJSON(String)
    case unsupportedMediaType(String)
    case tooManyEvents(limit: Int)
    case unauthorized(String)
    case forbidden(String)
    case eventNotFound(String)
    case routeNotFound(String)
    case methodNotAllowed(method: String, allowed: String)
    case storageUnavailable(String)
    case shuttingDown

    var status: Int {
        switch self {
        case .missingParameter, .invalidParameter, .dateTimeOutOfRetention, .invalidJSON: return 400
        case .unauthorized: return 401
        case .forbidden: return 403
        case .eventNotFound, .routeNotFound: return 404
        case .methodNotAllowed: return 405
        case .tooManyEvents: return 413
        case .unsupportedMediaType: return 415
        case .storageUnavailable, .shuttingDown: return 503
        }
    }

    var code: String {
        switch self {
        case .missingParameter: return "MISSING_PARAMETER"
        case .invalidParameter: return "INVALID_PARAMETER"
        case .dateTimeOutOfRetention: return "DATE_TIME_OUT_OF_RETENTION"
        case .invalidJSON: return "INVALID_JSON"
        case .unsupportedMediaType: return "UNSUPPORTED_MEDIA_TYPE"
        case .tooManyEvents: return "TOO_MANY_EVENTS"
        case .unauthorized: return "UNAUTHORIZED"
        case .forbidden: return "FORBIDDEN"
        case .eventNotFound: return "EVENT_NOT_FOUND"
        case .routeNotFound: return "NOT_FOUND"
        case .methodNotAllowed: return "METHOD_NOT_ALLOWED"
        case .storageUnavailable: return "STORAGE_UNAVAILABLE"
        case .shuttingDown: return "SHUTTING_DOWN"
        }
    }

    var message: String {
        switch self {
        case .missingParameter(let name, let hint): return "Missing parameter \(name): \(hint)"
        case .invalidParameter(let name, let reason): return "Invalid parameter \(name): \(reason)"
        case .dateTimeOutOfRetention(let oldest):
            return "Invalid parameter dateTime: older than the retention; the oldest answerable time is \(oldest)"
        case .invalidJSON(let detail): return "The body is not valid JSON: \(detail)"
        case .unsupportedMediaType(let type):
            return "Unsupported Content-Type \(type): send application/json or application/x-ndjson"
        case .tooManyEvents(let limit): return "Too many events in one request: the limit is \(limit)"
        case .unauthorized(let detail): return detail
        case .forbidden(let detail): return detail
        case .eventNotFound(let eventId): return "Event not found: \(eventId)"
        case .routeNotFound(let path): return "No such endpoint: \(path)"
        case .methodNotAllowed(let method, let allowed): return "Method \(method) is not allowed here; allowed: \(allowed)"
        case .storageUnavailable(let detail): return "Storage unavailable: \(detail)"
        case .shuttingDown: return "The server is shutting down; retry shortly"
        }
    }

    func response(requestId: HTTPRequestId) -> HTTPResponse { response(requestId: requestId.description) }

    func response(requestId: String) -> HTTPResponse {
        var response = ErrorResponse.make(status: status, code: code, message: message, requestId: requestId)
        switch self {
        case .unauthorized: response.headers.append(("WWW-Authenticate", "Bearer realm=\"headcount\", Basic realm=\"headcount\""))
        case .methodNotAllowed(_, let allowed): response.headers.append(("Allow", allowed))
        default: break
        }
        return response
    }
}
