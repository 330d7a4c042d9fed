import CLibUV
import Foundation
import HeadcountStorage

/// A thread of the server's own that runs work handed over by the loop, in submission
/// order, and runs each completion afterwards back on the loop thread (a `uv_async_t`).
///
/// Two are used:
/// - **`hc-snapshot`**, in the SCHED_IDLE class (`.idle`), for storage work that must never
///   take a core from the event loop: engine snapshots, which re-encode the whole state
///   (seconds at tens of millions of events). It gets only CPU time that no other thread of
///   the machine wants, and the scheduler preempts it as soon as the loop, a WAL flush or a
///   load generator wakes. On a 2-core machine under a saturating feed the snapshot thread at
///   nice 10 on libuv's pool took ~30% of the server's CPU samples and the loop waited on the
///   run queue behind it. A dedicated thread also keeps the lowered priority off libuv's pool
///   threads, which a thread cannot raise again without privileges, and which run the WAL
///   flushes every acknowledgement waits for. Where SCHED_IDLE is refused it runs at nice 19.
/// - **`hc-intake`**, in the normal class (`.normal`), which decodes and admits large feed
///   batches beside the loop (`FeedIntake`), so that a batched feed uses both cores.
final class WorkerThread {
    enum SchedulingClass {
        /// SCHED_IDLE (or nice 19 where that is refused).
        case idle
        /// The default class at this nice value, with this EEVDF time slice in microseconds
        /// (0: the kernel's).
        case normal(sliceMicroseconds: Int, nice: Int)
    }

    private let condition = NSCondition()
    private var work: [(run: () -> Void, then: () -> Void)] = []
    private var finished: [() -> Void] = []
    private var isStopping = false
    private var hasThread = false
    private var async: UnsafeMutablePointer<uv_async_t>?
    private let name: String
    private let schedulingClass: SchedulingClass

    init(loop: UnsafeMutablePointer<uv_loop_t>, name: String, schedulingClass: SchedulingClass) {
        self.name = name
        self.schedulingClass = schedulingClass
        let handle = UnsafeMutablePointer<uv_async_t>.allocate(capacity: 1)
        uv_async_init(loop, handle) { handle in
            Unmanaged<WorkerThread>.fromOpaque(handle!.pointee.data).takeUnretainedValue().runCompletions()
        }
        handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        async = handle
    }

    /// Queues `run` for the thread (started on first use); `then` runs on the loop after it.
    func submit(_ run: @escaping () -> Void, then: @escaping () -> Void) {
        condition.lock()
        work.append((run, then))
        if !hasThread {
            hasThread = true
            let thread = Thread { [self] in self.runThread() }
            thread.name = name
            thread.start()
        }
        condition.signal()
        condition.unlock()
    }

    /// Stops the thread once its current work is done and closes the loop handle. Call on
    /// the loop thread, when nothing is pending (completions not yet run are dropped).
    func close() {
        condition.lock()
        isStopping = true
        let handle = async
        async = nil
        condition.broadcast()
        condition.unlock()
        if let handle { uv_close(hc_async_as_handle(handle)) { handle in handle?.deallocate() } }
    }

    private func runThread() {
        _ = hc_set_thread_name(name)
        switch schedulingClass {
        case .idle:
            moveCurrentThreadToIdleClass()
        case .normal(let sliceMicroseconds, let nice):
            if sliceMicroseconds > 0 { _ = hc_set_thread_slice(UInt64(sliceMicroseconds) * 1000, Int32(nice)) }
            if nice != 0 { setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(hc_gettid()), Int32(nice)) }
        }
        condition.lock()
        while true {
            while work.isEmpty && !isStopping { condition.wait() }
            if isStopping { break }
            let item = work.removeFirst()
            condition.unlock()
            item.run()
            condition.lock()
            finished.append(item.then)
            // Under the lock: close() cannot free the handle in between.
            if let async, !isStopping { uv_async_send(async) }
        }
        condition.unlock()
    }

    private func runCompletions() {
        condition.lock()
        let ready = finished
        finished.removeAll()
        condition.unlock()
        for completion in ready { completion() }
    }
}
