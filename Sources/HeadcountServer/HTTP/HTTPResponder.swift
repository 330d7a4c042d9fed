/// Answers one request. Call `respond` exactly once, now or later, on the loop thread. Responses of a connection
/// are written in request order whatever order they complete in. After the connection closed (or on a second
/// call) `respond` does nothing: the connection only takes a response for a slot that is still pending.
///
/// A value, not an object: a request costs no responder allocation. It holds its connection strongly, which
/// only keeps a closed connection's (small) object alive until the last pending answer is given or dropped.
struct HTTPResponder {
    private let connection: HTTPConnection
    private let sequence: UInt64
    let requestId: HTTPRequestId

    init(connection: HTTPConnection, sequence: UInt64, requestId: HTTPRequestId) {
        self.connection = connection
        self.sequence = sequence
        self.requestId = requestId
    }

    func respond(_ response: HTTPResponse) {
        connection.complete(sequence: sequence, response: response)
    }

    /// Convenience: the SPEC §6 error body with this request's id.
    func respondError(status: Int, code: String, message: String) {
        respond(ErrorResponse.make(status: status, code: code, message: message, requestId: requestId.description))
    }
}
