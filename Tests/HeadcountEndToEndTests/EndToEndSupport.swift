import Foundation
import HeadcountCore
import HeadcountTestSupport
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

    /// Starts `producers` threads that send the batches as NDJSON feed requests, batch i on
    /// connection i mod producers, in order; `answered(i, response)` (nil: no answer) returns
    /// false to stop that producer. Returns the started threads.
    static func startProducers(_ batches: [[FeedEvent]], port: Int, producers: Int = 4, timeoutSeconds: Int,
                               answered: @escaping @Sendable (Int, TestHTTPClient.Response?) -> Bool) -> [Thread] {
        let threads = (0..<producers).map { producer in
            Thread {
                guard let client = try? TestHTTPClient(port: port, timeoutSeconds: timeoutSeconds) else {
                    _ = answered(producer, nil)
                    return
                }
                for batch in stride(from: producer, to: batches.count, by: producers) {
                    let body = batches[batch].map(TestFeeds.ndjsonLine).joined(separator: "\n")
                    let response = try? client.request("POST", "/v1/feed", key: ServerProcess.feedKey,
                                                       contentType: "application/x-ndjson", body: body)
                    if !answered(batch, response) || response == nil { return }
                }
            }
        }
        threads.forEach { $0.start() }
        return threads
    }

        /// Asserts that the server's answers for E1 and E2 at many instants equal the reference
        /// model's for `events` (each id admitted once, in order).
        static func assertAnswersEqualModel(server: ServerProcess, events: [FeedEvent], seed: UInt64) throws {
            let model = ReferenceModel()
            for (offset, event) in events.enumerated() where model.admit(id: event.id, arrivalMilliseconds: 0) {
                model.apply(event, sequence: UInt64(offset + 1))
            }
            let client = try server.client()
            let times = events.map(\.occurredAt).sorted()
            let instants = [times.first! - 1, times.first!] + stride(from: 0, to: times.count, by: max(1, times.count / 25)).map { times[$0] } + [times.last!, times.last! + 60_000]
            for instant in instants {
                let response = try client.request("GET", E2E.statisticsPath(["E1", "E2"], at: Timestamp.format(milliseconds: instant)),
                                                  key: ServerProcess.adminKey)
                let answers = E2E.counters(response)
                XCTAssertEqual(answers.count, 2)
                for answer in answers {
                    let eventId = answer["eventId"] as? String ?? "?"
                    guard let expected = model.statistics(eventId: eventId, at: instant) else { return XCTFail("model lacks \(eventId)") }
                    for counter in StatisticsCounter.allCases {
                        XCTAssertEqual(answer[counter.fieldName] as? Int, Int(expected[counter]),
                                       "\(eventId) \(counter.fieldName) at \(instant) (HEADCOUNT_TEST_SEED=\(seed))")
                    }
                    let updatedAt = answer["updatedAt"] as? String
                    XCTAssertEqual(updatedAt, expected.updatedAt.map { Timestamp.format(milliseconds: $0) }, "updatedAt at \(instant)")
                }
            }
        }
}
