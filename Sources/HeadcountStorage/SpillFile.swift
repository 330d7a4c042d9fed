#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import HeadcountCore

/// The engine's spill store on disk: one append-only file of spilled delta records
/// (`<data-dir>/spill/records.spill`). A token is the byte offset of a blob. The file is a
/// cache of state the snapshot and WAL rebuild at start-up, so it is truncated when opened
/// and never fsync'd: a crash loses nothing that recovery needs.
///
/// Space of discarded blobs (chunks brought back into memory by a late event) is not reused;
/// `garbageBytes` reports it. The file starts empty at each start.
public final class SpillFile: SpillStore {
    public let path: String
    private let descriptor: Int32
    public private(set) var sizeBytes: Int = 0
    public private(set) var garbageBytes: Int = 0
    public private(set) var writeFailures = 0

    public init(directory: String) throws {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw StorageError(operation: "mkdir", path: directory, errno: errno)
        }
        path = directory + "/records.spill"
        descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if descriptor < 0 { throw StorageError(operation: "open", path: path, errno: errno) }
    }

    deinit { close(descriptor) }

    public func store(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        let offset = sizeBytes
        var written = 0
        while written < bytes.count {
            let result = pwrite(descriptor, bytes.baseAddress! + written, bytes.count - written, off_t(offset + written))
            if result < 0 {
                if errno == EINTR { continue }
                writeFailures += 1
                return nil  // the records stay in memory; the space is reused by the next write
            }
            written += result
        }
        sizeBytes += bytes.count
        return UInt64(offset)
    }

    public func load(_ token: UInt64, byteCount: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: byteCount)
        var done = 0
        while done < byteCount {
            let result = bytes.withUnsafeMutableBytes {
                pread(descriptor, $0.baseAddress! + done, byteCount - done, off_t(Int(token) + done))
            }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                let reason = result < 0 ? String(cString: strerror(errno)) : "unexpected end of file"
                fatalError("headcount: cannot read spilled delta records from \(path) at offset \(token): \(reason)")
            }
            done += result
        }
        return bytes
    }

    public func discard(_ token: UInt64, byteCount: Int) {
        garbageBytes += byteCount
    }
}
