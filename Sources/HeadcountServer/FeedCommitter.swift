import CLibUV
import DequeModule
import HeadcountCore
import HeadcountStorage
import Logging

/// Group commit: accepted feed events are encoded into one pending WAL buffer; one storage
/// job at a time runs on libuv's thread pool (write + fdatasync); every request that arrived
/// while a job ran shares the next one. Once a job is durable, its events are applied to the
/// engine in sequence order and the requests waiting on it are answered.
///
/// Order matters here (it is what "never loses an acknowledged event" rests on):
/// 1. events are admitted (duplicate check) and encoded on the loop thread;
/// 2. the bytes are written and synced on a pool thread;
/// 3. only then, back on the loop thread, are they applied and acknowledged.
/// A request is answered only when every sequence assigned before its answer was built is
/// durable, so even an all-duplicates answer never acknowledges an id whose first copy is
/// still in flight.
final class FeedCommitter {
    enum JobKind {
        case flush(bytes: [UInt8], firstSequence: UInt64, lastSequence: UInt64, sync: Bool)
        case snapshot(source: EngineSnapshotSource)
    }

    /// Carries one storage job to a pool thread and its outcome back.
    final class Job {
        let kind: JobKind
        let wal: WriteAheadLog
        let snapshots: SnapshotStore
        var failure: String?
        weak var committer: FeedCommitter?

        init(kind: JobKind, wal: WriteAheadLog, snapshots: SnapshotStore, committer: FeedCommitter) {
            self.kind = kind
            self.wal = wal
            self.snapshots = snapshots
            self.committer = committer
        }

        /// Runs on a thread-pool thread; touches only the WAL / snapshot store, which no
        /// other thread uses while a job is in flight.
        func perform() {
            do {
                switch kind {
                case .flush(let bytes, let first, let last, let sync):
                    try wal.append(bytes, firstSequence: first, lastSequence: last)
                    if sync { try wal.sync() }
                case .snapshot(let source):
                    // Encoding runs here, off the loop: the source is an immutable copy.
                    try snapshots.write(sequence: source.lastAppliedSequence, payload: source.encode())
                    try FeedCommitter.trimWAL(wal, keepingFallbackOf: snapshots)
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
    private let wal: WriteAheadLog
    private let snapshots: SnapshotStore
    private let isFsyncEnabled: Bool
    private let logger: Logger

    private var pendingBytes: [UInt8] = []
    private var pendingEvents: [(event: FeedEvent, sequence: UInt64)] = []
    private var inFlightEvents: [(event: FeedEvent, sequence: UInt64)] = []
    private var pendingSnapshot: EngineSnapshotSource?
    private var waiters: Deque<(sequence: UInt64, completion: (String?) -> Void)> = []
    private var isJobRunning = false
    private(set) var failure: String?

    /// The next sequence to assign; the last one made durable.
    private(set) var nextSequence: UInt64
    private(set) var durableSequence: UInt64

    /// Applies durable events (in order) to the engine; set by the server.
    var applyDurable: ((FeedEvent, UInt64) -> Void)?
    /// Called after each durable batch is applied (the server publishes live counters).
    var batchApplied: (() -> Void)?
    /// Called once when storage fails: the server stops.
    var storageFailed: ((String) -> Void)?
    /// Figures for metrics.
    private(set) var flushCount = 0
    private(set) var bytesFlushed = 0
    private(set) var snapshotCount = 0

    init(loop: UnsafeMutablePointer<uv_loop_t>, wal: WriteAheadLog, snapshots: SnapshotStore,
         lastSequence: UInt64, isFsyncEnabled: Bool, logger: Logger) {
        self.loop = loop
        self.wal = wal
        self.snapshots = snapshots
        self.isFsyncEnabled = isFsyncEnabled
        self.logger = logger
        nextSequence = lastSequence + 1
        durableSequence = lastSequence
    }

    var isIdle: Bool { !isJobRunning && pendingEvents.isEmpty && pendingSnapshot == nil && waiters.isEmpty }

    /// Assigns the next sequence to an admitted event and queues it for the next flush.
    func submit(_ event: FeedEvent, arrivalMilliseconds: Int64) {
        let sequence = nextSequence
        nextSequence += 1
        WriteAheadLog.encode(WALRecord(sequence: sequence, arrivalMilliseconds: arrivalMilliseconds, event: event),
                             into: &pendingBytes)
        pendingEvents.append((event, sequence))
    }

    /// The highest sequence assigned so far.
    var lastAssignedSequence: UInt64 { nextSequence - 1 }

    /// Calls `completion` (nil = durable, else the storage failure) once every sequence up to
    /// `sequence` is durable; at once if it already is.
    func whenDurable(through sequence: UInt64, _ completion: @escaping (String?) -> Void) {
        if let failure { completion(failure); return }
        if sequence <= durableSequence { completion(nil); return }
        waiters.append((sequence, completion))
        startNextJob()
    }

    /// Queues an engine snapshot (every event up to its sequence applied).
    func writeSnapshot(_ source: EngineSnapshotSource) {
        pendingSnapshot = source
        startNextJob()
    }

    private func startNextJob() {
        guard !isJobRunning, failure == nil else { return }
        let kind: JobKind
        if !pendingEvents.isEmpty {
            kind = .flush(bytes: pendingBytes, firstSequence: pendingEvents.first!.sequence,
                          lastSequence: pendingEvents.last!.sequence, sync: isFsyncEnabled)
            inFlightEvents = pendingEvents
            pendingEvents.removeAll(keepingCapacity: true)
            pendingBytes = []
            pendingBytes.reserveCapacity(64 * 1024)
        } else if let snapshot = pendingSnapshot {
            kind = .snapshot(source: snapshot)
            pendingSnapshot = nil
        } else {
            return
        }
        isJobRunning = true
        let job = Job(kind: kind, wal: wal, snapshots: snapshots, committer: self)
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
        isJobRunning = false
        if let failure = job.failure {
            fail(failure)
            return
        }
        switch job.kind {
        case .flush(let bytes, _, let last, _):
            flushCount += 1
            bytesFlushed += bytes.count
            for (event, sequence) in inFlightEvents { applyDurable?(event, sequence) }
            inFlightEvents.removeAll(keepingCapacity: true)
            batchApplied?()
            durableSequence = last
            while let first = waiters.first, first.sequence <= durableSequence {
                waiters.removeFirst()
                first.completion(nil)
            }
        case .snapshot(let source):
            let sequence = source.lastAppliedSequence
            snapshotCount += 1
            logger.info("snapshot written", metadata: ["sequence": "\(sequence)"])
        }
        startNextJob()
    }

    private func fail(_ reason: String) {
        failure = reason
        logger.critical("storage failed; acknowledged events are safe, pending ones are not acknowledged",
                        metadata: ["error": "\(reason)"])
        while let waiter = waiters.popFirst() { waiter.completion(reason) }
        storageFailed?(reason)
    }
}
