import ArgumentParser
import Foundation
import HeadcountCore
import HeadcountServer
import Logging
import Metrics
import Prometheus

/// `headcount`: argument parsing and start-up only; everything else lives in HeadcountServer.
struct Headcount: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "headcount",
        abstract: "A real-time ticketing statistics engine.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}

enum Switch: String, ExpressibleByArgument, CaseIterable {
    case on, off
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the defaults need no flags).")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed at start).") var port = 8080
    @Option(help: "Where the WAL, snapshots and generated keys live.") var dataDir = "./headcount-data"
    @Option(help: "API keys file (JSON array of {key, role: feed|read|admin, eventIds?}); default: <data-dir>/keys.json, generated on first start.")
    var keys: String?
    @Option(help: "fsync the WAL before acknowledging the feed.") var fsync: Switch = .on
    @Option(help: "How far back dateTime may go, and how long status changes are kept, in days.") var retentionDays = 365
    @Option(help: "How long a feed id is remembered for duplicate detection, in hours.") var idempotencyWindowHours = 168
    @Option(help: "Delta records between two snapshots of an event's counters.") var deltasPerSnapshot = 256
    @Option(help: "Write an engine snapshot after this many applied events (or half of all events so far, if more).") var snapshotEveryEvents = 1_000_000
    @Option(help: "A snapshot file is fsynced after every this many bytes written, so that little of it is dirty in front of the WAL's next fsync.")
    var snapshotSyncBytes = 8 << 20
    @Option(help: "Memory for the delta records behind the counter snapshots, in bytes; older chunks spill to <data-dir>/spill past it.")
    var snapshotMemoryBytes = 512 << 20
    @Option(help: "Memory for ticket histories (kept to re-derive a ticket on a late event), in bytes; the oldest pages spill to <data-dir>/spill past it.")
    var historyMemoryBytes = 1 << 30
    @Option(help: "Largest request body, in bytes.") var maxBodyBytes = 16 * 1024 * 1024
    @Option(help: "Largest request line + headers, in bytes.") var maxHeaderBytes = 16 * 1024
    @Option(help: "Most open connections.") var maxConnections = 10_000
    @Option(help: "Most events in one feed request.") var maxBatchEvents = 100_000
    @Option(help: "Most unanswered pipelined requests per connection before reading pauses.") var maxPipelinedRequests = 128
    @Option(help: "Close a keep-alive connection idle this long, in seconds.") var idleTimeoutSeconds = 60
    @Option(help: "A request must arrive whole within this many seconds.") var requestTimeoutSeconds = 30
    @Option(help: "WAL segment size, in bytes.") var walSegmentBytes = 64 << 20
    @Option(help: "Loop time spent on queued feed requests per turn, in microseconds, before queries are served again (applying durable events gets half as much).")
    var feedSliceMicroseconds = 250
    @Option(help: "The same while statistics or status-change queries are being served (for --intake-thread-query-quiet-milliseconds after each), in microseconds (0: --feed-slice-microseconds).")
    var feedSliceWhileQueriesMicroseconds = 100
    @Option(help: "Longest a WAL flush waits for the requests of clients it just answered, in microseconds (adaptive; 0: off).")
    var groupCommitGatherMicroseconds = 500
    @Option(help: "Preallocate WAL segments (zero-filled and synced ahead of time, so each fsync flushes data only; one more segment of disk).")
    var walPreallocate: Switch = .on
    @Option(help: "With --fsync on, write preallocated WAL segments through to the disk (O_DIRECT | O_DSYNC: each group commit is one write, no fdatasync) where the file system allows it.")
    var walWriteThrough: Switch = .on
    @Option(help: "Write snapshot files past the page cache (O_DIRECT, in 256 KiB writes) where the file system allows it: no kernel copy of gigabytes into cache pages while the loop serves the feed.")
    var snapshotDirectIo: Switch = .on
    @Option(help: "WAL flushes up to this many bytes are written and fsynced on the loop thread (no hand-off to the thread pool; queries wait that fsync); bigger ones on the pool. 0: always on the pool.")
    var walLoopSyncBytes = 4096
    @Option(help: "The loop thread's scheduler time slice, in microseconds (Linux 6.12+: a shorter slice runs it sooner when it waits for a core, at the same CPU share; 0: the kernel's default).")
    var loopTimeSliceMicroseconds = 100
    @Option(help: "Feed bodies of at least this many bytes are decoded, checked for duplicates and WAL-encoded on a second thread beside the loop (hc-intake), so a batched feed uses two cores; smaller ones on the loop. 0: always on the loop.")
    var intakeThreadBodyBytes = 8192
    @Option(help: "The intake thread's nice value (0-19), for sharing a busy machine with other work (on 2 cores, 10 or 19 did not change query latency under a saturating feed).")
    var intakeThreadNice = 0
    @Option(help: "The intake thread's scheduler time slice, in microseconds (0: the kernel's default).")
    var intakeThreadSliceMicroseconds = 0
    @Option(help: "The intake thread's scheduling class: normal (at --intake-thread-nice) or idle (SCHED_IDLE: only CPU time no other thread of the machine wants; measured worse for queries, since it is preempted while holding its locks).")
    var intakeThreadClass: IntakeThreadClass = .normal
    @Option(help: "After a statistics or status-change query, feed requests stay on the loop (one core) for this long, in milliseconds, leaving the other core to the clients asking queries; 0: large bodies always go to the intake thread.")
    var intakeThreadQueryQuietMilliseconds = 1000
    @Option(help: "Keep freed memory in the process (jemalloc without decay purging, blocks of 8 MiB and more excepted): freed pages are reused as they are, never given back. off (default): jemalloc gives freed pages back after ~10 s, on its own background threads, never on the event loop; measured no slower, with ~25% less resident memory under a saturating feed.")
    var retainFreedMemory: Switch = .off
    @Option(help: "A thread (hc-prefault) keeps this many bytes of the heap's reservoir faulted in ahead of what the allocator has handed out, so that a growing state does not make the event loop zero its own fresh pages (Linux 5.14+, MADV_POPULATE_WRITE). 0: off (no reservoir).")
    var heapPrefaultBytes = 64 << 20
    @Option(help: "Address space reserved for the heap's reservoir (not memory: a page is used only once touched); past it the allocator maps memory as usual, without prefaulting. 0: the machine's physical memory size.")
    var heapReserveBytes = 0
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        guard retentionDays >= 1 else { throw ValidationError("--retention-days must be at least 1") }
        guard idempotencyWindowHours >= 1 else { throw ValidationError("--idempotency-window-hours must be at least 1") }
        guard deltasPerSnapshot >= 2 else { throw ValidationError("--deltas-per-snapshot must be at least 2") }
        guard snapshotMemoryBytes >= 1 << 20 else { throw ValidationError("--snapshot-memory-bytes must be at least 1 MiB") }
        guard historyMemoryBytes >= 4 << 20 else { throw ValidationError("--history-memory-bytes must be at least 4 MiB") }
        guard snapshotEveryEvents >= 1 else { throw ValidationError("--snapshot-every-events must be at least 1") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
        guard maxHeaderBytes >= 1024 else { throw ValidationError("--max-header-bytes must be at least 1024") }
        guard maxConnections >= 1, maxBatchEvents >= 1, maxPipelinedRequests >= 1 else {
            throw ValidationError("--max-connections, --max-batch-events and --max-pipelined-requests must be at least 1")
        }
        guard idleTimeoutSeconds >= 1, requestTimeoutSeconds >= 1 else { throw ValidationError("timeouts must be at least 1 second") }
        guard snapshotSyncBytes >= 64 << 10 else { throw ValidationError("--snapshot-sync-bytes must be at least 64 KiB") }
        guard walSegmentBytes >= 1 << 20 else { throw ValidationError("--wal-segment-bytes must be at least 1 MiB") }
        guard (50...100_000).contains(feedSliceMicroseconds) else { throw ValidationError("--feed-slice-microseconds must be 50-100000") }
        guard feedSliceWhileQueriesMicroseconds == 0 || (50...100_000).contains(feedSliceWhileQueriesMicroseconds) else {
            throw ValidationError("--feed-slice-while-queries-microseconds must be 0 or 50-100000")
        }
        guard (0...10_000).contains(groupCommitGatherMicroseconds) else { throw ValidationError("--group-commit-gather-microseconds must be 0-10000") }
        guard (0...(1 << 30)).contains(heapPrefaultBytes) else { throw ValidationError("--heap-prefault-bytes must be 0-1073741824") }
        guard heapReserveBytes == 0 || (1 << 30...1 << 46).contains(heapReserveBytes) else {
            throw ValidationError("--heap-reserve-bytes must be 0 or 1073741824-70368744177664 (1 GiB-64 TiB)")
        }
        guard (0...(1 << 20)).contains(walLoopSyncBytes) else { throw ValidationError("--wal-loop-sync-bytes must be 0-1048576") }
        guard loopTimeSliceMicroseconds == 0 || (100...100_000).contains(loopTimeSliceMicroseconds) else {
            throw ValidationError("--loop-time-slice-microseconds must be 0 or 100-100000")
        }
        guard intakeThreadBodyBytes >= 0 else { throw ValidationError("--intake-thread-body-bytes must be at least 0") }
        guard intakeThreadQueryQuietMilliseconds >= 0 else { throw ValidationError("--intake-thread-query-quiet-milliseconds must be at least 0") }
        guard (0...19).contains(intakeThreadNice) else { throw ValidationError("--intake-thread-nice must be 0-19") }
        guard intakeThreadSliceMicroseconds == 0 || (100...100_000).contains(intakeThreadSliceMicroseconds) else {
            throw ValidationError("--intake-thread-slice-microseconds must be 0 or 100-100000")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() throws {
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.dataDirectory = dataDir
        configuration.keysFile = keys
        configuration.isFsyncEnabled = fsync == .on
        configuration.engine.retentionMilliseconds = Int64(retentionDays) * 86_400_000
        configuration.engine.idempotencyWindowMilliseconds = Int64(idempotencyWindowHours) * 3_600_000
        configuration.engine.deltasPerSnapshot = deltasPerSnapshot
        configuration.snapshotEveryEvents = snapshotEveryEvents
        configuration.snapshotSyncBytes = snapshotSyncBytes
        configuration.engine.deltaMemoryBytesMax = snapshotMemoryBytes
        configuration.engine.historyMemoryBytesMax = historyMemoryBytes
        configuration.bodyBytesMax = maxBodyBytes
        configuration.headerBytesMax = maxHeaderBytes
        configuration.connectionsMax = maxConnections
        configuration.batchEventsMax = maxBatchEvents
        configuration.pipelinedRequestsMax = maxPipelinedRequests
        configuration.idleTimeoutMilliseconds = idleTimeoutSeconds * 1000
        configuration.requestTimeoutMilliseconds = requestTimeoutSeconds * 1000
        configuration.walSegmentBytesMax = walSegmentBytes
        configuration.feedSliceMicroseconds = feedSliceMicroseconds
        configuration.feedSliceWhileQueriesMicroseconds = feedSliceWhileQueriesMicroseconds
        configuration.groupCommitGatherMicroseconds = groupCommitGatherMicroseconds
        configuration.walLoopSyncBytes = walLoopSyncBytes
        configuration.loopTimeSliceMicroseconds = loopTimeSliceMicroseconds
        configuration.intakeThreadBodyBytes = intakeThreadBodyBytes
        configuration.intakeThreadNice = intakeThreadNice
        configuration.isIntakeThreadIdleClass = intakeThreadClass == .idle
        configuration.intakeThreadQueryQuietMilliseconds = intakeThreadQueryQuietMilliseconds
        configuration.intakeThreadSliceMicroseconds = intakeThreadSliceMicroseconds
        configuration.isWALPreallocated = walPreallocate == .on
        configuration.isWALWriteThrough = walWriteThrough == .on
        configuration.isSnapshotDirectIO = snapshotDirectIo == .on
        configuration.retainsFreedMemory = retainFreedMemory == .on
        configuration.heapPrefaultBytes = heapPrefaultBytes
        configuration.heapReserveBytes = heapReserveBytes

        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "headcount")
        let server = HeadcountServer(configuration: configuration, logger: logger, registry: registry)
        do {
            let status = try server.run()
            if status != 0 { throw ExitCode(status) }
        } catch let error as HeadcountServer.StartError {
            logger.critical("cannot start: \(error)")
            FileHandle.standardError.write(Data("headcount: cannot start: \(error)\n".utf8))
            throw ExitCode(error.exitStatus)
        }
    }
}

Headcount.main()

enum IntakeThreadClass: String, ExpressibleByArgument, CaseIterable {
    case normal, idle
}
