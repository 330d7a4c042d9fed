import Foundation
import HeadcountCore
import HeadcountStorage
import HeadcountTestSupport
import Synchronization
import XCTest

final class SpillFileTests: XCTestCase {
    func testStoredBlobsLoadBackExactlyAndTheFileStartsEmptyEachRun() throws {
        let directory = NSTemporaryDirectory() + "headcount-spill-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var tokens: [(UInt64, [UInt8])] = []
        do {
            let file = try SpillFile(directory: directory)
            defer { file.stop() }
            for size in [24, 4096, 1, 24 * 511] {
                let blob = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ size) }
                let token = try XCTUnwrap(blob.withUnsafeBytes { file.store($0) })
                tokens.append((token, blob))
            }
            for (token, blob) in tokens.reversed() {
                XCTAssertEqual(file.load(token, byteCount: blob.count), blob)
            }
            // Written behind: once the writer is done, the same bytes come from the file.
            file.waitUntilWritten()
            XCTAssertEqual(file.pendingBytes, 0)
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int,
                           tokens.reduce(0) { $0 + $1.1.count })
            for (token, blob) in tokens {
                XCTAssertEqual(file.load(token, byteCount: blob.count), blob)
            }
            file.discard(tokens[1].0, byteCount: tokens[1].1.count)
            XCTAssertEqual(file.garbageBytes, 4096)
            XCTAssertEqual(file.sizeBytes, tokens.reduce(0) { $0 + $1.1.count })
        }
        // A new run truncates: spilled records are a cache that recovery rebuilds.
        let reopened = try SpillFile(directory: directory)
        defer { reopened.stop() }
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
        defer { file.stop() }
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

    /// Seeded: blobs of 1 B to 200 KB stored while a second thread keeps loading random earlier
    /// ones, so that loads hit blobs still pending, being written and on the file; every load
    /// returns exactly the stored bytes, and afterwards the file holds them all in order.
    func testBlobsLoadExactlyWhileTheWriterIsBehind() throws {
        var random = SplitMix64(seed: testSeed("SpillFileTests"))
        let directory = try makeTemporaryDirectory(self)
        let file = try SpillFile(directory: directory)
        defer { file.stop() }
        @Sendable func blob(_ size: Int, _ salt: UInt64) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: UInt64($0) &* 0x9E37 &+ salt) } }
        let stored = Mutex<[(token: UInt64, size: Int, salt: UInt64)]>([])
        let stop = Atomic<Bool>(false)
        let mismatches = Atomic<Int>(0)
        let loads = Atomic<Int>(0)
        let readerSeed = random.next()
        let reader = Thread {
            var random = SplitMix64(seed: readerSeed)
            while !stop.load(ordering: .relaxed) {
                let picked = stored.withLock { $0.isEmpty ? nil : $0[Int(random.next() % UInt64($0.count))] }
                guard let picked else { continue }
                let equal = file.withLoaded(picked.token, byteCount: picked.size) { Array($0) == blob(picked.size, picked.salt) }
                if !equal { mismatches.add(1, ordering: .relaxed) }
                loads.add(1, ordering: .relaxed)
            }
        }
        reader.start()
        var expectedFile: [UInt8] = []
        var sawPending = false
        for step in 0..<400 {
            let size: Int
            switch random.next() % 4 {
            case 0: size = 1 + Int(random.next() % 64)
            case 1: size = 24 * (1 + Int(random.next() % 500))
            case 2: size = 60_000 + Int(random.next() % 10_000)
            default: size = 1 + Int(random.next() % 200_000)
            }
            let salt = random.next()
            let bytes = blob(size, salt)
            let token = try XCTUnwrap(bytes.withUnsafeBytes { file.store($0) })
            XCTAssertEqual(Int(token), expectedFile.count, "a token is the blob's offset")
            expectedFile += bytes
            stored.withLock { $0.append((token, size, salt)) }
            if file.pendingBytes > 0 { sawPending = true }
            let earlier = stored.withLock { $0[Int(random.next() % UInt64($0.count))] }
            XCTAssertEqual(file.load(earlier.token, byteCount: earlier.size), blob(earlier.size, earlier.salt), "step \(step)")
        }
        file.waitUntilWritten()
        stop.store(true, ordering: .relaxed)
        while !reader.isFinished { usleep(1000) }
        XCTAssertEqual(mismatches.load(ordering: .relaxed), 0, "a concurrent load returned other bytes")
        XCTAssertGreaterThan(loads.load(ordering: .relaxed), 0)
        XCTAssertTrue(sawPending, "every store was written before the next: the write-behind path was not exercised")
        XCTAssertEqual(file.writeFailures, 0)
        XCTAssertEqual(try Array(Data(contentsOf: URL(fileURLWithPath: file.path))), expectedFile)
    }

    /// The spill writer's scheduling: SCHED_IDLE from the start and after `enterIdle`, the
    /// normal class after `leaveIdle` where the thread may come back from SCHED_IDLE; idle
    /// throughout where it may not.
    func testIdleClassSwitchMovesTheThreadBetweenClasses() {
        let classes = Mutex<[Int32]?>(nil)
        let canReturn = Mutex(false)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let scheduling = IdleClassSwitch()
            var seen = [sched_getscheduler(0)]
            scheduling.leaveIdle()
            seen.append(sched_getscheduler(0))
            scheduling.enterIdle()
            seen.append(sched_getscheduler(0))
            scheduling.leaveIdle()
            seen.append(sched_getscheduler(0))
            classes.withLock { $0 = seen }
            canReturn.withLock { $0 = scheduling.canReturn }
            done.signal()
        }.start()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        let (idle, normal): (Int32, Int32) = (5, 0)  // SCHED_IDLE, SCHED_OTHER
        let seen = classes.withLock { $0 } ?? []
        if canReturn.withLock({ $0 }) {
            XCTAssertEqual(seen, [idle, normal, idle, normal])
        } else {
            XCTAssertEqual(seen, [idle, idle, idle, idle], "may not come back: idle throughout")
        }
        print("IdleClassSwitch: canReturn \(canReturn.withLock { $0 }) (uid \(getuid()))")
    }
}
