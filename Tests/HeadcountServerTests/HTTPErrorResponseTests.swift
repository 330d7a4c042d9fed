import Foundation
import XCTest
@testable import HeadcountServer

final class HTTPErrorResponseTests: XCTestCase {
    func testExactShape() {
        let response = ErrorResponse.make(status: 404, code: "EVENT_NOT_FOUND", message: "Event not found: X", requestId: "abc-1")
        XCTAssertEqual(response.status, 404)
        XCTAssertEqual(response.headers.first?.0, "Content-Type")
        XCTAssertEqual(response.headers.first?.1, "application/json")
        XCTAssertEqual(
            String(decoding: response.body, as: UTF8.self),
            #"{"status":404,"messages":["Event not found: X"],"errors":[{"code":"EVENT_NOT_FOUND","message":"Event not found: X"}],"warnings":[],"requestId":"abc-1"}"#)
    }

    func testEscapingRoundTrips() throws {
        let nasty = "quote \" backslash \\ newline \n tab \t cr \r nul \u{0} bell \u{7} esc \u{1B} unicode é ✓ 🎫 \u{2028}"
        let response = ErrorResponse.make(status: 400, code: "C\"ODE", message: nasty, requestId: "id\\1")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        XCTAssertEqual(object["messages"] as? [String], [nasty])
        let error = try XCTUnwrap((object["errors"] as? [[String: Any]])?.first)
        XCTAssertEqual(error["code"] as? String, "C\"ODE")
        XCTAssertEqual(error["message"] as? String, nasty)
        XCTAssertEqual(object["requestId"] as? String, "id\\1")
        let text = String(decoding: response.body, as: UTF8.self)
        XCTAssertTrue(text.contains(#"\u0000"#) && text.contains(#"\u001b"#) && text.contains(#"\n"#))
        XCTAssertFalse(response.body.contains { $0 < 0x20 }, "no raw control characters")
    }
}
