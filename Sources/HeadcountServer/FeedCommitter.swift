import Atomics
import CLibUV
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import DequeModule
import HeadcountCore
import HeadcountStorage
import Logging

/// Group commit: accepted feed events are encoded into one pending WAL buffer, and once per
/// turn of the loop — just before it waits for I/O again (a `uv_prepare` handle, Redis's
/// `beforeSleep`) — everything pending is written and synced in one go, so every request
/// that arrived in that turn, or while the previous sync ran, shares one fsync. Then its
/// events are applied to the engine in sequence order and the waiting requests answered.
///
/// The write and the sync run on libuv's thread pool, so the loop keeps answering queries and
/// decoding the next requests meanwhile: a sync takes 0.1–0.5 ms on this kind of disk, and a
/// query must not wait for one (measured: syncing small flushes on the loop itself gave ~15%
/// more single-event requests per second but put every sync in front of the queries — p50
/// 0.9 ms instead of tens of µs). Snapshots are written on a thread of their own in the
/// SCHED_IDLE class (`WorkerThread`), so they never hold up the WAL nor take the loop's core; trimming the WAL after a snapshot runs on the WAL's queue,
/// because only one thread at a time may touch the WAL.
///
/// Order matters here (it is what "never loses an acknowledged event" rests on):
/// 1. events are admitted (duplicate check) and encoded, on the loop thread or the intake
///    thread (`FeedIntake`), and each step's records appended to the pending buffer under
///    `pendingLock`;
/// 2. the bytes are written and synced;
/// 3. only then are they applied and acknowledged.
/// A request is answered only when every sequence assigned before its answer was built is
/// durable, so even an all-duplicates answer never acknowledges an id whose first copy is
/// still in flight.
final class FeedCommitter {
    enum JobKind {
        case flush(bytes: [UInt8], firstSequence: UInt64, lastSequence: UInt64, sync: Bool)
        case trim
        /// The source travels in `Job.snapshotSource`, so that the pool thread can drop it.
        case snapshot(sequence: UInt64)
    }

    /// Carries one storage job to a pool thread and its outcome back.
    final class Job {
        let kind: JobKind
        let wal: WriteAheadLog
        let snapshots: SnapshotStore
        var failure: String?
        /// How long the flush took to be durable, write and fsync (0: not synced), for `/metrics`.
        var syncNanoseconds: UInt64 = 0
        /// A snapshot job's time to encode and write, and its file's size.
        var snapshotNanoseconds: UInt64 = 0
        var snapshotBytes = 0
        weak var committer: FeedCommitter?
        /// A snapshot job's copy-on-write source. Let go of on the snapshot thread, piece by
        /// piece as it is encoded (`EngineSnapshotSource.encodeReleasing`): the last reference
        /// to pages and shards the loop has since replaced frees them there, and freeing tens
        /// of thousands of small buffers is milliseconds the loop need not spend.
        var snapshotSource: EngineSnapshotSource?

        init(kind: JobKind, wal: WriteAheadLog, snapshots: SnapshotStore, committer: FeedCommitter) {
            self.kind = kind
            self.wal = wal
            self.snapshots = snapshots
            self.committer = committer
        }

        /// Runs on a pool thread (WAL jobs) or the snapshot thread. WAL jobs never overlap
        /// each other or a synchronous flush; snapshot jobs never overlap each other and touch
        /// only the snapshot store.
        func perform() {
            do {
                switch kind {
                case .flush(let bytes, let first, let last, let sync):
                    // Timed from the write: a segment written through is durable when the
                    // write returns, and its sync has nothing left to do.
                    let started = sync ? DispatchTime.now().uptimeNanoseconds : 0
                    try wal.append(bytes, firstSequence: first, lastSequence: last)
                    if sync {
                        try wal.sync()
                        syncNanoseconds = DispatchTime.now().uptimeNanoseconds &- started
                    }
                case .trim:
                    try FeedCommitter.trimWAL(wal, keepingFallbackOf: snapshots)
                case .snapshot:
                    // Moved out of the job, so that encoding holds the only references to
                    // the source's pieces and can let go of each once it is encoded.
                    guard var source = snapshotSource else { return }
                    snapshotSource = nil
                    // Encoding runs here, off the loop (on the idle-class snapshot thread):
                    // the source is a copy-on-write copy. Encoded straight into the file, a
                    // write-sized piece at a time: never the whole payload in memory.
                    let pieceBytes = snapshots.producedPieceBytes
                    let started = DispatchTime.now().uptimeNanoseconds
                    let sequence = source.lastAppliedSequence
                    snapshotBytes = try snapshots.write(sequence: sequence) { emit in
                        source.encodeReleasing(pieceBytes: pieceBytes, into: emit)
                    }
                    snapshotNanoseconds = DispatchTime.now().uptimeNanoseconds &- started
                }
            } catch {
                failure = "\(error)"
            }
        }
    }

    /// Deletes the WAL segments covered by the *older* retained snapshot, so that if the newest
    /// snapshot file is ever damaged, an operator can remove it and recover from the older one
    /// plus the WAL (docs/OPERATING.md).
    static func trimWAL(_ wal: WriteAheadLog, keepingFallbackOf snapshots: SnapshotStore) throws {
        let sequences = try snapshots.storedSequences()
        if sequences.count >= 2 {
            try wal.removeSegments(through: sequences[sequences.count - 2])
        }
    }

    private let loop: UnsafeMutablePointer<uv_loop_t>
    /// Guards `pendingBytes` and `pendingEvents`: `submit` appends a step's records under it
    /// on either thread; the loop takes it to take what is pending. Held for a copy, never
    /// for an admission, so the loop never waits long for it.
    private let pendingLock = NSLock()
    /// `pendingEvents.count`, for the loop to look at without the lock.
    private let pendingEventCount = ManagedAtomic<Int>(0)
    private let wal: WriteAheadLog
    private let snapshots: SnapshotStore
    private let isFsyncEnabled: Bool
    private let logger: Logger
    private var prepareHandle: UnsafeMutablePointer<uv_prepare_t>?

    /// Durable events not yet applied, oldest first: each flush's array as it was written
    /// (moved in whole, not copied event by event: a copy retains each event's strings), the
    /// first one applied from `applyingIndex` on; with the flush boundaries among them.
    /// They are applied a slice per loop turn, so a big batch never holds a query up for long.
    private var unapplied: Deque<[SequencedEvent]> = []
    private var applyingIndex = 0
    private var flushBoundaries: Deque<UInt64> = []
    private let applySliceEvents: Int
    /// …and at most this long (the clock is read every 8 events).
    private let applySliceNanoseconds: UInt64
    private var idleHandle: UnsafeMutablePointer<uv_idle_t>?
    private var pendingBytes: [UInt8] = []
    private var pendingEvents: [SequencedEvent] = []
    private var inFlightEvents: [SequencedEvent] = []
    private var pendingSnapshot: EngineSnapshotSource?
    private var isTrimPending = false
    /// Feed answers waiting for their events to be durable, by sequence: values, not closures
    /// (no allocation per request), given to `answerWhenDurable` in order.
    private var waiters: Deque<(sequence: UInt64, answer: FeedAnswer)> = []
    private var isWALJobRunning = false
    private var isSnapshotJobRunning = false
    private(set) var failure: String?

    /// The next sequence to assign; the last one made durable.
    private(set) var nextSequence: UInt64
    private(set) var durableSequence: UInt64

    /// Applies durable events (in order) to the engine; set by the server.
    var applyDurable: ((PreparedEvent, UInt64) -> Void)?
    /// Starts loading what applying an event will read (`Engine.prefetch`); set by the server.
    var prefetchDurable: ((PreparedEvent) -> Void)?
    /// Called with each WAL fsync's duration, in nanoseconds, on the loop (for `/metrics`).
    var walSynced: ((UInt64) -> Void)?
    /// Called after each durable batch is applied (the server publishes live counters).
    var batchApplied: (() -> Void)?
    /// Whether no feed request is waiting to be admitted (then a small flush may sync on the loop).
    var isFeedQueueEmpty: (() -> Bool)?
    /// Sends a feed answer once its events are durable (failure nil) or storage failed; set by the server.
    var answerWhenDurable: ((FeedAnswer, _ failure: String?) -> Void)?
    /// Called once when storage fails: the server stops.
    var storageFailed: ((String) -> Void)?
    /// Figures for metrics.
    private(set) var flushCount = 0
    private(set) var bytesFlushed = 0
    private(set) var snapshotCount = 0
    /// The last snapshot's time to encode and write (seconds) and its file's size (bytes).
    private(set) var lastSnapshotSeconds = 0.0
    private(set) var lastSnapshotBytes = 0

    /// Flushes of at most this many bytes are written and synced on the loop thread.
    private let loopSyncBytes: Int
    /// Flushes written on the loop thread (for metrics).
    private(set) var loopFlushCount = 0
    /// Group-commit gathering (see `shouldGather`): the longest a flush is held back.
    private let gatherNanoseconds: UInt64
    /// Requests that registered for durability since the last flush started, and in it.
    private var requestsSinceFlush = 0
    private var requestsInFlight = 0
    /// Requests the last flush answered, and when it finished.
    private var lastFlushRequests = 0
    private var lastFlushDoneAt: UInt64 = 0
    private var gatherHandle: UnsafeMutablePointer<uv_idle_t>?
    /// Wakes the loop when another thread's submissions pass `wakeEveryBytes`, so that a
    /// flush starts while the intake thread is still admitting the rest of a big batch
    /// (otherwise the loop would sleep until the batch's end, then wait a whole fsync).
    private var wakeHandle: UnsafeMutablePointer<uv_async_t>?
    private let wakeEveryBytes = 64 * 1024
    /// Bytes submitted since the last wake (under `pendingLock`).
    private var bytesSinceWake = 0
    private var isGathering = false
    private(set) var gatheredFlushes = 0

    init(loop: UnsafeMutablePointer<uv_loop_t>, wal: WriteAheadLog, snapshots: SnapshotStore,
         lastSequence: UInt64, isFsyncEnabled: Bool, applySliceEvents: Int = 256, applySliceMicroseconds: Int = 250,
         gatherMicroseconds: Int = 0, loopSyncBytes: Int = 0, logger: Logger) {
        self.loopSyncBytes = loopSyncBytes
        self.applySliceEvents = applySliceEvents
        self.applySliceNanoseconds = UInt64(max(applySliceMicroseconds, 1)) * 1000
        self.gatherNanoseconds = UInt64(max(gatherMicroseconds, 0)) * 1000
        self.loop = loop
        self.wal = wal
        self.snapshots = snapshots
        self.isFsyncEnabled = isFsyncEnabled
        self.logger = logger
        nextSequence = lastSequence + 1
        durableSequence = lastSequence
        let handle = UnsafeMutablePointer<uv_prepare_t>.allocate(capacity: 1)
        uv_prepare_init(loop, handle)
        handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_prepare_start(handle) { handle in
            Unmanaged<FeedCommitter>.fromOpaque(handle!.pointee.data).takeUnretainedValue().beforeLoopWaits()
        }
        prepareHandle = handle
        let idle = UnsafeMutablePointer<uv_idle_t>.allocate(capacity: 1)
        uv_idle_init(loop, idle)
        idle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        idleHandle = idle
        let gather = UnsafeMutablePointer<uv_idle_t>.allocate(capacity: 1)
        uv_idle_init(loop, gather)
        gather.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        gatherHandle = gather
        let wake = UnsafeMutablePointer<uv_async_t>.allocate(capacity: 1)
        uv_async_init(loop, wake) { _ in }  // the loop turn itself flushes (beforeLoopWaits)
        wakeHandle = wake
    }

    /// Closes the loop handle; call when the server stops (the loop must run once more).
    func close() {
        guard let handle = prepareHandle else { return }
        prepareHandle = nil
        uv_prepare_stop(handle)
        uv_close(hc_prepare_as_handle(handle)) { handle in handle?.deallocate() }
        if let idle = idleHandle {
            idleHandle = nil
            uv_idle_stop(idle)
            uv_close(hc_idle_as_handle(idle)) { handle in handle?.deallocate() }
        }
        snapshotWorker?.close()
        snapshotWorker = nil
        pendingLock.lock()
        let wake = wakeHandle
        wakeHandle = nil
        pendingLock.unlock()
        if let wake { uv_close(hc_async_as_handle(wake)) { handle in handle?.deallocate() } }
        if let gather = gatherHandle {
            gatherHandle = nil
            uv_idle_stop(gather)
            uv_close(hc_idle_as_handle(gather)) { handle in handle?.deallocate() }
        }
    }

    var isIdle: Bool {
        let isPendingEmpty = pendingEventCount.load(ordering: .acquiring) == 0
        return !isWALJobRunning && !isSnapshotJobRunning && isPendingEmpty && pendingSnapshot == nil
            && !isTrimPending && waiters.isEmpty && unapplied.isEmpty
    }

    /// One admission step's records, built by the admitting thread without the pending lock.
    struct Submission {
        var bytes: [UInt8] = []
        var events: [SequencedEvent] = []
    }

    /// Assigns the next sequence to an admitted event (draft `index` of `drafts`) and puts
    /// its WAL record, sealed with that sequence, into the step's submission. Only the
    /// admitting thread calls this (`FeedIntake` admits on one thread at a time, handing over
    /// through the intake thread's queue), and it owns `nextSequence` meanwhile.
    func add(_ drafts: FeedDrafts, index: Int, to submission: inout Submission) {
        let sequence = nextSequence
        nextSequence += 1
        let start = submission.bytes.count
        drafts.withRecord(index) { record in
            submission.bytes.append(contentsOf: record.assumingMemoryBound(to: UInt8.self))
        }
        submission.bytes.withUnsafeMutableBytes { bytes in
            WALRecord.seal(UnsafeMutableRawBufferPointer(rebasing: bytes[start...]), sequence: sequence)
        }
        submission.events.append(SequencedEvent(event: drafts.prepared[index], sequence: sequence))
    }

    /// Queues a step's records for the next flush (and empties the submission, keeping its room).
    func submit(_ submission: inout Submission) {
        guard !submission.events.isEmpty else { return }
        pendingLock.lock()
        pendingBytes.append(contentsOf: submission.bytes)
        pendingEvents.append(contentsOf: submission.events)
        pendingEventCount.store(pendingEvents.count, ordering: .releasing)
        bytesSinceWake += submission.bytes.count
        if bytesSinceWake >= wakeEveryBytes, let wakeHandle {
            bytesSinceWake = 0
            uv_async_send(wakeHandle)  // thread-safe; under the lock, so close() cannot free it meanwhile
        }
        pendingLock.unlock()
        submission.bytes.removeAll(keepingCapacity: true)
        submission.events.removeAll(keepingCapacity: true)
    }

    /// The highest sequence assigned so far (the admitting thread's, as `add`).
    var lastAssignedSequence: UInt64 { nextSequence - 1 }

    /// Gives `answer` to `answerWhenDurable` (failure nil = durable, else the storage failure)
    /// once every sequence up to `sequence` is durable; at once if it already is.
    func whenDurable(through sequence: UInt64, answer: FeedAnswer) {
        if let failure { answerWhenDurable?(answer, failure); return }
        if sequence <= durableSequence { answerWhenDurable?(answer, nil); return }
        if sequence > inFlightEvents.last?.sequence ?? durableSequence { requestsSinceFlush += 1 }
        waiters.append((sequence, answer))
    }

    /// Queues an engine snapshot (every event up to its sequence applied).
    func writeSnapshot(_ source: EngineSnapshotSource) {
        pendingSnapshot = source
        startSnapshotJob()
    }

    /// The loop is about to wait for I/O: flush what this turn accepted.
    private func beforeLoopWaits() {
        let pendingCount = pendingEventCount.load(ordering: .acquiring)
        if isGathering && (pendingCount == 0 || failure != nil || isWALJobRunning), let gather = gatherHandle {
            isGathering = false
            uv_idle_stop(gather)
        }
        guard failure == nil, !isWALJobRunning else { return }
        if pendingCount > 0 {
            if shouldGather(pendingCount: pendingCount) { return }
            guard let bytes = takePending() else {
                // The intake thread holds the pending buffer for a moment (it may even be
                // descheduled): never block the loop on it; look again next turn.
                if !isGathering, let gather = gatherHandle {
                    isGathering = true
                    uv_idle_start(gather) { _ in }
                }
                return
            }
            let kind = JobKind.flush(bytes: bytes, firstSequence: inFlightEvents.first!.sequence,
                                     lastSequence: inFlightEvents.last!.sequence, sync: isFsyncEnabled)
            // Not while a snapshot is being written: a flush queued behind the snapshot's device
            // flushes took 50–250 ms (a loop turn that long, measured at 19 M events); with the
            // snapshot written past the page cache, still up to a second (session 15, against
            // 0–34% fewer one-event requests during a snapshot through the pool).
            if bytes.count <= loopSyncBytes && (isFeedQueueEmpty?() ?? true) && !isSnapshotJobRunning {
                // A small flush is written and synced right here, as Redis does in
                // `beforeSleep`: no hand-off to a pool thread and back (two thread wake-ups,
                // which cost more than the fsync itself on a small virtual machine), at the
                // price of the loop waiting one small fsync. Big flushes (batched feeds, when
                // queries matter most) still go to the pool, and so does a small one while
                // more feed requests are queued (a batch sliced across turns).
                let job = Job(kind: kind, wal: wal, snapshots: snapshots, committer: self)
                job.perform()
                loopFlushCount += 1
                if let failure = job.failure { return fail(failure) }
                if job.syncNanoseconds > 0 { walSynced?(job.syncNanoseconds) }
                flushDurable(byteCount: bytes.count, lastSequence: inFlightEvents.last!.sequence)
            } else {
                startWALJob(kind)
            }
        } else if isTrimPending {
            isTrimPending = false
            startWALJob(.trim)
        }
    }

    /// Whether to hold the next flush back a little to let more requests join it.
    ///
    /// With several closed-loop clients, the answers of one flush go out one connection at a
    /// time, and the first clients' next requests reach the loop before the last ones' do; a
    /// flush started at once carries only the first few, and the rest wait a whole fsync for
    /// the next (measured: 8 clients × 1 event gave ~4 events per flush). So while fewer
    /// requests are pending than the last flush answered plus those that arrived during it,
    /// and the last flush finished less than `gatherNanoseconds` ago, the loop keeps polling
    /// (an idle handle: it does not block) instead of flushing — MySQL's
    /// `binlog_group_commit_sync_delay`, bounded and adaptive: a lone client, whose flush
    /// answered one request, never waits; nor does a large pending batch.
    private func shouldGather(pendingCount: Int) -> Bool {
        guard gatherNanoseconds > 0, let gather = gatherHandle else { return false }
        let target = lastFlushRequests + requestsInFlightAtDone
        let now = uv_hrtime()
        let wait = requestsSinceFlush < target && pendingCount < applySliceEvents
            && now &- lastFlushDoneAt < gatherNanoseconds
        if wait {
            if !isGathering {
                isGathering = true
                gatheredFlushes += 1
                uv_idle_start(gather) { _ in }  // keeps the loop from blocking in poll
            }
        } else if isGathering {
            isGathering = false
            uv_idle_stop(gather)
        }
        return wait
    }
    /// Requests already pending when the last flush finished (they arrived during its fsync).
    private var requestsInFlightAtDone = 0

    /// Moves the pending events in flight and returns their bytes; nil if the pending
    /// buffer's lock is held (the loop never waits for it).
    private func takePending() -> [UInt8]? {
        // The next flush's buffers, sized like the last one's and allocated before the lock:
        // grown from empty by appends, they were copied over and over (measured under a
        // saturating batched feed: 4% of the loop's samples in growing `pendingEvents`).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(max(64 * 1024, lastFlushByteCount + lastFlushByteCount / 4))
        var events: [SequencedEvent] = []
        events.reserveCapacity(max(256, lastFlushEventCount + lastFlushEventCount / 4))
        guard pendingLock.try() else { return nil }
        requestsInFlight = requestsSinceFlush
        requestsSinceFlush = 0
        swap(&inFlightEvents, &pendingEvents)
        swap(&bytes, &pendingBytes)
        swap(&events, &pendingEvents)  // (the empty one the last flush left is dropped)
        pendingEventCount.store(0, ordering: .releasing)
        pendingLock.unlock()
        lastFlushByteCount = bytes.count
        lastFlushEventCount = inFlightEvents.count
        return bytes
    }
    private var lastFlushByteCount = 0
    private var lastFlushEventCount = 0

    /// The flush is durable: its events join the backlog to apply.
    private func flushDurable(byteCount: Int, lastSequence: UInt64) {
        lastFlushRequests = requestsInFlight
        requestsInFlightAtDone = requestsSinceFlush
        lastFlushDoneAt = uv_hrtime()
        flushCount += 1
        bytesFlushed += byteCount
        var flushed: [SequencedEvent] = []
        swap(&flushed, &inFlightEvents)
        if !flushed.isEmpty { unapplied.append(flushed) }
        flushBoundaries.append(lastSequence)
        applySlice()
    }

    /// Applies up to `applySliceEvents` durable events (and for at most `applySliceNanoseconds`); answers the requests whose events are
    /// all applied; keeps the loop turning (an idle handle) while a backlog remains.
    private func applySlice() {
        var count = 0
        let deadline = uv_hrtime() &+ applySliceNanoseconds
        var isOutOfTime = false
        while count < applySliceEvents && !isOutOfTime, let flush = unapplied.first {
            var index = applyingIndex
            flush.withUnsafeBufferPointer { events in
                // The events `Engine.prefetchDistance` ahead are prefetched as these are
                // applied, so their cache misses on a large state overlap (`Engine.prefetch`).
                let distance = Engine.prefetchDistance
                if let prefetch = prefetchDurable {
                    for ahead in index..<min(index + distance, events.count) { prefetch(events[ahead].event) }
                }
                while index < events.count && count < applySliceEvents {
                    if index + distance < events.count { prefetchDurable?(events[index + distance].event) }
                    applyDurable?(events[index].event, events[index].sequence)
                    index += 1
                    count += 1
                    // Every 8 events: right after a snapshot an event may first copy the
                    // pieces of state it touches (copy-on-write: up to a 128 KiB history page).
                    if count & 7 == 0 && uv_hrtime() >= deadline { isOutOfTime = true; break }
                }
            }
            if index == flush.count {
                unapplied.removeFirst()
                applyingIndex = 0
            } else {
                applyingIndex = index
            }
        }
        if count > 0 { batchApplied?() }
        let appliedThrough = unapplied.first.map { $0[applyingIndex].sequence - 1 } ?? (flushBoundaries.last ?? durableSequence)
        while let boundary = flushBoundaries.first, boundary <= appliedThrough {
            flushBoundaries.removeFirst()
            durableSequence = boundary
        }
        while let first = waiters.first, first.sequence <= durableSequence {
            waiters.removeFirst()
            answerWhenDurable?(first.answer, nil)
        }
        guard let idle = idleHandle else { return }
        if unapplied.isEmpty {
            uv_idle_stop(idle)
        } else {
            uv_idle_start(idle) { handle in
                Unmanaged<FeedCommitter>.fromOpaque(handle!.pointee.data).takeUnretainedValue().applySlice()
            }
        }
    }

    private func startWALJob(_ kind: JobKind) {
        isWALJobRunning = true
        queue(Job(kind: kind, wal: wal, snapshots: snapshots, committer: self))
    }

    private func startSnapshotJob() {
        guard !isSnapshotJobRunning, failure == nil, let source = pendingSnapshot else { return }
        pendingSnapshot = nil
        isSnapshotJobRunning = true
        let job = Job(kind: .snapshot(sequence: source.lastAppliedSequence), wal: wal, snapshots: snapshots, committer: self)
        job.snapshotSource = source
        let worker = snapshotWorker ?? WorkerThread(loop: loop, name: "hc-snapshot", schedulingClass: .idle)
        snapshotWorker = worker
        worker.submit({ job.perform() }, then: { [weak self] in self?.jobCompleted(job) })
    }
    /// The thread snapshots are encoded and written on (created at the first snapshot).
    private var snapshotWorker: WorkerThread?

    private func queue(_ job: Job) {
        let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
        request.initialize(to: uv_work_t())
        request.pointee.data = Unmanaged.passRetained(job).toOpaque()
        let status = uv_queue_work(loop, request, { request in
            Unmanaged<Job>.fromOpaque(request!.pointee.data).takeUnretainedValue().perform()
        }, { request, _ in
            let job = Unmanaged<Job>.fromOpaque(request!.pointee.data).takeRetainedValue()
            request!.deinitialize(count: 1)
            request!.deallocate()
            job.committer?.jobCompleted(job)
        })
        precondition(status == 0, "uv_queue_work failed: \(status)")
    }

    private func jobCompleted(_ job: Job) {
        switch job.kind {
        case .flush(let bytes, _, let last, _):
            isWALJobRunning = false
            if let failure = job.failure { return fail(failure) }
            if job.syncNanoseconds > 0 { walSynced?(job.syncNanoseconds) }
            flushDurable(byteCount: bytes.count, lastSequence: last)
        case .trim:
            isWALJobRunning = false
            if let failure = job.failure { return fail(failure) }
        case .snapshot(let sequence):
            isSnapshotJobRunning = false
            if let failure = job.failure { return fail(failure) }
            snapshotCount += 1
            lastSnapshotSeconds = Double(job.snapshotNanoseconds) / 1e9
            lastSnapshotBytes = job.snapshotBytes
            isTrimPending = true
            logger.info("snapshot written", metadata: ["sequence": "\(sequence)",
                                                       "seconds": "\(String(format: "%.2f", lastSnapshotSeconds))",
                                                       "bytes": "\(job.snapshotBytes)"])
            startSnapshotJob()
        }
    }

    private func fail(_ reason: String) {
        guard failure == nil else { return }
        failure = reason
        logger.critical("storage failed; acknowledged events are safe, pending ones are not acknowledged",
                        metadata: ["error": "\(reason)"])
        while let waiter = waiters.popFirst() { answerWhenDurable?(waiter.answer, reason) }
        storageFailed?(reason)
    }
}

/// An admitted event and its WAL sequence. A struct, not a tuple: copying a tuple element out
/// of a buffer went through an outlined copy shared with other types and the runtime's generic
/// `tuple_initializeWithCopy` (~130 instructions, three times per applied event).
struct SequencedEvent {
    let event: PreparedEvent
    let sequence: UInt64
}

/// A feed request's answer, held until its events are durable.
struct FeedAnswer {
    let responder: HTTPResponder
    /// The 200 body.
    let body: [UInt8]
}
