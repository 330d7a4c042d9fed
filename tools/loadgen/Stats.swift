// Counters and HDR histograms, one set per worker thread behind its own (uncontended) mutex;
// the progress line and the summary merge them.
import Foundation
import Histogram
import Synchronization

typealias Hist = Histogram<UInt64>

/// Latencies are recorded in nanoseconds, 1 ns .. 10 minutes, 3 significant digits.
func newHistogram() -> Hist {
    Hist(lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)
}

extension Histogram where Count == UInt64 {
    @inline(__always) mutating func recordClamped(_ ns: UInt64) {
        _ = record(Swift.max(1, Swift.min(ns, highestTrackableValue)))
    }
}

/// Problems worth showing verbatim: the first few of each kind are kept.
struct Samples {
    private(set) var items: [String] = []
    mutating func add(_ s: @autoclosure () -> String) { if items.count < 5 { items.append(s()) } }
    mutating func merge(_ o: Samples) { for s in o.items { add(s) } }
}

struct FeedCounters {
    var requestsSent = 0
    var eventsSent = 0
    var duplicatesInjectedSent = 0
    var responses = 0
    var responses200 = 0
    var accepted = 0
    var duplicates = 0
    var rejected = 0
    /// 200s whose accepted + duplicates + rejected differs from the events sent.
    var mismatched = 0
    /// 200s without a readable `{"accepted":..,"duplicates":..}`.
    var unreadable = 0
    var non200: [Int: Int] = [:]
    var eventsInNon200 = 0
    /// Requests written but never answered (connection lost, or still open when the drain ended).
    var lostRequests = 0
    var lostEvents = 0
    var protocolErrors = 0
    var reconnects = 0
    /// Rate mode: requests scheduled before the end that were never sent (the server, or this
    /// generator, could not keep up).
    var missedSchedule = 0
    var passes = 0
    var firstSend: UInt64 = .max
    var lastAnswer: UInt64 = 0
    var samples = Samples()

    mutating func merge(_ o: FeedCounters) {
        requestsSent += o.requestsSent; eventsSent += o.eventsSent
        duplicatesInjectedSent += o.duplicatesInjectedSent
        responses += o.responses; responses200 += o.responses200
        accepted += o.accepted; duplicates += o.duplicates; rejected += o.rejected
        mismatched += o.mismatched; unreadable += o.unreadable
        for (k, v) in o.non200 { non200[k, default: 0] += v }
        eventsInNon200 += o.eventsInNon200
        lostRequests += o.lostRequests; lostEvents += o.lostEvents
        protocolErrors += o.protocolErrors; reconnects += o.reconnects
        missedSchedule += o.missedSchedule
        passes = max(passes, o.passes)
        firstSend = min(firstSend, o.firstSend); lastAnswer = max(lastAnswer, o.lastAnswer)
        samples.merge(o.samples)
    }

    var problems: Int { mismatched + unreadable + non200.values.reduce(0, +) + lostRequests + protocolErrors }
}

struct FeedState {
    var counters = FeedCounters()
    /// From the scheduled send time (rate mode) or the queueing time (flat out) to the answer.
    var latency = newHistogram()
    /// From the moment the request was actually queued for writing to the answer.
    var service = newHistogram()
}

struct QueryCounters {
    var sent = 0
    var ok = 0
    var non200: [Int: Int] = [:]
    /// 200s whose body is not the expected array of statistics objects.
    var invalid = 0
    /// Answers breaking an invariant of SPEC §4 (valid + deleted = total, ...).
    var invariantViolations = 0
    var connectionErrors = 0
    /// How long the queried events took to exist (404 until then; not counted).
    var readyAfterNs: UInt64 = 0
    /// The queried events never existed during the run (every warm-up query was a 404).
    var neverReady = 0
    /// totalTickets of each queried event in the last good answer.
    var lastTotals: [Int] = []
    /// How the query threads were scheduled (`applyQueryScheduling`).
    var scheduling = ""
    var samples = Samples()

    mutating func merge(_ o: QueryCounters) {
        if scheduling.isEmpty || o.scheduling.hasPrefix("normal") { scheduling = o.scheduling.isEmpty ? scheduling : o.scheduling }
        readyAfterNs = max(readyAfterNs, o.readyAfterNs)
        neverReady += o.neverReady
        if !o.lastTotals.isEmpty { lastTotals = o.lastTotals }
        sent += o.sent; ok += o.ok
        for (k, v) in o.non200 { non200[k, default: 0] += v }
        invalid += o.invalid; invariantViolations += o.invariantViolations
        connectionErrors += o.connectionErrors
        samples.merge(o.samples)
    }

    var problems: Int { non200.values.reduce(0, +) + invalid + invariantViolations + connectionErrors + neverReady }
}

struct QueryState {
    var counters = QueryCounters()
    /// From the scheduled time (open loop).
    var latency = newHistogram()
    /// From the actual send.
    var service = newHistogram()
    /// How late the query was sent (its predecessor's answer still awaited, or this thread late).
    var sendLag = newHistogram()
}

struct ProbeCounters {
    var probesSent = 0
    var probesAcked = 0
    /// Probes whose first query after the acknowledgement already reflected them.
    var reflectedAtOnce = 0
    /// Probes not reflected by any query within 2 s of their acknowledgement.
    var neverReflected = 0
    var queries = 0
    var errors = 0
    var samples = Samples()
    var problems: Int { errors + neverReflected }
}

struct ProbeState {
    var counters = ProbeCounters()
    var freshness = newHistogram()
    var ackLatency = newHistogram()
}

/// A worker's state, shared with the progress thread.
final class Shared<Value>: @unchecked Sendable {
    let mutex: Mutex<Value>
    init(_ value: sending Value) { mutex = Mutex(value) }
    @inline(__always) func with<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// p50 … max of a histogram, in milliseconds.
struct Percentiles: Codable {
    var count: UInt64
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double
    var mean: Double

    enum CodingKeys: String, CodingKey { case count, p50, p90, p99, p999 = "p99.9", max, mean }

    init(_ h: Hist) {
        count = h.totalCount
        func ms(_ v: UInt64) -> Double { h.totalCount == 0 ? 0 : (Double(v) / 1e6 * 1000).rounded() / 1000 }
        p50 = ms(h.valueAtPercentile(50))
        p90 = ms(h.valueAtPercentile(90))
        p99 = ms(h.valueAtPercentile(99))
        p999 = ms(h.valueAtPercentile(99.9))
        max = ms(h.max)
        mean = h.totalCount == 0 ? 0 : (h.mean / 1e6 * 1000).rounded() / 1000
    }

    var text: String {
        count == 0 ? "(none)" :
            String(format: "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms  (n=%llu)", p50, p90, p99, p999, max, count)
    }
}
