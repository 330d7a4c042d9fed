import XCTest

final class HeadcountEndToEndTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}
