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

    /// `withLoaded` lends the stored bytes, aligned, from one reused buffer; a caller that
    /// finds it lent (another thread) gets its own: both see exactly what was stored.
    func testWithLoadedLendsTheStoredBytesAlignedWhetherTheBufferIsFreeOrTaken() throws {
        let directory = NSTemporaryDirectory() + "headcount-spill-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try SpillFile(directory: directory)
        var blobs: [(UInt64, [UInt8])] = []
        for size in [24, 4096, 1, 24 * 511, 200_000] {
            let blob = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ size) }
            blobs.append((try XCTUnwrap(blob.withUnsafeBytes { file.store($0) }), blob))
        }
        for (token, blob) in blobs + blobs.reversed() {
            file.withLoaded(token, byteCount: blob.count) { raw in
                XCTAssertEqual(Int(bitPattern: raw.baseAddress) % SpillStoreAlignment, 0)
                XCTAssertEqual(Array(raw), blob)
            }
        }
        // Nested: the outer call holds the reused buffer, the inner one must not wait for it
        // (it would deadlock) nor share it.
        let (outerToken, outerBlob) = blobs[3], (innerToken, innerBlob) = blobs[4]
        file.withLoaded(outerToken, byteCount: outerBlob.count) { outer in
            file.withLoaded(innerToken, byteCount: innerBlob.count) { inner in
                XCTAssertEqual(Array(inner), innerBlob)
                XCTAssertEqual(Int(bitPattern: inner.baseAddress) % SpillStoreAlignment, 0)
            }
            XCTAssertEqual(Array(outer), outerBlob, "the outer loan is untouched by the inner one")
        }
        XCTAssertEqual(file.withLoaded(blobs[0].0, byteCount: 0) { $0.count }, 0)
    }
}
