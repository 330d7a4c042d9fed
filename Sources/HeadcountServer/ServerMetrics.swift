import Prometheus

/// What `/metrics` exports (Prometheus text format). Counters are bumped on the loop thread;
/// gauges are refreshed from the engine once a second and on every scrape.
final class ServerMetrics {
    private let feedAccepted: Counter
    private let feedDuplicates: Counter
    private let feedRejected: Counter
    private let queries: Counter
    /// Feed requests admitted on the loop and on the intake thread.
    private let feedRequestsOnLoop: Counter
    private let feedRequestsOnIntakeThread: Counter
    private var responsesByClass: [Counter]
    private let events: Gauge
    private let tickets: Gauge
    private let deltaRecords: Gauge
    private let idempotencyKeys: Gauge
    private let statusChanges: Gauge
    private let residentDeltaBytes: Gauge
    private let spilledChunks: Gauge
    private let residentHistoryBytes: Gauge
    private let spilledHistoryPages: Gauge
    private let connections: Gauge
    private let walFlushes: Gauge
    private let walBytes: Gauge
    private let walWriteThrough: Gauge
    private let snapshotsWritten: Gauge
    private let lastSnapshotSeconds: Gauge
    private let lastSnapshotBytes: Gauge
    private let lastSequence: Gauge
    private let durableSequence: Gauge
    private let walSyncs: DurationHistogram
    private let statisticsQueries: DurationHistogram

    init(registry: PrometheusCollectorRegistry) {
        feedAccepted = registry.makeCounter(descriptor: ServerMetrics.describe("headcount_feed_events_total", "Feed events by outcome"), labels: [("result", "accepted")])
        feedDuplicates = registry.makeCounter(descriptor: ServerMetrics.describe("headcount_feed_events_total", "Feed events by outcome"), labels: [("result", "duplicate")])
        feedRejected = registry.makeCounter(descriptor: ServerMetrics.describe("headcount_feed_events_total", "Feed events by outcome"), labels: [("result", "rejected")])
        feedRequestsOnLoop = registry.makeCounter(descriptor: ServerMetrics.describe("headcount_feed_requests_total", "Feed requests admitted, by the thread that decoded and admitted them"), labels: [("thread", "loop")])
        feedRequestsOnIntakeThread = registry.makeCounter(descriptor: ServerMetrics.describe("headcount_feed_requests_total", "Feed requests admitted, by the thread that decoded and admitted them"), labels: [("thread", "intake")])
        queries = registry.makeCounter(descriptor: ServerMetrics.describe("headcount_queries_total", "Statistics and status-change queries answered"))
        responsesByClass = ["1xx", "2xx", "3xx", "4xx", "5xx"].map {
            registry.makeCounter(descriptor: ServerMetrics.describe("headcount_http_responses_total", "HTTP responses by status class"), labels: [("class", $0)])
        }
        events = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_events", "Events (shows) known"))
        tickets = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_tickets", "Tickets known"))
        deltaRecords = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_delta_records", "Ticket and pass events held for point-in-time answers"))
        idempotencyKeys = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_idempotency_keys", "Feed ids remembered for duplicate detection"))
        statusChanges = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_status_changes", "Seat status changes held"))
        residentDeltaBytes = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_delta_resident_bytes", "Delta records held in memory, in bytes"))
        spilledChunks = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_delta_spilled_chunks", "Snapshot chunks whose delta records are spilled to disk"))
        residentHistoryBytes = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_history_resident_bytes", "Ticket history held in memory, in bytes"))
        spilledHistoryPages = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_history_spilled_pages", "Ticket history pages spilled to disk"))
        connections = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_http_connections", "Open HTTP connections"))
        walFlushes = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_wal_flushes", "WAL group commits (write + fsync) since start"))
        walBytes = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_wal_bytes_written", "WAL bytes written since start"))
        walWriteThrough = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_wal_write_through", "1 while the current WAL segment is written through to the disk (O_DIRECT | O_DSYNC, no fdatasync), else 0"))
        snapshotsWritten = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_snapshots_written", "Snapshots written since start"))
        lastSnapshotSeconds = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_snapshot_last_seconds", "The last snapshot's time to encode and write, in seconds (0: none since start)"))
        lastSnapshotBytes = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_snapshot_last_bytes", "The last snapshot file's size, in bytes (0: none since start)"))
        lastSequence = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_last_applied_sequence", "Sequence of the last applied event"))
        durableSequence = registry.makeGauge(descriptor: ServerMetrics.describe("headcount_durable_sequence", "Sequence of the last durable event"))
        statisticsQueries = registry.makeDurationHistogram(
            descriptor: ServerMetrics.describe("headcount_statistics_query_seconds", "Time each statistics query took in its handler on the loop (parameters, point-in-time answers, spilled records read back, JSON): the server's own share of query latency; the rest is waiting for the loop's turn and the network"),
            buckets: [.microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250),
                      .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50)])
        walSyncs = registry.makeDurationHistogram(
            descriptor: ServerMetrics.describe("headcount_wal_sync_seconds", "Time each durable WAL flush took, write and fsync (or one write-through write): every acknowledgement waits for one; the disk's share of feed latency"),
            buckets: [.microseconds(50), .microseconds(100), .microseconds(200), .microseconds(500), .milliseconds(1),
                      .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250), .seconds(1)])
    }

    func recordWALSync(nanoseconds: UInt64) { walSyncs.record(.nanoseconds(Int64(nanoseconds))) }

    /// A statistics query's time in its handler: from its parameters to its answer's bytes.
    func recordStatisticsQuery(nanoseconds: UInt64) { statisticsQueries.record(.nanoseconds(Int64(nanoseconds))) }

    static func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    func recordFeed(accepted: Int, duplicates: Int, rejected: Int, onIntakeThread: Bool) {
        (onIntakeThread ? feedRequestsOnIntakeThread : feedRequestsOnLoop).increment()
        if accepted > 0 { feedAccepted.increment(by: Int64(accepted)) }
        if duplicates > 0 { feedDuplicates.increment(by: Int64(duplicates)) }
        if rejected > 0 { feedRejected.increment(by: Int64(rejected)) }
    }

    func recordQuery() { queries.increment() }

    func recordResponse(status: Int) {
        let index = min(max(status / 100 - 1, 0), 4)
        responsesByClass[index].increment()
    }

    func update(server: HeadcountServer) {
        guard let engine = server.engine else { return }
        events.set(Double(engine.eventCount))
        tickets.set(Double(engine.ticketCount))
        deltaRecords.set(Double(engine.deltaRecordCount))
        if server.admissionLock.try() {  // shared with the intake thread; never waited for on the loop
            idempotencyKeys.set(Double(engine.idempotencyKeyCount))
            server.admissionLock.unlock()
        }
        statusChanges.set(Double(engine.statusChanges.changeCount))
        residentDeltaBytes.set(Double(engine.residentDeltaBytes))
        spilledChunks.set(Double(engine.spilledChunkCount))
        residentHistoryBytes.set(Double(engine.residentHistoryBytes))
        spilledHistoryPages.set(Double(engine.spilledHistoryPageCount))
        if let http = server.http { connections.set(Double(http.connectionCount)) }
        if let committer = server.committer {
            walFlushes.set(Double(committer.flushCount))
            walBytes.set(Double(committer.bytesFlushed))
            if let wal = server.wal { walWriteThrough.set(wal.isWritingThrough ? 1.0 : 0.0) }
            snapshotsWritten.set(Double(committer.snapshotCount))
            lastSnapshotSeconds.set(committer.lastSnapshotSeconds)
            lastSnapshotBytes.set(Double(committer.lastSnapshotBytes))
            durableSequence.set(Double(committer.durableSequence))
        }
        lastSequence.set(Double(engine.lastAppliedSequence))
    }
}
