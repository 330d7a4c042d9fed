import CHeapReservoir
import CLibUV
import Foundation
import HeadcountCore
import HeadcountFeed
import HeadcountStorage
import Logging
import Prometheus

/// The libuv shell around the pure engine: recovery, the loop, HTTP routes, group commit,
/// snapshots, signals. Everything here runs on the loop thread except the storage jobs that
/// `FeedCommitter` sends to libuv's thread pool.
public final class HeadcountServer {
    public enum StartError: Error, CustomStringConvertible {
        case dataDirectory(String)
        case keys(String)
        case recovery(String)
        case listen(String)

        public var description: String {
            switch self {
            case .dataDirectory(let detail): return "data directory: \(detail)"
            case .keys(let detail): return "keys: \(detail)"
            case .recovery(let detail): return "recovery: \(detail)"
            case .listen(let detail): return "listen: \(detail)"
            }
        }

        /// Distinct exit statuses for the operator (sysexits.h).
        public var exitStatus: Int32 {
            switch self {
            case .dataDirectory: return 73  // EX_CANTCREAT
            case .keys: return 78           // EX_CONFIG
            case .recovery: return 65       // EX_DATAERR
            case .listen: return 69         // EX_UNAVAILABLE
            }
        }
    }

    let configuration: ServerConfiguration
    let logger: Logger
    public let registry: PrometheusCollectorRegistry
    let metrics: ServerMetrics

    var loop: UnsafeMutablePointer<uv_loop_t>!
    var engine: Engine!
    var keys: KeyStore!
    var wal: WriteAheadLog!
    var snapshots: SnapshotStore!
    var spillFile: SpillFile!
    var committer: FeedCommitter!
    var intake: FeedIntake!
    var loopMeter: LoopBusyMeter?
    var http: HTTPServer!
    let decoder: FeedDecoder
    /// The intake thread's decoder (a decoder is not shared between threads).
    let intakeDecoder: FeedDecoder
    /// Guards the engine's duplicate-check table, which the intake thread and the loop both
    /// use (`FeedIntake`).
    let admissionLock = NSLock()
    private var housekeepingTimer: UnsafeMutablePointer<uv_timer_t>?
    private var spillTimer: UnsafeMutablePointer<uv_timer_t>?
    private var signalHandles: [UnsafeMutablePointer<uv_signal_t>] = []
    private var isStopping = false
    private var exitStatus: Int32 = 0
    private var appliedSinceSnapshot = 0
    private var lastPreparationFailure: String?
    /// The port actually bound (useful with port 0).
    public private(set) var boundPort = 0

    public init(configuration: ServerConfiguration, logger: Logger, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.configuration = configuration
        self.logger = logger
        self.registry = registry
        metrics = ServerMetrics(registry: registry)
        var limits = FeedDecoderLimits()
        limits.eventsPerRequestMax = configuration.batchEventsMax
        decoder = FeedDecoder(limits: limits)
        intakeDecoder = FeedDecoder(limits: limits)
    }

    /// Recovers, listens, and runs the loop until SIGTERM/SIGINT. Returns the exit status.
    public func run() throws -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        configureAllocator()
        try prepareDataDirectory()
        try loadKeys()
        try recover()
        releaseRecoveryMemory()

        loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        guard uv_loop_init(loop) == 0 else { throw StartError.listen("uv_loop_init failed") }
        loop.pointee.data = Unmanaged.passUnretained(self).toOpaque()

        committer = FeedCommitter(loop: loop, wal: wal, snapshots: snapshots, lastSequence: engine.lastAppliedSequence,
                                  isFsyncEnabled: configuration.isFsyncEnabled,
                                  applySliceMicroseconds: configuration.feedSliceMicroseconds / 2,
                                  gatherMicroseconds: configuration.groupCommitGatherMicroseconds,
                                  loopSyncBytes: configuration.walLoopSyncBytes, logger: logger)
        committer.applyDurable = { [unowned self] event, sequence in self.applyDurable(event, sequence: sequence) }
        committer.prefetchDurable = { [unowned self] event in self.engine.prefetch(event) }
        committer.storageFailed = { [unowned self] _ in self.stop(exitStatus: 74) }  // EX_IOERR
        committer.batchApplied = { [unowned self] in self.engine.publish() }
        committer.walSynced = { [unowned self] nanoseconds in self.metrics.recordWALSync(nanoseconds: nanoseconds) }
        loopMeter = LoopBusyMeter(loop: loop, registry: registry, logger: logger)
        intake = FeedIntake(loop: loop, sliceNanoseconds: UInt64(configuration.feedSliceMicroseconds) * 1000,
                            querySliceNanoseconds: UInt64(configuration.feedSliceWhileQueriesMicroseconds) * 1000,
                            threadBodyBytes: configuration.intakeThreadBodyBytes,
                            threadSliceMicroseconds: configuration.intakeThreadSliceMicroseconds,
                            threadNice: configuration.intakeThreadNice,
                            isThreadIdleClass: configuration.isIntakeThreadIdleClass,
                            queryQuietMilliseconds: configuration.intakeThreadQueryQuietMilliseconds, admissionLock: admissionLock)
        intake.decode = { [unowned self] body, format, drafts in
            body.withUnsafeBytes { self.decoder.decode($0, format: format, into: drafts) }
        }
        intake.beginItems = { [unowned self] body, format in body.withUnsafeBytes { self.decoder.beginItems($0, format: format) } }
        intake.nextItems = { [unowned self] drafts, max in self.decoder.nextItems(into: drafts, max: max) }
        intake.endItems = { [unowned self] in self.decoder.endItems() }
        intake.threadDecode = { [unowned self] body, format, drafts in
            body.withUnsafeBytes { self.intakeDecoder.decode($0, format: format, into: drafts) }
        }
        intake.lastAssignedSequence = { [unowned self] in self.committer.lastAssignedSequence }
        intake.engine = engine
        intake.committer = committer
        intake.touch = { [unowned self] keys in self.engine.touchAdmissions(keys) }
        intake.submit = { [unowned self] submission in self.committer.submit(&submission) }
        intake.finished = { [unowned self] job in self.feedRequestAdmitted(job) }
        committer.answerWhenDurable = { [unowned self] answer, failure in self.feedAnswerDurable(answer, failure: failure) }
        intake.failed = { [unowned self] job, error in
            self.feedAnswered(error.response(requestId: job.responder.requestId), job.responder)
        }
        committer.isFeedQueueEmpty = { [unowned self] in self.intake.isEmpty }

        var limits = HTTPServerLimits()
        limits.headerBytesMax = configuration.headerBytesMax
        limits.bodyBytesMax = configuration.bodyBytesMax
        limits.connectionsMax = configuration.connectionsMax
        limits.pipelinedRequestsMax = configuration.pipelinedRequestsMax
        limits.idleTimeoutMilliseconds = configuration.idleTimeoutMilliseconds
        limits.requestTimeoutMilliseconds = configuration.requestTimeoutMilliseconds
        http = HTTPServer(loop: loop, limits: limits, handler: self, logger: logger)
        do {
            boundPort = try http.listen(host: configuration.host, port: configuration.port)
        } catch {
            throw StartError.listen("cannot listen on \(configuration.host):\(configuration.port): \(error)")
        }
        installSignalHandlers()
        startHousekeeping()

        let hostForURL = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        logger.info("headcount ready", metadata: ["url": "http://\(hostForURL):\(boundPort)",
                                                  "dataDirectory": "\(configuration.dataDirectory)",
                                                  "fsync": "\(configuration.isFsyncEnabled ? "on" : "off")"])
        print("headcount listening on http://\(hostForURL):\(boundPort)")
        fflush(stdout)

        if configuration.loopTimeSliceMicroseconds > 0 {
            // The loop thread answers queries between feed slices: when a query arrives while
            // the loop is waiting for a core (a WAL flush, a load generator), a short EEVDF slice
            // lets it run sooner, at the same CPU share (docs/ARCHITECTURE.md).
            if hc_set_thread_slice(UInt64(configuration.loopTimeSliceMicroseconds) * 1000, 0) != 0 {
                logger.notice("the kernel did not take a time slice for the loop thread (needs Linux 6.12+); running with its default",
                              metadata: ["errno": "\(errno)"])
            }
        }
        uv_run(loop, UV_RUN_DEFAULT)

        // The loop ended: every handle is closed and no storage job is in flight.
        if exitStatus == 0 { writeFinalSnapshot() }
        spillFile?.stop()
        heapPrefaulter?.stop()
        uv_loop_close(loop)
        loop.deallocate()
        logger.info("headcount stopped", metadata: ["exitStatus": "\(exitStatus)"])
        return exitStatus
    }

    // MARK: - Start-up

    private func prepareDataDirectory() throws {
        do {
            try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
            wal = try WriteAheadLog(directory: configuration.dataDirectory + "/wal",
                                    segmentBytesMax: configuration.walSegmentBytesMax,
                                    preallocation: configuration.isWALPreallocated ? .background : .off,
                                    writesThrough: configuration.isFsyncEnabled && configuration.isWALWriteThrough)
            snapshots = try SnapshotStore(directory: configuration.dataDirectory + "/snapshots",
                                          syncEveryBytes: configuration.snapshotSyncBytes,
                                          bypassesPageCache: configuration.isSnapshotDirectIO)
            spillFile = try SpillFile(directory: configuration.dataDirectory + "/spill")
        } catch {
            throw StartError.dataDirectory("\(configuration.dataDirectory): \(error)")
        }
    }

    private func loadKeys() throws {
        let path = configuration.resolvedKeysFile
        do {
            if configuration.keysFile == nil && !FileManager.default.fileExists(atPath: path) {
                let generated = try KeyStore.generate(path: path)
                print("""
                headcount: no --keys given; generated API keys in \(path) (shown once, keep them safe):
                  feed key:  \(generated[0].key)
                  admin key: \(generated[1].key)
                """)
                fflush(stdout)
            }
            keys = try KeyStore.load(path: path)
        } catch {
            throw StartError.keys("\(error)")
        }
        logger.info("keys loaded", metadata: ["file": "\(path)", "count": "\(keys.count)"])
    }

    private func recover() throws {
        let started = DispatchTime.now()
        let engineConfiguration = configuration.engine
        do {
            if let (sequence, payload) = try snapshots.loadNewest() {
                let restored = try payload.withUnsafeBytes { try Engine.decodeSnapshot($0, configuration: engineConfiguration) }
                guard restored.lastAppliedSequence == sequence else {
                    throw StartError.recovery("snapshot \(sequence) holds state through \(restored.lastAppliedSequence)")
                }
                engine = restored
            } else {
                engine = Engine(configuration: engineConfiguration)
            }
            engine.spillStore = spillFile
            engine.spillIfOverBudget()
            let fromSnapshot = engine.lastAppliedSequence
            // Read, check and decode on a second thread; build the engine's state in bulk
            // on this one (docs/ARCHITECTURE.md, "Recovery"). The state is built in memory,
            // then spilled past the budgets.
            let outcome = try WALReplay.replay(wal, into: engine)
            let report = outcome.report
            let replayed = outcome.replayed
            engine.spillIfOverBudget()
            engine.publish()
            appliedSinceSnapshot = replayed
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
            if let torn = report.tornTail {
                logger.warning("dropped a torn WAL record (a crash mid-write)", metadata: [
                    "file": "\(torn.file)", "offset": "\(torn.offset)", "bytesDropped": "\(torn.bytesDropped)",
                    "reason": "\(torn.reason)",
                ])
            }
            logger.info("recovered", metadata: ["snapshotSequence": "\(fromSnapshot)", "walEventsReplayed": "\(replayed)",
                                                "walSegments": "\(report.segmentCount)",
                                                "walReadSeconds": "\(String(format: "%.3f", outcome.readSeconds))",
                                                "walBuildSeconds": "\(String(format: "%.3f", outcome.buildSeconds))",
                                                "lastSequence": "\(engine.lastAppliedSequence)",
                                                "seconds": "\(String(format: "%.3f", elapsed))"])
        } catch let error as StartError {
            throw error
        } catch {
            throw StartError.recovery("\(error)")
        }
        admissionLock.withLock { engine.expireIdempotencyKeys(now: Clock.nowMilliseconds()) }
    }

    /// The allocator, jemalloc (linked in, `CHeapReservoir`), tuned for a loop that must not
    /// stall (docs/ARCHITECTURE.md, "The allocator"):
    /// - `retainsFreedMemory`: no decay purging, so freed pages are reused as they are instead
    ///   of being given back and faulted in again (each madvise or munmap also takes the
    ///   address-space lock);
    /// - `heapPrefaultBytes`: every arena takes its fresh extents from one reservoir
    ///   (`heapReserveBytes` of address space) in address order, and `hc-prefault` keeps the
    ///   next `heapPrefaultBytes` of it faulted in, so the loop does not zero its own fresh
    ///   pages (~15 µs each on this kind of VM).
    /// With `retainsFreedMemory` off, jemalloc's decay purging runs on its own background
    /// threads, never inline on the loop.
    /// Under another allocator (an `LD_PRELOAD`) neither is applied, with a warning.
    private func configureAllocator() {
        guard hc_jemalloc_serves_malloc() == 1 else {
            logger.warning("malloc is not jemalloc's (LD_PRELOAD?): --retain-freed-memory and --heap-prefault-bytes are not applied")
            return
        }
        var detail: Int32 = 0
        if configuration.retainsFreedMemory {
            if hc_jemalloc_retain_freed_memory(&detail) != 0 {
                logger.warning("jemalloc refused to stop purging: freed memory goes back to the system as usual",
                               metadata: ["error": "\(detail)"])
            }
        } else if hc_jemalloc_purge_in_background() != 0 {
            logger.notice("jemalloc has no background threads here: freed memory is purged by whichever thread frees or allocates")
        }
        if configuration.heapPrefaultBytes > 0 {
            let reserve = configuration.heapReserveBytes > 0 ? configuration.heapReserveBytes
                : Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
            if hc_heap_reservoir_install(reserve, HeadcountServer.reservoirGrowLimit, &detail) == 0 {
                let bytes = configuration.heapPrefaultBytes
                let prefaulter = HeapPrefaulter(bytes: bytes, top: {
                    min(Int(hc_heap_reservoir_frontier()) + bytes, Int(hc_heap_reservoir_end()))
                })
                prefaulter.start()
                heapPrefaulter = prefaulter
            } else {
                logger.warning("could not reserve the heap's address range: no prefaulting, the loop faults in its own pages",
                               metadata: ["bytes": "\(reserve)", "error": "\(detail)"])
            }
        }
        logger.info("allocator: jemalloc", metadata: [
            "version": "\(String(cString: hc_jemalloc_version()))",
            "retainsFreedMemory": "\(configuration.retainsFreedMemory)",
            "purgesInBackground": "\(hc_jemalloc_purges_in_background() == 1)",
            "reservoirBytesLeft": "\(Int(hc_heap_reservoir_end()) - Int(hc_heap_reservoir_frontier()))",
            "prefaultBytes": "\(heapPrefaulter == nil ? 0 : configuration.heapPrefaultBytes)",
        ])
    }
    /// Recovery's temporary buffers (WAL segments read, sort and build arrays) are freed by
    /// now; with freed memory retained they would stay resident for good (a restart from a
    /// 25 M-event WAL: 4.6 GB resident after, against 4.0 under glibc).
    private func releaseRecoveryMemory() {
        guard configuration.retainsFreedMemory, hc_jemalloc_serves_malloc() == 1 else { return }
        if hc_jemalloc_purge_all() != 0 { logger.notice("jemalloc refused to purge after recovery") }
    }
    /// How much an arena takes from the reservoir at a time: small, so that what is handed out
    /// stays close to what is in use and the prefaulted bytes ahead of it are the next used.
    static let reservoirGrowLimit = 4 << 20
    /// Faults in the reservoir's next bytes ahead of the loop (`ServerConfiguration.heapPrefaultBytes`).
    private var heapPrefaulter: HeapPrefaulter?

    /// Applies one durable event to the engine (statistics and status changes alike).
    func applyDurable(_ event: PreparedEvent, sequence: UInt64) {
        engine.apply(event, sequence: sequence)
        appliedSinceSnapshot += 1
    }

    // MARK: - Housekeeping, signals, stop

    private func startHousekeeping() {
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        timer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_start(timer, { timer in
            let server = Unmanaged<HeadcountServer>.fromOpaque(timer!.pointee.data).takeUnretainedValue()
            server.housekeeping()
        }, 1_000, 1_000)
        housekeepingTimer = timer
        // Spilling past the memory budgets runs in slices of ≤ 1 MiB every 50 ms (up to
        // 20 MiB/s, ahead of what a saturating feed adds): one big spill would hold the loop
        // for hundreds of milliseconds.
        let spill = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, spill)
        spill.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_start(spill, { timer in
            let server = Unmanaged<HeadcountServer>.fromOpaque(timer!.pointee.data).takeUnretainedValue()
            // Not while the spill file's writer is behind (it runs only on idle CPU): the
            // bytes handed to it stay in memory until written.
            guard server.spillFile.pendingBytes < 16 << 20 else { return }
            server.engine.spillIfOverBudget(maxBytes: 1 << 20)
        }, 50, 50)
        spillTimer = spill
    }

    private func housekeeping() {
        let now = Clock.nowMilliseconds()
        // The duplicate-check table is shared with the intake thread: never wait for it on
        // the loop; a busy second is swept the next one.
        if admissionLock.try() {
            engine.expireIdempotencyKeys(now: now)
            admissionLock.unlock()
        }
        engine.expireStatusChanges(now: now)
        let preparationFailure = wal.preparationFailure
        if preparationFailure != lastPreparationFailure {
            lastPreparationFailure = preparationFailure
            if let preparationFailure {
                logger.warning("could not preallocate the next WAL segment; segments grow by appending until a retry at the next rollover succeeds",
                               metadata: ["error": "\(preparationFailure)"])
            }
        }
        // A snapshot costs O(all state): ~54 bytes per event so far, encoded and written
        // (460 MB at 8.6 M events). Taken every N events on a state of tens of millions it
        // would run back to back, take CPU from the loop's neighbours and fill the disk queue
        // in front of the WAL's fsyncs. So the spacing grows with the state: N events or half of
        // all events so far, whichever is more (each snapshot covers at least twice the events
        // of the one before). Snapshot work stays
        // proportional to ingest (about twice the final state written in all, instead of five
        // times with a quarter: measured, batched ingest at 6–9 M events fell to ~230k events/s
        // with a quarter against ~315k without snapshots), and a restart replays at most half
        // of all events from the WAL (0.2–0.3 s per million).
        if appliedSinceSnapshot >= max(configuration.snapshotEveryEvents, Int(engine.lastAppliedSequence / 2)) {
            takeSnapshot()
        }
        metrics.update(server: self)
    }

    /// Takes a copy-on-write snapshot source on the loop (cheap: the status-change log is
    /// encoded here, the rest is shared) and hands it to the storage queue, which encodes and
    /// writes it on a pool thread.
    func takeSnapshot() {
        let started = DispatchTime.now()
        // Under the lock: the duplicate-check table is shared with the intake thread. If the
        // thread holds it, the next housekeeping tick tries again (the loop never waits).
        guard admissionLock.try() else { return }
        let source = engine.snapshotSource()
        admissionLock.unlock()
        appliedSinceSnapshot = 0
        committer.writeSnapshot(source)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e6
        logger.info("snapshot taken", metadata: ["sequence": "\(source.lastAppliedSequence)",
                                                 "loopMilliseconds": "\(String(format: "%.1f", elapsed))"])
    }

    private func writeFinalSnapshot() {
        guard appliedSinceSnapshot > 0, committer.failure == nil else { return }
        do {
            let started = DispatchTime.now().uptimeNanoseconds
            let source = engine.snapshotSource()
            let bytes = try snapshots.write(sequence: source.lastAppliedSequence) { emit in
                source.encode(pieceBytes: snapshots.producedPieceBytes, into: emit)
            }
            try FeedCommitter.trimWAL(wal, keepingFallbackOf: snapshots)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds &- started) / 1e9
            logger.info("final snapshot written", metadata: ["sequence": "\(engine.lastAppliedSequence)",
                                                             "seconds": "\(String(format: "%.2f", seconds))", "bytes": "\(bytes)"])
        } catch {
            logger.error("final snapshot failed; the WAL still holds every event", metadata: ["error": "\(error)"])
        }
    }

    private func installSignalHandlers() {
        for number in [SIGTERM, SIGINT] {
            let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            uv_signal_init(loop, handle)
            handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            uv_signal_start(handle, { handle, number in
                let server = Unmanaged<HeadcountServer>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
                server.logger.info("signal received; stopping", metadata: ["signal": "\(number)"])
                server.stop(exitStatus: 0)
            }, number)
            signalHandles.append(handle)
        }
    }

    /// Stops accepting work; once storage is idle, closes every handle so the loop ends.
    func stop(exitStatus: Int32) {
        if exitStatus != 0 { self.exitStatus = exitStatus }
        guard !isStopping else { return }
        isStopping = true
        closeWhenIdle()
    }

    /// Closes the HTTP server and every handle once no storage job is in flight (checked
    /// every few milliseconds), so the loop can end.
    private func closeWhenIdle() {
        if (intake.isEmpty && committer.isIdle) || committer.failure != nil {
            http.close { [unowned self] in self.closeOwnHandles() }
            return
        }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        timer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_start(timer, { timer in
            let server = Unmanaged<HeadcountServer>.fromOpaque(timer!.pointee.data).takeUnretainedValue()
            uv_close(hc_timer_as_handle(timer)) { handle in handle?.deallocate() }
            server.closeWhenIdle()
        }, 5, 0)
    }

    private func closeOwnHandles() {
        loopMeter?.close()
        intake.close()
        committer.close()
        if let timer = housekeepingTimer {
            uv_close(hc_timer_as_handle(timer)) { handle in handle?.deallocate() }
            housekeepingTimer = nil
        }
        if let timer = spillTimer {
            uv_close(hc_timer_as_handle(timer)) { handle in handle?.deallocate() }
            spillTimer = nil
        }
        for handle in signalHandles {
            uv_close(hc_signal_as_handle(handle)) { handle in handle?.deallocate() }
        }
        signalHandles.removeAll()
    }

    var isAcceptingFeed: Bool { !isStopping }
}

/// The wall clock, read only by the shell.
enum Clock {
    static func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
