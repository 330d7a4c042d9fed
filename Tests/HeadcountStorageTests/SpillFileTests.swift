import Foundation
import HeadcountCore
import HeadcountStorage
import XCTest

final class SpillFileTests: XCTestCase {
    func testStoredBlobsLoadBackExactlyAndTheFileStartsEmptyEachRun() throws {
        let directory = NSTemporaryDirectory() + "headcount-spill-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var tokens: [(UInt64, [UInt8])] = []
        do {
            let file = try SpillFile(directory: directory)
            for size in [24, 4096, 1, 24 * 511] {
                let blob = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ size) }
                let token = try XCTUnwrap(blob.withUnsafeBytes { file.store($0) })
                tokens.append((token, blob))
            }
            for (token, blob) in tokens.reversed() {
                XCTAssertEqual(file.load(token, byteCount: blob.count), blob)
            }
            file.discard(tokens[1].0, byteCount: tokens[1].1.count)
            XCTAssertEqual(file.garbageBytes, 4096)
            XCTAssertEqual(file.sizeBytes, tokens.reduce(0) { $0 + $1.1.count })
        }
        // A new run truncates: spilled records are a cache that recovery rebuilds.
        let reopened = try SpillFile(directory: directory)
        XCTAssertEqual(reopened.sizeBytes, 0)
        let attributes = try FileManager.default.attributesOfItem(atPath: reopened.path)
        XCTAssertEqual(attributes[.size] as? Int, 0)
    }
}
