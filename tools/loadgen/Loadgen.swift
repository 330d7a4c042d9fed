// headcount-loadgen: plays an event day against a running Headcount (or one it starts), open
// loop or flat out, with statistics queries and a freshness probe beside the feed, and ends
// with a summary (text, or JSON with --json). See tools/README.md.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import HeadcountCore
import Synchronization

@main
struct HeadcountLoadgen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "headcount-loadgen",
        abstract: "Plays an event day against Headcount and reports throughput, latency and freshness.",
        subcommands: [Run.self, Sink.self],
        defaultSubcommand: Run.self
    )
}

struct Sink: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A do-nothing HTTP sink that acknowledges every feed request at once (measures the generator alone).")
    @Option(help: "Port on 127.0.0.1 (0: any free port, printed at start).") var port: UInt16 = 0
    @Option(help: "Stop after this many seconds.") var duration = 120

    func run() throws {
        installStopSignals()
        try SinkServer.serve(port: port, seconds: duration)
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Play an event day (the default command).")

    // Target
    @Option(help: "Headcount base URL (loopback only).") var url: String?
    @Option(help: "Feed key.") var feedKey: String?
    @Option(help: "Read key (statistics queries, freshness probe).") var readKey: String?
    @Option(help: "Start this headcount binary on a free port with a temporary data dir and keys, and stop it at the end.")
    var startServer: String?
    @Option(help: "With --start-server: its --fsync.") var serverFsync = "on"
    @Option(parsing: .singleValue, help: "With --start-server: one more argument for `headcount serve` (repeatable).")
    var serverArg: [String] = []
    @Flag(help: "With --start-server: keep its data directory.") var keepServerData = false

    // The day
    @Option(help: "Events (shows) in the day: E1 … EN.") var events = 8
    @Option(help: "Tickets per event (per pass).") var tickets = 10_000
    @Option(help: "Prefix of the event ids (E1 … EN by default).") var eventPrefix = ""
    @Option(help: "Run id inside feed ids and ticket ids (default: random, so runs never collide).") var runId: String?
    @Option(help: "Fraction of deliveries that arrive late (occurredAt in the past).") var lateFraction = 0.05
    @Option(help: "How late a late delivery is, at most, in seconds.") var lateSeconds = 3600
    @Option(help: "Fraction of deliveries sent twice (same id).") var duplicateFraction = 0.01
    @Option(help: "RNG seed of the day.") var seed: UInt64 = 1
    @Flag(help: "Replay the day as new tickets (pass 2, 3, …) until --duration, instead of stopping after one pass.")
    var loop = false

    // Pace
    @Option(help: "Target events/s (open loop: requests are sent on schedule, latency is measured from the schedule).")
    var rate: Double?
    @Flag(help: "Send as fast as the server answers (each connection keeps --pipeline requests in flight).")
    var flatOut = false
    @Flag(help: "No feed: only queries (and probe, if asked).") var noFeed = false
    @Option(help: "Events per request (NDJSON).") var batch = 1
    @Option(help: "Feed connections.") var connections = 4
    @Option(help: "Threads driving the feed connections (each polls its share of them; default: one per connection). --threads 1 drives them all from one thread, like redis-benchmark.")
    var threads: Int?
    @Option(help: "Requests in flight per feed connection (1: no pipelining).") var pipeline = 1
    @Option(help: "Scheduling class of the feed threads: batch (SCHED_BATCH: same CPU share, but waking up never preempts the server or the query threads, as a feed from other machines would not) or normal.")
    var feedScheduling: FeedScheduling = .batch
    @Option(help: "Scheduling of the query and probe threads: fifo (SCHED_FIFO priority 1 when permitted, else normal: they run the moment an answer arrives or a query is due, as a client on another machine would; they use little CPU) or normal (a short EEVDF slice only).")
    var queryScheduling: QueryScheduling = .fifo
    @Option(help: "Seconds cap of the run.") var duration = 30.0
    @Option(help: "Seconds to wait for answers still in flight at the end.") var drainSeconds = 10.0

    // Readers
    @Option(help: "Statistics queries per second beside the feed (0: none).") var queryRate = 0.0
    @Option(help: "Connections for the statistics queries.") var queryConnections = 1
    @Option(help: "How many of E1 … EN each query asks for (1–8).") var queryEvents = 8
    @Option(help: "Comma-separated event ids to query instead.") var queryEventIds: String?
    @Option(help: "Query at dateTime = now minus this many days (0: now).") var queryPastDays = 0.0
    @Option(help: "Freshness probes per second (0: no probe).") var probeRate = 10.0

    // Backfill
    @Option(help: "Before the run: this many tickets per event, dated --backfill-days ago (for queries in the past).")
    var backfillTickets = 0
    @Option(help: "Age of the backfill, in days (its hour ends this many days ago).") var backfillDays = 360.0

    // Output
    @Flag(help: "Print the summary as JSON on stdout (the text summary then goes to stderr).") var json = false
    @Flag(help: "No progress lines.") var quiet = false

    func validate() throws {
        if startServer == nil {
            guard url != nil else { throw ValidationError("--url (or --start-server) is required") }
            if !noFeed && feedKey == nil { throw ValidationError("--feed-key is required") }
            if (queryRate > 0 || probeRate > 0) && readKey == nil { throw ValidationError("--read-key is required for queries and the probe (or --probe-rate 0)") }
            if probeRate > 0 && feedKey == nil { throw ValidationError("--feed-key is required for the freshness probe (or --probe-rate 0)") }
        }
        if !noFeed && rate == nil && !flatOut { throw ValidationError("give --rate R or --flat-out (or --no-feed)") }
        if rate != nil && flatOut { throw ValidationError("--rate and --flat-out exclude each other") }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        guard batch >= 1, connections >= 1, pipeline >= 1, queryConnections >= 1 else { throw ValidationError("--batch, --connections, --pipeline, --query-connections must be ≥ 1") }
        guard (1...8).contains(queryEvents) else { throw ValidationError("--query-events must be 1–8") }
        guard events >= 0, tickets >= 0 else { throw ValidationError("--events and --tickets must be ≥ 0") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600]") }
        if let runId, runId.isEmpty || runId.utf8.count > 40 { throw ValidationError("--run-id: 1–40 characters") }
    }

    func run() throws {
        installStopSignals()
        var server: ServerProcess? = nil
        if let binary = startServer {
            server = try ServerProcess(binary: binary, fsync: serverFsync, extraArguments: serverArg, keep: keepServerData)
            log("started \(binary) at \(server!.url) (data in \(server!.directory), --fsync \(serverFsync))")
        }
        defer { server?.stop() }
        let summary: Summary
        do {
            summary = try play(url: url ?? server!.url, feedKey: feedKey ?? server?.feedKey ?? "",
                               readKey: readKey ?? server?.readKey ?? "")
        }
        if json {
            FileHandle.standardError.write((summary.text + "\n").data(using: .utf8)!)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(summary.text)
        }
        fflush(stdout)
        if summary.problems > 0 {
            server?.stop()
            server = nil
            throw ExitCode(2)
        }
    }

    private func log(_ s: String) { FileHandle.standardError.write("loadgen: \(s)\n".data(using: .utf8)!) }

    private func play(url: String, feedKey: String, readKey: String) throws -> Summary {
        let endpoint = try Endpoint(url: url)
        let run = runId ?? randomRunID()
        let feedOn = !noFeed && events > 0 && tickets > 0

        var day = DayConfig()
        day.events = events; day.tickets = tickets; day.eventPrefix = eventPrefix; day.runID = run
        day.lateFraction = lateFraction; day.lateSeconds = lateSeconds; day.duplicateFraction = duplicateFraction
        day.seed = seed; day.batch = batch; day.hostHeader = endpoint.hostHeader; day.feedKey = feedKey

        // Backfill first (its own small day, dated in the past, sent once).
        var backfill: BackfillSummary? = nil
        if backfillTickets > 0 && events > 0 {
            var b = day
            b.tickets = backfillTickets
            b.tag = "bkfl"
            b.batch = max(batch, 1000)
            b.lateFraction = 0; b.duplicateFraction = 0
            let end = wallMillis() - Int64(backfillDays * 86_400_000)
            b.fixedWindow = (end - 3_600_000, end - 1000)
            let pool = DayBuilder(b).build()
            log("backfill: \(pool.totalEvents) events for \(events) events × \(backfillTickets) tickets, dated \(Timestamp.format(milliseconds: end - 3_600_000)) … \(Timestamp.format(milliseconds: end))")
            let stats = Shared(FeedState())
            let now = monoNow()
            let plan = FeedPlan(endpoint: endpoint, connections: 1, pipeline: 4, loop: false, intervalNs: 0,
                                startNs: now, deadlineNs: now + 120_000_000_000, drainNs: 30_000_000_000)
            FeedWorker(index: 0, plan: plan, pool: pool, stats: stats).run()
            let c = stats.with { $0.counters }
            backfill = BackfillSummary(events: pool.totalEvents, accepted: c.accepted, duplicates: c.duplicates, rejected: c.rejected,
                                       problems: c.problems, seconds: Double(monoNow() - now) / 1e9, samples: c.samples.items)
            log("backfill: accepted \(c.accepted), duplicates \(c.duplicates), rejected \(c.rejected), problems \(c.problems) in \(String(format: "%.1f", backfill!.seconds)) s")
        }

        // The day's requests, built before the clock starts.
        var pool = RequestPool(liveTime: true)
        if feedOn {
            let built = monoNow()
            pool = DayBuilder(day).build()
            log(String(format: "built %d events (%d late, %d duplicate deliveries) in %d requests, %.1f MB, in %.2f s; run id %@",
                       pool.totalEvents, pool.lateEvents, pool.injectedDuplicates, pool.requests.count,
                       Double(pool.totalBytes) / 1e6, Double(monoNow() - built) / 1e9, run))
            if loop && pool.requests.count < connections * (pipeline + 1) {
                throw LoadgenError("--loop needs more than \(connections * (pipeline + 1)) requests in the day (have \(pool.requests.count)): raise --tickets or --events")
            }
        }

        // Readers.
        let queryIds: [String] = queryEventIds.map { $0.split(separator: ",").map(String.init) }
            ?? (1...max(1, min(queryEvents, max(events, 1)))).map { "\(eventPrefix)E\($0)" }
        if queryIds.count > 8 { throw LoadgenError("at most 8 --query-event-ids") }

        let start = monoNow() + 20_000_000
        let deadline = start + UInt64(duration * 1e9)
        let auxStop = Atomic<Bool>(false)
        let feedDone = Atomic<Int>(0)

        let feedStats = (0..<(feedOn ? connections : 0)).map { _ in Shared(FeedState()) }
        let queryStats = (0..<(queryRate > 0 ? queryConnections : 0)).map { _ in Shared(QueryState()) }
        let probeStats = Shared(ProbeState())
        var threads: [JoinableThread] = []

        if feedOn {
            let interval = rate.map { Double(batch) / $0 * 1e9 } ?? 0
            let plan = FeedPlan(endpoint: endpoint, connections: connections, pipeline: pipeline, loop: loop,
                                intervalNs: interval, startNs: start, deadlineNs: deadline, drainNs: UInt64(drainSeconds * 1e9))
            let workers = (0..<connections).map { FeedWorker(index: $0, plan: plan, pool: pool, stats: feedStats[$0]) }
            let threadCount = min(max(self.threads ?? connections, 1), connections)
            for t in 0..<threadCount {
                let mine = Array(stride(from: t, to: connections, by: threadCount).map { workers[$0] })
                let batchClass = feedScheduling == .batch
                threads.append(JoinableThread {
                    if batchClass { makeThreadBatchClass() }
                    FeedDriver(workers: mine).run()
                    feedDone.add(mine.count, ordering: .relaxed)
                })
            }
        }
        let stopReaders: () -> Bool = { auxStop.load(ordering: .relaxed) || globalStop.load(ordering: .relaxed) }
        if queryRate > 0 {
            let plan = QueryPlan(endpoint: endpoint, readKey: readKey, eventIds: queryIds, pastMs: Int64(queryPastDays * 86_400_000),
                                 connections: queryConnections, intervalNs: 1e9 / queryRate, startNs: start, deadlineNs: deadline,
                                 scheduling: queryScheduling)
            for q in 0..<queryConnections {
                let worker = QueryWorker(index: q, plan: plan, stats: queryStats[q], stop: stopReaders)
                threads.append(JoinableThread { worker.run() })
            }
        }
        var probeEvent: String? = nil
        if probeRate > 0 {
            let plan = ProbePlan(endpoint: endpoint, feedKey: feedKey, readKey: readKey, runID: run,
                                 intervalNs: 1e9 / probeRate, startNs: start, deadlineNs: deadline, scheduling: queryScheduling)
            let worker = ProbeWorker(plan: plan, stats: probeStats, stop: stopReaders)
            probeEvent = worker.eventId
            threads.append(JoinableThread { worker.run() })
        }

        // Progress, once a second, until the feed is done (or the deadline, without a feed).
        sleepUntil(start)
        var lastAccepted = 0, lastQueries = 0
        var tick = start
        var lastPrint = start
        while true {
            tick += 1_000_000_000
            while monoNow() < tick {
                if globalStop.load(ordering: .relaxed) { break }
                if feedOn && feedDone.load(ordering: .relaxed) == connections { break }
                usleep(20_000)
            }
            let feedFinished = feedOn ? feedDone.load(ordering: .relaxed) == connections : monoNow() >= deadline
            if !quiet {
                var c = FeedCounters(), h = newHistogram(), qc = QueryCounters(), qh = newHistogram()
                for s in feedStats { s.with { c.merge($0.counters); h.add($0.latency) } }
                for s in queryStats { s.with { qc.merge($0.counters); qh.add($0.latency) } }
                let (pc, ph) = probeStats.with { ($0.counters, $0.freshness) }
                let now = monoNow()
                let elapsed = Double(now - start) / 1e9
                let dt = max(0.001, Double(now - lastPrint) / 1e9)
                lastPrint = now
                var line = String(format: "[%5.1fs]", elapsed)
                if feedOn {
                    line += String(format: " feed %@ ev/s accepted (total %@), ack p99 %@",
                                   group(Int(Double(c.accepted - lastAccepted) / dt)), group(c.accepted), ms(h.valueAtPercentile(99), h.totalCount))
                }
                if queryRate > 0 { line += String(format: " | queries %.0f/s p99 %@", Double(qc.sent - lastQueries) / dt, ms(qh.valueAtPercentile(99), qh.totalCount)) }
                if probeRate > 0 { line += String(format: " | fresh p99 %@", ms(ph.valueAtPercentile(99), ph.totalCount)) }
                let problems = c.problems + qc.problems + pc.problems
                line += " | problems \(problems)"
                FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
                lastAccepted = c.accepted; lastQueries = qc.sent
            }
            if feedFinished || globalStop.load(ordering: .relaxed) { break }
        }
        auxStop.store(true, ordering: .relaxed)
        for t in threads { t.join() }
        let end = monoNow()

        // Summary.
        var c = FeedCounters(), h = newHistogram(), hs = newHistogram(), qc = QueryCounters(), qh = newHistogram(), qhs = newHistogram()
        var qlag = newHistogram()
        for s in feedStats { s.with { c.merge($0.counters); h.add($0.latency); hs.add($0.service) } }
        for s in queryStats { s.with { qc.merge($0.counters); qh.add($0.latency); qhs.add($0.service); qlag.add($0.sendLag) } }
        let probe = probeStats.with { $0 }
        let feedSeconds = c.lastAnswer > c.firstSend && c.firstSend != .max ? Double(c.lastAnswer - c.firstSend) / 1e9 : 0

        var summary = Summary()
        summary.runId = run
        summary.url = url
        summary.mode = noFeed ? "no feed" : flatOut ? "flat-out" : "rate \(rate!) events/s"
        summary.config = .init(events: events, tickets: tickets, batch: batch, connections: connections, pipeline: pipeline,
                               duration: duration, loop: loop, lateFraction: lateFraction, lateSeconds: lateSeconds,
                               duplicateFraction: duplicateFraction, queryRate: queryRate, queryEventIds: queryIds,
                               queryPastDays: queryPastDays, probeRate: probeRate, backfillTickets: backfillTickets)
        summary.seconds = Double(end - start) / 1e9
        if feedOn {
            summary.feed = FeedSummary(
                requests: c.requestsSent, responses: c.responses, eventsSent: c.eventsSent,
                duplicatesInjected: c.duplicatesInjectedSent, accepted: c.accepted, duplicates: c.duplicates,
                rejected: c.rejected, non200: Dictionary(uniqueKeysWithValues: c.non200.map { ("\($0.key)", $0.value) }),
                eventsInNon200: c.eventsInNon200, mismatched: c.mismatched, unreadable: c.unreadable,
                lostRequests: c.lostRequests, lostEvents: c.lostEvents, protocolErrors: c.protocolErrors,
                reconnects: c.reconnects, missedSchedule: c.missedSchedule, passes: c.passes,
                dayEvents: pool.totalEvents, seconds: feedSeconds,
                eventsPerSecondAccepted: feedSeconds > 0 ? Double(c.accepted) / feedSeconds : 0,
                eventsPerSecondAnswered: feedSeconds > 0 ? Double(c.accepted + c.duplicates + c.rejected) / feedSeconds : 0,
                requestsPerSecond: feedSeconds > 0 ? Double(c.responses) / feedSeconds : 0,
                ackLatencyMs: Percentiles(h), ackServiceMs: Percentiles(hs), samples: c.samples.items)
        }
        if queryRate > 0 {
            summary.queries = QuerySummary(
                sent: qc.sent, ok: qc.ok, non200: Dictionary(uniqueKeysWithValues: qc.non200.map { ("\($0.key)", $0.value) }),
                invalid: qc.invalid, invariantViolations: qc.invariantViolations, connectionErrors: qc.connectionErrors,
                dateTime: queryPastDays > 0 ? "now - \(queryPastDays) days" : "now",
                startedAfterSeconds: Double(qc.readyAfterNs) / 1e9, lastTotalTickets: qc.lastTotals,
                perSecond: summary.seconds > 0 ? Double(qc.sent) / summary.seconds : 0,
                latencyMs: Percentiles(qh), serviceMs: Percentiles(qhs), sendLagMs: Percentiles(qlag), scheduling: qc.scheduling,
                samples: qc.samples.items)
        }
        if probeRate > 0 {
            summary.freshness = FreshnessSummary(
                event: probeEvent ?? "", probes: probe.counters.probesSent, acknowledged: probe.counters.probesAcked,
                reflectedByFirstQuery: probe.counters.reflectedAtOnce, neverReflected: probe.counters.neverReflected,
                queries: probe.counters.queries, errors: probe.counters.errors,
                freshnessMs: Percentiles(probe.freshness), probeAckLatencyMs: Percentiles(probe.ackLatency),
                samples: probe.counters.samples.items)
        }
        summary.backfill = backfill
        summary.problems = c.problems + qc.problems + probe.counters.problems + (backfill?.problems ?? 0)
        return summary
    }
}

private func group(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 && ch != "-" { out.append(",") }
        out.append(ch)
    }
    return out
}

private func ms(_ ns: UInt64, _ count: UInt64) -> String {
    count == 0 ? "-" : String(format: "%.2f ms", Double(ns) / 1e6)
}

// MARK: - Summary

struct FeedSummary: Codable {
    var requests, responses, eventsSent, duplicatesInjected, accepted, duplicates, rejected: Int
    var non200: [String: Int]
    var eventsInNon200, mismatched, unreadable, lostRequests, lostEvents, protocolErrors, reconnects, missedSchedule, passes: Int
    var dayEvents: Int
    var seconds: Double
    var eventsPerSecondAccepted, eventsPerSecondAnswered, requestsPerSecond: Double
    /// From the scheduled time (--rate) or from queueing (flat out): the figure to quote.
    var ackLatencyMs: Percentiles
    /// From the actual write: differs from ackLatencyMs when the schedule slipped.
    var ackServiceMs: Percentiles
    var samples: [String]
}

struct QuerySummary: Codable {
    var sent, ok: Int
    var non200: [String: Int]
    var invalid, invariantViolations, connectionErrors: Int
    var dateTime: String
    /// Seconds the queried events took to exist (queries answered 404 until then, not counted).
    var startedAfterSeconds: Double
    /// totalTickets of each queried event in the last good answer (shows what a past dateTime sees).
    var lastTotalTickets: [Int]
    var perSecond: Double
    /// From the scheduled time (open loop): the figure to quote.
    var latencyMs: Percentiles
    /// From the actual send: the server's answer time plus the loopback round trip.
    var serviceMs: Percentiles
    /// Send time − scheduled time: waiting for the previous answer on the connection, or this
    /// thread not getting a CPU in time.
    var sendLagMs: Percentiles
    /// How the query threads were scheduled: "fifo", "normal", or "normal (fifo refused)".
    var scheduling: String
    var samples: [String]
}

struct FreshnessSummary: Codable {
    var event: String
    var probes, acknowledged, reflectedByFirstQuery, neverReflected, queries, errors: Int
    var freshnessMs: Percentiles
    var probeAckLatencyMs: Percentiles
    var samples: [String]
}

struct BackfillSummary: Codable {
    var events, accepted, duplicates, rejected, problems: Int
    var seconds: Double
    var samples: [String]
}

struct Summary: Codable {
    struct Config: Codable {
        var events, tickets, batch, connections, pipeline: Int
        var duration: Double
        var loop: Bool
        var lateFraction: Double
        var lateSeconds: Int
        var duplicateFraction, queryRate: Double
        var queryEventIds: [String]
        var queryPastDays, probeRate: Double
        var backfillTickets: Int
    }
    var runId = ""
    var url = ""
    var mode = ""
    var config: Config? = nil
    var seconds = 0.0
    var feed: FeedSummary? = nil
    var queries: QuerySummary? = nil
    var freshness: FreshnessSummary? = nil
    var backfill: BackfillSummary? = nil
    var problems = 0

    var text: String {
        var out: [String] = []
        out.append("headcount-loadgen \(mode) against \(url), run \(runId), \(String(format: "%.1f", seconds)) s")
        if let b = backfill {
            out.append(String(format: "backfill   %d events: accepted %d, duplicates %d, rejected %d, problems %d (%.1f s)",
                              b.events, b.accepted, b.duplicates, b.rejected, b.problems, b.seconds))
        }
        if let f = feed {
            out.append(String(format: "feed       %@ events/s accepted  (%@ requests/s; %.1f s)", group(Int(f.eventsPerSecondAccepted)), group(Int(f.requestsPerSecond)), f.seconds))
            out.append("           sent \(group(f.eventsSent)) events in \(group(f.requests)) requests (\(f.passes) pass(es) of a \(group(f.dayEvents))-event day; \(group(f.duplicatesInjected)) duplicate deliveries)")
            out.append("           accepted \(group(f.accepted)), duplicates \(group(f.duplicates)), rejected \(group(f.rejected))")
            let non200 = f.non200.isEmpty ? "none" : f.non200.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            out.append("           non-200 \(non200) (\(f.eventsInNon200) events); lost \(f.lostRequests) requests (\(f.lostEvents) events); mismatched \(f.mismatched); unreadable \(f.unreadable); protocol errors \(f.protocolErrors); reconnects \(f.reconnects); missed schedule \(f.missedSchedule)")
            out.append("  ack      \(f.ackLatencyMs.text)\(mode.hasPrefix("rate") ? "  (from the schedule)" : "")")
            if mode.hasPrefix("rate") { out.append("  ack      \(f.ackServiceMs.text)  (from the actual send)") }
            for s in f.samples { out.append("  ! \(s)") }
        }
        if let q = queries {
            out.append(String(format: "queries    %d sent (%.0f/s) at dateTime %@: ok %d, non-200 %d, invalid %d, invariant violations %d, connection errors %d",
                              q.sent, q.perSecond, q.dateTime, q.ok, q.non200.values.reduce(0, +), q.invalid, q.invariantViolations, q.connectionErrors))
            out.append("           events \(config?.queryEventIds.joined(separator: ",") ?? ""); totalTickets in the last answer: \(q.lastTotalTickets.map(String.init).joined(separator: ","))")
            out.append("  latency  \(q.latencyMs.text)  (from the schedule)")
            out.append("  service  \(q.serviceMs.text)  (from the actual send)")
            out.append("  send lag \(q.sendLagMs.text)  (actual send − schedule)")
            out.append("           query threads scheduled \(q.scheduling)")
            if q.startedAfterSeconds > 0.05 { out.append(String(format: "           (queries started %.2f s in, once the queried events existed)", q.startedAfterSeconds)) }
            for s in q.samples { out.append("  ! \(s)") }
        }
        if let r = freshness {
            out.append("freshness  \(r.probes) probes on \(r.event): acknowledged \(r.acknowledged), reflected by the first query after the ack \(r.reflectedByFirstQuery), never (2 s) \(r.neverReflected), errors \(r.errors)")
            out.append("  fresh    \(r.freshnessMs.text)")
            out.append("  probe ack \(r.probeAckLatencyMs.text)")
            for s in r.samples { out.append("  ! \(s)") }
        }
        out.append(problems == 0 ? "problems   none" : "problems   \(problems) (see the lines marked !)")
        return out.joined(separator: "\n")
    }
}

enum FeedScheduling: String, ExpressibleByArgument, CaseIterable {
    case batch, normal
}
