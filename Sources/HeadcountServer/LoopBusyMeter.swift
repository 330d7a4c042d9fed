import CLibUV
import Logging
import Prometheus

/// How long each turn of the loop kept it busy — the time a query arriving at the worst
/// moment waits before the loop even reads it. libuv accounts the time spent waiting in
/// poll (`UV_METRICS_IDLE_TIME`); a `uv_prepare` handle, which runs once per turn just before
/// that wait, takes the difference: busy = (time since the last turn) − (idle time since).
///
/// Exported as the histogram `headcount_loop_busy_seconds`; a turn longer than
/// `stallWarningNanoseconds` is also logged (at most once a second), naming how long it was.
final class LoopBusyMeter {
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let histogram: DurationHistogram
    private let logger: Logger
    private let stallWarningNanoseconds: UInt64
    private var handle: UnsafeMutablePointer<uv_prepare_t>?
    private var lastNow: UInt64 = 0
    private var lastIdle: UInt64 = 0
    private var lastWarning: UInt64 = 0
    /// The longest turn since start, in nanoseconds.
    private(set) var longestNanoseconds: UInt64 = 0

    init(loop: UnsafeMutablePointer<uv_loop_t>, registry: PrometheusCollectorRegistry, logger: Logger,
         stallWarningNanoseconds: UInt64 = 100_000_000) {
        self.loop = loop
        self.logger = logger
        self.stallWarningNanoseconds = stallWarningNanoseconds
        histogram = registry.makeDurationHistogram(
            descriptor: ServerMetrics.describe("headcount_loop_busy_seconds", "Time each turn of the event loop was busy (not waiting for I/O): what a query may wait before it is read"),
            buckets: [.microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
                      .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250), .seconds(1)])
        guard hc_loop_measure_idle_time(loop) == 0 else { return }  // not supported: no figures
        let prepare = UnsafeMutablePointer<uv_prepare_t>.allocate(capacity: 1)
        uv_prepare_init(loop, prepare)
        prepare.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_prepare_start(prepare) { handle in
            Unmanaged<LoopBusyMeter>.fromOpaque(handle!.pointee.data).takeUnretainedValue().turn()
        }
        handle = prepare
        lastNow = uv_hrtime()
        lastIdle = uv_metrics_idle_time(loop)
    }

    private func turn() {
        let now = uv_hrtime()
        let idle = uv_metrics_idle_time(loop)
        let elapsed = now &- lastNow
        let waited = idle &- lastIdle
        let busy = elapsed > waited ? elapsed - waited : 0
        lastNow = now
        lastIdle = idle
        histogram.record(.nanoseconds(Int64(busy)))
        if busy > longestNanoseconds { longestNanoseconds = busy }
        if busy >= stallWarningNanoseconds && now &- lastWarning >= 1_000_000_000 {
            lastWarning = now
            logger.warning("the event loop was busy for a long turn; queries waited that long",
                           metadata: ["milliseconds": "\(busy / 1_000_000)"])
        }
    }

    /// Closes the loop handle (the loop must run once more).
    func close() {
        guard let prepare = handle else { return }
        handle = nil
        uv_prepare_stop(prepare)
        uv_close(hc_prepare_as_handle(prepare)) { handle in handle?.deallocate() }
    }
}
