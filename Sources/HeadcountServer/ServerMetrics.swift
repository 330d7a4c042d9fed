import Prometheus

/// What `/metrics` exports (Prometheus text format). Counters are bumped on the loop thread;
/// gauges are refreshed from the engine once a second and on every scrape.
final class ServerMetrics {
    private let feedAccepted: Counter
    private let feedDuplicates: Counter
    private let feedRejected: Counter
    private let queries: Counter
    private var responsesByClass: [Counter]
    private let events: Gauge
    private let tickets: Gauge
    private let deltaRecords: Gauge
    private let idempotencyKeys: Gauge
    private let statusChanges: Gauge
    private let connections: Gauge
    private let walFlushes: Gauge
    private let walBytes: Gauge
    private let snapshotsWritten: Gauge
    private let lastSequence: Gauge
    private let durableSequence: Gauge

    init(registry: PrometheusCollectorRegistry) {
        feedAccepted = registry.makeCounter(name: "headcount_feed_events_total", labels: [("result", "accepted")],
                                            help: "Feed events by outcome")
        feedDuplicates = registry.makeCounter(name: "headcount_feed_events_total", labels: [("result", "duplicate")],
                                              help: "Feed events by outcome")
        feedRejected = registry.makeCounter(name: "headcount_feed_events_total", labels: [("result", "rejected")],
                                            help: "Feed events by outcome")
        queries = registry.makeCounter(name: "headcount_queries_total", help: "Statistics and status-change queries answered")
        responsesByClass = ["1xx", "2xx", "3xx", "4xx", "5xx"].map {
            registry.makeCounter(name: "headcount_http_responses_total", labels: [("class", $0)], help: "HTTP responses by status class")
        }
        events = registry.makeGauge(name: "headcount_events", help: "Events (shows) known")
        tickets = registry.makeGauge(name: "headcount_tickets", help: "Tickets known")
        deltaRecords = registry.makeGauge(name: "headcount_delta_records", help: "Ticket and pass events held for point-in-time answers")
        idempotencyKeys = registry.makeGauge(name: "headcount_idempotency_keys", help: "Feed ids remembered for duplicate detection")
        statusChanges = registry.makeGauge(name: "headcount_status_changes", help: "Seat status changes held")
        connections = registry.makeGauge(name: "headcount_http_connections", help: "Open HTTP connections")
        walFlushes = registry.makeGauge(name: "headcount_wal_flushes", help: "WAL group commits (write + fsync) since start")
        walBytes = registry.makeGauge(name: "headcount_wal_bytes_written", help: "WAL bytes written since start")
        snapshotsWritten = registry.makeGauge(name: "headcount_snapshots_written", help: "Snapshots written since start")
        lastSequence = registry.makeGauge(name: "headcount_last_applied_sequence", help: "Sequence of the last applied event")
        durableSequence = registry.makeGauge(name: "headcount_durable_sequence", help: "Sequence of the last durable event")
    }

    func recordFeed(accepted: Int, duplicates: Int, rejected: Int) {
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
        idempotencyKeys.set(Double(engine.idempotencyKeyCount))
        statusChanges.set(Double(engine.statusChanges.changeCount))
        if let http = server.http { connections.set(Double(http.connectionCount)) }
        if let committer = server.committer {
            walFlushes.set(Double(committer.flushCount))
            walBytes.set(Double(committer.bytesFlushed))
            snapshotsWritten.set(Double(committer.snapshotCount))
            durableSequence.set(Double(committer.durableSequence))
        }
        lastSequence.set(Double(engine.lastAppliedSequence))
    }
}
