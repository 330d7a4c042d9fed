import HeadcountCore

/// Everything the server is told at start-up. Every limit is here, with its default; the
/// command line (`headcount serve --help`) sets each one.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var dataDirectory = "./headcount-data"
    /// A keys file (SPEC §6); nil: `<dataDirectory>/keys.json`, generated on first start.
    public var keysFile: String?
    /// fsync the WAL before acknowledging a feed request (default on).
    public var isFsyncEnabled = true

    public var headerBytesMax = 16 * 1024
    public var bodyBytesMax = 16 * 1024 * 1024
    public var connectionsMax = 10_000
    public var pipelinedRequestsMax = 128
    public var idleTimeoutMilliseconds = 60_000
    public var requestTimeoutMilliseconds = 30_000
    /// Events in one feed request (a larger batch is a 413).
    public var batchEventsMax = 100_000
    /// A WAL segment rolls over past this size.
    public var walSegmentBytesMax = 64 << 20
    /// Preallocate WAL segments: each is created at `walSegmentBytesMax`, zero-filled and
    /// synced ahead of time in the background, so that a group commit's sync flushes data
    /// only. Costs one more segment of disk (the prepared next one) and the zero-fill writes.
    public var isWALPreallocated = true
    /// With `isFsyncEnabled`, write the preallocated segments through to the disk
    /// (`O_DIRECT | O_DSYNC`: each group commit one `pwrite`, no `fdatasync`) where the file
    /// system allows it (`WriteAheadLog.writesThrough`).
    public var isWALWriteThrough = true
    /// Write an engine snapshot (and drop covered WAL segments) after this many events.
    public var snapshotEveryEvents = 1_000_000
    /// A snapshot file is synced after every this many bytes (`SnapshotStore.syncEveryBytes`).
    public var snapshotSyncBytes = 8 << 20
    /// Write snapshot files past the page cache (`O_DIRECT`) where the file system allows it
    /// (`SnapshotStore.bypassesPageCache`).
    public var isSnapshotDirectIO = true
    /// Loop time spent per turn on queued feed requests (decode, duplicate check, WAL
    /// encoding) before the loop polls again and answers queries (docs/ARCHITECTURE.md);
    /// applying durable events gets half as much per turn.
    public var feedSliceMicroseconds = 250
    /// The same while statistics or status-change queries are being served (see
    /// `intakeThreadQueryQuietMilliseconds`); 0: `feedSliceMicroseconds`.
    public var feedSliceWhileQueriesMicroseconds = 100
    /// Longest a WAL flush is held back for requests that are about to join it (adaptive:
    /// see `FeedCommitter.shouldGather`); 0 turns gathering off.
    public var groupCommitGatherMicroseconds = 500
    /// The loop thread's scheduler time slice (EEVDF custom slice), in µs; 0: the kernel's default.
    public var loopTimeSliceMicroseconds = 100
    /// Feed bodies of at least this many bytes are decoded, admitted and WAL-encoded on the
    /// intake thread beside the loop (`FeedIntake`); smaller ones on the loop. 0: never.
    public var intakeThreadBodyBytes = 8192
    /// The intake thread's nice value and EEVDF slice (µs, 0: the kernel's): below the loop,
    /// so the loop and the clients' queries preempt it when the cores are all busy.
    public var intakeThreadNice = 0
    public var intakeThreadSliceMicroseconds = 0
    /// Run the intake thread in SCHED_IDLE: it takes only CPU no other thread wants.
    public var isIntakeThreadIdleClass = false
    /// After a statistics or status-change query, feed requests stay on the loop for this
    /// long (queries first: the second core is left to the clients); 0: never.
    public var intakeThreadQueryQuietMilliseconds = 1000
    /// WAL flushes of at most this many bytes (a few one-event requests) are written and
    /// synced on the loop thread; bigger ones on the thread pool. 0: always on the pool.
    public var walLoopSyncBytes = 4096
    /// Keep freed memory in the process: jemalloc does not purge freed pages (decay off, blocks
    /// of 8 MiB and more excepted), so they are reused as they are. Off (the default), jemalloc
    /// gives them back after ~10 s on its own background threads, never inline on the loop:
    /// in session 13's probes no slower, with ~25% less resident memory under a saturating
    /// feed (`HeadcountServer.configureAllocator`).
    public var retainsFreedMemory = false
    /// A thread (`hc-prefault`) keeps this many bytes of the heap's reservoir faulted in ahead
    /// of what the arenas have taken (`HeapPrefaulter`); 0: off (no reservoir, the loop faults
    /// in its own fresh pages).
    public var heapPrefaultBytes = 64 << 20
    /// Address space reserved for the heap's reservoir (not memory: pages are only used when
    /// touched); past it, jemalloc maps memory as usual, without prefaulting. 0: the size of
    /// the machine's physical memory.
    public var heapReserveBytes = 0
    /// Engine tunables: retention (statistics and status changes), idempotency window,
    /// snapshot spacing.
    public var engine = EngineConfiguration()

    public init() {}

    public var resolvedKeysFile: String { keysFile ?? dataDirectory + "/keys.json" }
}
