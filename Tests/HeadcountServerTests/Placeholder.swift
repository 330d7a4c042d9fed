import XCTest

final class HeadcountServerTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}
