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
    /// `withLoaded`'s buffer, reused from call to call (grown to the largest blob asked for),
    /// and the lock that lends it to one caller at a time: a second thread at the same
    /// moment (a snapshot encoding spilled pages while the loop answers a query) gets a
    /// buffer of its own rather than waiting.
    private var scratch: UnsafeMutableRawPointer?
    private var scratchBytes = 0
    private let scratchLock: UnsafeMutablePointer<pthread_mutex_t> = {
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        return lock
    }()

    public init(directory: String) throws {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw StorageError(operation: "mkdir", path: directory, errno: errno)
        }
        path = directory + "/records.spill"
        descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if descriptor < 0 { throw StorageError(operation: "open", path: path, errno: errno) }
    }

    deinit {
        close(descriptor)
        scratch?.deallocate()
        pthread_mutex_destroy(scratchLock)
        scratchLock.deallocate()
    }

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
        guard byteCount > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
            read(token, byteCount: byteCount, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            initialized = byteCount
        }
    }

    public func withLoaded<Result>(_ token: UInt64, byteCount: Int, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        guard byteCount > 0 else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        guard pthread_mutex_trylock(scratchLock) == 0 else {
            let own = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: SpillStoreAlignment)
            defer { own.deallocate() }
            read(token, byteCount: byteCount, into: own)
            return body(UnsafeRawBufferPointer(start: own, count: byteCount))
        }
        defer { pthread_mutex_unlock(scratchLock) }
        if scratchBytes < byteCount {
            scratch?.deallocate()
            scratchBytes = max(byteCount, scratchBytes * 2)
            scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes, alignment: SpillStoreAlignment)
        }
        read(token, byteCount: byteCount, into: scratch!)
        return body(UnsafeRawBufferPointer(start: scratch!, count: byteCount))
    }

    private func read(_ token: UInt64, byteCount: Int, into destination: UnsafeMutableRawPointer) {
        var done = 0
        while done < byteCount {
            let result = pread(descriptor, destination + done, byteCount - done, off_t(Int(token) + done))
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                let reason = result < 0 ? String(cString: strerror(errno)) : "unexpected end of file"
                fatalError("headcount: cannot read spilled delta records from \(path) at offset \(token): \(reason)")
            }
            done += result
        }
    }

    public func discard(_ token: UInt64, byteCount: Int) {
        garbageBytes += byteCount
    }
}
