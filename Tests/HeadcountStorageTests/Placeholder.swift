import XCTest

final class HeadcountStorageTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}
