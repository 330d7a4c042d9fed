import Foundation
import HeadcountCore
import HeadcountTestSupport
import XCTest

/// The seat-map service's official Python client (`seatsio` from PyPI, pinned in
/// tools/install-deps.sh) pointed at the real binary: listing every page, each sort, filters,
/// paging both ways, one object's changes, and the errors it raises. The checks live in
/// python/seatsio_client_check.py; this test feeds a known set of changes, writes what the
/// answers must be, runs the script and requires its exit status 0.
final class StatusChangesOfficialClientTests: XCTestCase {
    static let pinnedVersion = "83.21.0"
    static var scriptPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/seatsio_client_check.py").path
    }

    /// Runs python3 with arguments; output is stdout and stderr together.
    private func runPython(_ arguments: [String], timeoutSeconds: Double) throws -> (status: Int32, output: String) {
        let outputPath = NSTemporaryDirectory() + "headcount-python-" + UUID().uuidString + ".log"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["NO_PROXY"] = "127.0.0.1,localhost"
        environment["no_proxy"] = "127.0.0.1,localhost"
        environment["PYTHONUNBUFFERED"] = "1"
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        process.environment = environment
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            try? output.close()
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            return (-1, text + "\n(timed out after \(Int(timeoutSeconds)) s)")
        }
        process.waitUntilExit()
        try? output.close()
        return (process.terminationStatus, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    func testTheOfficialPythonClientListsSortsFiltersAndPages() throws {
        // The client must be there: a missing client is a failure, not a skip.
        let probe = try runPython(["-c", "from importlib import metadata; import seatsio; print(metadata.version('seatsio'))"],
                                  timeoutSeconds: 60)
        guard probe.status == 0 else {
            return XCTFail("""
                The official Python client `seatsio` is not installed (python3 said: \(probe.output.split(separator: "\n").last ?? "nothing")).
                Install it with `tools/install-deps.sh --test` (pip install seatsio==\(Self.pinnedVersion)).
                """)
        }
        let version = probe.output.trimmingCharacters(in: .whitespacesAndNewlines)
        if version != Self.pinnedVersion {
            print("StatusChangesOfficialClientTests: seatsio \(version) installed; the pinned and tested version is \(Self.pinnedVersion)")
        }

        let server = try ServerProcess(extraArguments: ["--fsync", "off"])
        defer { server.terminate(); server.removeData() }
        try server.start()
        let client = try server.client()
        var model = StatusChangesModel()

        // 2,345 changes (more than two default pages) over 105 labels, with equal dates.
        let labels = (1...60).map { "A-\($0)" } + (1...40).map { "B-\($0)" } + ["A 1/2", "A+B", "Section A-A-1", "GA1", "Ü-1"]
        let changes = SCE.dataset(prefix: "py", event: "PY", count: 2_345, seed: 31, labels: labels, base: E2E.base)
        for start in stride(from: 0, to: changes.count, by: 500) {
            try SCE.post(Array(changes[start..<min(start + 500, changes.count)]), to: client, model: &model,
                         format: start % 1000 == 0 ? .ndjson : .jsonArray)
        }
        try SCE.post(SCE.dataset(prefix: "e1", event: "E1", count: 3, seed: 32, labels: ["A-1"], base: E2E.base),
                     to: client, model: &model, format: .ndjson)
        let t = E2E.base + 2_000_000
        try SCE.post([SCE.chart("k1", event: "PY", label: "A 1/2", at: t, removal: .switchedToBookBySeat),
                      SCE.chart("k2", event: "PY", label: "A-2", at: t, removal: .switchedToBookWholeTable),
                      SCE.chart("k3", event: "PY", label: "A-2", at: t + 1_000, removal: nil),
                      SCE.chart("k4", event: "PY", label: "B-7", at: t, removal: .renamedOrDeleted),
                      SCE.chart("k5", event: "PY", label: "A-3", at: t + 1_000, removal: nil),
                      SCE.chart("k6", event: "PY", label: "A-3", at: t, removal: .renamedOrDeleted)],
                     to: client, model: &model, format: .ndjson)
        XCTAssertEqual(model.eventNumbers["PY"], 1)

        // What every answer must be.
        let expectedChanges: [[String: Any]] = model.changes.filter { $0.event == "PY" }.map { change in
            let details = change.details
            var origin: [String: Any] = ["type": details.originType.name]
            if let ip = details.originIP { origin["ip"] = ip }
            let extraData: Any = details.extraDataJSON.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } ?? NSNull()
            let (present, reason) = model.presence(event: "PY", label: change.label)
            return ["id": change.id, "objectLabel": change.label, "status": change.status, "date": E2E.time(change.date),
                    "dateMillis": change.date, "holdToken": change.holdToken ?? NSNull(), "extraData": extraData,
                    "origin": origin, "isPresentOnChart": present, "notPresentOnChartReason": reason?.name ?? NSNull()]
        }
        let expectations: [String: Any] = [
            "event": "PY", "eventNumber": 1, "changes": expectedChanges,
            "objectLabels": ["A 1/2", "A+B", "Ü-1", "A-2", "A-3", "B-7", "Section A-A-1", "Q-404"],
        ]
        let expectedPath = server.dataDirectory + "-expected.json"
        try JSONSerialization.data(withJSONObject: expectations).write(to: URL(fileURLWithPath: expectedPath))
        defer { try? FileManager.default.removeItem(atPath: expectedPath) }

        let result = try runPython([Self.scriptPath, "--base-url", "http://127.0.0.1:\(server.port)",
                                    "--secret-key", ServerProcess.readKey, "--limited-key", ServerProcess.limitedReadKey,
                                    "--expected", expectedPath], timeoutSeconds: 300)
        if ProcessInfo.processInfo.environment["HEADCOUNT_E2E_LOGS"] != nil { print(result.output) }
        print("StatusChangesOfficialClientTests: seatsio \(version): " +
              (result.output.split(separator: "\n").last.map(String.init) ?? "no output"))
        XCTAssertEqual(result.status, 0, "seatsio_client_check.py failed:\n\(result.output)")
        XCTAssertTrue(result.output.contains("seatsio client check:"), "the script ran to its end:\n\(result.output)")
        XCTAssertFalse(result.output.contains("FAIL"), result.output)
    }
}
