import Foundation
import XCTest

/// Start-up as an operator meets it: generated keys on a first start without `--keys`, and
/// a damaged WAL that stops start-up with the file and the offset.
final class StartupEndToEndTests: XCTestCase {
    private func run(_ arguments: [String], until marker: String? = nil, environment: [String: String] = [:]) throws -> (status: Int32?, stdout: String, stderr: String, process: Process) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServerProcess.binaryPath)
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        var stdout = ""
        if let marker {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline && !stdout.contains(marker) && process.isRunning {
                stdout += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
            }
            return (nil, stdout, "", process)
        }
        process.waitUntilExit()
        stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (process.terminationStatus, stdout, stderr, process)
    }

    /// The scheduling the server asks for, read back from the kernel: the loop thread's
    /// time slice (`--loop-time-slice-microseconds`) and the snapshot thread's SCHED_IDLE class.
    func testLoopThreadSliceAndIdleSnapshotThread() throws {
        let server = try ServerProcess(extraArguments: ["--loop-time-slice-microseconds", "300", "--snapshot-every-events", "1"])
        try server.start()
        defer { _ = server.terminate(); server.removeData() }
        let pid = server.processIdentifier
        func schedField(_ tid: String, _ name: String) -> String? {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/sched", encoding: .utf8) else { return nil }
            for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
                return line.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) }
            }
            return nil
        }
        guard let slice = schedField("\(pid)", "se.slice") else {
            throw XCTSkip("this kernel does not report se.slice (EEVDF custom slices need Linux 6.12+)")
        }
        XCTAssertEqual(slice, "300000", "the loop thread's slice in ns")

        // One event, then the next housekeeping tick (1 s) takes a snapshot on its own thread.
        let client = try server.client()
        let body = #"{"id":"s1","type":"ticket.created","eventId":"E1","ticketId":"T1","occurredAt":"2026-01-01T10:00:00Z"}"#
        XCTAssertEqual(try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, contentType: "application/x-ndjson", body: body).status, 200)
        var policy: String?
        let deadline = Date().addingTimeInterval(30)
        while policy == nil && Date() < deadline {
            let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            for tid in threads {
                let name = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/comm", encoding: .utf8)) ?? ""
                if name.hasPrefix("hc-snapshot") { policy = schedField(tid, "policy") }
            }
            if policy == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertEqual(policy, "5", "the snapshot thread runs in SCHED_IDLE (policy 5)")
    }

    /// `--retain-freed-memory` and the heap reservoir: by default jemalloc purges on its
    /// background threads and the reservoir is on (the start-up log says so), `on` accepted, anything else refused naming the option; an out-of-range
    /// `--heap-reserve-bytes` refused; under another malloc (glibc's, preloaded ahead of the
    /// linked jemalloc) the server warns and serves anyway.
    func testAllocatorOptions() throws {
        let directory = NSTemporaryDirectory() + "headcount-malloc-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let refused = try run(["serve", "--port", "0", "--data-dir", directory, "--retain-freed-memory", "maybe"])
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("retain-freed-memory"), refused.stderr)
        let tooSmall = try run(["serve", "--port", "0", "--data-dir", directory, "--heap-reserve-bytes", "4096"])
        XCTAssertEqual(tooSmall.status, 64, tooSmall.stderr)
        XCTAssertTrue(tooSmall.stderr.contains("--heap-reserve-bytes must be"), tooSmall.stderr)
        let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6"].first { FileManager.default.fileExists(atPath: $0) }
        var cases: [(arguments: [String], environment: [String: String], expected: String)] = [
            ([], [:], "purgesInBackground=true"),
            (["--retain-freed-memory", "on"], [:], "retainsFreedMemory=true"),
            (["--heap-prefault-bytes", "0"], [:], "prefaultBytes=0"),
        ]
        if let libc { cases.append(([], ["LD_PRELOAD": libc], "malloc is not jemalloc's")) }
        for (arguments, environment, expected) in cases {
            let started = try run(["serve", "--port", "0", "--data-dir", directory] + arguments, until: "listening on", environment: environment)
            XCTAssertTrue(started.stdout.contains("listening on"), started.stdout)
            started.process.terminate()
            started.process.waitUntilExit()
            let stderr = String(decoding: (started.process.standardError as! Pipe).fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertTrue(stderr.contains(expected), "\(arguments) \(environment): \(stderr)")
            XCTAssertEqual(started.process.terminationStatus, 0, stderr)
        }
    }

    /// The loop's time limits are options with checked ranges: an out-of-range value stops
    /// start-up naming the option (exit 64, nothing served); 0 for the slice while queries
    /// are served (meaning "the ordinary slice") is accepted.
    func testFeedSliceOptionsAreChecked() throws {
        let directory = NSTemporaryDirectory() + "headcount-slices-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let refused = try run(["serve", "--port", "0", "--data-dir", directory, "--feed-slice-while-queries-microseconds", "10"])
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--feed-slice-while-queries-microseconds must be 0 or 50-100000"), refused.stderr)
        let started = try run(["serve", "--port", "0", "--data-dir", directory, "--feed-slice-while-queries-microseconds", "0",
                               "--feed-slice-microseconds", "150"], until: "listening on")
        XCTAssertTrue(started.stdout.contains("listening on"), started.stdout)
        started.process.terminate()
        started.process.waitUntilExit()
    }

    func testFirstStartWithoutKeysGeneratesAndPrintsThemOnce() throws {
        let directory = NSTemporaryDirectory() + "headcount-keys-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try run(["serve", "--port", "0", "--data-dir", directory], until: "listening on")
        defer { if first.process.isRunning { first.process.terminate(); first.process.waitUntilExit() } }
        XCTAssertTrue(first.stdout.contains("generated API keys in \(directory)/keys.json"), first.stdout)
        let feedKey = try XCTUnwrap(first.stdout.components(separatedBy: "feed key:").last?
            .split(whereSeparator: \.isWhitespace).first.map(String.init))
        let keys = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/keys.json"))) as? [[String: Any]]
        XCTAssertEqual(Set(keys?.compactMap { $0["role"] as? String } ?? []), ["feed", "admin"])
        XCTAssertTrue(keys?.contains { $0["key"] as? String == feedKey } ?? false, "the printed feed key is in the file")
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/keys.json")
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600, "keys are readable by the owner only")
        first.process.terminate()
        first.process.waitUntilExit()

        // The second start reuses the file and prints no key.
        let second = try run(["serve", "--port", "0", "--data-dir", directory], until: "listening on")
        defer { if second.process.isRunning { second.process.terminate(); second.process.waitUntilExit() } }
        XCTAssertFalse(second.stdout.contains("feed key"), second.stdout)
        XCTAssertTrue(second.stdout.contains("listening on http://127.0.0.1:"), second.stdout)
    }

    func testDamageInTheMiddleOfTheWALStopsStartupNamingFileAndOffset() throws {
        let server = try ServerProcess()
        defer { server.terminate(); server.removeData() }
        try server.start()
        let client = try server.client()
        for batch in 0..<3 {
            let body = (0..<20).map { i in
                #"{"id":"w\#(batch)-\#(i)","type":"ticket.created","eventId":"E1","ticketId":"T\#(i)","occurredAt":"\#(E2E.time(E2E.base + Int64(i)))"}"#
            }.joined(separator: "\n")
            XCTAssertEqual(try client.request("POST", "/v1/feed", key: ServerProcess.feedKey, body: body).status, 200)
        }
        server.kill()  // no final snapshot: the WAL is all there is

        let walDirectory = server.dataDirectory + "/wal"
        let segment = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: walDirectory).filter { $0.hasSuffix(".log") }.first)
        let path = walDirectory + "/" + segment
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let middle = bytes.count / 2
        bytes[middle] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: path))

        let result = try run(["serve", "--port", "0", "--data-dir", server.dataDirectory, "--keys", server.keysFile])
        XCTAssertEqual(result.status, 65, "a damaged WAL is a data error; stderr: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains(segment), "names the file: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("offset"), "names the offset: \(result.stderr)")
        XCTAssertFalse(result.stdout.contains("listening"), "never serves from damaged data")
    }
}
