import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The real `headcount` binary, started on a free port with its own data directory, for
/// end-to-end tests. It is stopped by pid: `terminate()` sends SIGTERM, `kill()` SIGKILL.
final class ServerProcess {
    static let feedKey = "test-feed-key"
    static let adminKey = "test-admin-key"
    static let readKey = "test-read-key"
    static let limitedReadKey = "test-read-e1-key"

    let dataDirectory: String
    let keysFile: String
    private(set) var port = 0
    private var process: Process?
    private var outputPipe: Pipe?
    private(set) var output = ""
    private var extraArguments: [String]

    /// The binary built beside the test bundle (`swift build` builds both), or `HEADCOUNT_BINARY`.
    static var binaryPath: String {
        if let path = ProcessInfo.processInfo.environment["HEADCOUNT_BINARY"] { return path }
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0])
        var directory = testBinary.deletingLastPathComponent()
        // swift test runs .../debug/HeadcountPackageTests.xctest
        if directory.lastPathComponent.hasSuffix(".xctest") { directory = directory.deletingLastPathComponent() }
        return directory.appendingPathComponent("headcount").path
    }

    init(dataDirectory: String? = nil, extraArguments: [String] = []) throws {
        let base = dataDirectory ?? NSTemporaryDirectory() + "headcount-e2e-" + UUID().uuidString
        self.dataDirectory = base
        keysFile = base + "-keys.json"
        self.extraArguments = extraArguments
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let keys = """
        [{"key": "\(ServerProcess.feedKey)", "role": "feed"},
         {"key": "\(ServerProcess.adminKey)", "role": "admin"},
         {"key": "\(ServerProcess.readKey)", "role": "read"},
         {"key": "\(ServerProcess.limitedReadKey)", "role": "read", "eventIds": ["E1"]}]
        """
        try keys.write(toFile: keysFile, atomically: true, encoding: .utf8)
    }

    /// Starts the binary and waits until it prints its port and answers /healthz.
    func start() throws {
        let binary = ServerProcess.binaryPath
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestHTTPClient.Failure("no headcount binary at \(binary): run `swift build` first")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--port", "0", "--data-dir", dataDirectory, "--keys", keysFile] + extraArguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        if ProcessInfo.processInfo.environment["HEADCOUNT_E2E_LOGS"] != nil { process.standardError = FileHandle.standardError }
        output = ""
        try process.run()
        self.process = process
        outputPipe = pipe
        port = try readPort(from: pipe, process: process)
        try waitForHealth()
    }

    private func readPort(from pipe: Pipe, process: Process) throws -> Int {
        let handle = pipe.fileHandleForReading
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let data = handle.availableData
            if data.isEmpty {
                if !process.isRunning { throw TestHTTPClient.Failure("headcount exited with \(process.terminationStatus): \(output)") }
                usleep(10_000)
                continue
            }
            output += String(decoding: data, as: UTF8.self)
            if let range = output.range(of: "listening on http://127.0.0.1:") {
                let digits = output[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits), output[range.upperBound...].dropFirst(digits.count).first == "\n" { return port }
            }
        }
        throw TestHTTPClient.Failure("headcount did not report its port: \(output)")
    }

    private func waitForHealth() throws {
        for _ in 0..<500 {
            if let client = try? TestHTTPClient(port: port, timeoutSeconds: 5),
               let response = try? client.request("GET", "/healthz"), response.status == 200 {
                return
            }
            usleep(20_000)
        }
        throw TestHTTPClient.Failure("headcount never became healthy on port \(port)")
    }

    func client() throws -> TestHTTPClient { try TestHTTPClient(port: port) }

    /// The running server's process id (-1 before `start`).
    var processIdentifier: Int32 { process?.processIdentifier ?? -1 }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func terminate() -> Int32 {
        guard let process, process.isRunning else { return process?.terminationStatus ?? 0 }
        process.terminate()
        process.waitUntilExit()
        self.process = nil
        return process.terminationStatus
    }

    /// SIGKILL: the crash tests' real crash.
    func kill() {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    var isRunning: Bool { process?.isRunning ?? false }

    func removeData() {
        try? FileManager.default.removeItem(atPath: dataDirectory)
        try? FileManager.default.removeItem(atPath: keysFile)
    }

    deinit {
        kill()
    }
}
