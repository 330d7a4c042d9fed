/// Answers one request. Call `respond` exactly once, now or later, on the loop thread. Responses of a connection
/// are written in request order whatever order they complete in. After the connection closed (or on a second
/// call) `respond` does nothing.
final class HTTPResponder {
    private weak var connection: HTTPConnection?
    private let sequence: UInt64
    private(set) var hasResponded = false
    let requestId: String

    init(connection: HTTPConnection, sequence: UInt64, requestId: String) {
        self.connection = connection
        self.sequence = sequence
        self.requestId = requestId
    }

    func respond(_ response: HTTPResponse) {
        guard !hasResponded else { return }
        hasResponded = true
        connection?.complete(sequence: sequence, response: response)
        connection = nil
    }

    /// Convenience: the SPEC §6 error body with this request's id.
    func respondError(status: Int, code: String, message: String) {
        respond(ErrorResponse.make(status: status, code: code, message: message, requestId: requestId))
    }
}
