import Foundation
import XCTest

/// Shared helpers of the end-to-end tests.
enum E2E {
    /// RFC 3339 with milliseconds, UTC.
    static func time(_ millisecondsSinceEpoch: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: Double(millisecondsSinceEpoch) / 1000))
    }

    /// A base time an hour ago, on a whole second, so test times are inside the retention.
    static let base: Int64 = (Int64(Date().timeIntervalSince1970) - 3600) * 1000

    static func statisticsPath(_ eventIds: [String], at instant: String) -> String {
        let ids = eventIds.map { "eventIds=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" }.joined(separator: "&")
        return "/v1/event-statistics?\(ids)&dateTime=\(instant.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
    }

    /// Asserts SPEC §6's error body: status, messages, errors[{code, message}], warnings, requestId.
    static func assertError(_ response: TestHTTPClient.Response, status: Int, code: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(response.status, status, "status; body: \(response.text)", file: file, line: line)
        XCTAssertTrue(response.headers["content-type"]?.hasPrefix("application/json") ?? false, "JSON content type", file: file, line: line)
        guard let object = try? response.jsonObject() else {
            return XCTFail("error body is not a JSON object: \(response.text)", file: file, line: line)
        }
        XCTAssertEqual(object["status"] as? Int, status, file: file, line: line)
        let messages = object["messages"] as? [String]
        XCTAssertFalse(messages?.isEmpty ?? true, "messages", file: file, line: line)
        let errors = object["errors"] as? [[String: Any]]
        XCTAssertEqual(errors?.first?["code"] as? String, code, "code; body: \(response.text)", file: file, line: line)
        XCTAssertFalse((errors?.first?["message"] as? String)?.isEmpty ?? true, "message", file: file, line: line)
        XCTAssertNotNil(object["warnings"] as? [Any], "warnings", file: file, line: line)
        let requestId = object["requestId"] as? String
        XCTAssertFalse(requestId?.isEmpty ?? true, "requestId", file: file, line: line)
        if let header = response.headers["x-request-id"] {
            XCTAssertEqual(header, requestId, "the body's requestId is the X-Request-Id header", file: file, line: line)
        }
    }

    static func counters(_ response: TestHTTPClient.Response, file: StaticString = #filePath, line: UInt = #line) -> [[String: Any]] {
        XCTAssertEqual(response.status, 200, response.text, file: file, line: line)
        return (try? response.json() as? [[String: Any]]) ?? []
    }
}
