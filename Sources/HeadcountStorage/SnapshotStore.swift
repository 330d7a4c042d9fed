/// A snapshot file that does not check out.
public enum SnapshotError: Error, CustomStringConvertible, Equatable {
    /// `offset` is the first byte of the field that is wrong in `file`.
    case corrupt(file: String, offset: Int, reason: String)

    public var description: String {
        switch self {
        case .corrupt(let file, let offset, let reason):
            return "snapshot corrupt: \(file) at offset \(offset): \(reason)"
        }
    }
}

/// Snapshot files `snapshot-<sequence, 20 digits>.snap`: the engine's serialized state
/// covering every WAL record up to `sequence`. The store keeps opaque bytes; the engine
/// owns their format.
///
/// ## File format (integers little-endian)
/// ```
/// offset  size
///  0       8    magic "HCSNAP01"
///  8       4    u32 format version (1)
/// 12       8    u64 sequence (equal to the one in the file name)
/// 20       8    u64 payload length (the file is exactly 36 + length bytes)
/// 28       4    u32 crc32c(payload)
/// 32       4    u32 crc32c(bytes 0..<32): the header's own checksum
/// 36       …    payload
/// ```
/// Worked example: sequence 42, payload "hello" (41 bytes):
/// ```
/// 48 43 53 4e 41 50 30 31   01 00 00 00   2a 00 00 00 00 00 00 00
/// 05 00 00 00 00 00 00 00   4c bb 71 9a   ba df 67 60   68 65 6c 6c 6f
/// ```
/// (Checked by `SnapshotStoreTests.testWorkedExampleBytes`; also in docs/FORMATS.md.)
///
/// ## Writing
/// Temp file `snapshot-<sequence>.snap.tmp` (36 zero bytes, then the payload as it is produced,
/// in `syncEveryBytes` pieces, each synced before the next is written, so that a snapshot of
/// hundreds of megabytes never sits dirty in the page cache in front of the WAL's next fsync:
/// the device flush every acknowledgement waits for would write it all first; with
/// `bypassesPageCache`, past the page cache altogether, `O_DIRECT`; then the header
/// over the zeros) → fsync → rename → fsync directory: a crash
/// leaves either the old set of snapshots or the new one, plus perhaps a temp file that
/// `loadNewest` ignores and the next `write` removes. Then all but the newest
/// `retainedCount` snapshots are deleted.
///
/// ## Loading
/// `loadNewest` checks the newest snapshot completely and throws if it is damaged, rather
/// than falling back to an older one: with the WAL trimmed up to the newest snapshot, the
/// older one no longer has the records to catch up, and an operator must see the damage.
///
/// One writer at a time; `loadNewest` at start-up.
public final class SnapshotStore: @unchecked Sendable {
    public let directory: String
    /// Snapshots kept after a write (the newest ones).
    public let retainedCount: Int
    private let fileSystem: StorageFileSystem

    public static let magic: [UInt8] = Array("HCSNAP01".utf8)
    public static let formatVersion: UInt32 = 1
    public static let headerByteCount = 36

    /// A snapshot file is synced after every this many bytes written.
    public let syncEveryBytes: Int
    /// …written at most this many bytes per write() (see `write`).
    public let writeBytes: Int

    /// Snapshot files bypass the page cache where the file system allows it (see `write`).
    public let bypassesPageCache: Bool

    public init(directory: String, retainedCount: Int = 2, syncEveryBytes: Int = 8 << 20, writeBytes: Int = 256 << 10,
                bypassesPageCache: Bool = true, fileSystem: StorageFileSystem = POSIXFileSystem()) throws {
        precondition(retainedCount >= 1, "a snapshot store keeps at least one snapshot")
        self.bypassesPageCache = bypassesPageCache
        precondition(syncEveryBytes > 0, "syncEveryBytes must be positive")
        precondition(writeBytes > 0, "writeBytes must be positive")
        self.writeBytes = writeBytes
        self.directory = directory
        self.retainedCount = retainedCount
        self.syncEveryBytes = syncEveryBytes
        self.fileSystem = fileSystem
        try makeDurableDirectory(directory, on: fileSystem)
    }

    /// The piece size for a producer of `write(sequence:producing:)` whose pieces may run a
    /// little past it (the engine's end at a ticket): a little under `writeBytes`, so that a
    /// piece is one write(), not one full write and a short one.
    public var producedPieceBytes: Int { max(writeBytes - writeBytes / 16, 1) }

    /// The file name of the snapshot at `sequence`.
    public static func fileName(sequence: UInt64) -> String {
        "snapshot-\(paddedSequence(sequence)).snap"
    }

    /// The 36-byte header of a snapshot of `payload` at `sequence`.
    public static func header(sequence: UInt64, payload: UnsafeRawBufferPointer) -> [UInt8] {
        header(sequence: sequence, payloadByteCount: payload.count, payloadChecksum: CRC32C.checksum(payload))
    }

    /// The 36-byte header of a snapshot at `sequence` whose payload has this size and CRC-32C.
    public static func header(sequence: UInt64, payloadByteCount: Int, payloadChecksum: UInt32) -> [UInt8] {
        var header = magic
        header.reserveCapacity(headerByteCount)
        withUnsafeBytes(of: formatVersion.littleEndian) { header.append(contentsOf: $0) }
        withUnsafeBytes(of: sequence.littleEndian) { header.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(payloadByteCount).littleEndian) { header.append(contentsOf: $0) }
        withUnsafeBytes(of: payloadChecksum.littleEndian) { header.append(contentsOf: $0) }
        let headerChecksum = CRC32C.checksum(header)
        withUnsafeBytes(of: headerChecksum.littleEndian) { header.append(contentsOf: $0) }
        return header
    }

    /// Writes a snapshot durably (temp file, fsync, rename, fsync directory), then deletes
    /// all but the newest `retainedCount` snapshots and any leftover temp files. When this
    /// returns, the snapshot survives a crash. O(payload size).
    @discardableResult
    public func write(sequence: UInt64, payload: [UInt8]) throws -> Int {
        try write(sequence: sequence) { emit in payload.withUnsafeBytes { emit($0) } }
    }

    /// Writes a snapshot whose payload `produce` hands over in pieces, in order, through the
    /// `emit` it is given — so that a payload of gigabytes is never held whole (the engine
    /// encodes into it: `EngineSnapshotSource.encode(pieceBytes:into:)`). Same file, same
    /// guarantees as `write(sequence:payload:)`. The header, whose size and checksum are known
    /// only at the end, is written last, over 36 zero bytes, before the final sync: until the
    /// rename, the temp file is never read. A storage error stops the writing (`emit` then
    /// ignores the rest) and is thrown once `produce` returns. Returns the file's size in bytes.
    @discardableResult
    public func write(sequence: UInt64, producing produce: (_ emit: (UnsafeRawBufferPointer) -> Void) -> Void) throws -> Int {
        let name = SnapshotStore.fileName(sequence: sequence)
        let path = joinPath(directory, name)
        let temporaryPath = path + ".tmp"
        // Past the page cache (`O_DIRECT`, in `writeBytes` pieces): copying gigabytes into
        // fresh cache pages was seconds of kernel time on the cores the loop needs
        // (`POSIXDirectAppendFile`).
        let file = try fileSystem.createFile(temporaryPath, exclusive: false, bypassingPageCache: bypassesPageCache,
                                             chunkBytes: writeBytes)
        var writtenPayloadBytes = 0
        do {
            try file.append([UInt8](repeating: 0, count: SnapshotStore.headerByteCount))
            var failure: Error?
            var byteCount = 0
            var checksum: UInt32 = 0
            var unsynced = 0
            produce { piece in
                guard failure == nil else { return }
                do {
                    var offset = 0
                    while offset < piece.count {
                        // Synced every `syncEveryBytes`, so that little of it is ever dirty in
                        // the page cache in front of the WAL's next fsync (the device flush every
                        // acknowledgement waits for would write it all first)…
                        if unsynced >= syncEveryBytes {
                            try file.sync()
                            unsynced = 0
                        }
                        // …in writes of at most `writeBytes`: one write() copies its bytes into
                        // the page cache in one stretch of kernel time, and a thread waking on
                        // that core waits for it (tools/wakelat.c: a 1 ms timer thread woke with
                        // p99 0.4–3.7 ms late beside 8 MiB writes, 0.2–0.6 ms beside 256 KiB ones).
                        let stop = min(offset + writeBytes, offset + (syncEveryBytes - unsynced), piece.count)
                        let chunk = UnsafeRawBufferPointer(rebasing: piece[offset..<stop])
                        try file.append(chunk)
                        checksum = CRC32C.checksum(chunk, continuing: checksum)
                        byteCount += chunk.count
                        unsynced += chunk.count
                        offset = stop
                    }
                } catch {
                    failure = error
                }
            }
            if let failure { throw failure }
            try file.write(SnapshotStore.header(sequence: sequence, payloadByteCount: byteCount, payloadChecksum: checksum), at: 0)
            writtenPayloadBytes = byteCount
            try file.sync()
            try file.close()
        } catch {
            try? file.close()
            try? fileSystem.removeFile(temporaryPath)
            throw error
        }
        try fileSystem.rename(temporaryPath, to: path)
        try fileSystem.syncDirectory(directory)
        try prune()
        return SnapshotStore.headerByteCount + writtenPayloadBytes
    }

    /// Deletes snapshots older than the newest `retainedCount`, and temp files.
    private func prune() throws {
        var removedAny = false
        let names = try fileSystem.listDirectory(directory)
        for name in names where name.hasPrefix("snapshot-") && name.hasSuffix(".snap.tmp") {
            try fileSystem.removeFile(joinPath(directory, name))
            removedAny = true
        }
        let sequences = SnapshotStore.sequences(in: names)
        for sequence in sequences.dropLast(retainedCount) {
            try fileSystem.removeFile(joinPath(directory, SnapshotStore.fileName(sequence: sequence)))
            removedAny = true
        }
        if removedAny { try fileSystem.syncDirectory(directory) }
    }

    /// The sequences of the snapshots on disk, oldest first.
    public func storedSequences() throws -> [UInt64] {
        SnapshotStore.sequences(in: try fileSystem.listDirectory(directory))
    }

    private static func sequences(in names: [String]) -> [UInt64] {
        names.compactMap { parseSequenceName($0, prefix: "snapshot-", suffix: ".snap") }.sorted()
    }

    /// The newest snapshot, checked completely, or nil if there is none. Temp files are
    /// ignored. A damaged newest snapshot throws `SnapshotError.corrupt` (no fallback).
    public func loadNewest() throws -> (sequence: UInt64, payload: [UInt8])? {
        guard let sequence = try storedSequences().last else { return nil }
        let path = joinPath(directory, SnapshotStore.fileName(sequence: sequence))
        let bytes = try fileSystem.readFile(path)
        let payload = try SnapshotStore.check(bytes, sequence: sequence, path: path)
        return (sequence, payload)
    }

    /// Checks a snapshot file's bytes and returns its payload.
    static func check(_ bytes: [UInt8], sequence expected: UInt64, path: String) throws -> [UInt8] {
        func corrupt(_ offset: Int, _ reason: String) -> SnapshotError {
            .corrupt(file: path, offset: offset, reason: reason)
        }
        guard bytes.count >= headerByteCount else {
            throw corrupt(bytes.count, "file is \(bytes.count) bytes, shorter than the \(headerByteCount)-byte header")
        }
        return try bytes.withUnsafeBytes { raw -> [UInt8] in
            func load<T: FixedWidthInteger>(_ offset: Int, _ type: T.Type) -> T {
                T(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
            }
            guard raw.prefix(8).elementsEqual(magic) else { throw corrupt(0, "bad magic (not a Headcount snapshot)") }
            let headerChecksum = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<32]))
            guard headerChecksum == load(32, UInt32.self) else {
                throw corrupt(32, "header checksum mismatch (stored 0x\(hex(load(32, UInt32.self))), computed 0x\(hex(headerChecksum)))")
            }
            let version = load(8, UInt32.self)
            guard version == formatVersion else { throw corrupt(8, "unknown format version \(version)") }
            let sequence = load(12, UInt64.self)
            guard sequence == expected else {
                throw corrupt(12, "sequence \(sequence) differs from the file name's \(expected)")
            }
            let length = load(20, UInt64.self)
            guard length == UInt64(bytes.count - headerByteCount) else {
                throw corrupt(20, "payload length \(length), but \(bytes.count - headerByteCount) bytes follow the header")
            }
            let payload = UnsafeRawBufferPointer(rebasing: raw[headerByteCount...])
            let checksum = CRC32C.checksum(payload)
            guard checksum == load(28, UInt32.self) else {
                throw corrupt(headerByteCount, "payload checksum mismatch (stored 0x\(hex(load(28, UInt32.self))), computed 0x\(hex(checksum)))")
            }
            return Array(payload)
        }
    }
}
