#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A new file written front to back past the page cache (`POSIXFileSystem.createFile(_:
/// exclusive:bypassingPageCache:)`): appended bytes gather in an aligned buffer, and each
/// time it holds `chunkBytes` they go to the device in one `pwrite` through a descriptor
/// opened `O_DIRECT` — no copy into the page cache, no dirty pages for writeback. Durable
/// only after `sync()`, like any file: the direct writes leave the data in the device's
/// cache and the file's new size in memory, and `sync()` flushes both (`fdatasync`).
///
/// Why: a snapshot is gigabytes written while the loop answers one-event requests. Through
/// the page cache, the snapshot thread spent 2.6–3.3 s of kernel time per 1.2–1.4 GB copying
/// into fresh cache pages (`copy_folio_from_iter_atomic`: half of its samples), on the core
/// the loop and the load generator take turns on, and one event per request fell from ~38 k
/// to ~28 k requests/s while it ran (docs/BENCHMARKS.md, session 10).
///
/// Everything else — a write at an offset (the snapshot's header, last), reads, the size,
/// truncation, `sync` and `close` — first writes out what is gathered: its whole 4 KiB
/// blocks directly, the partial last block through the page cache (kept in the buffer too,
/// and written again whole, directly, with the bytes appended after it). Where `O_DIRECT` is
/// refused (tmpfs, some network file systems), or a direct write fails with `EINVAL` (an
/// alignment the device wants otherwise), the file is written through the page cache from
/// then on: the same bytes either way.
final class POSIXDirectAppendFile: StorageFile {
    static let blockBytes = 4096

    /// The page-cache side: writes at an offset, partial blocks, reads, size, sync, close.
    private let file: POSIXFile
    private var direct: Int32
    private let chunkBytes: Int
    private let buffer: UnsafeMutableRawPointer
    /// The file offset of `buffer`'s first byte (a multiple of `blockBytes`), and how many
    /// bytes the buffer holds from there: the file's end is `start + count`.
    private var start = 0
    private var count = 0
    /// Bytes written directly so far (for tests: whether the page cache was bypassed).
    private(set) var directBytes = 0

    /// Takes over `file`, new and empty; nil where `O_DIRECT` is refused or unknown (then
    /// use `file` as it is).
    init?(wrapping file: POSIXFile, chunkBytes: Int) {
        guard openDirect != 0 else { return nil }
        let direct = open(file.path, O_RDWR | O_CLOEXEC | openDirect)
        guard direct >= 0 else { return nil }  // EINVAL: no O_DIRECT on this file system
        let block = POSIXDirectAppendFile.blockBytes
        let chunk = max(block, (chunkBytes + block - 1) & ~(block - 1))
        var buffer: UnsafeMutableRawPointer?
        guard posix_memalign(&buffer, block, chunk) == 0, let buffer else {
            _ = systemClose(direct)
            return nil
        }
        self.file = file
        self.direct = direct
        self.chunkBytes = chunk
        self.buffer = buffer
    }

    deinit {
        if direct >= 0 { _ = systemClose(direct) }
        free(buffer)
    }

    var path: String { file.path }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard var source = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let taken = min(remaining, chunkBytes - count)
            memcpy(buffer + count, source, taken)
            count += taken
            source += taken
            remaining -= taken
            if count == chunkBytes { try writeOut() }
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        try writeOut()
        try file.write(bytes, at: offset)
        if offset + bytes.count > start + count {
            try gather(from: offset + bytes.count)  // the end moved
        } else {
            // The part of it inside the gathered last block: the buffer must hold it too, or
            // the block's next direct write would put the old bytes back.
            let from = max(offset, start), to = offset + bytes.count
            if from < to, let source = bytes.baseAddress {
                memcpy(buffer + (from - start), source + (from - offset), to - from)
            }
        }
    }

    func read(offset: Int, count: Int) throws -> [UInt8] {
        try writeOut()
        return try file.read(offset: offset, count: count)
    }

    func size() throws -> Int {
        try writeOut()
        return try file.size()
    }

    func truncate(to length: Int) throws {
        try writeOut()
        try file.truncate(to: length)
        try gather(from: length)
    }

    /// Gathers again from the block holding the file's new end `end`, its bytes read back.
    private func gather(from end: Int) throws {
        let blockStart = end & ~(POSIXDirectAppendFile.blockBytes - 1)
        let kept = try file.read(offset: blockStart, count: end - blockStart)
        kept.withUnsafeBytes { if let base = $0.baseAddress { memcpy(buffer, base, $0.count) } }
        start = blockStart
        count = kept.count
    }

    func sync() throws {
        try writeOut()
        // The direct writes' data (in the device's cache) and the new size: `fdatasync`
        // commits them, and a `POSIXFile` not writing through always calls it.
        try file.sync()
    }

    func close() throws {
        defer {
            if direct >= 0 { _ = systemClose(direct); direct = -1 }
        }
        try writeOut()
        try file.close()
    }

    /// Writes what the buffer holds: whole blocks directly, a partial last block through the
    /// page cache (and keeps it in the buffer, at its start, to be written whole later).
    private func writeOut() throws {
        let block = POSIXDirectAppendFile.blockBytes
        let whole = count & ~(block - 1)
        if whole > 0 {
            if direct >= 0 {
                try writeDirect(count: whole)
            } else {
                try file.write(UnsafeRawBufferPointer(start: buffer, count: whole), at: start)
            }
            let rest = count - whole
            if rest > 0 { memmove(buffer, buffer + whole, rest) }
            start += whole
            count = rest
        }
        if count > 0 { try file.write(UnsafeRawBufferPointer(start: buffer, count: count), at: start) }
    }

    private func writeDirect(count total: Int) throws {
        var done = 0
        while done < total {
            let written = pwrite(direct, buffer + done, total - done, off_t(start + done))
            if written < 0 {
                let error = errno
                if error == EINTR { continue }
                if error == EINVAL {
                    // The device wants another alignment: the page cache from now on.
                    _ = systemClose(direct)
                    direct = -1
                    try file.write(UnsafeRawBufferPointer(start: buffer + done, count: total - done), at: start + done)
                    return
                }
                throw StorageError(operation: "pwrite (O_DIRECT)", path: path, errno: error)
            }
            if written == 0 { throw StorageError(operation: "pwrite (O_DIRECT)", path: path, errno: EIO) }
            done += written
            directBytes += written
        }
    }
}
