import XCTest

final class HeadcountFeedTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}
