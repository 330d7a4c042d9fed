// HeadcountStorage: the write-ahead log and the snapshot files (SPEC §2 durability).
//
// What lives where:
//   CRC32C.swift                  the checksum of every record and snapshot
//   WALRecord.swift               one record's binary codec (format and worked example)
//   WriteAheadLog.swift           segment files: append, sync, recover, trim
//   SnapshotStore.swift           snapshot files: write atomically, load the newest
//   StorageFileSystem.swift       the storage interface both are written against
//   POSIXFileSystem.swift         the real disk
//   SimulatedFileSystem.swift     an in-memory disk that crashes and tears writes, for tests
//
// Recovery = newest snapshot + the WAL records after its sequence. Formats: docs/FORMATS.md.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import HeadcountCore

/// A damaged WAL, or a WAL that cannot be used any more.
public enum WALError: Error, CustomStringConvertible, Equatable {
    /// A record that is not a torn tail does not check out: bad checksum, undecodable
    /// payload, or a sequence out of order. `offset` is the record's first byte in `file`.
    case corrupt(file: String, offset: Int, reason: String)
    /// An earlier write or sync failed in a way that leaves the file's content unknown (after
    /// a failed fsync the kernel may have dropped the dirty pages: retrying would lie). The
    /// process must restart and recover.
    case unusable(reason: String)

    public var description: String {
        switch self {
        case .corrupt(let file, let offset, let reason):
            return "WAL corrupt: \(file) at offset \(offset): \(reason)"
        case .unusable(let reason):
            return "WAL unusable after an earlier failure: \(reason)"
        }
    }
}

/// What `WriteAheadLog.recover` found.
public struct RecoveryReport: Equatable, Sendable {
    /// Segment files found.
    public var segmentCount = 0
    /// Segments not read because all their records are ≤ the `after` sequence.
    public var segmentsSkipped = 0
    /// Records decoded and checked.
    public var recordsRead = 0
    /// Records passed to the body (sequence > `after`).
    public var recordsDelivered = 0
    /// The sequence of the first record read, if any (a caller whose sequences have no gaps
    /// can check that it is ≤ its snapshot's sequence + 1).
    public var firstSequenceRead: UInt64?
    /// The sequence of the last record in the log, if any record was read.
    public var lastSequence: UInt64?
    /// The torn last record dropped, if there was one.
    public var tornTail: TornTail?
    /// An empty last segment removed (one created just before a crash), if there was one.
    public var removedEmptySegment: String?
    /// Zero bytes after the last record of the last segment: room preallocated for records
    /// and not written yet (kept when preallocating, else cut off). Not a torn record.
    public var unusedTailBytes = 0

    public struct TornTail: Equatable, Sendable {
        /// The segment, now truncated to `offset`.
        public var file: String
        public var offset: Int
        public var bytesDropped: Int
        public var reason: String
    }

    public init() {}
}

/// The write-ahead log: accepted feed events, encoded as `WALRecord`s, appended to segment
/// files `wal-<first sequence, 20 digits>.log` in one directory.
///
/// With preallocation (`Preallocation.background`, the server's default), a segment is a
/// file of `segmentBytesMax` zero bytes, written and synced ahead of time as
/// `next-segment.tmp` and renamed when it is needed; records then overwrite its zeros in
/// place, so a sync flushes data only — no size change for the file system's journal.
///
/// Sequences are contiguous: the first record ever is 1, each next one is the previous + 1
/// (a batch whose append failed is retried, or its sequences reused by the next batch).
/// That is what lets recovery see a lost record anywhere, not only at the end: a segment cut
/// short at a record boundary, or a log that no longer reaches back to the snapshot, is
/// corruption, not silence.
///
/// ## Life cycle
/// 1. `init` creates the directory and reads nothing.
/// 2. `recover(after:_:)` reads every segment in order, checks every record, hands those
///    after the snapshot's sequence to the engine, and drops a torn last record. It must
///    run once before the first `append`.
/// 3. `append` and `sync` run on one worker thread (never concurrently with each other):
///    the group commit encodes a batch, appends it, and syncs once for all its requests.
/// 4. `removeSegments(through:)` drops whole segments once a snapshot covers them; it may
///    run on another thread.
///
/// ## Why the order of operations matters
/// - A batch is written with one `pwrite` at the end of the records; a new segment starts
///   only at a batch boundary, so a batch's records are in one file and a segment's name is
///   its first record's.
/// - Before a new segment is created, the old one is cut to the end of its records (its
///   unused preallocated zeros go) and synced: then only the last segment can end in a torn
///   record or zeros, and recovery can treat damage anywhere else as corruption.
/// - A segment is prepared (zero-filled, synced) under a name recovery does not read, and
///   renamed only when the records before it are synced: a crash mid-preparation leaves a
///   file that is prepared again, never a segment.
/// - After a segment is created, the next `sync` also syncs the directory, or a crash could
///   lose the whole file, synced records included.
/// - A failed `fdatasync` makes the log unusable (`WALError.unusable`): Linux may already
///   have dropped the unwritten pages and a retry could report success for lost data.
public final class WriteAheadLog: @unchecked Sendable {
    /// How segments get their space.
    public enum Preallocation: Equatable, Sendable {
        /// Segments grow by appending: every sync also commits a size change.
        case off
        /// The next segment is zero-filled and synced ahead of time on a thread of the log's
        /// own: once the current segment is half full (at once if it has no preallocated
        /// room), so that the zero-fill does not compete with the syncs of a segment's first
        /// half, nor a fresh start's first requests. A rollover that finds it not ready yet
        /// creates a plain segment and moves on to the prepared one as soon as it is (never
        /// a zero-fill in front of an append).
        case background
        /// As `background`, but the next segment is prepared only by `prepareNextSegment()`,
        /// on the caller's thread: for tests that must replay exactly.
        case manual
    }

    /// The name of the segment being prepared, or prepared and not yet in use.
    public static let preparedSegmentName = "next-segment.tmp"

    /// The directory of the segment files.
    public let directory: String
    /// A batch goes to a new segment if it would take a non-empty one past this size; a
    /// preallocated segment has this size from the start.
    public let segmentBytesMax: Int
    public let preallocation: Preallocation
    /// Segments are opened with `StorageFileSystem.openFile(_:writesThrough:)`: with
    /// `POSIXFileSystem`, appends into a preallocated segment's room go straight to the disk
    /// (`O_DIRECT | O_DSYNC`) and `sync` has nothing left to do for them.
    public let writesThrough: Bool
    private let fileSystem: StorageFileSystem
    private let preparer: SegmentPreparer?

    private struct Segment {
        var firstSequence: UInt64
        var name: String
    }

    // Guarded by `lock`: read by metrics and `removeSegments` from other threads.
    private let lock = NSLock()
    private var segments: [Segment] = []
    private var bytesWrittenTotal = 0
    private var isCurrentWritingThrough = false

    // Touched only by `recover`, then by the worker thread (`append`, `sync`).
    private var current: StorageFile?
    /// Where the records of the current segment end: the next batch is written here.
    private var currentSize = 0
    /// The current segment's file size: past `currentSize` it holds synced zeros (prepared
    /// room) up to here; equal to `currentSize` for a segment that grows by appending.
    private var currentFileSize = 0
    private var lastSequenceWritten: UInt64?
    /// When the last sequence is unknown (its segment was skipped in recovery), the next
    /// one must at least be above this one, known to exist.
    private var appendFloor: UInt64?
    private var isRecovered = false
    private var directoryNeedsSync = false
    private var failure: String?
    /// Whether the next segment was asked for since the last rollover.
    private var isPreparationRequested = false

    /// - Parameters:
    ///   - preallocation: see `Preallocation`; with it, each segment takes `segmentBytesMax`
    ///     of disk from the start, plus one more for the prepared next one.
    ///   - preparationChunkBytes: the zero-fill writes and syncs this much at a time, so that
    ///     the log's own syncs never queue behind a whole segment of zeros.
    ///   - writesThrough: see `writesThrough`; pays only with preallocation (a plain segment
    ///     grows, and growing writes go through the page cache).
    public init(directory: String, segmentBytesMax: Int = 64 << 20, preallocation: Preallocation = .off,
                preparationChunkBytes: Int = 1 << 20, writesThrough: Bool = false,
                fileSystem: StorageFileSystem = POSIXFileSystem()) throws {
        precondition(segmentBytesMax > 0, "segmentBytesMax must be positive")
        precondition(preparationChunkBytes > 0, "preparationChunkBytes must be positive")
        self.directory = directory
        self.segmentBytesMax = segmentBytesMax
        self.preallocation = preallocation
        self.writesThrough = writesThrough
        self.fileSystem = fileSystem
        preparer = preallocation == .off ? nil : SegmentPreparer(
            fileSystem: fileSystem, directory: directory, path: joinPath(directory, Self.preparedSegmentName),
            size: segmentBytesMax, chunkBytes: preparationChunkBytes, isBackground: preallocation == .background)
        try makeDurableDirectory(directory, on: fileSystem)
    }

    deinit {
        preparer?.stop()
        try? current?.close()
    }

    // MARK: Metrics

    /// Bytes appended by this instance.
    public var bytesWritten: Int { lock.lock(); defer { lock.unlock() }; return bytesWrittenTotal }

    /// Whether the current segment's appends go through to the disk (`writesThrough` asked
    /// for, the segment preallocated, and the file system allowing it).
    public var isWritingThrough: Bool { lock.lock(); defer { lock.unlock() }; return isCurrentWritingThrough }

    /// Segment files in the log now.
    public var segmentCount: Int { lock.lock(); defer { lock.unlock() }; return segments.count }

    /// The sequence of the last record appended or recovered, if any (worker thread only).
    public var lastSequence: UInt64? { lastSequenceWritten }

    /// Whether a prepared segment is waiting for the next rollover.
    public var isNextSegmentPrepared: Bool { preparer?.isReady ?? false }

    /// Why the last preparation of a segment failed, if it did (the log then goes on with
    /// segments that grow by appending, and tries again at the next rollover).
    public var preparationFailure: String? { preparer?.failure }

    /// Prepares the next segment now unless one is ready: on this thread with
    /// `Preallocation.manual`; with `.background`, waits for the log's thread to do it.
    /// Returns whether one is ready; throws what the preparation threw (`.manual`).
    @discardableResult
    public func prepareNextSegment() throws -> Bool {
        guard let preparer else { return false }
        return try preparer.prepareNow()
    }

    // MARK: Encoding

    /// Appends `record`, framed, to `buffer` (see `WALRecord` for the format).
    public static func encode(_ record: WALRecord, into buffer: inout [UInt8]) {
        record.encode(into: &buffer)
    }

    /// `encode(_:into:)` of the record these make, for an event already checked
    /// (`WALRecord.encodingProblem(of:)` is nil): no record made, no second check.
    public static func encode(sequence: UInt64, arrivalMilliseconds: Int64, checkedEvent event: FeedEvent, into buffer: inout [UInt8]) {
        WALRecord.encode(sequence: sequence, arrivalMilliseconds: arrivalMilliseconds, event: event, into: &buffer)
    }

    // MARK: Recovery

    /// Reads every segment in order and calls `body` with each record whose sequence is
    /// greater than `sequence`, in sequence order. Segments whose records are all ≤
    /// `sequence` (the next segment starts at or before `sequence + 1`) are not read.
    ///
    /// Zeros after the last record of the last segment are room not written yet (preallocated):
    /// kept when preallocating, else cut off (`RecoveryReport.unusedTailBytes`). A torn last
    /// record of the last segment (its header or payload cut short, or a bad checksum on a
    /// record followed by nothing but zeros) is dropped and the file truncated there; an
    /// empty last segment is removed. Anything else that does not check out throws
    /// `WALError.corrupt` naming the file and offset: a bad record, zeros with data after
    /// them, zeros in a segment that is not the last, a sequence that is not the previous + 1
    /// (within a segment or across two), or a first segment read that starts after
    /// `sequence + 1` (records missing between the snapshot and the log). Errors thrown by
    /// `body` propagate unchanged. Rules and reasons: docs/FORMATS.md.
    ///
    /// O(bytes in the segments read); holds one segment in memory at a time.
    public func recover(after sequence: UInt64, _ body: (WALRecord) throws -> Void) throws -> RecoveryReport {
        try recover(after: sequence, decode: { try WALRecord(payload: $0) }, sequenceOf: { $0.sequence }, body)
    }

    /// `recover(after:_:)` with another payload decoder (`WALReplay`'s): `decode` must accept
    /// exactly the payloads `WALRecord(payload:)` accepts and throw its `DecodingError` for
    /// the others; `sequenceOf` gives a decoded record's sequence.
    func recover<Record>(after sequence: UInt64, decode: (UnsafeRawBufferPointer) throws -> Record,
                         sequenceOf: (Record) -> UInt64, _ body: (Record) throws -> Void) throws -> RecoveryReport {
        precondition(!isRecovered, "WriteAheadLog.recover may run only once")
        var found = try fileSystem.listDirectory(directory).compactMap { name -> Segment? in
            parseSequenceName(name, prefix: "wal-", suffix: ".log").map { Segment(firstSequence: $0, name: name) }
        }
        found.sort { $0.firstSequence < $1.firstSequence }
        var report = RecoveryReport()
        report.segmentCount = found.count

        if preparer == nil,
           try fileSystem.listDirectory(directory).contains(Self.preparedSegmentName) {
            // Prepared while preallocating; not wanted now.
            try fileSystem.removeFile(joinPath(directory, Self.preparedSegmentName))
        }

        var lastEnd: Int?
        var index = 0
        while index < found.count {
            let segment = found[index]
            let nextFirst: UInt64? = index + 1 < found.count ? found[index + 1].firstSequence : nil
            if let nextFirst, nextFirst - 1 <= sequence {
                // Not read, but it holds at least its first record: appends must follow it.
                appendFloor = max(appendFloor ?? 0, segment.firstSequence)
                report.segmentsSkipped += 1
                index += 1
                continue
            }
            let path = joinPath(directory, segment.name)
            if report.segmentsSkipped == index && segment.firstSequence > 0 && segment.firstSequence - 1 > sequence {
                // The first segment read must reach back to the record after the snapshot.
                throw WALError.corrupt(file: path, offset: 0, reason: """
                    the log starts at sequence \(segment.firstSequence), but recovery needs every record \
                    after \(sequence): records \(sequence + 1)…\(segment.firstSequence - 1) are missing
                    """)
            }
            let (end, size) = try withSegmentBytes(path) { bytes in
                try scan(bytes, segment: segment, path: path, isLast: nextFirst == nil,
                         nextFirst: nextFirst, after: sequence, report: &report,
                         decode: decode, sequenceOf: sequenceOf, body)
            }
            if end < size && (report.tornTail != nil || preparer == nil || end == 0) {
                // A torn record is cut off (an atomic truncation: zeroing it in place could
                // itself tear and leave zeros before stale bytes); so is unused room when
                // not preallocating. Preallocating, room of zeros only is kept as it is.
                let file = try fileSystem.openFile(path)
                try file.truncate(to: end)
                try file.sync()
                try file.close()
            }
            if end == 0 && nextFirst == nil {
                // Nothing whole in the last segment: remove it, so that the next segment is
                // named after the next record actually appended.
                try fileSystem.removeFile(path)
                try fileSystem.syncDirectory(directory)
                report.removedEmptySegment = segment.name
                report.segmentCount -= 1
                found.removeLast()
                break
            }
            if nextFirst == nil { lastEnd = end }
            index += 1
        }

        if let last = found.last {
            let file = try fileSystem.openFile(joinPath(directory, last.name), writesThrough: writesThrough)
            current = file
            currentFileSize = try file.size()
            lock.lock()
            isCurrentWritingThrough = file.writesThrough
            lock.unlock()
            // The last segment read, or (if that one was removed) the whole one before it.
            currentSize = lastEnd ?? currentFileSize
        }
        lastSequenceWritten = report.lastSequence
        lock.lock()
        segments = found
        lock.unlock()
        isRecovered = true
        requestPreparationIfDue()
        return report
    }

    /// Calls `body` with a segment's bytes; returns its result and the byte count. On the
    /// real disk the file is mapped (read-only, private, populated): no zero-filled buffer,
    /// no copy, which is a third of a replay's reading thread otherwise. Elsewhere (the
    /// simulated file system), or if mapping fails, `readFile`.
    private func withSegmentBytes<T>(_ path: String, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> (T, Int) {
        if fileSystem is POSIXFileSystem {
            let descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw StorageError(operation: "open", path: path, errno: errno) }
            defer { close(descriptor) }
            var info = stat()
            guard fstat(descriptor, &info) == 0 else { throw StorageError(operation: "fstat", path: path, errno: errno) }
            let size = Int(info.st_size)
            if size == 0 { return (try body(UnsafeRawBufferPointer(start: nil, count: 0)), 0) }
            if let address = mmap(nil, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, descriptor, 0),
               address != UnsafeMutableRawPointer(bitPattern: -1) {
                defer { munmap(address, size) }
                return (try body(UnsafeRawBufferPointer(start: address, count: size)), size)
            }
        }
        let bytes = try fileSystem.readFile(path)
        return (try bytes.withUnsafeBytes { try body($0) }, bytes.count)
    }

    /// The bytes of the segment files in the directory now (to size a replay's tables).
    func segmentBytesOnDisk() throws -> Int {
        try fileSystem.listDirectory(directory).reduce(0) { total, name in
            parseSequenceName(name, prefix: "wal-", suffix: ".log") == nil
                ? total : total + (try fileSystem.fileSize(joinPath(directory, name)))
        }
    }

    /// Checks the records of one segment and delivers those after `after`. Returns where the
    /// whole records end (the file size unless the tail is torn or zeros).
    private func scan<Record>(_ raw: UnsafeRawBufferPointer, segment: Segment, path: String, isLast: Bool, nextFirst: UInt64?,
                              after: UInt64, report: inout RecoveryReport,
                              decode: (UnsafeRawBufferPointer) throws -> Record, sequenceOf: (Record) -> UInt64,
                              _ body: (Record) throws -> Void) throws -> Int {
        do {
            let size = raw.count
            var offset = 0
            var previous: UInt64?
            // Past this, zeros only: room preallocated and not written yet (or, on some file
            // systems, an extension whose data never reached the disk).
            let written = endOfNonZero(raw, from: 0)

            /// The damage at `offset` is a torn tail: drop it. Or it is not: throw.
            func tornOrCorrupt(_ isTorn: Bool, _ reason: String) throws -> Int {
                if isLast && isTorn {
                    report.tornTail = .init(file: path, offset: offset, bytesDropped: size - offset, reason: reason)
                    return offset
                }
                throw WALError.corrupt(file: path, offset: offset, reason: reason)
            }

            while offset < size {
                if offset >= written {
                    // Never a record (no writer writes an empty payload, so a zero header is
                    // none); in a segment before the last, rollover cut the room off.
                    guard isLast else {
                        throw WALError.corrupt(file: path, offset: offset, reason: "zeros where a record should start, in a segment that is not the last")
                    }
                    report.unusedTailBytes = size - offset
                    return offset
                }
                let remaining = size - offset
                guard remaining >= WALRecord.headerByteCount else {
                    return try tornOrCorrupt(true, "header cut short (\(remaining) of 8 bytes)")
                }
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                let storedChecksum = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                // No writer writes an empty payload; and a torn write keeps a prefix of true
                // bytes, so zeros with data after them are lost bytes, not a torn tail.
                guard length > 0 else {
                    return try tornOrCorrupt(false, "zero length where a record should start, with data after it")
                }
                // A torn write leaves a prefix of true bytes, so its length is one a writer
                // could have written: a larger one is damage even at the end of the file.
                guard length <= WALRecord.payloadBytesMax else {
                    return try tornOrCorrupt(false, "payload length \(length) over the limit \(WALRecord.payloadBytesMax)")
                }
                let recordEnd = offset + WALRecord.headerByteCount + length
                guard recordEnd <= size else {
                    return try tornOrCorrupt(true, "payload cut short (\(remaining - 8) of \(length) bytes)")
                }
                let payload = UnsafeRawBufferPointer(rebasing: raw[(offset + WALRecord.headerByteCount)..<recordEnd])
                let checksum = CRC32C.checksum(payload)
                guard checksum == storedChecksum else {
                    let reason = "checksum mismatch (stored 0x\(hex(storedChecksum)), computed 0x\(hex(checksum)))"
                    // Torn only if it is the last thing written: nothing but zeros after it.
                    return try tornOrCorrupt(recordEnd >= written, reason)
                }
                let record: Record
                do {
                    record = try decode(payload)
                } catch let error as WALRecord.DecodingError {
                    return try tornOrCorrupt(false, "undecodable payload: \(error)")
                }
                let sequence = sequenceOf(record)
                if let previous {
                    guard sequence == previous &+ 1 else {
                        throw WALError.corrupt(file: path, offset: offset,
                                               reason: "sequence \(sequence) does not follow \(previous)")
                    }
                } else {
                    guard sequence == segment.firstSequence else {
                        throw WALError.corrupt(file: path, offset: offset,
                                               reason: "first sequence \(sequence) differs from the file name's")
                    }
                    if report.firstSequenceRead == nil { report.firstSequenceRead = sequence }
                }
                if let nextFirst, sequence >= nextFirst {
                    throw WALError.corrupt(file: path, offset: offset,
                                           reason: "sequence \(sequence) not below the next segment's \(nextFirst)")
                }
                previous = sequence
                report.recordsRead += 1
                report.lastSequence = sequence
                if sequence > after {
                    report.recordsDelivered += 1
                    try body(record)
                }
                offset = recordEnd
            }
            if let nextFirst {
                guard let previous else {
                    throw WALError.corrupt(file: path, offset: 0, reason: "no records, yet a later segment exists")
                }
                guard previous == nextFirst - 1 else {
                    throw WALError.corrupt(file: path, offset: size, reason: """
                        the segment ends at sequence \(previous) but the next one starts at \(nextFirst): \
                        records \(previous + 1)…\(nextFirst - 1) are missing
                        """)
                }
            }
            return offset
        }
    }

    // MARK: Appending

    /// Appends already-encoded records (one or more, from `encode`) with sequences
    /// `firstSequence…lastSequence`, all to one segment: a new one first if these bytes
    /// would take a non-empty current segment past `segmentBytesMax`, or if they do not fit
    /// in its preallocated room and a prepared segment is ready (a plain segment made while
    /// none was ready is left as soon as one is).
    ///
    /// Call from one worker thread, never concurrently with `append` or `sync`. Not durable
    /// until `sync`. On a write error the segment is cut back to its previous end, so the
    /// log stays whole, and the error is thrown; if that fails too, the log is unusable.
    ///
    /// - Precondition: `recover` has run; `firstSequence` is the last sequence written or
    ///   recovered + 1 (or ≥ 1 in an empty log); the batch holds exactly the records
    ///   `firstSequence…lastSequence`.
    public func append(_ bytes: [UInt8], firstSequence: UInt64, lastSequence: UInt64) throws {
        precondition(isRecovered, "WriteAheadLog.recover must run before append")
        precondition(!bytes.isEmpty && firstSequence <= lastSequence, "WAL append of an empty or inverted batch")
        if let last = lastSequenceWritten {
            precondition(firstSequence == last + 1, "WAL sequence \(firstSequence) does not follow \(last)")
        } else if let floor = appendFloor {
            precondition(firstSequence > floor, "WAL sequence \(firstSequence) is not above \(floor)")
        } else {
            precondition(firstSequence >= 1, "WAL sequences start at 1")
        }
        if let failure { throw WALError.unusable(reason: failure) }
        let end = currentSize + bytes.count
        if current == nil || (currentSize > 0 && end > segmentBytesMax)
            || (currentSize > 0 && end > currentFileSize && preparer?.isReady == true) {
            try startSegment(firstSequence: firstSequence)
        }
        let file = current!
        do {
            try file.write(bytes, at: currentSize)
        } catch {
            do {
                // Cut back, room and all: a truncation is atomic, where zeroing the bytes in
                // place could tear and leave zeros before stale bytes. The next batch appends,
                // or moves to the prepared segment.
                try file.truncate(to: currentSize)
                currentFileSize = currentSize
            } catch let repairError {
                failure = "\(error); then \(repairError)"
            }
            throw error
        }
        currentFileSize = max(currentFileSize, end)
        currentSize += bytes.count
        lastSequenceWritten = lastSequence
        lock.lock()
        bytesWrittenTotal += bytes.count
        lock.unlock()
        requestPreparationIfDue()
    }

    /// Asks for the next segment once per segment: when the current one is half full, or
    /// has no preallocated room (a plain segment, or none yet).
    private func requestPreparationIfDue() {
        guard let preparer, !isPreparationRequested else { return }
        if current == nil || currentFileSize <= currentSize || currentSize >= segmentBytesMax / 2 {
            isPreparationRequested = true
            preparer.request()
        }
    }

    /// Cuts the current segment to its records and syncs it, so that only the new one can
    /// end in a torn record or zeros; then makes `wal-<firstSequence>.log` current: the
    /// prepared segment renamed, if one is ready, else a new empty file.
    private func startSegment(firstSequence: UInt64) throws {
        if let old = current {
            do {
                if currentFileSize > currentSize {
                    try old.truncate(to: currentSize)
                    currentFileSize = currentSize
                }
                try old.sync()
            } catch {
                failure = "\(error)"
                throw error
            }
        }
        let name = "wal-\(paddedSequence(firstSequence)).log"
        let path = joinPath(directory, name)
        let file: StorageFile
        if let preparer, preparer.take() {
            do {
                try fileSystem.rename(preparer.path, to: path)
            } catch {
                preparer.request() // synced again (or made again); this batch fails
                throw error
            }
            do {
                file = try fileSystem.openFile(path, writesThrough: writesThrough)
                currentFileSize = try file.size()
            } catch {
                // The segment exists now but cannot be used: a restart removes it (all zeros).
                failure = "\(error)"
                throw error
            }
        } else {
            file = try fileSystem.createFile(path, exclusive: true)
            currentFileSize = 0
        }
        try? current?.close()
        current = file
        currentSize = 0
        directoryNeedsSync = true
        lock.lock()
        segments.append(Segment(firstSequence: firstSequence, name: name))
        isCurrentWritingThrough = file.writesThrough
        lock.unlock()
        isPreparationRequested = false
        requestPreparationIfDue()
    }

    /// Makes everything appended so far durable: `fdatasync` of the current segment, and of
    /// the directory if a segment was created since the last sync. A failure makes the log
    /// unusable (see `WALError.unusable`). Same thread as `append`.
    public func sync() throws {
        if let failure { throw WALError.unusable(reason: failure) }
        guard let file = current else { return }
        do {
            try file.sync()
            if directoryNeedsSync {
                try fileSystem.syncDirectory(directory)
                directoryNeedsSync = false
            }
        } catch {
            failure = "\(error)"
            throw error
        }
    }

    // MARK: Trimming

    /// Removes the oldest segments whose records all have sequences ≤ `sequence` (the next
    /// segment starts at or before `sequence + 1`); never the current one. Call once a
    /// snapshot covering `sequence` is durable. Returns how many were removed.
    ///
    /// May run on another thread than `append`; not concurrently with itself.
    @discardableResult
    public func removeSegments(through sequence: UInt64) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        var removed = 0
        while segments.count >= 2 && segments[1].firstSequence - 1 <= sequence {
            try fileSystem.removeFile(joinPath(directory, segments[0].name))
            segments.removeFirst()
            removed += 1
        }
        // Not needed for correctness (a segment that comes back after a crash is skipped),
        // but it keeps the disk's view what the metrics say.
        if removed > 0 { try fileSystem.syncDirectory(directory) }
        return removed
    }
}

/// One past the last non-zero byte of `raw[offset...]`; `offset` if there is none. Eight
/// bytes at a time: a preallocated segment's tail is megabytes of zeros.
func endOfNonZero(_ raw: UnsafeRawBufferPointer, from offset: Int) -> Int {
    var end = raw.count
    while end > offset && end & 7 != 0 {
        if raw[end - 1] != 0 { return end }
        end -= 1
    }
    while end - 8 >= offset {
        if raw.loadUnaligned(fromByteOffset: end - 8, as: UInt64.self) != 0 { break }
        end -= 8
    }
    while end > offset {
        if raw[end - 1] != 0 { return end }
        end -= 1
    }
    return offset
}

/// Zero-fills and syncs the next segment under a name recovery does not read, on a thread
/// of its own (`Preallocation.background`) or when asked (`.manual`). Safe from any thread.
final class SegmentPreparer: @unchecked Sendable {
    let path: String
    private let fileSystem: StorageFileSystem
    private let size: Int
    private let chunkBytes: Int
    private let isBackground: Bool
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var isReadyState = false
    private var isWanted = false
    private var isBusy = false
    private var isStopping = false
    private var hasThread = false
    private var failureState: String?

    init(fileSystem: StorageFileSystem, directory: String, path: String, size: Int, chunkBytes: Int, isBackground: Bool) {
        self.fileSystem = fileSystem
        self.path = path
        self.size = size
        self.chunkBytes = chunkBytes
        self.isBackground = isBackground
    }

    var isReady: Bool { condition.lock(); defer { condition.unlock() }; return isReadyState }
    var failure: String? { condition.lock(); defer { condition.unlock() }; return failureState }

    /// Hands the prepared file over (the caller renames it): true if one was ready.
    func take() -> Bool {
        condition.lock(); defer { condition.unlock() }
        guard isReadyState else { return false }
        isReadyState = false
        return true
    }

    /// Background: prepares one unless it is ready or under way. Manual: nothing.
    func request() {
        guard isBackground else { return }
        condition.lock(); defer { condition.unlock() }
        guard !isReadyState, !isStopping else { return }
        isWanted = true
        if !hasThread {
            hasThread = true
            let thread = Thread { [self] in run() }
            thread.start()
        }
        condition.broadcast()
    }

    func prepareNow() throws -> Bool {
        if isBackground {
            request()
            condition.lock(); defer { condition.unlock() }
            while (isWanted || isBusy) && !isStopping { condition.wait() }
            return isReadyState
        }
        condition.lock()
        if isReadyState { condition.unlock(); return true }
        condition.unlock()
        do {
            try prepare()
        } catch {
            condition.lock(); failureState = "\(error)"; condition.unlock()
            throw error
        }
        condition.lock(); isReadyState = true; failureState = nil; condition.unlock()
        return true
    }

    /// Lets the thread end after the chunk it is writing (the file is finished next time).
    func stop() {
        condition.lock(); defer { condition.unlock() }
        isStopping = true
        condition.broadcast()
    }

    private var shouldStop: Bool { condition.lock(); defer { condition.unlock() }; return isStopping }

    private func run() {
        Thread.current.name = "hc-wal-prepare"  // set from the thread itself, so `top -H` and perf show it
        condition.lock()
        while true {
            while !isWanted && !isStopping { condition.wait() }
            if isStopping { break }
            isBusy = true
            condition.unlock()
            var outcome: String?
            var finished = false
            do {
                finished = try prepare()
            } catch {
                outcome = "\(error)"
                try? fileSystem.removeFile(path) // give the space back; made again next time
            }
            condition.lock()
            isBusy = false
            isWanted = false
            if finished { isReadyState = true }
            failureState = outcome
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Writes `size` zeros to the file, a chunk at a time, each synced; a whole file left by
    /// an earlier run (it only ever holds zeros) is only synced again. False if stopped.
    @discardableResult
    private func prepare() throws -> Bool {
        if (try? fileSystem.fileSize(path)) == size {
            let file = try fileSystem.openFile(path)
            defer { try? file.close() }
            try file.sync()
            return true
        }
        // Past the page cache where the file system allows it (`O_DIRECT`): written through
        // the cache, each 1 MiB chunk was a 1 MiB copy into fresh cache pages, ~3 ms in the
        // kernel at a stretch; on a kernel that does not preempt kernel code (this machine's
        // `PREEMPT_NONE`) a query's thread woken on that core waited for it (measured under a
        // saturating feed, docs/BENCHMARKS.md, session 11). Direct, the device reads the
        // zeros from the buffer and the thread mostly waits. The same bytes, the same syncs.
        let file = try fileSystem.createFile(path, exclusive: false, bypassingPageCache: true, chunkBytes: chunkBytes)
        defer { try? file.close() }
        let zeros = [UInt8](repeating: 0, count: min(chunkBytes, size))
        var offset = 0
        while offset < size {
            if shouldStop { return false }
            let count = min(chunkBytes, size - offset)
            try zeros.withUnsafeBytes { try file.append(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            try file.sync()
            offset += count
        }
        return true
    }
}

func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: 8 - digits.count) + digits
}
