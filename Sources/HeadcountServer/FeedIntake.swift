import CLibUV
import DequeModule
import HeadcountCore
import HeadcountFeed
import HeadcountStorage

/// Feed requests are queued when they arrive and worked off in time slices, so that a
/// statistics query never waits behind a pile of feed batches.
///
/// One loop thread serves everything. A feed batch of 1,000 events costs about 1 ms to
/// decode, check for duplicates and encode for the WAL; if it were done as each request was
/// read, a query arriving beside a few pipelined batches would wait several milliseconds
/// (measured: p99 26–600 ms under a saturating feed). Instead the read callback only queues
/// the complete request, and an idle handle (which also keeps the loop from blocking while
/// work remains) spends at most `sliceNanoseconds` per loop turn on the queue — decoding
/// the next request, then admitting and encoding its events 64 at a time — before the loop
/// polls again and answers whatever queries came in. Group commit is unchanged: what the
/// slices submitted is flushed once per turn (`FeedCommitter`), and a request is answered
/// when all its events are durable and applied.
///
/// A request's arrival time (for the idempotency window) is when it was read, not when its
/// slice ran. Backpressure is per connection: a connection's pipelined requests count
/// against its limit until answered, so the queue holds at most connections × pipeline.
final class FeedIntake {
    /// One queued feed request (a value: the queue holds it, the slice takes it out to work on).
    struct Job {
        /// Emptied once decoded, so the connection can reuse its buffer.
        var body: [UInt8]
        let format: FeedBodyFormat
        let arrivalMilliseconds: Int64
        /// Answers the request (`HeadcountServer.feedAnswered`).
        let responder: HTTPResponder
        var items: [FeedItem]?
        var next = 0
        var accepted = 0
        var duplicates = 0
        var rejections: [(index: Int, id: String?, error: String)] = []

        init(body: [UInt8], format: FeedBodyFormat, arrivalMilliseconds: Int64, responder: HTTPResponder) {
            self.body = body
            self.format = format
            self.arrivalMilliseconds = arrivalMilliseconds
            self.responder = responder
        }
    }

    /// Work per loop turn on the queue (at least one step is always taken).
    let sliceNanoseconds: UInt64
    /// Events admitted between two looks at the clock.
    private let stepEvents = 64
    private var queue: Deque<Job> = []
    private var idleHandle: UnsafeMutablePointer<uv_idle_t>?
    private var isIdleRunning = false

    /// Decodes a body (the server's decoder and its limits).
    var decode: (([UInt8], FeedBodyFormat) -> Result<[FeedItem], FeedBodyError>)!
    /// Admits one event by its duplicate-check key (`Engine.admissionKey(id:)`): true if new
    /// (and then it must be submitted), false if a duplicate.
    var admit: ((Hash128, Int64) -> Bool)!
    /// Touches the duplicate-check table for a step's keys before they are admitted.
    var touch: ((UnsafeBufferPointer<Hash128>) -> Void)?
    private var stepKeys: [Hash128] = []
    /// Submits an admitted event to the group commit.
    var submit: ((FeedEvent, Int64) -> Void)!
    /// A request is fully admitted: answer it once its events are durable.
    var finished: ((Job) -> Void)!
    /// A request's body failed as a whole.
    var failed: ((Job, APIError) -> Void)!

    init(loop: UnsafeMutablePointer<uv_loop_t>, sliceNanoseconds: UInt64) {
        self.sliceNanoseconds = sliceNanoseconds
        let idle = UnsafeMutablePointer<uv_idle_t>.allocate(capacity: 1)
        uv_idle_init(loop, idle)
        idle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        idleHandle = idle
    }

    var isEmpty: Bool { queue.isEmpty }
    var queuedRequests: Int { queue.count }

    func enqueue(_ job: Job) {
        queue.append(job)
        guard let idle = idleHandle, !isIdleRunning else { return }
        isIdleRunning = true
        uv_idle_start(idle) { handle in
            Unmanaged<FeedIntake>.fromOpaque(handle!.pointee.data).takeUnretainedValue().runSlice()
        }
    }

    /// Closes the loop handle (the loop must run once more). Queued work must be done first.
    func close() {
        guard let idle = idleHandle else { return }
        idleHandle = nil
        uv_idle_stop(idle)
        uv_close(hc_idle_as_handle(idle)) { handle in handle?.deallocate() }
    }

    private func runSlice() {
        let deadline = uv_hrtime() &+ sliceNanoseconds
        repeat {
            // Taken out while worked on (moved, not copied), put back if not finished.
            guard var job = queue.popFirst() else { break }
            if job.items == nil {
                switch decode(job.body, job.format) {
                case .success(let items):
                    job.items = items
                    job.body = []
                    queue.prepend(job)
                case .failure(.invalidJSON(let detail)):
                    failed(job, .invalidJSON(detail))
                case .failure(.tooManyEvents(let limit)):
                    failed(job, .tooManyEvents(limit: limit))
                }
                continue  // look at the clock after a decode
            }
            let items = job.items!
            let end = min(job.next + stepEvents, items.count)
            // Keys first, and their table slots touched together (their cache misses overlap),
            // then the admissions.
            stepKeys.removeAll(keepingCapacity: true)
            for index in job.next..<end {
                if case .event(let event) = items[index] { stepKeys.append(Engine.admissionKey(id: event.id)) } else { stepKeys.append(Hash128(low: 0, high: 0)) }
            }
            if let touch { stepKeys.withUnsafeBufferPointer { touch($0) } }
            var step = 0
            while job.next < end {
                defer { step += 1 }
                switch items[job.next] {
                case .event(let event):
                    if let problem = WALRecord.encodingProblem(of: event) {
                        job.rejections.append((job.next, event.id, problem))
                    } else if admit(stepKeys[step], job.arrivalMilliseconds) {
                        submit(event, job.arrivalMilliseconds)
                        job.accepted += 1
                    } else {
                        job.duplicates += 1
                    }
                case .rejected(let index, let id, let error):
                    job.rejections.append((index, id, error))
                }
                job.next += 1
            }
            if job.next == items.count {
                finished(job)
            } else {
                queue.prepend(job)
            }
        } while uv_hrtime() < deadline
        if queue.isEmpty, let idle = idleHandle {
            isIdleRunning = false
            uv_idle_stop(idle)
        }
    }
}
