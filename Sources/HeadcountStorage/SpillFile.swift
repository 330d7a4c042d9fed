#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import HeadcountCore

/// The engine's spill store on disk: one append-only file of spilled delta records
/// (`<data-dir>/spill/records.spill`). A token is the byte offset of a blob. The file is a
/// cache of state the snapshot and WAL rebuild at start-up, so it is truncated when opened
/// and never fsync'd: a crash loses nothing that recovery needs.
///
/// Written behind: `store` copies the blob into a pending buffer and returns its offset at
/// once; a thread of the file's own (`hc-spill`) writes the pending bytes out in order, 64 KiB
/// per `pwrite`. A load of a blob not written yet is served from memory. Why: the loop spills
/// up to 1 MiB every 50 ms under a growing state, and written there, each slice's copy into
/// new page-cache pages took 4–10 ms of the loop (most of its turns over 4 ms under a
/// saturating feed with 25 M events: docs/BENCHMARKS.md, session 11). Small writes keep each
/// stretch in the kernel short, since this machine's kernel does not preempt kernel code.
/// A write that fails leaves its bytes in memory, served from there (`writeFailures`). The
/// thread writes in the SCHED_IDLE class (`IdleClassSwitch`); the server spills no more while `pendingBytes` is
/// past 16 MiB, so memory the writer has not caught up with stays bounded.
///
/// Space of discarded blobs (chunks brought back into memory by a late event) is not reused;
/// `garbageBytes` reports it. The file starts empty at each start.
public final class SpillFile: SpillStore {
    public let path: String
    private let descriptor: Int32
    /// Bytes stored (the file's size once everything pending is written).
    public var sizeBytes: Int { lock.lock(); defer { lock.unlock() }; return storedEnd }
    public private(set) var garbageBytes: Int = 0
    /// Writes that failed (their bytes stay in memory).
    public var writeFailures: Int { lock.lock(); defer { lock.unlock() }; return failures }
    /// Bytes stored and not yet written to the file.
    public var pendingBytes: Int { lock.lock(); defer { lock.unlock() }; return storedEnd - writtenEnd }
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

    // Guarded by `lock`.
    private let lock = NSCondition()
    /// Where the next blob goes; where the bytes on the file end (everything before is in it,
    /// or in `failed`).
    private var storedEnd = 0
    private var writtenEnd = 0
    /// Bytes stored after `writtenEnd`, in order: the one being written first (`isWriting`).
    private var pending: [(offset: Int, bytes: [UInt8])] = []
    /// Written pieces' buffers, emptied, for the next pieces (at most `spareBuffersMax`).
    private var spareBuffers: [[UInt8]] = []
    private let spareBuffersMax = 32  // 2 MiB: two spill slices (1 MiB each)
    private var isWriting = false
    /// Pieces whose write failed, by offset: served from memory.
    private var failed: [(offset: Int, bytes: [UInt8])] = []
    private var failures = 0
    private var isStopping = false
    private var hasThread = false
    private let pieceBytes = 64 << 10

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

    /// Lets the writer thread end (after the piece it is writing); what is pending stays
    /// readable from memory. Called when the server stops.
    public func stop() {
        lock.lock(); isStopping = true; lock.broadcast(); lock.unlock()
    }

    /// Waits until everything stored so far is written (or failed): for tests.
    public func waitUntilWritten() {
        lock.lock()
        while !pending.isEmpty && !isStopping { lock.wait() }
        lock.unlock()
    }

    public func store(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard bytes.count > 0 else { lock.lock(); defer { lock.unlock() }; return UInt64(storedEnd) }
        lock.lock()
        defer { lock.unlock() }
        let offset = storedEnd
        let wasIdle = pending.isEmpty
        // Appended to the last pending piece while it is small and not being written.
        if let last = pending.indices.last, !(isWriting && last == 0), pending[last].bytes.count + bytes.count <= pieceBytes {
            pending[last].bytes.append(contentsOf: bytes)
        } else {
            // A piece's buffer is reserved whole and reused once written: growing it by
            // appends (6 KiB chunks: four reallocations and copies) and a fresh malloc per
            // piece on a fragmented heap were most of a spill slice's time on the loop.
            var buffer = spareBuffers.popLast() ?? []
            buffer.reserveCapacity(max(pieceBytes, bytes.count))
            buffer.append(contentsOf: bytes)
            pending.append((offset, buffer))
        }
        storedEnd += bytes.count
        if !hasThread {
            hasThread = true
            let thread = Thread { [self] in runWriter() }
            thread.start()
        }
        // The writer drains everything pending before it waits again: wake it only then.
        if wasIdle { lock.signal() }
        return UInt64(offset)
    }

    private func runWriter() {
        Thread.current.name = "hc-spill"
        // SCHED_IDLE (nice 19 where refused) while it writes or waits: only CPU time no other
        // thread wants. In the normal class each wake-up of this thread preempted the event
        // loop on its own core, which then waited out a 64 KiB page-cache write (~5 ms here)
        // with a query in hand (a `sched_switch` trace with idle year-back queries after a
        // feed: every 50 ms); so it also takes `lock` in the idle class (woken by the loop's
        // unlock, a normal-class writer preempted the loop for 0.5–1.4 ms, session 12). But in
        // the normal class while it holds `lock` or frees a written piece (into the loop's
        // malloc arena, under the arena's lock): an idle-class thread preempted there kept the
        // loop waiting until the machine had a core to spare (a saturating feed: the loop
        // asleep in `store`, docs/BENCHMARKS.md session 12). Where the thread may not come
        // back from SCHED_IDLE (an unprivileged process with RLIMIT_NICE 0) it stays there.
        let scheduling = IdleClassSwitch()
        func lockAsIdle() {
            lock.lock()
            scheduling.leaveIdle()
        }
        lockAsIdle()
        while true {
            while pending.isEmpty && !isStopping {
                scheduling.enterIdle()
                lock.wait()
                scheduling.leaveIdle()
            }
            if isStopping { break }
            isWriting = true
            var piece: (offset: Int, bytes: [UInt8])? = pending[0]
            lock.unlock()
            scheduling.enterIdle()
            var written = 0
            var error: Int32 = 0
            piece!.bytes.withUnsafeBytes { raw in
                while written < raw.count {
                    let result = pwrite(descriptor, raw.baseAddress! + written, min(pieceBytes, raw.count - written), off_t(piece!.offset + written))
                    if result < 0 {
                        if errno == EINTR { continue }
                        error = errno
                        break
                    }
                    written += result
                }
            }
            piece = nil  // `pending` still holds the bytes: freed or kept below, in the normal class
            lockAsIdle()
            isWriting = false
            var done: (offset: Int, bytes: [UInt8])? = pending.removeFirst()
            if error != 0 {
                failures += 1
                failed.append(done!)
            }
            writtenEnd = done!.offset + done!.bytes.count
            let keep = error == 0 && spareBuffers.count < spareBuffersMax
            lock.broadcast()
            lock.unlock()
            var bytes = done!.bytes
            done = nil
            if keep {
                bytes.removeAll(keepingCapacity: true)  // the only reference now: no copy
            } else {
                bytes = []  // freed here, outside the lock
            }
            scheduling.enterIdle()
            lockAsIdle()
            if keep { spareBuffers.append(bytes) }  // for `store`'s next piece
        }
        lock.unlock()
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
        if copyFromMemory(Int(token), byteCount: byteCount, into: destination) { return }
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

    /// Copies a blob that is not on the file yet (pending, being written, or failed) from
    /// memory; false if it is on the file. A blob lies whole in one piece.
    private func copyFromMemory(_ offset: Int, byteCount: Int, into destination: UnsafeMutableRawPointer) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        func copy(from pieces: [(offset: Int, bytes: [UInt8])]) -> Bool {
            // The last piece starting at or before `offset` (pieces are in offset order).
            var low = 0, high = pieces.count
            while low < high {
                let middle = (low + high) / 2
                if pieces[middle].offset <= offset { low = middle + 1 } else { high = middle }
            }
            guard low > 0 else { return false }
            let piece = pieces[low - 1]
            guard offset + byteCount <= piece.offset + piece.bytes.count else { return false }
            piece.bytes.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress! + (offset - piece.offset), byteCount: byteCount) }
            return true
        }
        if offset >= writtenEnd || isWriting { if copy(from: pending) { return true } }
        return !failed.isEmpty && copy(from: failed)
    }

    public func discard(_ token: UInt64, byteCount: Int) {
        garbageBytes += byteCount
    }
}

/// Moves a background thread that shares locks with the event loop (its own, or malloc's
/// inside `free`) between SCHED_IDLE, for its long work and its waits, and the normal class,
/// while it holds such a lock: an idle-class thread preempted while holding one keeps the loop
/// waiting until a core has nothing else to do. Returning from SCHED_IDLE needs CAP_SYS_NICE
/// or a permitting RLIMIT_NICE; where it is refused, the thread stays in the idle class and
/// `leaveIdle` does nothing.
public final class IdleClassSwitch {
    /// Whether the thread can come back from SCHED_IDLE (checked once, at creation).
    public let canReturn: Bool

    /// Call on the thread it is for: the thread is in the idle class after it.
    public init() {
        var parameter = sched_param()
        if sched_setscheduler(0, 5 /* SCHED_IDLE */, &parameter) == 0 {
            canReturn = sched_setscheduler(0, 0 /* SCHED_OTHER */, &parameter) == 0
        } else {
            canReturn = false
        }
        moveCurrentThreadToIdleClass()
    }

    /// To the normal class (nothing where the thread may not return).
    public func leaveIdle() {
        guard canReturn else { return }
        var parameter = sched_param()
        _ = sched_setscheduler(0, 0 /* SCHED_OTHER */, &parameter)
    }

    /// Back to the idle class.
    public func enterIdle() {
        guard canReturn else { return }
        var parameter = sched_param()
        _ = sched_setscheduler(0, 5 /* SCHED_IDLE */, &parameter)
    }
}

/// Puts the calling thread in the SCHED_IDLE class (only CPU time no other thread of the
/// machine wants; a thread may always lower its own class), or at nice 19 where that is
/// refused. For background work that must never take a core from the event loop: the spill
/// writer here, the snapshot thread (`WorkerThread`).
public func moveCurrentThreadToIdleClass() {
    var parameter = sched_param()
    if sched_setscheduler(0, 5 /* SCHED_IDLE: <sched.h> names it only under _GNU_SOURCE */, &parameter) != 0 {
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)  // who 0: the calling thread on Linux
    }
}
