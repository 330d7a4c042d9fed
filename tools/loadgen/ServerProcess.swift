// --start-server: runs a headcount binary on a free loopback port with a temporary data
// directory and generated keys, and stops it (SIGTERM, then SIGKILL) at the end.
#if canImport(Glibc)
import Glibc
#endif
import Foundation

final class ServerProcess {
    let process = Process()
    let directory: String
    let url: String
    let feedKey: String
    let readKey: String
    let keep: Bool

    init(binary: String, fsync: String, extraArguments: [String], keep: Bool) throws {
        self.keep = keep
        var template = Array("/tmp/headcount-loadgen-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw LoadgenError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
        let run = randomRunID()
        feedKey = "lg-feed-\(run)"
        readKey = "lg-admin-\(run)"
        let keys = "[{\"key\":\"\(feedKey)\",\"role\":\"feed\"},{\"key\":\"\(readKey)\",\"role\":\"admin\"}]\n"
        try keys.write(toFile: "\(directory)/keys.json", atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: "\(directory)/server.out", contents: nil)
        _ = FileManager.default.createFile(atPath: "\(directory)/server.err", contents: nil)

        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", "\(directory)/data",
                             "--keys", "\(directory)/keys.json", "--fsync", fsync] + extraArguments
        process.standardOutput = FileHandle(forWritingAtPath: "\(directory)/server.out")
        process.standardError = FileHandle(forWritingAtPath: "\(directory)/server.err")
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw LoadgenError("cannot start \(binary): \(error)")
        }

        // Wait for "headcount listening on http://127.0.0.1:PORT".
        let started = monoNow()
        var found: String? = nil
        while found == nil {
            if let text = try? String(contentsOfFile: "\(directory)/server.out", encoding: .utf8),
               let range = text.range(of: "listening on ") {
                let rest = text[range.upperBound...]
                if let end = rest.firstIndex(of: "\n") { found = String(rest[..<end]) }
            }
            if found != nil { break }
            if !process.isRunning {
                let err = (try? String(contentsOfFile: "\(directory)/server.err", encoding: .utf8)) ?? ""
                try? FileManager.default.removeItem(atPath: directory)
                throw LoadgenError("headcount exited (\(process.terminationStatus)) before listening: \(err.suffix(2000))")
            }
            if monoNow() - started > 60_000_000_000 {
                process.terminate()
                throw LoadgenError("headcount did not print its URL within 60 s (see \(directory)/server.err)")
            }
            usleep(20_000)
        }
        url = found!
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let started = monoNow()
            while process.isRunning && monoNow() - started < 15_000_000_000 { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
        if keep {
            FileHandle.standardError.write("server data kept in \(directory)\n".data(using: .utf8)!)
        } else {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
