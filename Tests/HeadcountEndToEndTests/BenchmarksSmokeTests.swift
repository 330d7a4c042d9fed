import Foundation
import XCTest

/// `HeadcountBenchmarks` (Benchmarks/) on a small day: it runs through — its own checks
/// included (bulk replay answering like per-event apply, every listing returning items) — and
/// reports every figure of the committed baseline, in the baseline's unit, so that
/// `--compare Benchmarks/baseline.json` keeps comparing like with like. Speed is not judged
/// here: the figures are reported, never asserted.
final class BenchmarksSmokeTests: XCTestCase {
    func testASmallRunReportsEveryBaselineFigure() throws {
        let directory = URL(fileURLWithPath: ServerProcess.binaryPath).deletingLastPathComponent()
        let binary = directory.appendingPathComponent("HeadcountBenchmarks").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestHTTPClient.Failure("no HeadcountBenchmarks at \(binary): run `swift build` first")
        }
        let baselinePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Benchmarks/baseline.json").standardized.path
        let baselineData = try XCTUnwrap(FileManager.default.contents(atPath: baselinePath), baselinePath)
        let baseline = try XCTUnwrap(try JSONSerialization.jsonObject(with: baselineData) as? [String: [String: Any]])

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--tickets", "2000", "--json"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "the benchmarks ran through, their own checks included")
        let results = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]],
                                    String(decoding: data, as: UTF8.self))

        XCTAssertEqual(Set(results.keys), Set(baseline.keys), "the same figures as the committed baseline")
        for (name, figure) in results {
            let value = try XCTUnwrap(figure["value"] as? Double, name)
            XCTAssertTrue(value.isFinite && value >= 0, "\(name): \(value)")
            XCTAssertEqual(figure["unit"] as? String, baseline[name]?["unit"] as? String, "\(name)'s unit")
        }
    }
}
