import XCTest

final class HeadcountCoreTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}
